"""build-features on a sample of the real exports, incremental rebuilds, and bad input."""

from __future__ import annotations

import gzip
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from builders import SAMPLE, write_config
from pyspark.sql import functions as F

from jobs import build_features, ingest, validate
from riskradar.config import load_settings
from riskradar.errors import ConfigError, NothingToDo
from riskradar.lake import FeedState, Lake, run_folder

FEEDS = ["police_crimes", "sanitation_311", "weather", "census_indicators", "census_areas"]


def _every_nth(source: Path, target: Path, n: int) -> None:
    """Header plus every n-th record: a small sample that spans the whole file."""
    with gzip.open(source, "rt", encoding="utf-8", newline="") as fh:
        lines = fh.readlines()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress("".join([lines[0], *lines[1::n]]).encode(), mtime=0))


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("features")
    landing = tmp / "landing"
    for month in ("2014-05", "2014-06"):
        name = f"chicago_crimes_{month}.csv.gz"
        _every_nth(SAMPLE / "police_crimes" / name, landing / "police_crimes" / name, 150)
    name = "sanitation_code_complaints_2011_2014.csv.gz"
    _every_nth(SAMPLE / "sanitation_311" / name, landing / "sanitation_311" / name, 400)
    shutil.copytree(SAMPLE / "weather", landing / "weather")
    shutil.copytree(SAMPLE / "census", landing / "census")
    settings = load_settings(write_config(tmp, landing=landing, enabled=FEEDS))
    ingest.main(["--all"], settings=settings, spark=spark)
    validate.main(["--all"], settings=settings, spark=spark)
    summary = build_features.main([], settings=settings, spark=spark)
    return settings, summary


def test_panel_is_every_study_cell_times_every_week(built, spark):
    settings, summary = built
    panel = spark.read.parquet(str(Lake(settings.lake_root).gold("features")))
    cells = panel.select("cell_id").distinct().count()
    weeks = sorted(r[0] for r in panel.select("week").distinct().collect())
    assert panel.count() == cells * len(weeks) == summary["rows"]
    assert panel.select("cell_id", "week").distinct().count() == panel.count()
    assert all(
        b - a == timedelta(weeks=1) and a.weekday() == 0 for a, b in zip(weeks, weeks[1:], strict=False)
    )
    # May 1 is a Thursday; the data end on Monday June 30, so the last complete week is June 23
    # and the panel ends with the week to score, June 30.
    assert (weeks[0], weeks[-1]) == (date(2014, 4, 28), date(2014, 6, 30))
    # quiet cells of the city are there, with zeros: far more cells than cells with crimes
    with_crime = panel.where(F.col("n_all_crime_w52") > 0).select("cell_id").distinct().count()
    assert cells > 10 * with_crime
    assert panel.where(F.col("area_code").isNull()).count() < panel.count() * 0.05
    # the week to score has features and no labels
    last = panel.where(F.col("week") == weeks[-1])
    assert last.where(F.col("label_burglary_h1").isNotNull()).count() == 0
    assert last.agg(F.sum("n_all_crime_w4")).first()[0] > 0


def test_covariates_weather_and_signals_are_filled(built, spark):
    settings, _ = built
    panel = spark.read.parquet(str(Lake(settings.lake_root).gold("features")))
    row = panel.where((F.col("area_code") == 32) & (F.col("week") == date(2014, 6, 2))).first()
    assert row["hardship_index"] == 3.0  # Loop, from the census indicators
    assert 15 < row["weather_prev_temp_max_c"] < 35
    assert panel.agg(F.sum("s_sanitation_311_w52")).first()[0] > 0


def test_rebuild_writes_only_changed_weeks_or_all_when_asked(built, spark):
    settings, summary = built
    again = build_features.main([], settings=settings, spark=spark)
    assert again["weeks_written"] == 1 and again["first_week"] == summary["last_week"]
    full = build_features.main(["--full"], settings=settings, spark=spark)
    assert full["weeks_written"] == summary["weeks_written"] and full["rows"] == summary["rows"]


def _silver(spark, tmp_path: Path, rows) -> object:
    settings = load_settings(write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"]))
    schema = (
        "partner string, category string, occurred_at timestamp, x double, y double, origin string, "
        "domestic boolean, batch_id string, ingested_at timestamp"
    )
    df = spark.createDataFrame(rows, schema)
    lake = Lake(settings.lake_root)
    # Published as validate publishes: a run folder per batch, named by the feed's commit record.
    state = FeedState(feed="police_crimes")
    for batch in sorted({r[7] for r in rows}):
        folder = lake.silver("events") / "partner=police_crimes" / f"batch_id={batch}" / run_folder("test")
        df.where(F.col("batch_id") == batch).drop("partner", "batch_id").write.parquet(str(folder))
        state.parts("silver")[batch] = str(folder.relative_to(lake.root))
    state.commit(lake, run_id="test")
    return settings


def _row(when: datetime, category: str = "burglary"):
    return ("police_crimes", category, when, 447000.0, 4637000.0, "reported", False, "b1", when)


def test_empty_silver_gives_a_clear_message(spark, tmp_path):
    settings = load_settings(write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"]))
    with pytest.raises(
        NothingToDo, match=r"silver.events holds no events of the crime feeds \['police_crimes'\]"
    ):
        build_features.main([], settings=settings, spark=spark)


def test_single_week_gives_a_clear_message(spark, tmp_path):
    settings = _silver(spark, tmp_path, [_row(datetime(2014, 6, 3, 12)), _row(datetime(2014, 6, 4, 12))])
    with pytest.raises(
        NothingToDo, match=r"less than two complete weeks of data \(from 2014-06-02 to 2014-06-04\)"
    ):
        build_features.main([], settings=settings, spark=spark)


def test_target_without_events_gives_a_clear_message(spark, tmp_path):
    settings = _silver(
        spark, tmp_path, [_row(datetime(2014, 6, 3, 12), "theft"), _row(datetime(2014, 6, 22, 12), "theft")]
    )
    with pytest.raises(NothingToDo, match=r"target 'burglary' has no events in silver.events"):
        build_features.main([], settings=settings, spark=spark)


def test_rebuild_from_a_day_that_is_not_monday_is_refused(spark, tmp_path):
    rows = [
        _row(datetime(2014, 6, 3, 12)),
        _row(datetime(2014, 6, 10, 12), "robbery"),
        _row(datetime(2014, 6, 22, 12)),
    ]
    settings = _silver(spark, tmp_path, rows)
    with pytest.raises(ConfigError, match=r"--from-week 2014-06-04 is not a Monday"):
        build_features.main(["--from-week", "2014-06-04"], settings=settings, spark=spark)
