"""Validate: bronze batches -> canonical silver tables | quarantine, behind a quality gate.

    riskradar validate --partner police_crimes [--config conf/riskradar.yaml]
    riskradar validate --all [--reprocess]

Per batch, in the order the batches were ingested: route every row to silver or quarantine
(with its rule and reason), compare it with the current silver row of its key, run the feed's
expectation suite as the batch gate, check that rows in = new + corrections + unchanged +
quarantined, then commit (write-audit-publish; see intake/validation.py). Silver holds one
current row per event id, date or area code; replaced versions move to the history table.

A batch that fails its gate is set aside (nothing published) and the next batch goes on; the
run then fails, and so does every rerun, until the batch is discarded or retried with
`riskradar batches`. `--reprocess` replays every batch that was not discarded, from an empty
silver, and commits once at the end. One feed's failure never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from intake.pseudonym import check_lake_key, load_key
from intake.validation import check_no_rejected_batch, validate_feed
from riskradar.audit import audited_run
from riskradar.config import Settings
from riskradar.errors import RiskradarError
from riskradar.runtime import add_feed_arguments, context, job_parser, parse, raise_collected, selected_feeds

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, list[dict[str, Any]]]:
    parser = job_parser("riskradar validate", __doc__)
    add_feed_arguments(parser)
    parser.add_argument(
        "--reprocess", action="store_true", help="validate every batch again (except discarded ones)"
    )
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    feeds = selected_feeds(settings, args)
    key = load_key(settings.pseudonymisation.key_env)
    check_lake_key(settings.lake_root, key, key_env=settings.pseudonymisation.key_env)
    results: dict[str, list[dict[str, Any]]] = {}
    failures: list[Exception] = []
    for feed in feeds:
        contract = settings.contract(feed)
        try:
            with audited_run(lake, "validate", {"partner": feed, "reprocess": args.reprocess}) as record:
                results[feed] = validate_feed(
                    spark, settings, lake, contract, key=key, record=record, reprocess=args.reprocess
                )
                for summary in results[feed]:
                    _log_summary(feed, summary)
                if not results[feed]:
                    log.info("validate %s: no new batches", feed)
                check_no_rejected_batch(lake, feed)
        except Exception as exc:  # one feed's failure never stops the others (raised at the end)
            failures.append(exc)
            log.error("validate %s: FAILED\n  %s", feed, exc)
    raise_collected(failures)
    return results


def _log_summary(feed: str, s: dict[str, Any]) -> None:
    rules = ", ".join(f"{k} {v}" for k, v in s["quarantined_by_rule"].items()) or "none"
    log.info(
        "validate %s batch %s: %d in, %d new, %d corrections, %d unchanged, %d quarantined (%s); gate %s",
        feed,
        s["batch_id"],
        s["rows_in"],
        s["new"],
        s["corrections"],
        s["unchanged"],
        s["quarantined"],
        rules,
        s["gate"],
    )


if __name__ == "__main__":
    try:
        main()
    except RiskradarError as exc:
        raise SystemExit(f"error: {exc}") from None
