"""Ingest: new landing files -> bronze Parquet with lineage; personal columns never in clear.

A file whose sha256 was ingested before is skipped and reported; the same name with new
content is a new delivery. Landing files are only read (see intake/delivery.py: regular
files only, each staged by its exact path while it is hashed). A file that cannot be read as
the contract says (a link, empty, header only, a required column missing, a line too long,
records Spark reads differently from the count taken while staging) is recorded as rejected
in the batch marker, with its reason; the rows of a file with a missing column go straight
to quarantine, so nothing delivered is lost. Malformed single rows enter bronze marked,
with no values, and validation quarantines them.

A file rejected in an earlier run keeps the feed's ingest failing until an operator
acknowledges it (`riskradar batches --discard`): a retried task does not turn green by itself.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from intake import delivery
from intake.bronze import read_delivery
from intake.conform import REASON as QUARANTINE_REASON
from intake.conform import RULE as QUARANTINE_RULE
from intake.delivery import shown
from riskradar.audit import RunRecord
from riskradar.config import LINEAGE_COLUMNS, Contract, Settings
from riskradar.lake import FeedState, Lake, Publisher, clear_scratch, lock, read_json_dir, write_json

INGESTED, REJECTED, ROWS_QUARANTINED = "ingested", "rejected", "rejected_rows_quarantined"


def ingest_feed(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    *,
    key: bytes,
    record: RunRecord,
    only: list[Path] | None = None,
    ingested_at: datetime | None = None,
) -> dict[str, Any]:
    """Ingest the feed's new landing files as one batch, under the feed's bronze lock.

    `only` restricts the run to these landing files and `ingested_at` fixes the batch's time
    (a rekey replays each earlier batch exactly); by default every new file, now.
    """
    feed = contract.name
    with lock(lake, f"bronze.{feed}", run_id=record.run_id, job="ingest") as notes:
        record.notes += notes
        clear_scratch(lake, "ingest", feed)  # what a crashed run left
        try:
            return _ingest(spark, settings, lake, contract, key=key, record=record, only=only, at=ingested_at)
        finally:
            clear_scratch(lake, "ingest", feed)


def _ingest(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    *,
    key: bytes,
    record: RunRecord,
    only: list[Path] | None,
    at: datetime | None,
) -> dict[str, Any]:
    entries = delivery.list_landing(settings.landing_dir(contract), contract.landing.pattern)
    if only is not None:
        wanted = {p.name for p in only}
        entries = [e for e in entries if e.name in wanted]
    markers = read_json_dir(lake.batch_markers(contract.name))
    known = {f["sha256"]: (m["batch_id"], f) for m in markers for f in m["files"]}
    known_refused = {f["identity"]: (m["batch_id"], f) for m in markers for f in m.get("refused", [])}
    acknowledged = {
        b for b, r in FeedState.read(lake, contract.name).batches.items() if r.get("acknowledged")
    }
    ingested_at = at or datetime.now(UTC)
    staging = lake.scratch("ingest", contract.name, record.run_id)
    summary: dict[str, Any] = {
        "batch_id": None,
        "files": [],
        "refused": [],
        "skipped": [],
        "deferred": [],
        "rejected": [],
        "still_rejected": [],
        "rows": 0,
    }
    frames: list[tuple[str, DataFrame]] = []
    rejected_frames: list[tuple[str, DataFrame]] = []
    records: dict[str, int] = {}
    this_run: dict[str, str] = {}
    for entry in entries:
        if entry.problem is None:
            try:
                sha256 = delivery.sha256_of(entry.path)
            except OSError as exc:
                entry = delivery.LandingEntry(
                    entry.path, entry.name, f"cannot be opened: {exc.strerror or exc}", _identity(entry.path)
                )
        if entry.problem is not None:
            if entry.identity in known_refused:
                batch, seen = known_refused[entry.identity]
                summary["skipped"].append({"file": entry.name, "reason": f"refused before, in batch {batch}"})
                if batch not in acknowledged:
                    summary["still_rejected"].append(
                        f"file {shown(entry.name)} (batch {batch}): {seen['problem']}"
                    )
                continue
            summary["refused"].append(
                {"file": entry.name, "identity": entry.identity, "problem": entry.problem}
            )
            summary["rejected"].append(f"file {shown(entry.name)}: {entry.problem}")
            continue
        record.inputs.append({"file": entry.name, "sha256": sha256, "bytes": entry.path.lstat().st_size})
        if sha256 in known:
            batch, seen = known[sha256]
            summary["skipped"].append({"file": entry.name, "reason": f"already ingested in batch {batch}"})
            if seen["status"] != INGESTED and batch not in acknowledged:
                summary["still_rejected"].append(
                    f"file {shown(entry.name)} (batch {batch}): " + "; ".join(seen["problems"])
                )
            continue
        if sha256 in this_run:
            summary["skipped"].append(
                {"file": entry.name, "reason": f"the same content as {this_run[sha256]!r} in this delivery"}
            )
            continue
        try:
            inspection = delivery.stage_file(entry.path, contract, staging, expected_sha256=sha256)
        except delivery.FileChanged as exc:
            summary["deferred"].append({"file": entry.name, "reason": f"{exc}; it is read on the next run"})
            continue
        this_run[sha256] = entry.name
        report = _file_report(inspection)
        summary["files"].append(report)
        if inspection.problems:  # nothing readable in it: record and report, no rows to keep
            summary["rejected"] += [f"file {shown(entry.name)}: {p}" for p in inspection.problems]
            report["status"] = REJECTED
            continue
        records[inspection.name] = inspection.records
        file_issue = _header_issue(inspection, contract, report)
        rows = read_delivery(
            spark, inspection, contract, key=key, ingested_at=ingested_at, file_issue=file_issue
        )
        if file_issue is not None:
            summary["rejected"].append(f"file {shown(entry.name)}: {file_issue[1]}")
            report["status"] = ROWS_QUARANTINED
            rejected_frames.append((entry.name, _as_quarantine(rows)))
        else:
            frames.append((entry.name, rows))
    if not summary["files"] and not summary["refused"]:
        record.counts.update({"new_files": 0, "skipped_files": len(summary["skipped"])})
        return summary
    batch_id = _batch_id(
        contract.name, [r["sha256"] for r in summary["files"]] + [r["identity"] for r in summary["refused"]]
    )
    counted: dict[str, int] = {}
    for table, batch_frames, publisher, partitions in (
        (
            "bronze",
            frames,
            Publisher(lake.bronze(contract.name), owner=contract.name, run_id=record.run_id),
            {"batch_id": batch_id},
        ),
        (
            "quarantine",
            rejected_frames,
            Publisher(lake.quarantine(contract.name), owner=f"{contract.name}_ingest", run_id=record.run_id),
            {"batch_id": batch_id, "step": "ingest"},
        ),
    ):
        counts, mismatched = _write_batch(
            spark, batch_frames, publisher, partitions=partitions, records=records
        )
        counted.update({f"{table}:{k}": v for k, v in counts.items()})
        for name, (expected, read) in mismatched.items():
            report = next(r for r in summary["files"] if r["file"] == name)
            problem = (
                f"the file holds {expected} record(s) (header excluded) as a CSV parser counts them, "
                f"but Spark read {read} row(s) from it: it is not ingested"
            )
            report["problems"].append(problem)
            report["status"] = REJECTED
            summary["rejected"].append(f"file {shown(name)}: {problem}")
    bronze_rows = {k.split(":", 1)[1]: v for k, v in counted.items() if k.startswith("bronze:")}
    quarantined_rows = {k.split(":", 1)[1]: v for k, v in counted.items() if k.startswith("quarantine:")}
    for report in summary["files"]:
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
            "files": summary["files"],
            "refused": summary["refused"],
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
            "new_files": len(summary["files"]),
            "refused_files": len(summary["refused"]),
            "skipped_files": len(summary["skipped"]),
            "rows_delivered": total + quarantined,
            "rows_in": total,
            "quarantined_at_ingest": quarantined,
        }
    )
    summary.update({"batch_id": batch_id, "rows": total, "quarantined": quarantined})
    return summary


def _identity(path: Path) -> str:
    try:
        info = path.lstat()
    except OSError:
        return f"{path.name}\0gone"
    return f"{path.name}\0{info.st_ino}\0{info.st_size}\0{info.st_mtime_ns}"


def _write_batch(
    spark: SparkSession,
    frames: list[tuple[str, DataFrame]],
    publisher: Publisher,
    *,
    partitions: dict[str, str],
    records: dict[str, int],
) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Stage the files' rows, count them per source file, publish. Returns rows per file, and
    the files whose rows in Spark differ from the records counted while staging (expected,
    read): those are left out of what is published."""
    if not frames:
        publisher.publish([partitions])  # a rerun that now has nothing here clears the partition
        return {}, {}
    batch = frames[0][1]
    for _, frame in frames[1:]:
        batch = batch.unionByName(frame)
    batch = batch.withColumns({k: F.lit(v) for k, v in partitions.items()})
    publisher.write(batch, list(partitions))
    counts = _counts(spark, publisher)
    mismatched = {
        name: (records[name], counts.get(name, 0))
        for name, _ in frames
        if counts.get(name, 0) != records[name]
    }
    if mismatched:
        publisher.write(batch.where(~F.col("source_file").isin(list(mismatched))), list(partitions))
        counts = _counts(spark, publisher)
    publisher.publish([partitions])
    return counts, mismatched


