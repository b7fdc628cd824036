"""Batches: list a feed's batches and what became of them; discard or retry a set-aside one.

    riskradar batches --partner police_crimes
    riskradar batches --partner weather --discard 3f9a0c1d2e4b5a67 --reason "99 F: a unit mix-up"
    riskradar batches --partner police_crimes --retry 3f9a0c1d2e4b5a67

A batch whose gate failed is set aside (`rejected`) and keeps `validate` failing; a file that
ingest rejected keeps `ingest` failing. `--discard` ends that: the batch's rows go to
quarantine as `discarded_batch` with who, when and why (for a published batch: the rejected
files are acknowledged). `--retry` validates a rejected batch again, e.g. after its suite was
mended; when a later batch was published meanwhile, the feed is replayed in ingest order (as
`validate --reprocess` does), so that a later correction still wins. Both are written to the
audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from intake.pseudonym import check_lake_key, load_key
from intake.validation import check_no_rejected_batch, discard_batch, list_batches, retry_batch
from riskradar.audit import audited_run
from riskradar.config import Settings
from riskradar.errors import RiskradarError
from riskradar.runtime import context, job_parser, parse

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> list[dict[str, Any]] | dict[str, Any]:
    parser = job_parser("riskradar batches", __doc__)
    parser.add_argument("--partner", required=True, help="a feed name from conf/partners/")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--discard", metavar="BATCH", help="set this batch aside for good")
    action.add_argument("--retry", metavar="BATCH", help="validate this rejected batch again")
    parser.add_argument("--reason", help="why the batch is discarded (required with --discard)")
    args = parse(parser, argv)
    if args.discard and not (args.reason or "").strip():
        parser.error("--discard needs --reason: the audit log keeps why a delivery was set aside")
    if args.discard or args.retry:
        settings, lake, spark = context(args, settings, spark)
    else:  # listing reads JSON only: no Spark session
        from riskradar.config import load_settings
        from riskradar.lake import Lake

        settings = settings or load_settings(args.config)
        lake = Lake(settings.lake_root)
    contract = settings.contract(args.partner)
    if not (args.discard or args.retry):
        batches = list_batches(lake, contract)
        _print_table(contract.name, batches)
        return batches
    arguments = {
        "partner": contract.name,
        "discard": args.discard,
        "retry": args.retry,
        "reason": args.reason,
    }
    with audited_run(lake, "batches", arguments) as record:
        if args.discard:
            result: Any = discard_batch(
                spark, lake, contract, args.discard, reason=args.reason, record=record
            )
            log.info(
                "batches %s: batch %s is %s%s",
                contract.name,
                args.discard,
                result["status"],
                f"; {result['quarantined']} row(s) quarantined as discarded_batch"
                if result["quarantined"]
                else "",
            )
        else:
            key = load_key(settings.pseudonymisation.key_env)
            check_lake_key(settings.lake_root, key, key_env=settings.pseudonymisation.key_env)
            result = retry_batch(spark, settings, lake, contract, args.retry, key=key, record=record)
            for s in result:
                log.info("batches %s: batch %s: gate %s", contract.name, s["batch_id"], s["gate"])
            check_no_rejected_batch(lake, contract.name)
        record.counts["batches"] = 1
    return result


def _print_table(feed: str, batches: list[dict[str, Any]]) -> None:
    if not batches:
        print(f"{feed}: no batches ingested yet")
        return
    print(f"{'batch':16}  {'ingested at':25}  {'files':>5}  {'rows':>8}  status")
    for b in batches:
        counts = ", ".join(f"{k} {v}" for k, v in b["counts"].items() if v)
        line = (
            f"{b['batch_id']:16}  {b['ingested_at'][:25]:25}  {b['files']:>5}  {b['rows']:>8}  {b['status']}"
        )
        if counts:
            line += f" ({counts})"
        if b["rejected_files"]:
            line += f"; rejected files: {', '.join(repr(f) for f in b['rejected_files'])}"
        if b["acknowledged"]:
            a = b["acknowledged"]
            line += f"; acknowledged by {a['by']} at {a['at']}: {a['reason']}"
        print(line)
        for failed in b["failed"]:
            print(f"    failed: {failed}")
        if b["status"] == "rejected":
            print(f"    report: {b['report']}")


if __name__ == "__main__":
    try:
        main()
    except RiskradarError as exc:
        raise SystemExit(f"error: {exc}") from None
