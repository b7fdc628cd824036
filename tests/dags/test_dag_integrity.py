"""Every DAG file imports, without touching the config at parse time, and every DAG is
complete: owner, tags, retries, docs, and job applications that exist."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import TriggerRule
from airflow.sdk.exceptions import AirflowFailException

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"


@pytest.fixture(scope="module")
def bag() -> DagBag:
    return DagBag(dag_folder=str(DAGS), safe_mode=False)


def test_every_dag_file_imports(bag):
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"riskradar_intake", "riskradar_weekly"}


@pytest.mark.parametrize("dag_id", ["riskradar_intake", "riskradar_weekly"])
def test_every_dag_has_owner_tags_retries_docs_and_a_failure_callback(bag, dag_id):
    dag = bag.dags[dag_id]
    assert dag.doc_md and len(dag.doc_md) > 200
    assert "riskradar" in dag.tags
    assert dag.catchup is False and dag.max_active_runs == 1
    assert "config" in dag.params
    for task in dag.tasks:
        assert task.owner == "riskradar", task.task_id
        assert task.retries >= 2 and task.retry_exponential_backoff, task.task_id
        assert task.execution_timeout is not None, task.task_id
        assert task.on_failure_callback, task.task_id


def test_every_application_a_task_submits_exists(bag):
    submitted = []
    for dag in bag.dags.values():
        for task in dag.tasks:
            if (
                isinstance(task, SparkSubmitOperator)
                or getattr(task, "operator_class", None) is SparkSubmitOperator
            ):
                application = task.partial_kwargs["application"] if hasattr(task, "partial_kwargs") else None
                application = application or task.application
                submitted.append(application)
                assert Path(application).is_file(), f"{dag.dag_id}.{task.task_id}: {application}"
                assert Path(application).parent == ROOT / "jobs"
                assert 'if __name__ == "__main__":' in Path(application).read_text()
    assert {Path(a).stem for a in submitted} == {
        "ingest",
        "validate",
        "build_features",
        "train",
        "score",
        "export",
        "evaluate_scores",
        "share",
        "retention",
    }


def test_weekly_dag_wiring(bag):
    dag = bag.dags["riskradar_weekly"]
    assert dag.get_task("build_features").downstream_task_ids == {"week_to_score"}
    # the MLflow store is created once before the trainings run in parallel
    assert "target.train_and_gate" in dag.get_task("tracking_store").downstream_task_ids
    assert dag.get_task("target.train_and_gate").downstream_task_ids == {"target.score_week"}
    assert dag.get_task("target.score_week").downstream_task_ids == {"target.export_reports"}
    assert dag.get_task("target.export_reports").downstream_task_ids == {"evaluate_last_week", "recipients"}
    # one share task per recipient, once every target is exported
    assert dag.get_task("recipients").downstream_task_ids == {"recipient.share_package"}
    assert dag.get_task("recipient.share_package").upstream_task_ids == {"recipients"}
    intake = bag.dags["riskradar_intake"]
    assert intake.get_task("feed.ingest_new_files").downstream_task_ids == {
        "feed.validate_and_publish",
        "feed.fail_feed_if_ingest_failed",
    }
    # the asset is updated only by a feed whose validation published something in the run
    assert intake.get_task("feed.validate_and_publish").outlets == []
    assert intake.get_task("feed.validate_and_publish").downstream_task_ids == {"feed.announce_new_data"}
    # ... which it knows by the feed's commit version read before ingest and after validation
    assert intake.get_task("feed.feed_version").downstream_task_ids == {
        "feed.ingest_new_files",
        "feed.announce_new_data",
    }
    outlets = intake.get_task("feed.announce_new_data").outlets
    assert [a.uri for a in outlets] == ["riskradar://silver/events"]


def test_a_feed_validates_what_ingest_landed_even_when_ingest_failed(bag):
    """A rejected file fails ingest, but the delivery's good files are in bronze: validation runs
    once ingest is done, whatever its outcome. A run's state comes from its leaves, so a task
    that runs only when ingest failed, and fails without retrying, keeps the feed failed."""
    intake = bag.dags["riskradar_intake"]
    validate = intake.get_task("feed.validate_and_publish")
    watcher = intake.get_task("feed.fail_feed_if_ingest_failed")
    retention_watcher = intake.get_task("feed.fail_feed_if_retention_failed")
    version = intake.get_task("feed.feed_version")
    assert validate.trigger_rule == TriggerRule.ALL_DONE
    assert watcher.trigger_rule == retention_watcher.trigger_rule == TriggerRule.ONE_FAILED
    assert watcher.upstream_task_ids == {"enabled_feeds", "feed.ingest_new_files"}  # the map, ingest
    assert {t.task_id for t in intake.leaves} == {
        "feed.announce_new_data",
        watcher.task_id,
        retention_watcher.task_id,
    }
    # the intake of a feed goes on after its retention, whatever became of that
    assert version.trigger_rule == TriggerRule.ALL_DONE
    # every other task runs only when all its upstream tasks succeeded: the asset is updated only
    # after a validation that succeeded
    others = {
        t.task_id: t.trigger_rule
        for t in intake.tasks
        if t not in (validate, watcher, retention_watcher, version)
    }
    assert others == dict.fromkeys(
        ["enabled_feeds", "feed.apply_retention", "feed.ingest_new_files", "feed.announce_new_data"],
        TriggerRule.ALL_SUCCESS,
    )
    with pytest.raises(AirflowFailException, match="ingest of police_crimes failed"):
        watcher.python_callable("police_crimes")


def test_every_feed_applies_its_retention_daily_before_its_intake_as_of_the_runs_date(bag):
    """The daily run removes first what each feed's contract no longer allows, as of the run's
    own date (a backfill of an old day removes nothing that day did not), then ingests: the
    feed's commit version that says whether validation published is read after retention. A
    failed retention does not hold the intake up, and a leaf keeps the feed failed."""
    from jinja2 import StrictUndefined

    intake = bag.dags["riskradar_intake"]
    retain = intake.get_task("feed.apply_retention")
    assert Path(retain.application) == ROOT / "jobs" / "retention.py"
    args = retain.application_args
    assert (args[0], args[2]) == ("--partner", "--as-of")
    assert retain.upstream_task_ids == {"enabled_feeds"}
    assert retain.downstream_task_ids == {"feed.feed_version", "feed.fail_feed_if_retention_failed"}
    assert intake.get_task("feed.feed_version").downstream_task_ids >= {"feed.ingest_new_files"}
    env = intake.get_template_env()
    env.undefined = StrictUndefined
    as_of = env.from_string(args[3])
    logical, ran = datetime(2014, 7, 1, 6, tzinfo=UTC), datetime(2026, 12, 7, 13, tzinfo=UTC)
    assert as_of.render(dag_run=SimpleNamespace(logical_date=logical, run_after=ran)) == "2014-07-01"
    assert as_of.render(dag_run=SimpleNamespace(logical_date=None, run_after=ran)) == "2026-12-07"
    watcher = intake.get_task("feed.fail_feed_if_retention_failed")
    with pytest.raises(AirflowFailException, match="retention of police_crimes failed"):
        watcher.python_callable("police_crimes")


def test_parsing_the_dags_reads_no_config(tmp_path):
    """No I/O at import time: the DAGs parse with a config path that does not exist."""
    code = (
        "from airflow.dag_processing.dagbag import DagBag;"
        f"b = DagBag(dag_folder={str(DAGS)!r}, safe_mode=False);"
        "assert not b.import_errors, b.import_errors;"
        "print(sorted(b.dag_ids))"
    )
    env = {**os.environ, "RISKRADAR_CONFIG": str(tmp_path / "missing.yaml")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "['riskradar_intake', 'riskradar_weekly']" in done.stdout


def test_the_standalone_command_binds_to_localhost_and_uses_our_dags(tmp_path):
    from riskradar.standalone import airflow_env

    env = airflow_env(tmp_path / "conf.yaml", tmp_path / "home", 8099, base={"PATH": "/usr/bin"})
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1" and env["AIRFLOW__API__PORT"] == "8099"
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(DAGS)
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["RISKRADAR_CONFIG"] == str(tmp_path / "conf.yaml")
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)  # spark-submit, airflow
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    lowered = airflow_env(tmp_path / "c", tmp_path / "h", 1, base={"AIRFLOW__CORE__PARALLELISM": "2"})
    assert lowered["AIRFLOW__CORE__PARALLELISM"] == "2"
