"""
### riskradar intake (daily)

For every feed enabled in the pipeline config: first remove what its contract no longer allows
(`riskradar retention` as of the run's date: rows older than `retention_days` go from bronze,
silver, history, quarantine and the copies of delivered files; the events that go are kept as
counts per week and cell for the panel), then ingest the files that landed since the last run
(bronze, personal data pseudonymised), then validate and publish them (silver | quarantine,
behind the feed's expectation gate). The intake does not wait for retention to succeed; a
failed retention still fails the feed and the run. One mapped task group per feed: a failed
gate of one feed fails only that feed's tasks; the other feeds go on. Validation runs also when ingest
failed (a rejected file fails ingest, but the delivery's good files are in bronze and are
validated and published); the feed, and the run, still end failed. Every failure is also
written to the lake's audit log. A feed whose validation published something in this run (its
commit record's version moved past the one `feed_version` read before ingest) updates the
`silver_events` asset (`announce_new_data`), which triggers the weekly DAG; a feed with nothing
new skips it, so a daily run without deliveries starts no weekly run.

Params: `config`, the pipeline config (default: conf/riskradar.yaml, or RISKRADAR_CONFIG);
`driver_memory` of the submitted jobs (default 4g).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, TriggerRule, dag, task, task_group

from riskradar.orchestration import dag_params, default_args, spark_job

SILVER_EVENTS = Asset(name="silver_events", uri="riskradar://silver/events")
# The day retention counts back from: the run's logical date (a run without one: when it ran).
AS_OF = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"


@dag(
    dag_id="riskradar_intake",
    schedule="@daily",
    start_date=datetime(2010, 1, 4),  # before any partner data: old weeks can be backfilled
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=default_args(),
    tags=["riskradar", "intake"],
    params=dag_params(),
)
def riskradar_intake():
    @task
    def enabled_feeds(params=None) -> list[str]:
        """The feeds enabled in the config, read when the run starts (not at parse time)."""
        from riskradar.config import load_settings

        return list(load_settings(params["config"]).contracts)

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def fail_feed_if_ingest_failed(partner: str) -> None:
        """Runs only when ingest failed. Validation ran anyway (ALL_DONE), so it is a leaf that
        may succeed; a run's state comes from its leaves, and this one keeps the feed failed."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"ingest of {partner} failed (see feed.ingest_new_files); what it landed in bronze was "
            "validated and published all the same"
        )

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def fail_feed_if_retention_failed(partner: str) -> None:
        """Runs only when retention failed. The intake went on without waiting for it; this leaf
        keeps the feed, and the run, failed."""
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"retention of {partner} failed (see feed.apply_retention); its intake went on all the same"
        )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def feed_version(partner: str, params=None) -> int:
        """The version of the feed's commit record before this run ingests anything (after
        retention, whatever became of it)."""
        from riskradar.config import load_settings
        from riskradar.lake import FeedState, Lake

        return FeedState.read(Lake(load_settings(params["config"]).lake_root), partner).version

    @task(outlets=[SILVER_EVENTS])
    def announce_new_data(partner: str, before: int, params=None) -> int:
        """Update silver_events when the feed's commit record moved past the version it had
        before ingest (its validation published in this run); skip otherwise: a skipped task
        emits no asset event. A version, not a clock: a rerun of the same run stays quiet."""
        from airflow.exceptions import AirflowSkipException

        from riskradar.config import load_settings
        from riskradar.lake import FeedState, Lake

        now = FeedState.read(Lake(load_settings(params["config"]).lake_root), partner).version
        if now == before:
            raise AirflowSkipException(f"{partner}: nothing new was published in this run")
        return now

    @task_group(group_id="feed")
    def feed(partner: str):
        retain = spark_job("apply_retention", "retention", ["--partner", partner, "--as-of", AS_OF])
        before = feed_version(partner)
        ingest = spark_job("ingest_new_files", "ingest", ["--partner", partner])
        # A rejected file fails ingest, but the delivery's good files are in bronze: validate them.
        validate = spark_job(
            "validate_and_publish", "validate", ["--partner", partner], trigger_rule=TriggerRule.ALL_DONE
        )
        retain >> before >> ingest >> validate >> announce_new_data(partner, before)
        retain >> fail_feed_if_retention_failed(partner)
        ingest >> fail_feed_if_ingest_failed(partner)

    feed.expand(partner=enabled_feeds())


riskradar_intake()
