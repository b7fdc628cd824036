"""The synthetic country: deterministic, chunked, an area that grows with the cells asked for
(cities, towns, villages and rural cells), areas that cover every event, the city's share of
damaged rows, and a week of deliveries after the span."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import synth, synth_country
from features.grid import Grid, cells_in_areas
from riskradar.config import load_settings
from riskradar.crs import transform_array

DATE_FORMAT = "%m/%d/%Y %I:%M:%S %p"


def _options(out: Path, **kw) -> synth_country.CountryOptions:
    return synth_country.CountryOptions(**{"cells": 2000, "out": out, "months": 3, "chunk_rows": 1500, **kw})


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _police(folder: Path) -> pd.DataFrame:
    files = sorted((folder / "police_crimes").glob("*.csv.gz"))
    return pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files], ignore_index=True)


def _projected(police: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The rows' project-CRS metres from their feet, as the police contract reads them."""
    located = police[police["X Coordinate"] != ""]
    return transform_array(
        located["X Coordinate"].astype(float).to_numpy(),
        located["Y Coordinate"].astype(float).to_numpy(),
        synth.FEET_CRS,
        synth.PROJECT_CRS,
    )


def _area_cells(landing: Path, size: float) -> set[tuple[int, int]]:
    """The cells the pipeline puts in an area (features.grid.cells_in_areas), from the boundaries file."""
    features = json.loads((landing / "census" / "synth_areas.geojson").read_text())["features"]
    areas = [(f["properties"]["area_numbe"], json.dumps(f["geometry"])) for f in features]
    return {(ix, iy) for ix, iy, _ in cells_in_areas(areas, Grid(size, synth.PROJECT_CRS))}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    for name, seed in (("a", 42), ("b", 42), ("c", 7)):
        synth_country.write_country(_options(tmp_path / name, seed=seed))
    written = {
        name: {part: _files(tmp_path / name / part) for part in ("landing", "next_week", "expectations")}
        for name in "abc"
    }
    assert written["a"] == written["b"]
    assert written["a"]["landing"].keys() == written["c"]["landing"].keys()
    month = "police_crimes/synth_crimes_2013-02.csv.gz"
    assert written["a"]["landing"][month] != written["c"]["landing"][month]


@pytest.mark.parametrize("cells", [2000, 8000])
def test_the_study_cells_are_about_the_cells_asked_for_and_the_areas_hold_every_event(tmp_path, cells):
    counts = synth_country.write_country(_options(tmp_path, cells=cells, bad_share=0.0))
    size = synth_country.grid_cell_size()
    in_areas = _area_cells(tmp_path / "landing", size)
    x, y = _projected(pd.concat([_police(tmp_path / "landing"), _police(tmp_path / "next_week")]))
    with_events = set(zip(np.floor(x / size).astype(int), np.floor(y / size).astype(int), strict=True))
    assert with_events <= in_areas, f"{len(with_events - in_areas)} cells with events outside every area"
    # the pipeline's study cells: those in an area plus those with an event (jobs/build_features.py)
    assert counts["study_cells"] == len(in_areas | with_events)
    assert abs(counts["study_cells"] - cells) <= 0.02 * cells
    assert counts["areas"] == len(
        json.loads((tmp_path / "landing" / "census" / "synth_areas.geojson").read_text())["features"]
    )


def test_the_country_grows_in_area_with_more_settlements_and_areas():
    small = synth_country.plan_country(_options(Path("unused"), cells=25_000))
    large = synth_country.plan_country(_options(Path("unused"), cells=250_000))
    kinds = lambda c: {k: c.kinds.count(k) for k in synth_country.SETTLEMENTS}  # noqa: E731
    assert kinds(small) == {"city": 1, "town": 3, "village": 25}
    assert kinds(large) == {"city": 4, "town": 31, "village": 250}
    assert abs(large.cells - 250_000) <= 0.005 * 250_000
    assert large.extent[0] * large.extent[1] > 9.5 * small.extent[0] * small.extent[1]
    assert large.areas[0] * large.areas[1] > 9 * small.areas[0] * small.areas[1] > 500
    # on the grid: the extent's corner is a multiple of the cell size
    assert all(v % large.cell_size_m == 0 for v in large.origin)


def test_a_country_larger_than_its_crss_area_of_use_is_refused(capsys):
    with pytest.raises(ValueError, match="does not fit"):
        synth_country.plan_country(_options(Path("unused"), cells=5_000_000))
    with pytest.raises(SystemExit):
        synth_country.main(["--cells", "5000000", "--out", "unused"])
    assert "ask for fewer cells" in capsys.readouterr().err


