"""Partner text cannot run in an analyst's spreadsheet: area names and codes a partner delivered
that start with =, +, -, @ (or a tab, a carriage return) reach every export, the terminal table
and every shared package as text (a leading apostrophe), read back by a CSV and a JSON parser."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from jobs.show_scores import format_table
from reports.exports import to_areas_csv, to_csv, to_geojson
from riskradar.catalog import area_columns, score_columns

FORMULAS = ['=HYPERLINK("http://x.example","Loop")', "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3", "\tTAB"]


def _scores() -> pd.DataFrame:
    rows = []
    for i, name in enumerate(FORMULAS):
        row = dict.fromkeys(score_columns(3))
        row.update(
            cell_id=f"-{i}_4",
            lon=-87.6,
            lat=41.8,
            polygon_wkt="POLYGON((-87.6 41.8, -87.59 41.8, -87.59 41.81, -87.6 41.81, -87.6 41.8))",
            area_code=name,
            area_name=name,
            expected_count=1.5 - i / 10,
            rank=i + 1,
            percentile=100.0 - i,
            hotspot=i == 0,
            model_name="riskradar-burglary",
            model_version=1,
            model_run_id="r",
            model_recipe="hgb_poisson",
            features_version="f",
            scored_at=datetime(2014, 12, 29, tzinfo=UTC),
            target="burglary",
            week=date(2014, 12, 29),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _cells(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _is_text(value: str) -> bool:
    return not value.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_the_scores_csv_and_geojson_hold_partner_text_as_text():
    rows = _cells(to_csv(_scores()))
    assert [r["area_name"] for r in rows] == ["'" + f for f in FORMULAS]
    assert all(_is_text(r["area_code"]) for r in rows)
    assert [r["cell_id"] for r in rows] == [f"-{i}_4" for i in range(5)]  # our own ids stay as they are
    features = json.loads(to_geojson(_scores()))["features"]
    assert [f["properties"]["area_name"] for f in features] == ["'" + f for f in FORMULAS]


def test_the_areas_csv_holds_partner_text_as_text():
    areas = pd.DataFrame([{c: None for c in area_columns()} for _ in FORMULAS])
    areas = areas.assign(
        area_code=FORMULAS, area_name=FORMULAS, cells=1, expected_count=[5.0, 4, 3, 2, 1], hotspot_cells=0
    ).assign(expected_count_shown="5", share_of_hotspots=0.0, target="burglary", week=date(2014, 12, 29))
    rows = _cells(to_areas_csv(areas))
    assert [r["area_name"] for r in rows] == ["'" + f for f in FORMULAS]
    assert all(_is_text(r["area_code"]) for r in rows)


@pytest.mark.parametrize("name", FORMULAS)
def test_the_terminal_table_shows_partner_text_as_text(name):
    top = _scores()
    top = top[top["area_name"] == name]
    line = format_table(top, target="burglary", week="2014-12-29", n_cells=5).splitlines()[2]
    assert ("'" + name)[:22] in line
