"""
### riskradar weekly

Build the cell x week panel, then per target: train (rolling-origin backtest, MLflow, the
promotion gate), score the week with the champion, export CSV, GeoJSON and the HTML map report;
then per recipient of a data-sharing agreement: share its package of the week (outbox, sharing
database, register of disclosures); and evaluate last week's published scores against what
happened.

Runs every Monday 06:00 (America/Chicago) and whenever the intake publishes new silver events
(asset `silver_events`). The week it scores is the Monday of the run's logical date, so a
backfill of an old week recomputes exactly that week's scores and reports; a run without a
logical date (asset-triggered) scores the newest week of the panel. Failures are retried with
backoff and written to the lake's audit log. A target whose models never passed the promotion
gate has no champion: its scoring and export are skipped with the reason in the task log and
the audit log (the training run in MLflow says why), and the other targets go on. A recipient
gets the newest week up to the run's week that its agreement allows (embargo); one whose
agreement is not in force gets nothing and what it was served is withdrawn (a warning, audited).

Params: `config`, the pipeline config (default: conf/riskradar.yaml, or RISKRADAR_CONFIG);
`driver_memory` of the submitted jobs (default 4g).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, dag, task, task_group
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from riskradar.orchestration import dag_params, default_args, spark_job

SILVER_EVENTS = Asset(name="silver_events", uri="riskradar://silver/events")
WEEK = "{{ ti.xcom_pull(task_ids='week_to_score') }}"


@dag(
    dag_id="riskradar_weekly",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * 1", timezone="America/Chicago"), assets=SILVER_EVENTS
    ),
    start_date=datetime(2010, 1, 4),  # before any partner data: old weeks can be backfilled
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=default_args(execution_timeout=timedelta(hours=2)),
    tags=["riskradar", "weekly", "models"],
    params=dag_params(),
)
def riskradar_weekly():
    build_features = spark_job("build_features", "build_features", [])

    @task
    def week_to_score(params=None, dag_run=None) -> str:
        """The Monday of the logical date's local week, or the panel's newest week."""
        from riskradar.config import load_settings
        from riskradar.lake import Lake, partition_values
        from riskradar.orchestration import monday_of

        settings = load_settings(params["config"])
        if dag_run.logical_date is not None:
            return str(monday_of(dag_run.logical_date, settings.timezone))
        weeks = partition_values(Lake(settings.lake_root).gold("features"), "week")
        if not weeks:
            raise ValueError("gold.features has no weeks: build_features wrote nothing")
        return weeks[-1]

    @task
    def tracking_store(params=None) -> str:
        """Create or migrate the MLflow store once, before the trainings run in parallel (on
        a new SQLite store, concurrent migrations collide)."""
        from mlflow import MlflowClient

        from riskradar.config import load_settings
        from riskradar.lake import Lake
        from riskradar.registry import tracking_uri

        settings = load_settings(params["config"])
        uri = tracking_uri(settings, Lake(settings.lake_root))
        MlflowClient(uri).search_experiments(max_results=1)
        return uri

    @task
    def targets(params=None) -> list[str]:
        from riskradar.config import load_settings

        return list(load_settings(params["config"]).targets)

    @task_group(group_id="target")
    def per_target(target: str):
        train = spark_job("train_and_gate", "train", ["--target", target])
        score = spark_job(
            "score_week", "score", ["--target", target, "--week", WEEK, "--skip-without-champion"]
        )
        export = spark_job("export_reports", "export", ["--target", target, "--week", WEEK, "--skip-missing"])
        train >> score >> export

    @task
    def recipients(params=None) -> list[str]:
        """Every recipient with an agreement, and every one the outbox still serves without one
        (its share task withdraws that), read when the run starts."""
        from riskradar.config import load_settings
        from riskradar.exchange import outbox_recipients
        from riskradar.lake import Lake
        from riskradar.sharing import load_agreements

        settings = load_settings(params["config"])
        return sorted(set(load_agreements(settings)) | set(outbox_recipients(Lake(settings.lake_root))))

    @task_group(group_id="recipient")
    def per_recipient(recipient: str):
        spark_job(
            "share_package", "share", ["--recipient", recipient, "--until-week", WEEK, "--skip-undeliverable"]
        )

    evaluate = spark_job(
        "evaluate_last_week",
        "evaluate_scores",
        ["--week", "{{ macros.ds_add(ti.xcom_pull(task_ids='week_to_score'), -7) }}", "--skip-missing"],
    )
    week = week_to_score()
    build_features >> week
    groups = per_target.expand(target=targets())
    sharing_with = recipients()
    [week, tracking_store()] >> groups >> [evaluate, sharing_with]
    per_recipient.expand(recipient=sharing_with)


riskradar_weekly()
