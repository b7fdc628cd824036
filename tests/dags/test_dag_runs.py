"""Both DAGs run for real with dag.test() on a slice of the bundled police data (every 10th
row of April to June 2014, 500 m cells, three count windows): every task submits its job with
spark-submit (connection spark_default, local[2]), and the tests read the outputs the jobs
wrote. Then both runs are repeated and the outputs do not change.

Meanwhile the jobs ingest, validate, build_features and score are spark-submitted as the DAG
tasks submit them (same applications and args, client deploy mode) to a real standalone
cluster (a master and one worker on 127.0.0.1, started here), from the same landing into a
lake of their own: they publish exactly what the DAG runs published in local mode (silver
events, quarantine, gold features, and gold scores of the same champion: both read one MLflow
store). The cluster's work runs beside the DAG runs, one job at a time and at a lower
scheduling priority (it has time to spare, the DAG runs have none), so that each of the two
cores has work.

Every job is a cold, short-lived process, and on two shared cores how they start and wait
matters more than what they compute. So, without changing what they compute: the submitted
drivers and the cluster's executors start with the quick JVM options of support.cluster (C1
only, and a class data sharing archive, made at a low priority while the intake runs and used
once it is there), and the jobs' OpenMP threads (the boosted trees') wait passively. The DAG
tasks do not retry here: a failure fails the run at once instead of after the DAGs' backoff
(minutes), and a flaky task cannot pass on its retry.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from builders import POLICE, SAMPLE, TEST_KEY, write_agreements, write_config
from support.cluster import LocalCluster, QuickJvm, quick_jvm, submit

from riskradar.catalog import read_quarantine, read_silver
from riskradar.config import Settings, load_settings
from riskradar.lake import Lake

pytestmark = pytest.mark.slow

INTAKE_DATE = datetime(2014, 7, 1, 6, tzinfo=UTC)
WEEK_DATE = datetime(2014, 6, 30, 12, tzinfo=UTC)  # a Monday: the weekly run scores 2014-06-30
WEEK = "2014-06-30"
MONTHS = ("2014-04", "2014-05", "2014-06")
FEED = "police_crimes"
TARGET = "all_incidents"
# What the cluster runs, in order: the jobs of the DAG tasks, with the tasks' arguments.
CLUSTER_JOBS = [
    ("ingest", ["--partner", FEED]),
    ("validate", ["--partner", FEED]),
    ("build_features", []),
    ("score", ["--target", TARGET, "--week", WEEK]),
]
# Columns that say when or by which run a row was written: legitimately different per run.
# batch_id stays: it is a hash of the delivered files, equal on both sides and in a rerun.
RUN_COLUMNS = ["ingested_at", "scored_at", "features_version"]
# Each published table ("<layer>.<table>") and the columns that order its rows.
TABLES = {
    "silver.events": ["source_file", "source_row"],
    f"quarantine.{FEED}": ["step", "source_file", "source_row"],
    "gold.features": ["week", "cell_id"],
    "gold.scores": ["target", "week", "cell_id"],
}
# The tables a rerun must leave as they were (the DAG runs' outputs), by short name.
OUTPUTS = {"silver": "silver.events", "panel": "gold.features", "scores": "gold.scores"}
# The cluster's daemons, executors and drivers yield the CPU to the DAG runs.
CLUSTER_NICENESS = 10
# OpenMP threads that spin while they wait took the CPU from everything else: training alone
# took 99 s (81 s CPU) instead of 35 s (21 s CPU), with the same model. Jobs and their Python
# workers get it from spark-submit's environment, a cluster's executors from their conf.
PASSIVE_OPENMP = {"OMP_WAIT_POLICY": "passive"}


def _every_nth(source: Path, target: Path, n: int) -> None:
    with gzip.open(source, "rt", encoding="utf-8", newline="") as fh:
        lines = fh.readlines()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress("".join([lines[0], *lines[1::n]]).encode(), mtime=0))


def _landing(tmp: Path) -> Path:
    landing = tmp / "landing"
    for month in MONTHS:
        name = f"chicago_crimes_{month}.csv.gz"
        _every_nth(SAMPLE / FEED / name, landing / FEED / name, 10)
    return landing


def _agreements(tmp: Path) -> Path:
    """Two recipients of the weekly run's package: every cell, and the hotspots only."""
    every_cell = {
        **POLICE,
        "valid_from": "2000-01-01",
        "valid_until": "2099-12-31",
        "targets": [TARGET],
        "columns": ["cell_id", "geometry", "rank", "hotspot", "expected_count"],
    }
    hotspots = {
        **every_cell,
        "rows": "hotspots",
        "columns": ["cell_id", "geometry", "rank"],
        "formats": ["csv"],
    }
    return write_agreements(tmp / "sharing", police=every_cell, patrol=hotspots)


