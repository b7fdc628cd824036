"""The jobs ingest, validate, build_features and score, spark-submitted to a real standalone
cluster (a master and one worker on 127.0.0.1, started here), publish exactly what the same
jobs publish in local mode from the same landing: silver events, quarantine, gold features and
gold scores of the same champion model version.

Local mode is the jobs run in this process on the shared `local[2]` session; the cluster runs
them as the Airflow DAGs do (spark-submit, client deploy mode, same applications and args).
Each side has its own lake; both read one MLflow store, so both score with one model.
"""

from __future__ import annotations

import gzip
import importlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from builders import SAMPLE, TEST_KEY, write_config

from riskradar.cluster import ClusterError, LocalCluster, submit
from riskradar.config import load_settings
from riskradar.lake import Lake

pytestmark = pytest.mark.slow

TARGET = "all_incidents"
WEEK = "2014-06-30"  # the week after the slice's last complete week
MONTHS = ("2014-04", "2014-05", "2014-06")
JOBS = [
    ("ingest", ["--partner", "police_crimes"]),
    ("validate", ["--partner", "police_crimes"]),
    ("build_features", []),
    ("score", ["--target", TARGET, "--week", WEEK]),
]
# The submitted jobs' JVMs are short-lived and cold: on two shared cores the C2 compiler took
# about half of their time (ingest + validate: 80 s instead of 150 s with C1 alone). The JIT
# tier cannot change a result: since Java 17 all floating point is strict (JEP 306).
QUICK_JVM = {
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    "spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1",
}
# Columns that say when or by which run a row was written: legitimately different per run.
# batch_id stays: it is a hash of the delivered files, equal on both sides.
RUN_COLUMNS = ["ingested_at", "scored_at", "features_version"]
# Each published table ("<layer>.<table>") and the columns that order its rows.
TABLES = {
    "silver.events": ["source_file", "source_row"],
    "quarantine.police_crimes": ["step", "source_file", "source_row"],
    "gold.features": ["week", "cell_id"],
    "gold.scores": ["target", "week", "cell_id"],
}


def _landing(tmp: Path, every: int = 10) -> Path:
    """Every `every`-th police row of MONTHS (header kept), as gzip files the contract reads."""
    landing = tmp / "landing" / "police_crimes"
    landing.mkdir(parents=True)
    for month in MONTHS:
        name = f"chicago_crimes_{month}.csv.gz"
        with gzip.open(SAMPLE / "police_crimes" / name, "rt", encoding="utf-8", newline="") as fh:
            rows = [line for i, line in enumerate(fh) if i % every == 0]
        (landing / name).write_bytes(gzip.compress("".join(rows).encode(), mtime=0))
    return landing.parent


def _config(tmp: Path, landing: Path, tracking_uri: str) -> Path:
    return write_config(
        tmp,
        landing=landing,
        enabled=["police_crimes"],
        **{
            "targets": {
                TARGET: {"categories": ["theft", "battery", "criminal_damage", "assault", "burglary"]}
            },
            # coarser cells and fewer windows than the committed config keep the run short
            "grid.cell_size_m": 500,
            "features.windows_weeks": [1, 4, 13],
            "features.decay_half_lives_weeks": [4],
            "features.spatial_lag_windows_weeks": [4],
            "training.backtest_weeks": 2,
            "training.refit_every_weeks": 2,
            "training.candidates": {
                "hgb_poisson": {"max_iter": 20, "min_samples_leaf": 20, "random_state": 0}
            },
            "mlflow.tracking_uri": tracking_uri,
            # the shared test session's partitions: the master is the only difference
            "spark.conf": {"spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"},
        },
    )


def _champion(config: Path, spark) -> str:
    """Train once (local mode) and return the champion's version."""
    from mlflow import MlflowClient

    from jobs import train
    from riskradar.registry import CHAMPION, model_name

    result = train.main(["--target", TARGET, "--config", str(config)], spark=spark)[TARGET]
    if result["alias"] != CHAMPION:
        # This test is about scoring being equal on both masters, not about the promotion gate
        # (tests/jobs/test_train.py): the slice's best candidate is made champion by hand.
        settings = load_settings(config)
        client = MlflowClient(settings.mlflow.tracking_uri)
        client.set_registered_model_alias(model_name(TARGET), CHAMPION, result["version"])
    return str(result["version"])


