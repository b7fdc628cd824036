"""`riskradar retention` on a small police lake whose events span the limit: every row older than
the contract allows goes from bronze, silver, history and quarantine (and a delivered file's copy
with its last row), the audit record counts what went, a rerun removes nothing, a dry run changes
nothing, a killed run leaves the old lake or the new one, and the panel rebuilt afterwards is the
panel before, from the counts retention kept of the events."""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from builders import ROOT, SAMPLE, csv_gz, intake_tables, write_config
from support.crash import start_runner, wait_killed

from features.panel import SMOOTHING, PanelSpec, tagged_features
from intake.retention import RetentionUnfinished, row_time
from jobs import batches, build_features, ingest, retention, validate
from riskradar.audit import read_audit
from riskradar.catalog import (
    EXPIRED_COUNTS,
    read_events_and_expired,
    read_history,
    read_quarantine,
    read_silver,
)
from riskradar.config import load_settings
from riskradar.errors import ConfigError, DeliveryRejected
from riskradar.lake import FeedState, Lake, has_parquet, read_json_dir

FEED = "police_crimes"
RUNNER = ROOT / "tests" / "support" / "retention_runner.py"
LIMIT = datetime(2014, 4, 1)  # the rows of events before it (UTC) go
AS_OF = LIMIT.date() + timedelta(days=1825)  # the contract's retention_days
TABLES = ("bronze", "quarantine", "silver", "history")


def _dated(rows: list[dict[str, str]], first: datetime, **changes: str) -> list[dict[str, str]]:
    """The rows one a day from `first` (at hours that vary), with `changes` to every row."""
    when = [first + timedelta(days=i, minutes=97 * i % 1440) for i in range(len(rows))]
    return [
        dict(r, Date=t.strftime("%m/%d/%Y %I:%M:%S %p"), **changes) for r, t in zip(rows, when, strict=True)
    ]


