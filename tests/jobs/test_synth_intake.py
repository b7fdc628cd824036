"""A small synthetic city through ingest and validate: every delivered row is published or
quarantined for the reason it was damaged, and the DuckDB reference of the scale benchmark
builds the same weekly counts from silver as the Spark transform."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
from builders import ROOT

from benchmarks import synth
from features.panel import PanelSpec
from jobs import ingest, validate
from riskradar.catalog import read_quarantine, read_silver
from riskradar.config import load_settings
from riskradar.lake import Lake

sys.path.insert(0, str(ROOT))  # benchmarks/ is not an installed package

from benchmarks.reference_panel import duckdb_weekly_counts, same_rows, spark_weekly_counts  # noqa: E402

DAMAGED_DATE = "13/45/2014 25:61:00 XM"


@pytest.fixture(scope="module")
def city(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synth.write_city(synth.Options(events=6000, out=out, months=2, bad_share=0.03, chunk_rows=2000))
    settings = load_settings(out / "riskradar.yaml")
    ingest.main(["--all"], settings=settings, spark=spark)
    validate.main(["--all"], settings=settings, spark=spark)
    return out, settings, Lake(settings.lake_root)


def _delivered_police(out) -> pd.DataFrame:
    files = sorted((out / "landing" / "police_crimes").glob("*.csv.gz"))
    return pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files], ignore_index=True)


def test_every_damaged_row_is_quarantined_and_every_good_event_published_once(city, spark):
    out, settings, lake = city
    rows = _delivered_police(out)
    damaged = (
        (rows["X Coordinate"] == "")
        | (rows["Date"] == DAMAGED_DATE)
        | ~rows["Primary Type"].isin(synth.TYPE_NAMES)
        | (rows["Longitude"].replace("", "nan").astype(float) > -87.0)
    )
    silver = read_silver(spark, settings, lake, "events", feeds=["police_crimes"])
    quarantine = read_quarantine(spark, lake, "police_crimes")
    assert silver.count() == rows.loc[~damaged, "ID"].nunique()
    assert silver.count() + quarantine.count() == len(rows)
    reasons = {r["quarantine_rule"] for r in quarantine.select("quarantine_rule").distinct().collect()}
    assert reasons == {
        "missing_coordinates",
        "unparseable_timestamp",
        "unknown_category",
        "out_of_area",
        "duplicate_row",
    }


def test_the_duckdb_reference_panel_equals_the_spark_weekly_counts(city, spark, tmp_path):
    _, settings, lake = city
    spec = PanelSpec.from_settings(settings, [])
    silver = str(lake.silver("events"))
    rows = spark_weekly_counts(spark, spec, silver, str(tmp_path / "spark"))
    assert duckdb_weekly_counts(spec, silver, str(tmp_path / "duck.parquet"), threads=1) == rows > 100
    same_rows(str(tmp_path / "spark"), str(tmp_path / "duck.parquet"))