def _config(tmp: Path, landing: Path, tracking_uri: str) -> Path:
    return write_config(
        tmp,
        landing=landing,
        enabled=[FEED],
        **{
            "sharing.agreements_dir": str(_agreements(tmp)),
            "targets": {
                TARGET: {
                    "categories": [
                        "theft",
                        "battery",
                        "criminal_damage",
                        "assault",
                        "burglary",
                        "robbery",
                        "narcotics",
                        "deceptive_practice",
                        "motor_vehicle_theft",
                        "other_offense",
                    ]
                }
            },
            # coarser cells and fewer windows than the committed config keep the jobs short
            "grid.cell_size_m": 500,
            "features.windows_weeks": [1, 4, 13],
            "features.decay_half_lives_weeks": [4],
            "features.spatial_lag_windows_weeks": [4],
            # the long-run, smoothed and near-repeat families and tuning need more than these 13
            # weeks; the Dutch example runs them end to end
            "features.all_history": False,
            "features.last_year": None,
            "features.kde": None,
            "features.near_repeat": None,
            "training.tuning": None,
            "training.backtest_weeks": 4,
            "training.refit_every_weeks": 2,
            "training.promotion_margin": 0.0,
            "training.promotion_lower_end": None,
            "training.candidates": {
                "hgb_poisson": {"max_iter": 60, "min_samples_leaf": 20, "random_state": 0}
            },
            "mlflow.tracking_uri": tracking_uri,
            # the lake is the only difference between the DAG runs and the cluster
            "spark.conf": {"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g"},
        },
    )


def _table(spark, settings: Settings, name: str) -> pd.DataFrame:
    """A published table as a frame in key order, without the run's own provenance. Intake
    tables are read as their feeds' commit records publish them (riskradar.catalog)."""
    lake = Lake(settings.lake_root)
    layer, table = name.split(".")
    if layer == "gold":
        frame = pd.read_parquet(lake.gold(table))
    else:
        if layer == "silver":
            published = read_silver(spark, settings, lake, table)
        else:
            published = read_quarantine(spark, lake, table)
        assert published is not None, f"{name}: nothing published in {lake.root}"
        frame = published.toPandas()
    frame = frame.drop(columns=[c for c in RUN_COLUMNS if c in frame.columns])
    # partition columns come back as categoricals of the values each side happens to hold
    frame = frame.astype({c: str for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})
    return frame.sort_values(TABLES[name]).reset_index(drop=True)


def _outputs(spark, settings: Settings) -> dict[str, pd.DataFrame]:
    return {short: _table(spark, settings, name) for short, name in OUTPUTS.items()}


def _quickest(jvm: tuple[QuickJvm, Future]) -> QuickJvm:
    """The quick JVM options if their archive is made, else C1 only (never waits for it)."""
    c1_only, pending = jvm
    return pending.result() if pending.done() else c1_only


