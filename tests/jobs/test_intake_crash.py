"""Validation killed (SIGKILL) at each publishing step leaves readers the state before or the
state after, never a mix, and its rerun gives the uninterrupted result; two runs of one feed
never publish at once."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from builders import ROOT, SAMPLE, write_config
from support.cluster import C1_ONLY
from support.crash import wait_killed

from jobs import ingest, validate
from riskradar.catalog import read_history, read_quarantine, read_silver
from riskradar.config import load_settings
from riskradar.errors import LakeLocked
from riskradar.lake import FeedState, Lake, lock

RUNNER = ROOT / "tests" / "support" / "intake_runner.py"
FEED = "police_crimes"


def _csv_gz(rows: list[dict[str, str]], header: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return gzip.compress(out.getvalue().encode(), mtime=0)


def view(spark, settings) -> tuple:
    """What a reader sees of the feed: current rows, replaced versions, quarantine."""
    lake = Lake(settings.lake_root)
    current = read_silver(spark, settings, lake, "events")
    history = read_history(spark, settings, lake, "events")
    quarantine = read_quarantine(spark, lake, FEED)
    return (
        sorted(tuple(r) for r in current.select("event_id", "category", "batch_id").collect()),
        sorted(tuple(r) for r in history.select("event_id", "superseded_by").collect()) if history else [],
        sorted(tuple(r) for r in quarantine.groupBy("batch_id", "quarantine_rule").count().collect())
        if quarantine
        else [],
    )


@pytest.fixture(scope="module")
def prepared(spark, tmp_path_factory):
    """A lake whose first batch is published and whose second (40 corrections, a bad row) is
    ingested, not yet validated; the view before and after validating it."""
    tmp = tmp_path_factory.mktemp("crash")
    with gzip.open(SAMPLE / "police_crimes" / "chicago_crimes_2014-06.csv.gz", "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [next(reader) for _ in range(300)]
        header = list(reader.fieldnames or [])
    landing = tmp / "landing" / "police_crimes"
    landing.mkdir(parents=True)
    (landing / "crimes_1.csv.gz").write_bytes(_csv_gz(rows, header))
    settings = load_settings(write_config(tmp, landing=tmp / "landing", enabled=[FEED]))
    ingest.main(["--partner", FEED], settings=settings, spark=spark)
    validate.main(["--partner", FEED], settings=settings, spark=spark)
    published = {
        r["source_row"] for r in read_silver(spark, settings, Lake(settings.lake_root), "events").collect()
    }
    corrections = [dict(rows[i - 1], **{"Primary Type": "ARSON"}) for i in sorted(published)[:40]]
    bad = [dict(rows[0], ID="99999001", Date="not a date")]
    (landing / "crimes_2.csv.gz").write_bytes(_csv_gz(corrections + bad, header))
    ingest.main(["--partner", FEED], settings=settings, spark=spark)
    before = view(spark, settings)
    snapshot = tmp / "snapshot"
    shutil.copytree(settings.lake_root, snapshot)
    validate.main(["--partner", FEED], settings=settings, spark=spark)
    after = view(spark, settings)
    assert before != after and len(after[1]) == 40  # the second batch does change what is read
    return {"tmp": tmp, "snapshot": snapshot, "landing": tmp / "landing", "before": before, "after": after}


def _copy(prepared, tmp_path: Path):
    lake = tmp_path / "lake"
    shutil.copytree(prepared["snapshot"], lake)
    config = write_config(tmp_path, landing=prepared["landing"], enabled=[FEED])
    return config, load_settings(config)


def _runner(config: Path, *args: str, output=subprocess.PIPE) -> subprocess.Popen:
    """The runner in a process of its own, its output to `output`; its short-lived Spark JVM
    starts quicker with the C1 compiler only (support.cluster.C1_ONLY), which changes nothing
    it computes."""
    return subprocess.Popen(
        [sys.executable, str(RUNNER), str(config), FEED, *args],
        cwd=ROOT,
        env={**os.environ, "JDK_JAVA_OPTIONS": C1_ONLY},
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )


# Parquet writes of the second batch's validation: 1 the routed batch (scratch), 2 its silver
# rows, 3 its quarantine, 4 the replaced rows' history, 5 the first batch without them.
KILLS = {
    "kill-after-write-2": ["kill-after-write", "2"],
    "kill-after-write-5": ["kill-after-write", "5"],
    "kill-after-commit": ["kill-after-commit"],
}


@pytest.fixture(scope="module")
def killed(prepared, tmp_path_factory):
    """Each kill's run, started together, each on its own copy of the lake: (settings, process,
    its output file). Their cold Spark JVMs side by side take about the time of two one after
    another (the module: 96 s instead of 118 s)."""
    started = {}
    try:
        for name, step in KILLS.items():
            folder = tmp_path_factory.mktemp(name)
            config, settings = _copy(prepared, folder)
            with open(folder / "output.txt", "w") as output:
                started[name] = (settings, _runner(config, *step, output=output), folder / "output.txt")
        yield started
    finally:  # also when a later run could not be started
        for _, proc, _ in started.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("kill", list(KILLS))
def test_a_killed_validation_leaves_the_old_state_or_the_new_and_its_rerun_finishes(
    prepared, killed, spark, kill
):
    settings, proc, output = killed[kill]
    wait_killed(proc, output, kill)
    seen = view(spark, settings)
    expected = prepared["after"] if kill == "kill-after-commit" else prepared["before"]
    assert seen == expected
    lake = Lake(settings.lake_root)
    assert (lake.locks() / f"intake.{FEED}.lock").exists()  # the dead run's lock is left behind
    validate.main(["--partner", FEED], settings=settings, spark=spark)  # takes the stale lock over
    assert view(spark, settings) == prepared["after"]
    # Nothing of the killed run is left: no scratch, no folder the state does not name.
    assert not list((lake.root / "_scratch").rglob("*.parquet"))
    state = FeedState.read(lake, FEED)
    named = state.referenced(lake)
    on_disk = {p.resolve() for p in lake.root.glob("silver/*/partner=*/*/r-*")}
    on_disk |= {p.resolve() for p in lake.root.glob(f"quarantine/{FEED}/*/step=validate/r-*")}
    assert on_disk == named


def test_a_second_run_of_a_feed_is_refused_while_the_first_publishes(prepared, spark, tmp_path):
    config, settings = _copy(prepared, tmp_path)
    ready, go = tmp_path / "ready", tmp_path / "go"
    first = _runner(config, "hold-lock", str(ready), str(go))
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert ready.exists(), (
            first.stdout.read() if first.poll() is not None else "the first run never took the lock"
        )
        holder = json.loads((Lake(settings.lake_root).locks() / f"intake.{FEED}.lock").read_text())
        with pytest.raises(LakeLocked) as refused:
            validate.main(["--partner", FEED], settings=settings, spark=spark)
        message = str(refused.value)
        assert f"intake.{FEED} is locked by run {holder['run_id']} (validate, pid {first.pid}" in message
        assert " s since " in message
        assert view(spark, settings) == prepared["before"]  # the refused run changed nothing
    finally:
        go.write_text("go")
        out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    assert view(spark, settings) == prepared["after"]


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    lake = Lake(tmp_path / "lake")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (lake.locks()).mkdir(parents=True)
    holder = {"run_id": "dead0001", "job": "validate", "host": socket.gethostname(), "pid": int(dead.stdout)}
    (lake.locks() / "intake.x.lock").write_text(json.dumps({**holder, "acquired_at_epoch": 0}))
    with lock(lake, "intake.x", run_id="alive001", job="validate") as notes:
        assert notes == ["took over the stale lock intake.x of run dead0001 (its process is gone)"]
        with pytest.raises(LakeLocked, match="locked by run alive001"):
            with lock(lake, "intake.x", run_id="second01", job="validate"):
                pass
    assert not (lake.locks() / "intake.x.lock").exists()