def _deliveries() -> tuple[list[str], dict[str, list[dict[str, str]]]]:
    """Police rows of the sample, dated anew: February to mid-March, mid-March to April across
    the limit (with a row whose date does not parse), May and June; a file of the old kind
    without its X coordinates (ingest quarantines its rows); and corrections of 5 old and 5
    new events. Rows 9-11, 16-17 (old) and 44-47 (across) have no coordinates."""
    with gzip.open(SAMPLE / FEED / "chicago_crimes_2014-06.csv.gz", "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r, _ in zip(reader, range(130), strict=False)]
        header = list(reader.fieldnames or [])
    old, new = _dated(rows[:40], datetime(2014, 2, 3, 1)), _dated(rows[80:120], datetime(2014, 5, 1, 3))
    across = _dated(rows[40:80], datetime(2014, 3, 12, 2))
    across[30]["Date"] = "not a date"
    return header, {
        "old": old,
        "across": across,
        "new": new,
        "no_x": _dated(rows[120:130], datetime(2014, 2, 20, 4)),
        "fixes": [dict(r, **{"Primary Type": "ARSON"}) for r in old[:5] + new[:5]],
    }


def _deliver(landing: Path, name: str, header: list[str], rows: list[dict[str, str]]) -> None:
    (landing / FEED).mkdir(parents=True, exist_ok=True)
    (landing / FEED / name).write_bytes(csv_gz(header, rows))


def _intake(spark, settings) -> None:
    ingest.main(["--partner", FEED], settings=settings, spark=spark)
    validate.main(["--partner", FEED], settings=settings, spark=spark)


@pytest.fixture(scope="module")
def pristine(spark, tmp_path_factory):
    """A lake of two batches (the old and the new rows, and the file without X coordinates; then
    the rows across the limit and the corrections), and its panel; kept as built, for each test
    to copy: (landing, lake)."""
    tmp = tmp_path_factory.mktemp("retention")
    landing = tmp / "landing"
    header, files = _deliveries()
    for name in ("old", "new"):
        _deliver(landing, f"crimes_{name}.csv.gz", header, files[name])
    _deliver(landing, "crimes_no_x.csv.gz", [h for h in header if h != "X Coordinate"], files["no_x"])
    settings = load_settings(write_config(tmp, landing=landing, enabled=[FEED]))
    with pytest.raises(DeliveryRejected):  # the file without X coordinates: its rows to quarantine
        ingest.main(["--partner", FEED], settings=settings, spark=spark)
    validate.main(["--partner", FEED], settings=settings, spark=spark)
    (first,) = [m["batch_id"] for m in read_json_dir(Lake(settings.lake_root).batch_markers(FEED))]
    batches.main(["--partner", FEED, "--discard", first, "--reason", "seen"], settings=settings, spark=spark)
    for name in ("across", "fixes"):
        _deliver(landing, f"crimes_{name}.csv.gz", header, files[name])
    _intake(spark, settings)
    build_features.main([], settings=settings, spark=spark)
    return landing, settings.lake_root


def _copy(pristine, tmp_path: Path, **overrides):
    landing, lake = pristine
    shutil.copytree(lake, tmp_path / "lake")
    return load_settings(write_config(tmp_path, landing=landing, enabled=[FEED], **overrides))


def _rows(spark, settings) -> dict[str, pd.DataFrame]:
    """Every row of the feed's tables as their readers see them (bronze: as stored), with the
    time that ages it (`__t`) and where it came from."""
    lake = Lake(settings.lake_root)
    frames = {
        "bronze": spark.read.parquet(str(lake.bronze(FEED))) if has_parquet(lake.bronze(FEED)) else None,
        "quarantine": read_quarantine(spark, lake, FEED),
        "silver": read_silver(spark, settings, lake, "events", feeds=[FEED]),
        "history": read_history(spark, settings, lake, "events", feeds=[FEED]),
    }
    out = {}
    for table, df in frames.items():
        if df is None:
            out[table] = pd.DataFrame(columns=["source_file", "source_row", "__t"])
            continue
        when = row_time(settings.contract(FEED), df.columns, delivered=table in ("bronze", "quarantine"))
        out[table] = df.select("source_file", "source_row", when.alias("__t")).toPandas()
    return out


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """The same rows, in any order."""
    return sorted(map(tuple, a.values.tolist())) == sorted(map(tuple, b.values.tolist()))


def _checksum(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _expired(spark, settings) -> list[tuple]:
    _, expired, _ = read_events_and_expired(spark, settings, Lake(settings.lake_root))
    return [] if expired is None else sorted(tuple(r) for r in expired.drop("year").collect())


@pytest.fixture(scope="module")
def retained(spark, pristine, tmp_path_factory):
    """A copy of the lake after one retention run as of AS_OF: (settings, the run's figures,
    the rows before and after)."""
    settings = _copy(pristine, tmp_path_factory.mktemp("retained"))
    before = _rows(spark, settings)
    result = retention.main(["--partner", FEED, "--as-of", str(AS_OF)], settings=settings, spark=spark)
    return settings, result[FEED], before, _rows(spark, settings)


def test_no_row_older_than_the_limit_is_left_and_every_other_row_is(retained):
    _, _, before, after = retained
    for table in TABLES:
        assert (before[table]["__t"] < LIMIT).any(), f"{table}: the lake must hold old rows to remove"
        assert not (after[table]["__t"] < LIMIT).any(), table
        assert _same(before[table][before[table]["__t"] >= LIMIT], after[table]), table
    # the row whose date did not parse ages by its delivery (today): it stays, in quarantine
    assert (after["quarantine"]["__t"] > datetime(2026, 1, 1)).sum() == 1


def test_the_copy_of_a_delivered_file_goes_with_its_last_row(retained):
    settings, figures, _, after = retained
    lake = Lake(settings.lake_root)
    markers = read_json_dir(lake.batch_markers(FEED))
    sha = {f["file"]: f["sha256"] for m in markers for f in m["files"]}
    copies = {p.name for p in lake.delivered(FEED).iterdir()}
    # the fixes keep their new events' rows, the rows across the limit the later ones
    assert copies == {sha[f] for f in ("crimes_across.csv.gz", "crimes_new.csv.gz", "crimes_fixes.csv.gz")}
    assert figures["delivered_copies"] == {"removed": 2}  # crimes_old.csv.gz, crimes_no_x.csv.gz
    assert len(markers) == 2 and len(sha) == 5  # ingest still knows every file it read


def test_the_audit_record_holds_what_went_of_each_table(retained):
    settings, figures, before, after = retained
    (record,) = [r for r in read_audit(Lake(settings.lake_root)) if r["job"] == "retention"]
    assert record["status"] == "succeeded" and record["arguments"] == {"partner": FEED, "as_of": str(AS_OF)}
    counts = record["counts"]
    assert counts == figures
    assert (counts["retention_days"], counts["removed_before"]) == (1825, "2014-04-01T00:00:00Z")
    for table in TABLES:
        t = counts["tables"][table]
        assert t["removed"] == len(before[table]) - len(after[table]) > 0, table
        assert t["kept"] == len(after[table])
        assert t["oldest_kept"] == after[table]["__t"].min().isoformat(), table
    assert counts["tables"]["history"]["removed"] == 5  # the replaced versions of the old events
    counted = counts[EXPIRED_COUNTS]
    assert counted["events_counted"] == counts["tables"]["silver"]["removed"] and counted["removed"] == 0
    assert counted["retention_days"] == 7300


def test_a_rerun_removes_nothing_and_changes_no_file(retained, spark):
    settings, *_ = retained
    lake = Lake(settings.lake_root)
    version, files = FeedState.read(lake, FEED).version, _checksum(lake.root)
    figures = retention.main(["--partner", FEED, "--as-of", str(AS_OF)], settings=settings, spark=spark)[FEED]
    assert {t: f["removed"] for t, f in figures["tables"].items()} == dict.fromkeys(TABLES, 0)
    assert figures["delivered_copies"]["removed"] == figures[EXPIRED_COUNTS]["events_counted"] == 0
    assert FeedState.read(lake, FEED).version == version
    now = {k: v for k, v in _checksum(lake.root).items() if not k.startswith(("audit/", "_locks"))}
    assert now == {k: v for k, v in files.items() if not k.startswith(("audit/", "_locks"))}


def test_a_dry_run_says_what_a_run_removes_and_changes_nothing(pristine, retained, spark, tmp_path, capsys):
    settings = _copy(pristine, tmp_path)
    files = _checksum(settings.lake_root)
    args = ["--partner", FEED, "--as-of", str(AS_OF), "--dry-run"]
    figures = retention.main(args, settings=settings, spark=spark)[FEED]
    assert _checksum(settings.lake_root) == files  # not even an audit record
    assert figures == retained[1]
    printed = capsys.readouterr().out
    assert (
        f"{FEED}: retention_days 1825 as of {AS_OF}: rows from before 2014-04-01 00:00:00 UTC go" in printed
    )
    assert "(dry run: nothing was changed)" in printed
    for t in figures["tables"].values():
        assert re.search(rf"{t['table']}\s+{t['removed']} would go,\s+{t['kept']} kept", printed), t


def test_the_panel_rebuilt_after_retention_is_the_panel_before_it(pristine, retained, spark):
    """Every week of the panel, built again in full from what retention left: silver (from
    the limit on) and the counts of the expired events (before it), equals the panel built
    from all events, row for row, in every feature and label: to the bit, but for the kernel-
    smoothed features, which Spark may sum in another order (test_panel.py says why)."""
    settings, *_ = retained
    before = pd.read_parquet(pristine[1] / "gold" / "features")
    assert _expired(spark, settings), "the events that went are counted"
    build_features.main(["--full"], settings=settings, spark=spark)
    after = pd.read_parquet(Lake(settings.lake_root).gold("features"))
    order = ["week", "cell_id"]
    before, after = (df.sort_values(order).reset_index(drop=True) for df in (before, after))
    assert before["week"].astype(str).min() < "2014-03-31"  # the weeks of the expired events are there
    features = PanelSpec.from_settings(settings, [])
    smoothed = [x.feature.name for x in tagged_features(features) if SMOOTHING in x.families]
    assert smoothed and (before[smoothed] > 0).any().all()
    exact = [c for c in before.columns if c not in smoothed]
    pd.testing.assert_frame_equal(after[exact], before[exact], check_exact=True, check_categorical=False)
    pd.testing.assert_frame_equal(after[smoothed], before[smoothed], check_exact=False, rtol=1e-12, atol=0)


def test_validation_replays_what_retention_left(pristine, retained, spark, tmp_path):
    """`validate --reprocess` reads each batch's bronze again, which lost its old rows: it expects
    the rows retention left, and gives the silver, history and quarantine retention left."""
    settings = _copy(pristine, tmp_path)
    retention.main(["--partner", FEED, "--as-of", str(AS_OF)], settings=settings, spark=spark)
    expected = intake_tables(spark, settings, FEED, "events")
    counts = _expired(spark, settings)
    validate.main(["--partner", FEED, "--reprocess"], settings=settings, spark=spark)
    assert intake_tables(spark, settings, FEED, "events") == expected
    assert _expired(spark, settings) == counts


def test_the_counts_of_expired_events_have_their_own_retention(pristine, spark, tmp_path):
    settings = _copy(pristine, tmp_path, **{"retention.counts_days": 1825 + 14})
    retention.main(["--partner", FEED, "--as-of", str(AS_OF)], settings=settings, spark=spark)
    kept = _expired(spark, settings)
    later = AS_OF + timedelta(days=60)
    figures = retention.main(["--partner", FEED, "--as-of", str(later)], settings=settings, spark=spark)[FEED]
    ended = later - timedelta(days=1825 + 14)
    now = _expired(spark, settings)
    assert now and all(r[0] + timedelta(days=6) >= ended for r in now)
    gone = [r for r in kept if r[0] + timedelta(days=6) < ended]
    assert gone and figures[EXPIRED_COUNTS]["removed"] == len(gone)
    assert figures[EXPIRED_COUNTS]["oldest_week_kept"] == min(r[0] for r in now).isoformat()


def test_another_grid_is_refused_once_expired_events_are_counted_on_one(retained, spark):
    settings, *_ = retained
    moved = settings.model_copy(update={"grid": settings.grid.model_copy(update={"cell_size_m": 200.0})})
    with pytest.raises(ConfigError, match="cannot be counted again"):
        build_features.main(["--full"], settings=moved, spark=spark)
    with pytest.raises(ConfigError, match="counts of both cannot be added up"):
        retention.main(["--partner", FEED, "--as-of", str(AS_OF)], settings=moved, spark=spark)


# --------------------------------------------------------------------------- killed runs

KILLS = {"kill-after-write": ["kill-after-write", "2"], "kill-after-swap": ["kill-after-swap", "1"]}


@pytest.fixture(scope="module")
def killed(pristine, tmp_path_factory):
    """Each kill's run, started together, each on its own copy of the lake."""
    started = {}
    try:
        for name, step in KILLS.items():
            folder = tmp_path_factory.mktemp(name)
            settings = _copy(pristine, folder)
            args = [settings.config_file, FEED, str(AS_OF), *step]
            started[name] = (
                settings,
                start_runner(RUNNER, args, folder / "output.txt"),
                folder / "output.txt",
            )
        yield started
    finally:
        for _, process, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def _view(spark, settings) -> tuple:
    """What readers of the feed's committed tables see."""
    return intake_tables(spark, settings, FEED, "events"), _expired(spark, settings)


@pytest.mark.parametrize("kill", list(KILLS))
def test_a_killed_retention_leaves_the_old_lake_or_the_new_and_its_rerun_finishes(
    pristine, retained, killed, spark, kill, tmp_path
):
    settings, process, output = killed[kill]
    wait_killed(process, output, kill)
    old = _copy(pristine, tmp_path)
    if kill == "kill-after-write":  # before the commit: the old lake, bronze included
        assert _view(spark, settings) == _view(spark, old)
        assert _same(_rows(spark, settings)["bronze"], _rows(spark, old)["bronze"])
    else:  # committed: the new lake; its bronze is refused until the run is finished
        assert _view(spark, settings) == _view(spark, retained[0])
        with pytest.raises(RetentionUnfinished, match="retention --partner police_crimes"):
            validate.main(["--partner", FEED], settings=settings, spark=spark)
    retention.main(["--partner", FEED, "--as-of", str(AS_OF)], settings=settings, spark=spark)
    assert _view(spark, settings) == _view(spark, retained[0])
    for table, rows in _rows(spark, settings).items():
        assert _same(rows, retained[3][table]), table
    lake = Lake(settings.lake_root)
    assert {p.name for p in lake.delivered(FEED).iterdir()} == {
        p.name for p in Lake(retained[0].lake_root).delivered(FEED).iterdir()
    }
    assert not list(lake.root.rglob("_staging/retention")) and not list(lake.root.rglob("_trash/retention"))
    assert "pending" not in FeedState.read(lake, FEED).retention


def test_a_run_as_of_a_day_whose_limit_is_before_every_row_changes_nothing(spark, pristine, tmp_path):
    """A run as of a day whose limit lies before every event (a backfill; the DAG tests' 2014)
    removes nothing and writes only its audit record."""
    settings = _copy(pristine, tmp_path)
    files = _checksum(settings.lake_root)
    retention.main(["--partner", FEED, "--as-of", "2014-07-01"], settings=settings, spark=spark)
    now = _checksum(settings.lake_root)
    assert set(now) - set(files) == {next(k for k in now if k.endswith(".json") and "-retention-" in k)}
    assert {k: now[k] for k in files} == files


def test_a_day_after_today_is_refused(pristine, tmp_path, capsys):
    settings = _copy(pristine, tmp_path)
    tomorrow = date.today() + timedelta(days=2)
    with pytest.raises(SystemExit):
        retention.main(["--partner", FEED, "--as-of", str(tomorrow)], settings=settings)
    assert "is after today" in capsys.readouterr().err
