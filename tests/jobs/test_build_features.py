"""build-features on a sample of the real exports, incremental rebuilds, and bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import re
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from builders import SAMPLE, write_config
from pyspark.sql import functions as F

from jobs import build_features, export, ingest, score, train, validate
from riskradar.config import load_settings
from riskradar.errors import ConfigError, NothingToDo, PanelGrowthRefused, PublishRefused
from riskradar.lake import FeedState, Lake, run_folder

FEEDS = ["police_crimes", "sanitation_311", "weather", "census_indicators", "census_areas"]


# Four central community areas (Near North Side, Near West Side, the Loop, Near South Side):
# their boundaries bound the study area, about 1,400 cells of 150 m instead of the city's 26,500,
# so every build of the panel (all of the bundled config's feature families) is quick.
AREAS = {"8", "28", "32", "33"}


def _sample_of_areas(source: Path, target: Path, *, area_column: str, n: int) -> None:
    """Header plus every n-th record of AREAS (by the file's own community-area column): a small
    sample that spans the whole file."""
    with gzip.open(source, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if r[area_column] and str(int(float(r[area_column]))) in AREAS]
        header = list(reader.fieldnames or [])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows[::n])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress(out.getvalue().encode(), mtime=0))


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """The bundled city's feeds and config, on the part of the city in AREAS: every 50th crime
    of May and June 2014 and every 20th sanitation complaint there, the weather, every area's
    census indicators and the boundaries of AREAS."""
    tmp = tmp_path_factory.mktemp("features")
    landing = tmp / "landing"
    for month in ("2014-05", "2014-06"):
        name = f"chicago_crimes_{month}.csv.gz"
        source, target = SAMPLE / "police_crimes" / name, landing / "police_crimes" / name
        _sample_of_areas(source, target, area_column="Community Area", n=50)
    name = "sanitation_code_complaints_2011_2014.csv.gz"
    source, target = SAMPLE / "sanitation_311" / name, landing / "sanitation_311" / name
    _sample_of_areas(source, target, area_column="Community_Area", n=20)
    shutil.copytree(SAMPLE / "weather", landing / "weather")
    shutil.copytree(SAMPLE / "census", landing / "census")
    boundaries = landing / "census" / "community_areas.geojson"
    collection = json.loads(boundaries.read_text())
    collection["features"] = [f for f in collection["features"] if f["properties"]["area_numbe"] in AREAS]
    boundaries.write_text(json.dumps(collection))
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


# The hand-typed holidays the calendar replaced (features.holidays, 2013-2015 part): the bundled
# panel's holiday weeks must be the weeks holding one of these.
OLD_HOLIDAYS = [
    date.fromisoformat(d)
    for d in (
        "2013-01-01 2013-01-21 2013-02-18 2013-05-27 2013-07-04 2013-09-02 2013-10-14 2013-11-11 "
        "2013-11-28 2013-12-25 2014-01-01 2014-01-20 2014-02-17 2014-05-26 2014-07-04 2014-09-01 "
        "2014-10-13 2014-11-11 2014-11-27 2014-12-25 2015-01-01 2015-01-19 2015-02-16 2015-05-25 "
        "2015-07-03 2015-09-07 2015-10-12 2015-11-11 2015-11-26 2015-12-25"
    ).split()
]


def test_the_sample_panel_is_what_it_was_before_the_roles(built, spark):
    """The roles and the calendar change nothing in the bundled city's panel: its columns and
    their order, the holiday weeks of the hand-typed list, the census indicators of each area,
    and last week's weather, recomputed here from the delivered files."""
    settings, _ = built
    published = spark.read.parquet(str(Lake(settings.lake_root).gold("features")))
    indicators = [
        "pct_housing_crowded",
        "pct_below_poverty",
        "pct_unemployed",
        "pct_without_diploma",
        "pct_under_18_or_over_64",
        "per_capita_income",
        "hardship_index",
    ]
    weather = ["weather_prev_temp_max_c", "weather_prev_precip_mm"]
    assert published.columns[-14:] == [
        "khist_all_incidents_b600_all",  # the last of the kernel-smoothed surfaces
        *indicators,
        *weather,
        "label_burglary_h1",
        "label_robbery_assault_h1",
        "label_all_incidents_h1",
        "week",  # the partition column, read back last
    ]
    # only the columns checked below (the bundled city's panel has 211 columns)
    panel = published.select("week", "holiday_week", "area_code", *indicators, *weather).toPandas()
    weeks = panel.drop_duplicates("week").set_index("week")
    holiday = {w: any(w <= d < w + timedelta(days=7) for d in OLD_HOLIDAYS) for w in weeks.index}
    assert weeks["holiday_week"].to_dict() == holiday
    assert sum(holiday.values()) == 2  # Memorial Day (May 26) and the week of July 4

    census = pd.read_csv(SAMPLE / "census" / "census_socioeconomic_by_community_area_2008_2012.csv")
    census = census.rename(columns=lambda c: c.strip()).dropna(subset=["Community Area"])
    columns = [
        "PERCENT OF HOUSING CROWDED",
        "PERCENT HOUSEHOLDS BELOW POVERTY",
        "PERCENT AGED 16+ UNEMPLOYED",
    ]
    columns += ["PERCENT AGED 25+ WITHOUT HIGH SCHOOL DIPLOMA", "PERCENT AGED UNDER 18 OR OVER 64"]
    columns += ["PER CAPITA INCOME", "HARDSHIP INDEX"]
    expected = census.set_index(census["Community Area"].astype(int).astype(str))[columns].set_axis(
        indicators, axis=1
    )
    areas = panel.dropna(subset=["area_code"]).drop_duplicates("area_code").set_index("area_code")
    pd.testing.assert_frame_equal(
        areas[indicators].sort_index(),
        expected.loc[areas.index].astype(float).sort_index(),
        check_names=False,
        check_index_type=False,
    )

    days = pd.read_csv(SAMPLE / "weather" / "chicago_weather_daily_2011-2014.csv", parse_dates=["date"])
    days["monday"] = (days["date"] - pd.to_timedelta(days["date"].dt.weekday, unit="D")).dt.date
    days["t"] = (days["temperatureMax"] - 32.0) * 5.0 / 9.0
    days["p"] = days["precipIntensity"] * 25.4 * 24.0
    by_week = days.groupby("monday").agg(t=("t", "mean"), p=("p", "sum"), n=("t", "size"))
    previous = by_week.loc[[w - timedelta(days=7) for w in weeks.index]]
    assert (previous["n"] == 7).all()
    assert weeks["weather_prev_temp_max_c"].to_numpy() == pytest.approx(previous["t"].to_numpy(), rel=1e-12)
    assert weeks["weather_prev_precip_mm"].to_numpy() == pytest.approx(previous["p"].to_numpy(), rel=1e-12)


def test_rebuild_writes_only_changed_weeks_or_all_when_asked(built, spark):
    settings, summary = built
    again = build_features.main([], settings=settings, spark=spark)
    assert again["weeks_written"] == 1 and again["first_week"] == summary["last_week"]
    full = build_features.main(["--full"], settings=settings, spark=spark)
    assert full["weeks_written"] == summary["weeks_written"] and full["rows"] == summary["rows"]


def _silver(spark, tmp_path: Path, rows, **overrides) -> object:
    settings = load_settings(write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"], **overrides))
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
        df.where(F.col("batch_id") == batch).drop("partner", "batch_id").write.mode("overwrite").parquet(
            str(folder)
        )
        state.parts("silver")[batch] = str(folder.relative_to(lake.root))
    state.commit(lake, run_id="test")
    return settings


def _row(when: datetime, category: str = "burglary", batch: str = "b1"):
    return ("police_crimes", category, when, 447000.0, 4637000.0, "reported", False, batch, when)


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


def _weekly(first: datetime, weeks: int, batch: str = "b1") -> list:
    """A burglary every Wednesday and a robbery every Sunday from `first` (a Monday) on."""
    days = [first + timedelta(weeks=k, days=d) for k in range(weeks) for d in (2, 6)]
    return [
        _row(day.replace(hour=12), "burglary" if day.weekday() == 2 else "robbery", batch) for day in days
    ]


def test_a_stray_date_after_a_gap_does_not_stretch_the_panel(spark, tmp_path):
    """One event six empty weeks after the data (inside the contract's window, so published) leaves the
    panel, and so the week to score, where the data end; the build says what it left out."""
    rows = [*_weekly(datetime(2014, 6, 2), 3), _row(datetime(2014, 8, 5, 12))]
    settings = _silver(spark, tmp_path, rows)
    summary = build_features.main([], settings=settings, spark=spark)
    assert (summary["first_week"], summary["last_week"]) == ("2014-06-02", "2014-06-23")
    assert summary["left_out"] == (
        "1 event(s) of the crime feeds from 2014-08-05 to 2014-08-05 lie after 6 empty weeks (more than "
        "features.max_gap_weeks = 4): the panel ends with the data before them (2014-06-22); check them "
        "for a mistyped date"
    )
    (record,) = [
        json.loads(p.read_text())
        for p in Lake(settings.lake_root).audit.glob("date=*/*-build_features-*.json")
    ]
    assert record["notes"] == [summary["left_out"]]


def test_a_panel_that_would_grow_too_far_at_once_is_refused(spark, tmp_path):
    settings = _silver(spark, tmp_path, _weekly(datetime(2014, 6, 2), 3))
    assert build_features.main([], settings=settings, spark=spark)["last_week"] == "2014-06-23"
    more = [*_weekly(datetime(2014, 6, 2), 3), *_weekly(datetime(2014, 6, 23), 15, batch="b2")]
    settings = _silver(spark, tmp_path, more)
    with pytest.raises(
        PanelGrowthRefused,
        match=r"reach the week of 2014-09-29, so the panel would grow by 15 weeks after its newest week "
        r"2014-06-23: more than features.max_new_weeks = 13 at once",
    ):
        build_features.main([], settings=settings, spark=spark)
    grown = build_features.main(["--allow-growth"], settings=settings, spark=spark)
    assert grown["last_week"] == "2014-10-06"


def test_rebuild_from_a_day_that_is_not_monday_is_refused(spark, tmp_path):
    rows = [
        _row(datetime(2014, 6, 3, 12)),
        _row(datetime(2014, 6, 10, 12), "robbery"),
        _row(datetime(2014, 6, 22, 12)),
    ]
    settings = _silver(spark, tmp_path, rows)
    with pytest.raises(ConfigError, match=r"--from-week 2014-06-04 is not a Monday"):
        build_features.main(["--from-week", "2014-06-04"], settings=settings, spark=spark)


def _panel(spark, lake: Lake) -> pd.DataFrame:
    panel = spark.read.parquet(str(lake.gold("features"))).toPandas()
    return panel.sort_values(["week", "cell_id"]).reset_index(drop=True)


def _published(folder: Path) -> list[str]:
    """The panel's published data files (not the staging area, not the build records)."""
    return sorted(str(p.relative_to(folder)) for p in folder.glob("week=*/*.parquet"))


def test_a_panel_that_fails_its_rows_check_leaves_the_published_panel_unchanged(spark, tmp_path, monkeypatch):
    """Write-audit-publish: rows = cells x weeks is checked on the staged panel; a panel that
    fails it (here a week goes missing) is never visible, the previous one stays as it was
    and no build is recorded."""
    rows = [
        _row(datetime(2014, 6, 3, 12)),
        _row(datetime(2014, 6, 10, 12), "robbery"),
        _row(datetime(2014, 6, 22, 12)),
    ]
    settings = _silver(spark, tmp_path, rows)
    first = build_features.main([], settings=settings, spark=spark)
    assert (first["first_week"], first["last_week"]) == ("2014-06-02", "2014-06-23")
    lake = Lake(settings.lake_root)
    files, before = _published(lake.gold("features")), _panel(spark, lake)
    builds = sorted(p.name for p in (lake.gold("features") / "_builds").iterdir())
    real = build_features.build_panel
    monkeypatch.setattr(
        build_features,
        "build_panel",
        lambda *args, **kwargs: real(*args, **kwargs).where(F.col("week") < F.lit(date(2014, 6, 23))),
    )
    with pytest.raises(
        PublishRefused, match=r"panel rows = 1 cells x 4 weeks: 3 rows, expected 4 \(report (.+)\)"
    ) as err:
        build_features.main(["--full"], settings=settings, spark=spark)
    report = json.loads(Path(re.search(r"\(report (.+)\)", str(err.value)).group(1)).read_text())
    assert report["published"] is False and report["tables"] == ["features"]
    assert report["checks"] == {
        "panel rows = 1 cells x 4 weeks": "3 rows, expected 4",
        "panel schema": "passed",
    }
    assert _published(lake.gold("features")) == files
    pd.testing.assert_frame_equal(_panel(spark, lake), before)
    assert sorted(p.name for p in (lake.gold("features") / "_builds").iterdir()) == builds


def test_a_city_without_indicators_boundaries_or_weather_runs_every_step(spark, tmp_path):
    """Only an events feed: no role has a feed. The panel has no area, indicator or weather
    column, and build-features, train, score and export run; the model card says what was
    absent, and the report that there is no roll-up by area."""
    rnd = random.Random(5)
    start = datetime(2014, 3, 3, 12)  # a Monday
    hot = [(447000.0 + 150 * i, 4637000.0 + 150 * j) for i in range(4) for j in range(4)]
    rows = []
    for week in range(12):
        for k, (x, y) in enumerate(hot):
            for _ in range(1 + k % 4 + rnd.randrange(2)):
                when = start + timedelta(weeks=week, days=rnd.randrange(7), hours=rnd.randrange(10))
                rows.append(
                    ("police_crimes", "burglary", when, x + 10, y + 10, "reported", False, "b1", when)
                )
    settings = _silver(
        spark,
        tmp_path,
        rows,
        **{
            "targets": {"burglary": {"categories": ["burglary"]}},
            "training.backtest_weeks": 4,
            "training.refit_every_weeks": 2,
            "training.candidates": {"hgb_poisson": {"max_iter": 20, "random_state": 0}},
            # 12 weeks: tuned on the 2 weeks before each origin
            "training.tuning": {"validation_weeks": 2, "every_weeks": 4, "blend_weights": [0.5, 1.0]},
        },
    )
    assert settings.roles.model_dump() == {"area_boundaries": None, "area_indicators": None, "weather": None}
    lake = Lake(settings.lake_root)

    built = build_features.main([], settings=settings, spark=spark)
    panel = spark.read.parquet(str(lake.gold("features")))
    assert built["cells"] == len(hot)
    (audit,) = [json.loads(p.read_text()) for p in lake.audit.glob("date=*/*-build_features-*.json")]
    assert audit["inputs"] == [{"table": "silver.events"}]  # no role, no other table
    assert not [c for c in panel.columns if c.startswith(("weather", "hardship", "pct_"))]
    assert panel.where(F.col("area_code").isNotNull()).count() == 0

    trained = train.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    import mlflow

    card = mlflow.artifacts.load_text(f"runs:/{trained['run_id']}/model_card.md")
    absent = card.split("## Absent parts\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert absent == [
        "- no area boundaries (roles.area_boundaries): cells belong to no area; no roll-up by area",
        "- no area indicators (roles.area_indicators): no area covariates; exposure strata not computed",
        "- no weather series (roles.weather): no weather features",
        "- no other partners' signals (features.signals)",
    ]
    assert "has one stratum: exposure strata not computed" in card

    scored = score.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    assert scored["cells"] == len(hot) and scored["areas_partition"] is None
    assert not lake.gold("scores_by_area").exists()
    files = export.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    assert sorted(files) == ["csv", "geojson", "html"]
    page = files["html"].read_text()
    assert "No roll-up by area: the config names no area boundaries (roles.area_boundaries)." in page
    assert "outlines:" not in page
    assert len(json.loads(files["geojson"].read_text())["features"]) == len(hot)
