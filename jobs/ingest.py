"""Ingest: new landing files -> bronze Parquet with lineage; personal columns never in clear.

    riskradar ingest --partner police_crimes [--config conf/riskradar.yaml]
    riskradar ingest --all

A file whose sha256 was ingested before is skipped and reported; the same name with new
content is a new delivery. Landing files are only read. Files that cannot be read as the
contract says (empty, header only, a required column missing) are reported together at the
end (DeliveryRejected); the rows of such a file go straight to quarantine with the reason,
so nothing delivered is lost. Malformed single rows enter bronze marked, and validation
quarantines them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from riskradar import delivery
from riskradar.audit import RunRecord, audited_run
from riskradar.bronze import read_delivery
from riskradar.config import LINEAGE_COLUMNS, Contract, Settings
from riskradar.conform import REASON as QUARANTINE_REASON
from riskradar.conform import RULE as QUARANTINE_RULE
from riskradar.errors import DeliveryRejected
from riskradar.lake import Lake, Publisher, read_json_dir, write_json
from riskradar.pseudonym import load_key
from riskradar.runtime import add_feed_arguments, context, job_parser, parse, selected_feeds


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
    results: dict[str, dict[str, Any]] = {}
    rejected: list[str] = []
    for feed in feeds:
        contract = settings.contract(feed)
        with audited_run(lake, "ingest", {"partner": feed, "config": settings.config_file}) as record:
            summary = ingest_feed(spark, settings, lake, contract, key=key, record=record)
            results[feed] = summary
            rejected += [f"{feed}: {msg}" for msg in summary["rejected"]]
            if summary["rejected"]:
                record.notes.append("some files were rejected; see 'rejected'")
                record.counts["rejected_files"] = len(summary["rejected"])
        _print_summary(feed, summary)
    if rejected:
        raise DeliveryRejected(
            "some delivered files do not match their contract:\n  " + "\n  ".join(rejected)
        )
    return results


def ingest_feed(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    *,
    key: bytes,
    record: RunRecord,
) -> dict[str, Any]:
    landing = settings.landing_dir(contract)
    files = delivery.list_landing_files(landing, contract.landing.pattern)
    seen = {
        f["sha256"]: m["batch_id"]
        for m in read_json_dir(lake.batch_markers(contract.name))
        for f in m["files"]
    }
    ingested_at = datetime.now(UTC)
    frames: list[DataFrame] = []
    rejected_frames: list[DataFrame] = []
    file_reports: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    rejected: list[str] = []
    for path in files:
        sha256 = delivery.sha256_of(path)
        record.inputs.append({"file": path.name, "sha256": sha256, "bytes": path.stat().st_size})
        if sha256 in seen:
            skipped.append({"file": path.name, "reason": f"already ingested in batch {seen[sha256]}"})
            continue
        seen[sha256] = "(this batch)"
        inspection = delivery.inspect_file(path, contract, sha256)  # only new files are read whole
        report = _file_report(inspection)
        file_reports.append(report)
        if inspection.problems:  # nothing readable in it: record and report, no rows to keep
            rejected += [f"file {path.name!r}: {p}" for p in inspection.problems]
            report["status"] = "rejected"
            continue
        file_issue = _header_issue(inspection, contract, report)
        rows = read_delivery(
            spark, inspection, contract, key=key, ingested_at=ingested_at, file_issue=file_issue
        )
        if file_issue is not None:
            rejected.append(f"file {path.name!r}: {file_issue[1]}")
            report["status"] = "rejected_rows_quarantined"
            rejected_frames.append(rows)
        else:
            frames.append(rows)
    summary: dict[str, Any] = {
        "batch_id": None,
        "files": file_reports,
        "skipped": skipped,
        "rejected": rejected,
        "rows": 0,
    }
    if not file_reports:
        record.counts.update({"new_files": 0, "skipped_files": len(skipped)})
        return summary
    batch_id = _batch_id(contract.name, [r["sha256"] for r in file_reports])
    bronze_rows = _write_batch(
        spark,
        frames,
        batch_id,
        Publisher(lake.bronze(contract.name), owner=contract.name, run_id=record.run_id),
        partitions={"batch_id": batch_id},
    )
    quarantined_rows = _write_batch(
        spark,
        [_as_quarantine(f) for f in rejected_frames],
        batch_id,
        Publisher(lake.quarantine(contract.name), owner=f"{contract.name}_ingest", run_id=record.run_id),
        partitions={"batch_id": batch_id, "step": "ingest"},
    )
    for report in file_reports:
        report["rows"] = bronze_rows.get(report["file"], 0) + quarantined_rows.get(report["file"], 0)
    total = sum(bronze_rows.values())
    quarantined = sum(quarantined_rows.values())
    # The marker commits the batch: validation only reads batches that have one.
    write_json(
        lake.batch_markers(contract.name) / f"{batch_id}.json",
        {
            "batch_id": batch_id,
            "partner": contract.name,
            "ingested_at": ingested_at.isoformat(),
            "run_id": record.run_id,
            "files": file_reports,
            "rows": total,
            "quarantined_at_ingest": quarantined,
        },
    )
    record.outputs.append(
        {"table": f"bronze.{contract.name}", "partition": f"batch_id={batch_id}", "rows": total}
    )
    if quarantined:
        record.outputs.append(
            {
                "table": f"quarantine.{contract.name}",
                "partition": f"batch_id={batch_id}/step=ingest",
                "rows": quarantined,
            }
        )
    record.counts.update(
        {
            "new_files": len(file_reports),
            "skipped_files": len(skipped),
            "rows_delivered": total + quarantined,
            "rows_in": total,
            "quarantined_at_ingest": quarantined,
        }
    )
    summary.update({"batch_id": batch_id, "rows": total, "quarantined": quarantined})
    return summary


def _write_batch(
    spark: SparkSession,
    frames: list[DataFrame],
    batch_id: str,
    publisher: Publisher,
    *,
    partitions: dict[str, str],
) -> dict[str, int]:
    """Stage, count per source file, publish; returns rows per file."""
    if not frames:
        publisher.publish([partitions])  # a rerun that now has nothing here clears the partition
        return {}
    batch = frames[0]
    for frame in frames[1:]:
        batch = batch.unionByName(frame)
    publisher.write(batch.withColumns({k: F.lit(v) for k, v in partitions.items()}), list(partitions))
    staged = spark.read.parquet(str(publisher.staging))
    counts = {r["source_file"]: r["count"] for r in staged.groupBy("source_file").count().collect()}
    publisher.publish([partitions])
    return counts


def _as_quarantine(bronze: DataFrame) -> DataFrame:
    """Bronze rows of a rejected file in the quarantine layout (rule, reason, values, lineage)."""
    values = [c for c in bronze.columns if c not in LINEAGE_COLUMNS]
    lineage = [c for c in LINEAGE_COLUMNS if c not in ("ingest_rule", "ingest_reason")]
    return bronze.select(
        F.col("ingest_rule").alias(QUARANTINE_RULE),
        F.col("ingest_reason").alias(QUARANTINE_REASON),
        *[F.col(f"`{c}`") for c in values],
        *lineage,
    )


def _file_report(inspection: delivery.FileInspection) -> dict[str, Any]:
    report: dict[str, Any] = {
        "file": inspection.name,
        "sha256": inspection.sha256,
        "bytes": inspection.size,
        "status": "ingested",
        "problems": list(inspection.problems),
        "extra_columns": [],
        "missing_optional_columns": [],
    }
    if inspection.encoding_errors:
        report["problems"].append(
            f"{inspection.encoding_errors} line(s) have bytes that are not valid in the contract's "
            f"encoding, first at line {inspection.first_encoding_error_line}; those rows are quarantined"
        )
    return report


def _header_issue(
    inspection: delivery.FileInspection, contract: Contract, report: dict[str, Any]
) -> tuple[str, str] | None:
    if not inspection.header:  # formats without a header line: Spark reads the column names
        return None
    missing, optional, extra = delivery.header_problems(inspection, contract)
    report["extra_columns"] = extra
    report["missing_optional_columns"] = optional
    if extra:
        report["problems"].append(f"extra columns not in the contract, not carried into bronze: {extra}")
    if not missing:
        return None
    reason = (
        f"file {inspection.name!r} lacks required column(s) {missing}; "
        f"the contract {contract.name!r} requires {contract.required_columns}"
    )
    guess = delivery.guess_delimiter(inspection.header, contract.reader.delimiter)
    if guess:
        reason += (
            f"; the header looks delimited by {guess!r}, the contract says {contract.reader.delimiter!r}"
        )
    return "missing_column", reason


def _batch_id(feed: str, shas: list[str]) -> str:
    """Deterministic: the same set of files always makes the same batch, so a rerun after a
    crash overwrites the half-finished batch instead of adding a second one."""
    return hashlib.sha256((feed + ":" + ",".join(sorted(shas))).encode()).hexdigest()[:16]


def _print_summary(feed: str, summary: dict[str, Any]) -> None:
    print(
        f"ingest {feed}: {len(summary['files'])} new file(s), {summary['rows']} row(s)"
        + (f" in batch {summary['batch_id']}" if summary["batch_id"] else "")
        + (f", {summary['quarantined']} quarantined (rejected files)" if summary.get("quarantined") else "")
        + f", {len(summary['skipped'])} skipped"
    )
    for item in summary["skipped"]:
        print(f"  skipped {item['file']}: {item['reason']}")
    for report in summary["files"]:
        for problem in report["problems"]:
            print(f"  {report['file']}: {problem}")


if __name__ == "__main__":
    main()
