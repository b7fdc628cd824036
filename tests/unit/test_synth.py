"""The synthetic city: deterministic, chunked, in the Chicago feeds' formats, with the structure
forecasting relies on and the bad rows intake must catch."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import SAMPLE

from benchmarks import synth
from riskradar.crs import transform_array


def _city(out: Path, **kw) -> dict[str, int]:
    opts = synth.Options(**{"events": 4000, "out": out, "months": 3, "chunk_rows": 1500, **kw})
    return synth.write_city(opts)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _header(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh))


def _police(landing: Path) -> pd.DataFrame:
    files = sorted((landing / "police_crimes").glob("*.csv.gz"))
    return pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files], ignore_index=True)


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    _city(tmp_path / "a")
    _city(tmp_path / "b")
    _city(tmp_path / "c", seed=7)
    a, b, c = (_files(tmp_path / name / "landing") for name in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert a["police_crimes/synth_crimes_2013-02.csv.gz"] != c["police_crimes/synth_crimes_2013-02.csv.gz"]


def test_every_event_is_written_once_plus_redelivered_duplicates(tmp_path):
    counts = _city(tmp_path, events=5000, bad_share=0.05)
    police = _police(tmp_path / "landing")
    complaints = pd.concat(
        [pd.read_csv(f, dtype=str) for f in (tmp_path / "landing" / "sanitation_311").glob("*.csv.gz")]
    )
    assert counts["police_crimes"] == len(police) and counts["sanitation_311"] == len(complaints)
    assert police["ID"].nunique() + complaints["Service_Request_Number"].nunique() == 5000
    duplicated = police[police["ID"].duplicated(keep=False)]
    assert len(duplicated) > 0
    # a duplicate is the same row delivered again, not another event under the same id
    assert len(duplicated.drop_duplicates()) == duplicated["ID"].nunique()


def test_files_have_the_chicago_feeds_headers(tmp_path):
    _city(tmp_path)
    landing = tmp_path / "landing"
    pairs = [  # (folder, ours, Chicago's)
        ("police_crimes", "synth_crimes_2013-01.csv.gz", "chicago_crimes_2014-01.csv.gz"),
        ("sanitation_311", "synth_sanitation_2013.csv.gz", "sanitation_code_complaints_2011_2014.csv.gz"),
        ("weather", "synth_weather_daily.csv", "chicago_weather_daily_2011-2014.csv"),
        ("census", "census_socioeconomic_synth.csv", "census_socioeconomic_by_community_area_2008_2012.csv"),
    ]
    for folder, ours, theirs in pairs:
        assert _header(landing / folder / ours) == _header(SAMPLE / folder / theirs), ours


def test_chunks_bound_what_is_generated_at_once(tmp_path, crime_chunk_sizes):
    sizes = crime_chunk_sizes
    counts = _city(tmp_path, events=6000, chunk_rows=700, bad_share=0.0)
    assert max(sizes) <= 700
    assert sum(sizes) == counts["police_crimes"] == 6000 - round(6000 * synth.SHARE_311)


def test_coordinates_agree_between_the_feet_and_the_degrees(tmp_path):
    _city(tmp_path, bad_share=0.0)
    police = _police(tmp_path / "landing")
    lon, lat = transform_array(
        police["X Coordinate"].astype(float).to_numpy(),
        police["Y Coordinate"].astype(float).to_numpy(),
        "EPSG:3435",
        "EPSG:4326",
    )
    # the feet are rounded to whole feet, as in the Chicago export: within a metre
    assert np.abs(lon - police["Longitude"].astype(float)).max() < 1e-5
    assert np.abs(lat - police["Latitude"].astype(float)).max() < 1e-5
    parsed = pd.to_datetime(police["Date"], format="%m/%d/%Y %I:%M:%S %p")
    assert parsed.min() >= pd.Timestamp("2013-01-01") and parsed.max() < pd.Timestamp("2013-04-01")


def test_the_city_has_stable_hotspots_a_summer_peak_and_leading_complaints(tmp_path):
    """What the models are meant to find is there: a place's first year predicts its second,
    July is busier than January, and complaints rise where crime rises two weeks later."""
    _city(tmp_path, events=80_000, months=24, chunk_rows=40_000, bad_share=0.0)
    police = _police(tmp_path / "landing")
    x = police["X Coordinate"].astype(float) // 492  # cells of 150 m in feet
    y = police["Y Coordinate"].astype(float) // 492
    when = pd.to_datetime(police["Date"], format="%m/%d/%Y %I:%M:%S %p")
    cell = x.astype(int).astype(str) + "_" + y.astype(int).astype(str)
    first, second = cell[when.dt.year == 2013], cell[when.dt.year == 2014]
    top = first.value_counts().index[: int(0.03 * 25_000)]
    pai = second.isin(top).mean() / 0.03
    assert pai > 5, f"the top 3% cells of 2013 hold only {pai:.1f}x their share of 2014's events"
    by_month = when.dt.month.value_counts()
    assert by_month[7] > 1.3 * by_month[1]

    complaints = pd.concat(
        [pd.read_csv(f) for f in (tmp_path / "landing" / "sanitation_311").glob("*.csv.gz")],
        ignore_index=True,
    )
    fx, fy = transform_array(
        complaints["Longitude"].to_numpy(), complaints["Latitude"].to_numpy(), "EPSG:4326", "EPSG:3435"
    )
    week = lambda t: (t - pd.Timestamp("2013-01-07")).dt.days // 7  # noqa: E731
    c311 = pd.DataFrame(
        {
            "cell": (fx // 984).astype(int).astype(str) + "_" + (fy // 984).astype(int).astype(str),
            "week": week(pd.to_datetime(complaints["Creation_Date"])),
        }
    ).value_counts()
    crime = pd.DataFrame(
        {
            "cell": (x // 2).astype(int).astype(str) + "_" + (y // 2).astype(int).astype(str),
            "week": week(when),
        }
    ).value_counts()
    joined = pd.concat({"c311": c311, "crime": crime}, axis=1).fillna(0)
    led = joined.reset_index()
    led["crime_2w_later"] = led.merge(
        led.assign(week=led["week"] - 2)[["cell", "week", "crime"]], on=["cell", "week"], how="left"
    )["crime_y"].fillna(0)
    busy = led["c311"] >= 2
    assert led.loc[busy, "crime_2w_later"].mean() > 2 * led.loc[~busy, "crime_2w_later"].mean()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--events", "0", "--out", "x"], "expected a positive number"),
        (["--events", "10", "--out", "x", "--start", "2013-13"], "is not a month"),
    ],
)
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        synth.main(argv)
    assert message in capsys.readouterr().err


def test_config_reads_the_synthetic_landing_with_the_committed_contracts(tmp_path):
    from riskradar.config import load_settings

    _city(tmp_path, bad_share=0.0)
    settings = load_settings(tmp_path / "riskradar.yaml")
    assert Path(settings.partners.landing_root) == (tmp_path / "landing").resolve()
    west, south, east, north = settings.study_area.bbox_wgs84
    police = _police(tmp_path / "landing")
    inside = police["Longitude"].astype(float).between(west, east) & police["Latitude"].astype(float).between(
        south, north
    )
    assert inside.all()
