"""Validate: bronze batches -> canonical silver tables | quarantine, behind a quality gate.

    riskradar validate --partner police_crimes [--config conf/riskradar.yaml]
    riskradar validate --all [--reprocess]

Per batch: map to the canonical schema, route every row to silver or quarantine (with its
rule and reason), run the feed's expectation suite as the batch gate, check that
rows in = published + quarantined, then publish both (write-audit-publish). A failed gate
raises ValidationGateFailed and publishes nothing for that batch; other feeds go on.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from riskradar import conform
from riskradar.audit import RunRecord, audited_run
from riskradar.config import Contract, Settings
from riskradar.errors import ReconciliationError, RiskradarError, ValidationGateFailed
from riskradar.lake import Lake, Publisher, has_parquet, read_json_dir, write_json
from riskradar.pseudonym import load_key
from riskradar.quality import failed_expectations, run_suite, write_report
from riskradar.runtime import add_feed_arguments, context, job_parser, parse, selected_feeds

# Which silver table each kind of feed publishes to, and its partition columns.
SILVER_TABLES = {
    "events": ("events", ["partner", "batch_id"]),
    "series": (None, ["batch_id"]),  # a series gets a table of its own name, e.g. silver/weather
    "area_attributes": ("areas", ["partner", "batch_id"]),
    "area_boundaries": ("boundaries", ["partner", "batch_id"]),
}


def _quarantine_partition(batch_id: str) -> dict[str, str]:
    return {"batch_id": batch_id, "step": "validate"}


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, list[dict[str, Any]]]:
    parser = job_parser("riskradar validate", __doc__)
    add_feed_arguments(parser)
    parser.add_argument(
        "--reprocess", action="store_true", help="validate every batch again, not only new ones"
    )
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    feeds = selected_feeds(settings, args)
    key = load_key(settings.pseudonymisation.key_env)
    results: dict[str, list[dict[str, Any]]] = {}
    failures: list[str] = []
    for feed in feeds:
        contract = settings.contract(feed)
        try:
            with audited_run(lake, "validate", {"partner": feed, "reprocess": args.reprocess}) as record:
                results[feed] = validate_feed(
                    spark, settings, lake, contract, key=key, record=record, reprocess=args.reprocess
                )
        except ValidationGateFailed as exc:
            failures.append(str(exc))
            print(f"validate {feed}: GATE FAILED\n  {exc}")
            continue
        for summary in results[feed]:
            _print_summary(feed, summary)
        if not results[feed]:
            print(f"validate {feed}: no new batches")
    if failures:
        raise ValidationGateFailed("\n".join(failures))
    return results


def silver_table(contract: Contract) -> tuple[str, list[str]]:
    table, partitions = SILVER_TABLES[contract.kind]
    return table or contract.name, partitions


def validate_feed(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    *,
    key: bytes,
    record: RunRecord,
    reprocess: bool = False,
) -> list[dict[str, Any]]:
    markers = sorted(read_json_dir(lake.batch_markers(contract.name)), key=lambda m: m["ingested_at"])
    done = {m["batch_id"] for m in read_json_dir(lake.validated_markers(contract.name))}
    todo = [m for m in markers if reprocess or m["batch_id"] not in done]
    summaries = []
    for marker in todo:
        summary = validate_batch(spark, settings, lake, contract, marker, key=key, record=record)
        summaries.append(summary)
    record.counts["batches"] = len(summaries)
    for name in ("rows_in", "published", "quarantined"):
        record.counts[name] = sum(s[name] for s in summaries)
    record.counts["quarantined_by_rule"] = _sum_rules(summaries)
    return summaries


def validate_batch(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    marker: dict[str, Any],
    *,
    key: bytes,
    record: RunRecord,
) -> dict[str, Any]:
    batch_id = marker["batch_id"]
    table, partitions = silver_table(contract)
    owned_silver = [
        {"partner": contract.name, "batch_id": batch_id}
        if "partner" in partitions
        else {"batch_id": batch_id}
    ]
    record.inputs.append(
        {
            "table": f"bronze.{contract.name}",
            "batch_id": batch_id,
            "files": [{"file": f["file"], "sha256": f["sha256"]} for f in marker["files"]],
        }
    )
    summary: dict[str, Any] = {
        "batch_id": batch_id,
        "rows_in": 0,
        "published": 0,
        "quarantined": 0,
        "quarantined_by_rule": {},
        "gate": "skipped (no rows)",
    }
    silver_pub = Publisher(lake.silver(table), owner=contract.name, run_id=record.run_id)
    quarantine_pub = Publisher(lake.quarantine(contract.name), owner=contract.name, run_id=record.run_id)
    if marker["rows"] == 0:  # every file of the batch was rejected at ingest
        silver_pub.publish(owned_silver)
        quarantine_pub.publish([_quarantine_partition(batch_id)])
        _commit(lake, contract, batch_id, summary, record)
        return summary

    bronze = spark.read.parquet(str(lake.bronze(contract.name))).where(F.col("batch_id") == batch_id)
    # The routed batch is read several times (counts, each expectation of the suite, silver,
    # quarantine): it is computed once and staged as Parquet, so that each read takes only
    # its columns. (A memory cache ran a 4 GB heap out at 10M rows; a disk cache is read
    # whole by each of the suite's jobs.)
    run_scratch = lake.scratch("validate", record.run_id)
    scratch = run_scratch / contract.name / batch_id
    try:
        _route(spark, settings, lake, contract, bronze, batch_id, key=key, table=table).write.mode(
            "overwrite"
        ).parquet(str(scratch))
        routed = spark.read.parquet(str(scratch))
        rows_in = bronze.count()
        by_rule = {r[conform.RULE]: r["count"] for r in routed.groupBy(conform.RULE).count().collect()}
        published = by_rule.pop(None, 0)
        summary.update(
            {
                "rows_in": rows_in,
                "published": published,
                "quarantined": sum(by_rule.values()),
                "quarantined_by_rule": dict(sorted(by_rule.items())),
            }
        )
        canonical = conform.canonical_columns(routed) + [conform.RULE]
        result = run_suite(
            routed.select(*canonical), settings.suite_path(contract), run_name=f"{contract.name}-{batch_id}"
        )
        report = write_report(
            lake.reports("validation", contract.name),
            batch_id,
            result,
            title=f"Validation of {contract.name}, batch {batch_id}",
            counts={k: v for k, v in summary.items() if k != "gate"},
        )
        record.outputs.append({"report": str(report)})
        if not result["success"]:
            summary["gate"] = "failed"
            raise ValidationGateFailed(
                f"{contract.name} batch {batch_id}: the expectation suite "
                f"{contract.expectation_suite} failed; "
                f"nothing was published. Failed: "
                + "; ".join(failed_expectations(result))
                + f". Report: {report}"
            )
        summary["gate"] = "passed"

        silver_cols = (
            [c for c in canonical if c != conform.RULE]
            + [c for c in conform.LINEAGE if c != "batch_id"]
            + ["batch_id"]
        )
        silver = routed.where(F.col(conform.RULE).isNull()).select(*silver_cols)
        if "partner" in partitions:
            silver = silver.withColumn("partner", F.lit(contract.name))
        silver_pub.write(silver, partitions)
        quarantine_cols = [conform.RULE, conform.REASON, f"{conform.DELIVERED}.*"] + conform.LINEAGE
        quarantined = routed.where(F.col(conform.RULE).isNotNull()).select(*quarantine_cols)
        quarantine_pub.write(quarantined.withColumn("step", F.lit("validate")), ["batch_id", "step"])
        _reconcile(
            spark, contract, batch_id, rows_in, marker["rows"], silver_pub.staging, quarantine_pub.staging
        )
        quarantine_pub.publish([_quarantine_partition(batch_id)])
        silver_pub.publish(owned_silver)
    finally:
        shutil.rmtree(run_scratch, ignore_errors=True)
    record.outputs.append(
        {"table": f"silver.{table}", "partition": owned_silver[0], "rows": summary["published"]}
    )
    record.outputs.append(
        {
            "table": f"quarantine.{contract.name}",
            "partition": _quarantine_partition(batch_id),
            "rows": summary["quarantined"],
        }
    )
    _commit(lake, contract, batch_id, summary, record)
    return summary


def _route(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    bronze: DataFrame,
    batch_id: str,
    *,
    key: bytes,
    table: str,
) -> DataFrame:
    if contract.kind == "events":
        published = None
        events_path = lake.silver(table)
        if _has_data(events_path / f"partner={contract.name}"):
            published = (
                spark.read.parquet(str(events_path))
                .where((F.col("partner") == contract.name) & (F.col("batch_id") != batch_id))
                .select("row_hash", "batch_id")
            )
        return conform.route_events(bronze, contract, settings, key=key, published_hashes=published)
    if contract.kind == "series":
        return conform.route_series(bronze, contract)
    return conform.route_areas(bronze, contract)


def _has_data(path: Path) -> bool:
    return path.exists() and any(p.name.startswith("batch_id=") for p in path.iterdir())


def _reconcile(
    spark: SparkSession,
    contract: Contract,
    batch_id: str,
    rows_in: int,
    delivered: int,
    silver: Path,
    quarantine: Path,
) -> None:
    """Count what was actually written, before anything is published."""
    published = _count(spark, silver)
    quarantined = _count(spark, quarantine)
    if rows_in != published + quarantined or rows_in != delivered:
        raise ReconciliationError(
            f"{contract.name} batch {batch_id}: {delivered} rows ingested, {rows_in} read from bronze, "
            f"{published} written to silver + {quarantined} to quarantine = {published + quarantined}; "
            f"nothing was published"
        )


def _count(spark: SparkSession, path: Path) -> int:
    return spark.read.parquet(str(path)).count() if has_parquet(path) else 0


def _commit(
    lake: Lake, contract: Contract, batch_id: str, summary: dict[str, Any], record: RunRecord
) -> None:
    write_json(
        lake.validated_markers(contract.name) / f"{batch_id}.json",
        {**summary, "partner": contract.name, "run_id": record.run_id},
    )


def _sum_rules(summaries: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for s in summaries:
        for rule, n in s["quarantined_by_rule"].items():
            total[rule] = total.get(rule, 0) + n
    return dict(sorted(total.items()))


def _print_summary(feed: str, s: dict[str, Any]) -> None:
    rules = ", ".join(f"{k} {v}" for k, v in s["quarantined_by_rule"].items()) or "none"
    print(
        f"validate {feed} batch {s['batch_id']}: {s['rows_in']} in, {s['published']} published, "
        f"{s['quarantined']} quarantined ({rules}); gate {s['gate']}"
    )


if __name__ == "__main__":
    try:
        main()
    except RiskradarError as exc:
        raise SystemExit(f"error: {exc}") from None