def _submit_to(cluster: LocalCluster, quick: Future, jobs: list[tuple[str, list[str]]], config: Path) -> None:
    """spark-submit `jobs` in order to the cluster, drivers and executors with the quick JVM
    options (it has time to wait for their archive) and passive OpenMP; the pseudonymisation
    key of this process, as the DAG tasks get it."""
    options: QuickJvm = quick.result()
    env = {**os.environ, "RISKRADAR_PSEUDONYM_KEY": TEST_KEY, **options.submit_env(), **PASSIVE_OPENMP}
    conf = {**options.executor_conf(), **{f"spark.executorEnv.{k}": v for k, v in PASSIVE_OPENMP.items()}}
    for job, args in jobs:
        argv = [*args, "--config", str(config)]
        submit(cluster.master_url, job, argv, conf=conf, env=env, niceness=CLUSTER_NICENESS)


@contextmanager
def _submitting_with(quick: QuickJvm):
    """spark-submit (the operators run it with this process's environment) starts its drivers
    with the quick options and passive OpenMP, for the duration of the block only: the test
    session's own Spark session keeps its defaults."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**quick.submit_env(), **PASSIVE_OPENMP}.items():
            patch.setenv(key, value)
        yield


def _without_retries(dag):
    """The DAG with no retries: dag.test() would wait out each retry's backoff (minutes)."""
    for task in dag.tasks:
        task.retries = 0
    return dag


@dataclass
class Runs:
    dags: tuple[Any, Any]  # intake, weekly (as the tests run them)
    jvm: tuple[QuickJvm, Future]  # see the fixture jvm
    settings: Settings
    conf: dict[str, str]
    intake: Any  # the DagRuns
    weekly: Any
    first: dict[str, pd.DataFrame]  # OUTPUTS after the first runs
    local_tables: dict[str, pd.DataFrame]  # TABLES after the first runs
    cluster_settings: Settings
    cluster_jobs: list[Future]


