"""Ingest: new landing files -> bronze Parquet with lineage; personal columns never in clear.

    riskradar ingest --partner police_crimes [--config conf/riskradar.yaml]
    riskradar ingest --all

A file whose sha256 was ingested before is skipped and reported; the same name with new
content is a new delivery. Landing files are only read: regular files only, each by its
exact path (see intake/ingestion.py). Files that cannot be read as the contract says are
recorded as rejected and reported together at the end (DeliveryRejected), after every feed had
its turn; so are files rejected in an earlier run that no operator has acknowledged yet
(`riskradar batches --discard`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from intake.ingestion import ingest_feed
from intake.pseudonym import check_lake_key, load_key
from riskradar.audit import audited_run
from riskradar.config import Settings
from riskradar.errors import DeliveryRejected, RiskradarError
from riskradar.runtime import add_feed_arguments, context, job_parser, parse, raise_collected, selected_feeds

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, dict[str, Any]]:
    parser = job_parser("riskradar ingest", __doc__)
    add_feed_arguments(parser)
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    feeds = selected_feeds(settings, args)
    key = load_key(settings.pseudonymisation.key_env)
    check_lake_key(settings.lake_root, key, key_env=settings.pseudonymisation.key_env)
    results: dict[str, dict[str, Any]] = {}
    failures: list[Exception] = []
    for feed in feeds:
        contract = settings.contract(feed)
        try:
            with audited_run(lake, "ingest", {"partner": feed, "config": settings.config_file}) as record:
                summary = ingest_feed(spark, settings, lake, contract, key=key, record=record)
                results[feed] = summary
                _log_summary(feed, summary)
                problems = summary["rejected"] + [
                    f"{m} (rejected earlier)" for m in summary["still_rejected"]
                ]
                if problems:
                    record.counts["rejected_files"] = len(summary["rejected"])
                    record.counts["still_rejected_files"] = len(summary["still_rejected"])
                    raise DeliveryRejected(
                        f"some delivered files of {feed} do not match their contract:\n  "
                        + "\n  ".join(f"{feed}: {m}" for m in problems)
                        + f"\n(once handled: riskradar batches --partner {feed} --discard <batch> "
                        + "--reason '...')"
                    )
        except Exception as exc:  # one feed's failure never stops the others (raised at the end)
            failures.append(exc)
    raise_collected(failures)
    return results


def _log_summary(feed: str, summary: dict[str, Any]) -> None:
    log.info(
        "ingest %s: %d new file(s), %d row(s)%s%s, %d skipped",
        feed,
        len(summary["files"]),
        summary["rows"],
        f" in batch {summary['batch_id']}" if summary["batch_id"] else "",
        f", {summary['quarantined']} quarantined (rejected files)" if summary.get("quarantined") else "",
        len(summary["skipped"]),
    )
    for item in summary["skipped"]:
        log.info("  skipped %s: %s", item["file"], item["reason"])
    for item in summary["deferred"]:
        log.info("  left for the next run: %s: %s", item["file"], item["reason"])
    for item in summary["refused"]:
        log.warning("  refused %r: %s", item["file"], item["problem"])
    for report in summary["files"]:
        for problem in report["problems"]:
            log.warning("  %s: %s", report["file"], problem)


if __name__ == "__main__":
    try:
        main()
    except RiskradarError as exc:
        raise SystemExit(f"error: {exc}") from None