def test_city_cells_are_far_denser_than_rural_ones(tmp_path):
    opts = _options(tmp_path, cells=4000, months=6, bad_share=0.0)
    synth_country.write_country(opts)
    country = synth_country.plan_country(opts)
    x, y = _projected(_police(tmp_path / "landing"))
    x, y = x - country.origin[0], y - country.origin[1]
    size = country.cell_size_m
    centres = (np.arange(country.cols) + 0.5) * size, (np.arange(country.rows) + 0.5) * size
    gx, gy = np.meshgrid(*centres, indexing="ij")
    events = np.histogram2d(
        x, y, bins=[country.cols, country.rows], range=[[0, country.extent[0]], [0, country.extent[1]]]
    )[0]
    s = country.settlements
    distance = np.sqrt((gx[..., None] - s[:, 0]) ** 2 + (gy[..., None] - s[:, 1]) ** 2) / s[:, 2]
    city = country.kinds.index("city")
    in_city = distance[..., city] < 1
    rural = (distance > 3).all(axis=-1)
    assert in_city.sum() > 20 and rural.sum() > 200
    city_rate, rural_rate = events[in_city].mean(), events[rural].mean()
    assert rural_rate > 0, "rural cells have events, rarely"
    assert city_rate > 20 * rural_rate, f"city {city_rate:.2f} vs rural {rural_rate:.3f} events per cell"


def test_events_are_generated_chunk_by_chunk(tmp_path, crime_chunk_sizes):
    sizes = crime_chunk_sizes
    opts = _options(tmp_path, events_per_cell_year=12.0, chunk_rows=700, bad_share=0.0)
    counts = synth_country.write_country(opts)
    assert max(sizes) <= 700 and len(sizes) > 3 + 1  # more chunks than the 3 months and the week after
    assert sum(sizes) == counts["police_crimes"] + counts["next_week_police_crimes"]
    days = synth_country.span_days(opts) + synth_country.NEXT_WEEK_DAYS
    assert sum(sizes) == round(12.0 * counts["study_cells"] * days / 365.25)


def test_the_damaged_share_is_the_citys(tmp_path):
    synth_country.write_country(_options(tmp_path, events_per_cell_year=12.0, bad_share=0.05))
    police = _police(tmp_path / "landing")
    west, _, east, _ = load_settings(tmp_path / "riskradar.yaml").study_area.bbox_wgs84
    longitude = police["Longitude"].replace("", "nan").astype(float)
    damaged = (
        (police["X Coordinate"] == "")
        | (pd.to_datetime(police["Date"], format=DATE_FORMAT, errors="coerce").isna())
        | ~police["Primary Type"].isin(synth.TYPE_NAMES)
        | ~longitude.between(west, east)
    )
    duplicated = police["ID"].duplicated()
    assert 0.035 < damaged[~duplicated].mean() < 0.065
    assert 0 < duplicated.sum() < 0.03 * len(police)


def test_the_next_week_holds_the_seven_days_after_the_span_in_the_landing_formats(tmp_path):
    counts = synth_country.write_country(_options(tmp_path, bad_share=0.0))
    landing, week = tmp_path / "landing", tmp_path / "next_week"
    when = pd.to_datetime(_police(week)["Date"], format=DATE_FORMAT)
    assert when.min() >= pd.Timestamp("2013-04-01") and when.max() < pd.Timestamp("2013-04-08")
    assert pd.to_datetime(_police(landing)["Date"], format=DATE_FORMAT).max() < pd.Timestamp("2013-04-01")
    assert len(when) == counts["next_week_police_crimes"] > 0
    for feed in ("police_crimes", "sanitation_311", "weather"):
        [new] = sorted((week / feed).iterdir())
        [old, *_] = sorted((landing / feed).iterdir())
        assert _header(new) == _header(old), feed
    weather = pd.read_csv(next((week / "weather").iterdir()))
    assert weather["date"].tolist() == [f"2013-04-0{d}" for d in range(1, 8)]


def _header(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh))


def test_the_config_and_suites_fit_the_country(tmp_path):
    synth_country.write_country(_options(tmp_path, cells=8000, bad_share=0.0))
    settings = load_settings(tmp_path / "riskradar.yaml")
    assert Path(settings.expectations_dir) == (tmp_path / "expectations").resolve()
    suite = json.loads((tmp_path / "expectations" / "police_crimes.json").read_text())
    box = {
        e["kwargs"]["column"]: (e["kwargs"]["min_value"], e["kwargs"]["max_value"])
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] in ("x", "y")
    }
    x, y = _projected(_police(tmp_path / "landing"))
    assert box["x"][0] <= x.min() and x.max() <= box["x"][1]
    assert box["y"][0] <= y.min() and y.max() <= box["y"][1]
    west, south, east, north = settings.study_area.bbox_wgs84
    police = _police(tmp_path / "landing")
    assert police["Longitude"].astype(float).between(west, east).all()
    assert police["Latitude"].astype(float).between(south, north).all()