@pytest.fixture(scope="module")
def jvm(tmp_path_factory):
    """(C1-only options at once, the quick options as a Future): support.cluster.quick_jvm
    makes its class archive in the background, at the cluster's priority, beside the first
    jobs. The archive (about 180 MB) is removed with the module."""
    folder = tmp_path_factory.mktemp("quick-jvm")
    maker = ThreadPoolExecutor(1)
    try:
        yield quick_jvm(folder, archive=False), maker.submit(quick_jvm, folder, niceness=CLUSTER_NICENESS)
    finally:
        maker.shutdown(wait=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(jvm, tmp_path_factory):
    # the daemons are long-lived: C1 only; the executors get the archive with each application
    root = tmp_path_factory.mktemp("cluster")
    with LocalCluster(root, cores=2, memory="2g", quick=jvm[0], niceness=CLUSTER_NICENESS) as running:
        yield running


@pytest.fixture(scope="module")
def runs(jvm, airflow_db, spark, cluster, tmp_path_factory):
    from airflow.dag_processing.dagbag import DagBag

    pending = jvm[1]
    tmp = tmp_path_factory.mktemp("dags")
    landing = _landing(tmp)
    tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    config = _config(tmp / "local", landing, tracking_uri)
    cluster_config = _config(tmp / "cluster", landing, tracking_uri)
    settings = load_settings(config)
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"), safe_mode=False)
    dags = tuple(_without_retries(bag.dags[d]) for d in ("riskradar_intake", "riskradar_weekly"))
    conf = {"config": str(config)}
    # One job at a time goes to the cluster, in order: its intake needs no model, and its
    # scoring is queued once the weekly run has made the champion.
    cluster_side = ThreadPoolExecutor(1)
    try:
        *intake_jobs, scoring = CLUSTER_JOBS
        cluster_jobs = [cluster_side.submit(_submit_to, cluster, pending, intake_jobs, cluster_config)]
        with _submitting_with(_quickest(jvm)):
            intake = dags[0].test(logical_date=INTAKE_DATE, run_conf=conf)
        with _submitting_with(_quickest(jvm)):
            weekly = dags[1].test(logical_date=WEEK_DATE, run_conf=conf)
        cluster_jobs.append(cluster_side.submit(_submit_to, cluster, pending, [scoring], cluster_config))
        local_tables = {name: _table(spark, settings, name) for name in TABLES}
        first = {short: local_tables[name] for short, name in OUTPUTS.items()}
        cluster_settings = load_settings(cluster_config)
        yield Runs(
            dags, jvm, settings, conf, intake, weekly, first, local_tables, cluster_settings, cluster_jobs
        )
    finally:
        cluster_side.shutdown(wait=True)  # the cluster stops after this fixture


def _states(run, task_id: str) -> list[str]:
    return [ti.state for ti in run.get_task_instances() if ti.task_id == task_id]


def test_intake_publishes_silver_events_for_every_feed(spark, runs):
    assert runs.intake.state == "success"
    assert _states(runs.intake, "feed.announce_new_data") == ["success"]  # the asset is updated
    lake = Lake(runs.settings.lake_root)
    bronze = pd.read_parquet(lake.bronze(FEED))
    quarantined = read_quarantine(spark, lake, FEED)
    silver = runs.first["silver"]
    assert len(silver) > 1000 and set(silver["partner"].astype(str)) == {FEED}
    assert len(bronze) == len(silver) + (quarantined.count() if quarantined is not None else 0)


def test_weekly_run_builds_the_panel_trains_registers_and_publishes_scores(runs):
    from mlflow import MlflowClient

    from riskradar.registry import tracking_uri

    assert runs.weekly.state == "success"
    lake = Lake(runs.settings.lake_root)
    panel = runs.first["panel"]
    weeks = sorted(pd.to_datetime(panel["week"].astype(str)).dt.date.unique())
    assert str(weeks[-1]) == WEEK and len(panel) == panel["cell_id"].nunique() * len(weeks)

    client = MlflowClient(tracking_uri(runs.settings, lake))
    experiment = client.get_experiment_by_name(f"riskradar-{TARGET}")
    found = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`riskradar.kind` = 'candidate'"
    )
    assert [r.data.tags["mlflow.runName"] for r in found] == ["hgb_poisson"]
    champion = client.get_model_version_by_alias(f"riskradar-{TARGET}", "champion")

    scores = runs.first["scores"]
    assert set(scores["week"].astype(str)) == {WEEK}
    assert scores["cell_id"].nunique() == len(scores) == panel["cell_id"].nunique()
    assert set(scores["model_version"]) == {int(champion.version)}
    files = sorted(p.name for p in lake.reports("scores", TARGET, WEEK).iterdir())
    assert files == [f"{TARGET}_{WEEK}.{ext}" for ext in ("csv", "geojson", "html")]


def test_share_runs_after_export_for_every_recipient_and_each_delivery_is_on_record(runs):
    from riskradar.exchange import read_register

    states = {
        (ti.task_id, ti.map_index): ti.state
        for ti in runs.weekly.get_task_instances()
        if ti.task_id in ("recipient.share_package", "target.export_reports")
    }
    assert states == {
        ("target.export_reports", 0): "success",
        ("recipient.share_package", 0): "success",
        ("recipient.share_package", 1): "success",
    }
    ends = {
        ti.task_id: ti.end_date
        for ti in runs.weekly.get_task_instances()
        if ti.task_id == "target.export_reports"
    }
    starts = [
        ti.start_date for ti in runs.weekly.get_task_instances() if ti.task_id == "recipient.share_package"
    ]
    assert all(start >= ends["target.export_reports"] for start in starts)
    lake = Lake(runs.settings.lake_root)
    records = read_register(lake)
    assert sorted((r["recipient"], r["week"], r["kind"]) for r in records) == [
        ("patrol", WEEK, "delivery"),
        ("police", WEEK, "delivery"),
    ]
    for record in records:
        folder = lake.outbox(record["recipient"]) / WEEK
        assert {f["name"]: f["sha256"] for f in record["files"]} == {
            f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir()
        }
    hot = pd.read_csv(lake.outbox("patrol") / WEEK / f"patrol_{WEEK}.csv")
    scores = runs.first["scores"]
    assert list(hot.columns) == ["target", "week", "cell_id", "geometry", "rank"]
    assert sorted(hot["cell_id"]) == sorted(scores.loc[scores["hotspot"], "cell_id"])


