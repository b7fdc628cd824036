"""What the Airflow DAGs share: the job applications they submit, default task arguments, the
failure callback that writes to the audit log, and the week a weekly run works on.

Imported by the DAG files at parse time, so it imports nothing heavy and touches no file: the
config is read by tasks at run time, from the DAG param `config`.

Where a submitted driver listens: spark-submit starts the driver's JVM, so the task gives it
`SPARK_LOCAL_IP=127.0.0.1` in its environment (`spark_env()`); Spark's web UI binds to that
variable, or to every interface without it. The job's session (riskradar.spark.get_session)
binds the driver itself to 127.0.0.1 and keeps the UI off unless the pipeline config's
`spark.conf` says otherwise; a cluster whose executors must reach the driver sets
`spark.driver.host` (and `spark.driver.bindAddress`) there, and the UI stays on loopback. A
task submitted with `deploy_mode="cluster"` gets no environment from here: its driver runs on
a cluster node, in the cluster's environment (and the provider refuses `env_vars` for a
standalone cluster in that mode).
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"
# The pipeline config a DAG run uses unless triggered with another (param `config`).
DEFAULT_CONFIG = os.environ.get("RISKRADAR_CONFIG", str(ROOT / "conf" / "riskradar.yaml"))
CONFIG_ARG = ["--config", "{{ params.config }}"]


def job_path(job: str) -> str:
    """The application spark-submit runs for a job module (jobs/<job>.py)."""
    return str(JOBS / f"{job}.py")


def audit_failure(context: dict[str, Any]) -> None:
    """on_failure_callback: a failed task becomes a 'failed' record in the lake's audit log,
    next to the records the jobs write themselves."""
    from riskradar import audit
    from riskradar.config import load_settings
    from riskradar.lake import Lake

    ti = context["ti"]
    params = context.get("params") or {}
    settings = load_settings(params.get("config", DEFAULT_CONFIG))
    arguments = {
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "map_index": getattr(ti, "map_index", -1),
        "run_id": ti.run_id,
        "try_number": getattr(ti, "try_number", None),
    }
    error = context.get("exception") or RuntimeError("the task failed")
    audit.record_failure(Lake(settings.lake_root), f"airflow.{ti.dag_id}.{ti.task_id}", arguments, error)


def default_args(**overrides: Any) -> dict[str, Any]:
    args = {
        "owner": "riskradar",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=1),
        "on_failure_callback": audit_failure,
    }
    return {**args, **overrides}


def dag_params() -> dict[str, Any]:
    """The params every riskradar DAG takes (operators may trigger with others)."""
    from airflow.sdk import Param

    return {
        "config": Param(DEFAULT_CONFIG, type="string", description="pipeline config file"),
        "driver_memory": Param(
            "4g", type="string", description="spark-submit driver memory (the jobs' pandas frames live there)"
        ),
    }


def spark_conf() -> dict[str, str]:
    """Executors and driver start the interpreter that runs Airflow (the project's venv); the
    driver's memory is set at submit time (a job cannot raise it once its JVM runs)."""
    return {
        "spark.driver.memory": "{{ params.driver_memory }}",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.ui.showConsoleProgress": "false",
    }


def spark_env() -> dict[str, str]:
    """The variables spark-submit gets on top of the task's environment: SPARK_LOCAL_IP, so
    that the driver's web UI (if a config turns it on) and its default address are on
    127.0.0.1 only (see the module docstring)."""
    return {"SPARK_LOCAL_IP": "127.0.0.1"}


def spark_job(task_id: str, job: str, args: list[str], **kwargs: Any):
    """A task that spark-submits jobs/<job>.py with `args` and the run's config, on the
    connection `spark_default`, with `spark_env()` unless the driver runs on the cluster
    (`deploy_mode="cluster"`)."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    if kwargs.get("deploy_mode") != "cluster":
        kwargs.setdefault("env_vars", spark_env())
    return SparkSubmitOperator(
        task_id=task_id,
        application=job_path(job),
        application_args=[*args, *CONFIG_ARG],
        conn_id="spark_default",
        conf=spark_conf(),
        name=f"riskradar-{job.replace('_', '-')}",
        **kwargs,
    )


def monday_of(moment: datetime | date, timezone: str) -> date:
    """The Monday of the local week holding `moment` (a timezone-aware datetime or a date)."""
    if isinstance(moment, datetime):
        from zoneinfo import ZoneInfo

        moment = moment.astimezone(ZoneInfo(timezone)).date()
    return moment - timedelta(days=moment.weekday())