def _counts(spark: SparkSession, publisher: Publisher) -> dict[str, int]:
    staged = spark.read.parquet(str(publisher.staging))
    return {r["source_file"]: r["count"] for r in staged.groupBy("source_file").count().collect()}


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
        "records": inspection.records,
        "status": INGESTED,
        "problems": list(inspection.problems),
        "extra_columns": [],
        "missing_optional_columns": [],
    }
    if inspection.encoding_errors:
        report["problems"].append(
            f"{inspection.encoding_errors} record(s) have bytes that are not valid in the contract's "
            f"encoding, first at record {inspection.first_encoding_error_record}; those rows are quarantined"
        )
    return report


def _header_issue(
    inspection: delivery.FileInspection, contract: Contract, report: dict[str, Any]
) -> tuple[str, str] | None:
    """(rule, reason) when the header lacks a required column. The header's unknown names are
    shown only when every required column is there: a file delivered without its header line
    has a data row in that place (ids, addresses), which must not reach a report or a log."""
    if not inspection.header:  # formats without a header line: Spark reads the column names
        return None
    missing, optional, extra = delivery.header_problems(inspection, contract)
    if not missing:
        report["extra_columns"] = extra
        report["missing_optional_columns"] = optional
        if extra:
            report["problems"].append(f"extra columns not in the contract, not carried into bronze: {extra}")
        return None
    reason = (
        f"file {shown(inspection.name)} lacks required column(s) {missing}; "
        f"the contract {contract.name!r} requires {contract.required_columns}"
    )
    if extra:
        reason += (
            f"; {len(extra)} field(s) of its first line are not column names of the contract (not shown: "
            f"a file delivered without its header line would show a data row there)"
        )
    guess = delivery.guess_delimiter(inspection.header, contract.reader.delimiter)
    if guess:
        reason += (
            f"; the header looks delimited by {guess!r}, the contract says {contract.reader.delimiter!r}"
        )
    return "missing_column", reason


def _batch_id(feed: str, identities: list[str]) -> str:
    """Deterministic: the same set of files always makes the same batch, so a rerun after a
    crash overwrites the half-finished batch instead of adding a second one. It starts with a
    letter: a partition value of digits only (or one Spark reads as a number, such as 12e34)
    would come back from a folder name as a number, without its leading zeros."""
    digest = hashlib.sha256((feed + ":" + ",".join(sorted(identities))).encode()).hexdigest()
    return f"b{digest[:15]}"