def test_rerunning_both_dags_changes_no_output(spark, runs):
    """The intake again (every file is already ingested) and the weekly run again: silver is
    unchanged, panel and scores are rebuilt and equal. The tasks that write none of these are
    marked done in the rerun to keep CI short; their own reruns are tested with their jobs:
    a retrained identical model does not replace the champion (test_train), exports are
    written again over the same lake and a second evaluation updates its run (test_score)."""
    intake_dag, weekly_dag = runs.dags
    writes_none = r"target\.train_and_gate|target\.export_reports|evaluate_last_week|recipient\.share_package"
    with _submitting_with(_quickest(runs.jvm)):
        again_intake = intake_dag.test(logical_date=INTAKE_DATE, run_conf=runs.conf)
        again_weekly = weekly_dag.test(
            logical_date=WEEK_DATE, run_conf=runs.conf, mark_success_pattern=writes_none
        )
    assert again_intake.state == again_weekly.state == "success"
    # nothing new was delivered: the intake does not update silver_events (no weekly run follows)
    assert _states(again_intake, "feed.announce_new_data") == ["skipped"]
    second = _outputs(spark, runs.settings)
    for name in runs.first:
        pd.testing.assert_frame_equal(runs.first[name], second[name], check_like=True, obj=name)


@pytest.fixture(scope="module")
def on_cluster(spark, runs):
    """(the cluster's tables, the champion's version) once the cluster ran every job."""
    from mlflow import MlflowClient

    from riskradar.registry import tracking_uri

    for job in runs.cluster_jobs:
        job.result()
    tables = {name: _table(spark, runs.cluster_settings, name) for name in TABLES}
    client = MlflowClient(tracking_uri(runs.settings, Lake(runs.settings.lake_root)))
    return tables, str(client.get_model_version_by_alias(f"riskradar-{TARGET}", "champion").version)


def test_the_cluster_jobs_started_with_the_class_archive(jvm, on_cluster):
    """The quick JVM options the cluster's jobs waited for hold the class data sharing archive:
    when it cannot be made they are C1 only and a warning says why, which nothing else notices."""
    options = jvm[1].result().options.split()
    (archive,) = [
        o.removeprefix("-XX:SharedArchiveFile=") for o in options if o.startswith("-XX:SharedArchiveFile=")
    ]
    assert Path(archive).stat().st_size > 0


def test_every_job_ran_as_an_application_of_the_cluster(cluster, on_cluster):
    apps = cluster.state()["completedapps"]
    assert [a["state"] for a in apps] == ["FINISHED"] * len(CLUSTER_JOBS)
    # each ran its tasks in an executor that the worker started (its log is in the work folder)
    logs = sorted(cluster.work_dir.glob("app-*/*/stderr"))
    assert len(logs) == len(CLUSTER_JOBS) and all("Finished task" in log.read_text() for log in logs), logs


@pytest.mark.parametrize("name", list(TABLES))
def test_cluster_publishes_what_local_mode_publishes(runs, on_cluster, name):
    expected, got = runs.local_tables[name], on_cluster[0][name]
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=name)


def test_both_sides_scored_every_cell_with_the_same_champion(runs, on_cluster):
    tables, version = on_cluster
    cells = runs.local_tables["gold.features"].query(f"week == '{WEEK}'")["cell_id"]
    for side in (runs.local_tables, tables):
        scores = side["gold.scores"]
        assert sorted(scores["cell_id"]) == sorted(cells)
        assert set(scores["model_version"].astype(str)) == {version}