def _table(lake: Lake, name: str) -> pd.DataFrame:
    """A published table as a frame in key order, without the run's own provenance."""
    layer, table = name.split(".")
    frame = pd.read_parquet(getattr(lake, layer)(table))
    frame = frame.drop(columns=[c for c in RUN_COLUMNS if c in frame.columns])
    # partition columns come back as categoricals of the values each side happens to hold
    frame = frame.astype({c: str for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})
    return frame.sort_values(TABLES[name]).reset_index(drop=True)


def _run(jobs: list[tuple[str, list[str]]], config: Path, *, spark=None, master: str | None = None) -> None:
    """Run `jobs` in order: in this process on `spark` (local mode), or submitted to `master`."""
    for job, args in jobs:
        argv = [*args, "--config", str(config)]
        if master is None:
            importlib.import_module(f"jobs.{job}").main(argv, spark=spark)
        else:  # the same pseudonymisation key as this process, or the event ids differ
            env = {**os.environ, "RISKRADAR_PSEUDONYM_KEY": TEST_KEY}
            submit(master, job, argv, conf=QUICK_JVM, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("cluster"), cores=2, memory="2g") as running:
        yield running


@pytest.fixture(scope="module")
def lakes(spark, cluster, tmp_path_factory):
    """(local lake, cluster lake, champion version) after both sides ran every job."""
    tmp = tmp_path_factory.mktemp("standalone")
    landing = _landing(tmp)
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    local, remote = (
        _config(tmp / "local", landing, tracking_uri),
        _config(tmp / "cluster", landing, tracking_uri),
    )
    *intake, scoring = JOBS
    # One job at a time goes to the cluster, in order, while local mode runs: the cluster's
    # intake needs no model, and its scoring is queued only once the champion exists.
    with ThreadPoolExecutor(1) as cluster_side:
        submitted = [cluster_side.submit(_run, intake, remote, master=cluster.master_url)]
        _run(intake, local, spark=spark)
        version = _champion(local, spark)
        submitted.append(cluster_side.submit(_run, [scoring], remote, master=cluster.master_url))
        _run([scoring], local, spark=spark)
        for done in submitted:
            done.result()
    return Lake(load_settings(local).lake_root), Lake(load_settings(remote).lake_root), version


def test_every_job_ran_as_an_application_of_the_cluster(cluster, lakes):
    apps = cluster.state()["completedapps"]
    assert [a["state"] for a in apps] == ["FINISHED"] * len(JOBS)
    # each ran its tasks in an executor that the worker started (its log is in the work folder)
    logs = sorted(cluster.work_dir.glob("app-*/*/stderr"))
    assert len(logs) == len(JOBS) and all("Finished task" in log.read_text() for log in logs), logs


@pytest.mark.parametrize("name", list(TABLES))
def test_cluster_publishes_what_local_mode_publishes(lakes, name):
    local, remote, _ = lakes
    expected, got = _table(local, name), _table(remote, name)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=name)


def test_both_sides_scored_every_cell_with_the_same_champion(lakes):
    local, remote, version = lakes
    cells = _table(local, "gold.features").query(f"week == '{WEEK}'")["cell_id"]
    for lake in (local, remote):
        scores = _table(lake, "gold.scores")
        assert sorted(scores["cell_id"]) == sorted(cells)
        assert set(scores["model_version"].astype(str)) == {version}


def test_a_worker_that_cannot_start_fails_the_start_with_its_log_and_stops_the_master(tmp_path):
    cluster = LocalCluster(tmp_path, memory="0g", timeout=60)  # the worker refuses 0 bytes
    with pytest.raises(ClusterError, match="did not get 1 worker") as failed:
        cluster.start()
    assert "Memory is below 1MB" in str(failed.value)
    with pytest.raises(OSError):  # the master's web UI is gone: the master was stopped
        cluster.state()
