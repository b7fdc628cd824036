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

The lake keeps the delivered bytes of every file whose rows reached it, as hashed while staging
(`<lake>/_delivered/<feed>/<sha256>`, owner-only, read-only), before the batch marker commits
the batch: the pseudonyms are one-way, so a rekey (intake/rekey.py) derives the lake again from
these copies, whatever landing holds by then (a partner corrects a file by sending it again
under its name). A copy no batch lists (a run died before its marker) is removed by the next run.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from intake import delivery
from intake.bronze import read_deliveries, read_delivery, same_csv_dialect
from intake.delivery import shown
from intake.retention import refuse_unfinished
from riskradar.audit import RunRecord
from riskradar.catalog import BRONZE_LINEAGE, INGEST_COLUMNS, QUARANTINE_REASON, QUARANTINE_RULE
from riskradar.config import Contract, Settings
from riskradar.lake import FeedState, Lake, Publisher, clear_scratch, lock, read_json_dir, write_json
from riskradar.log import Progress, step
from riskradar.publish import Check, StagedPartitions, publish, rows_equal, stage

log = logging.getLogger(__name__)

INGESTED, REJECTED, ROWS_QUARANTINED = "ingested", "rejected", "rejected_rows_quarantined"
# The kept copies of delivered files hold raw personal data: for the pipeline's user only.
COPIES_FOLDER_MODE, COPY_MODE = 0o700, 0o400
# A delivery of many files says how far it is every so many files (and every 50 s).
FILES_PER_PROGRESS_LINE = 100


def ingest_feed(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    *,
    key: bytes,
    record: RunRecord,
    only: list[delivery.LandingEntry] | None = None,
    ingested_at: datetime | None = None,
) -> dict[str, Any]:
    """Ingest the feed's new landing files as one batch, under the feed's bronze lock.

    `only` reads these entries instead of the landing folder's (a rekey's: the lake's copies of
    a batch's files under their delivered names, and landing's refused entries) and
    `ingested_at` fixes the batch's time (a rekey replays each earlier batch exactly); by
    default every new file in landing, now. The batch's bronze and quarantine partitions are
    staged, reconciled with the records counted while staging (see `reconcile_rows`) and only
    then published, with the kept copies of its files and the batch marker; a failed check
    publishes nothing and raises PublishRefused naming its report.
    """
    feed = contract.name
    with lock(lake, f"bronze.{feed}", run_id=record.run_id, job="ingest") as notes:
        record.notes += notes
        refuse_unfinished(lake, feed)
        clear_scratch(lake, "ingest", feed)  # what a crashed run left
        try:
            with step(f"ingest {feed}: read the delivery", log):
                if only is None:
                    entries = delivery.list_landing(settings.landing_dir(contract), contract.landing.pattern)
                else:
                    entries = only
                markers = read_json_dir(lake.batch_markers(feed))
                drop_unlisted_copies(lake, feed, markers)
                batch = _Delivery(
                    known={f["sha256"]: (m["batch_id"], f) for m in markers for f in m["files"]},
                    known_refused={
                        f["identity"]: (m["batch_id"], f) for m in markers for f in m.get("refused", [])
                    },
                    acknowledged={
                        b for b, r in FeedState.read(lake, feed).batches.items() if r.get("acknowledged")
                    },
                    record=record,
                    at=ingested_at or datetime.now(UTC),
                )
                batch.read(
                    spark, contract, entries, key=key, staging=lake.scratch("ingest", feed, record.run_id)
                )
            summary = batch.summary
            if not summary["files"] and not summary["refused"]:
                record.counts.update({"new_files": 0, "skipped_files": len(summary["skipped"])})
                return summary
            with step(f"ingest {feed}: stage, check and publish", log):
                return _publish(spark, lake, contract, batch, record=record)
        finally:
            clear_scratch(lake, "ingest", feed)


@dataclass
class _Delivery:
    """A feed's landing files as this run finds them (`read`), given what earlier batches made of
    them: the new files' reports and bronze rows (to publish, or to quarantine as a rejected
    file's)."""

    known: dict[str, tuple[str, dict[str, Any]]]  # sha256 -> (batch, file report)
    known_refused: dict[str, tuple[str, dict[str, Any]]]  # identity -> (batch, refusal)
    acknowledged: set[str]
    record: RunRecord
    at: datetime
    summary: dict[str, Any] = field(
        default_factory=lambda: {
            "batch_id": None,
            **{k: [] for k in ("files", "refused", "skipped", "deferred", "rejected", "still_rejected")},
            "rows": 0,
        }
    )
    frames: list[tuple[list[str], DataFrame]] = field(default_factory=list)  # (its files, their rows)
    rejected_frames: list[tuple[list[str], DataFrame]] = field(default_factory=list)
    pending: dict[tuple, list[delivery.FileInspection]] = field(default_factory=dict)  # by CSV dialect
    records: dict[str, int] = field(default_factory=dict)
    this_run: dict[str, str] = field(default_factory=dict)
    copies: dict[str, Path] = field(default_factory=dict)  # sha256 -> the delivered bytes, staged

    def read(
        self,
        spark: SparkSession,
        contract: Contract,
        entries: list[delivery.LandingEntry],
        *,
        key: bytes,
        staging: Path,
    ) -> None:
        """Sort the landing files into skipped, refused, deferred, rejected or read. CSV files of
        one header and dialect are read together, by one Spark read, once all are staged: a
        delivery of thousands of small files stays one plan (bounded memory)."""
        every = max(1, min(FILES_PER_PROGRESS_LINE, len(entries)))
        with Progress(f"ingest {contract.name}: file", len(entries), logger=log, log_every=every) as progress:
            for entry in entries:
                self._stage_one(spark, contract, entry, key=key, staging=staging)
                progress.advance()
        for group in self.pending.values():
            frame = read_deliveries(spark, group, contract, key=key, ingested_at=self.at)
            self.frames.append(([i.name for i in group], frame))

    def _stage_one(
        self,
        spark: SparkSession,
        contract: Contract,
        entry: delivery.LandingEntry,
        *,
        key: bytes,
        staging: Path,
    ) -> None:
        sha256 = self._hash(entry)
        if sha256 is None or self._seen(entry, sha256):
            return
        try:
            inspection = delivery.stage_file(
                entry.path, contract, staging, expected_sha256=sha256, name=entry.name
            )
        except delivery.FileChanged as exc:
            self._note("deferred", entry.name, f"{exc}; it is read on the next run")
            return
        self.this_run[sha256] = entry.name
        self._read_file(spark, inspection, contract, key=key)

    def _hash(self, entry: delivery.LandingEntry) -> str | None:
        """The file's sha256, or None when it is refused (not a regular file, cannot be opened)."""
        if entry.problem is None:
            try:
                return delivery.sha256_of(entry.path)
            except OSError as exc:
                entry = delivery.LandingEntry(
                    entry.path, entry.name, f"cannot be opened: {exc.strerror or exc}", _identity(entry.path)
                )
        if entry.identity in self.known_refused:
            batch, seen = self.known_refused[entry.identity]
            self._note("skipped", entry.name, f"refused before, in batch {batch}")
            if batch not in self.acknowledged:
                self.summary["still_rejected"].append(
                    f"file {shown(entry.name)} (batch {batch}): {seen['problem']}"
                )
            return None
        self.summary["refused"].append(
            {"file": entry.name, "identity": entry.identity, "problem": entry.problem}
        )
        self.summary["rejected"].append(f"file {shown(entry.name)}: {entry.problem}")
        return None

    def _seen(self, entry: delivery.LandingEntry, sha256: str) -> bool:
        """Whether the file's content was ingested before (skipped), or earlier in this run."""
        self.record.inputs.append({"file": entry.name, "sha256": sha256, "bytes": entry.path.lstat().st_size})
        if sha256 in self.known:
            batch, seen = self.known[sha256]
            self._note("skipped", entry.name, f"already ingested in batch {batch}")
            if seen["status"] != INGESTED and batch not in self.acknowledged:
                self.summary["still_rejected"].append(
                    f"file {shown(entry.name)} (batch {batch}): " + "; ".join(seen["problems"])
                )
            return True
        if sha256 in self.this_run:
            self._note(
                "skipped", entry.name, f"the same content as {self.this_run[sha256]!r} in this delivery"
            )
            return True
        return False

    def _note(self, kind: str, file: str, reason: str) -> None:
        self.summary[kind].append({"file": file, "reason": reason})

    def _read_file(
        self, spark: SparkSession, inspection: delivery.FileInspection, contract: Contract, *, key: bytes
    ) -> None:
        report = _file_report(inspection)
        self.summary["files"].append(report)
        if inspection.delivered is not None:
            self.copies[inspection.sha256] = inspection.delivered
        name = inspection.name
        if inspection.problems:  # nothing readable in it: record and report, no rows to keep
            self.summary["rejected"] += [f"file {shown(name)}: {p}" for p in inspection.problems]
            report["status"] = REJECTED
            return
        self.records[name] = inspection.records
        file_issue = _header_issue(inspection, contract, report)
        dialect = same_csv_dialect(inspection, contract) if file_issue is None else None
        if dialect is not None:  # read with the files of its dialect (`read`)
            self.pending.setdefault(dialect, []).append(inspection)
            return
        rows = read_delivery(spark, inspection, contract, key=key, ingested_at=self.at, file_issue=file_issue)
        if file_issue is None:
            self.frames.append(([name], rows))
            return
        self.summary["rejected"].append(f"file {shown(name)}: {file_issue[1]}")
        report["status"] = ROWS_QUARANTINED
        self.rejected_frames.append(([name], _as_quarantine(rows)))


def _publish(
    spark: SparkSession, lake: Lake, contract: Contract, batch: _Delivery, *, record: RunRecord
) -> dict[str, Any]:
    """Stage the batch's bronze and quarantine partitions, check them, publish them and the
    batch marker (the marker commits the batch: validation only reads batches that have one)."""
    feed, summary = contract.name, batch.summary
    batch_id = _batch_id(
        feed, [r["sha256"] for r in summary["files"]] + [r["identity"] for r in summary["refused"]]
    )
    bronze, bronze_rows = _stage_files(
        spark, batch, batch.frames, lake.bronze(feed), feed, {"batch_id": batch_id}
    )
    partition = {"batch_id": batch_id, "step": "ingest"}
    quarantine, quarantined_rows = _stage_files(
        spark, batch, batch.rejected_frames, lake.quarantine(feed), f"{feed}_ingest", partition
    )
    # bronze_rows and quarantined_rows were counted back from the staged partitions, per file
    checks = [
        Check("rows per file", lambda: reconcile_rows(batch.records, bronze_rows, quarantined_rows)),
        rows_equal(
            "bronze + quarantine = rows read",
            sum(bronze_rows.values()) + sum(quarantined_rows.values()),
            sum(batch.records.values()),
        ),
    ]
    publish(
        [bronze, quarantine], checks=checks, report=lake.reports("ingest", feed) / f"{batch_id}.publish.json"
    )
    for report in summary["files"]:
        report["rows"] = bronze_rows.get(report["file"], 0) + quarantined_rows.get(report["file"], 0)
    kept = keep_copies(lake, feed, summary["files"], batch.copies)
    record.outputs.append({"copies": str(lake.delivered(feed).relative_to(lake.root)), "files": kept})
    total, quarantined = sum(bronze_rows.values()), sum(quarantined_rows.values())
    write_json(
        lake.batch_markers(feed) / f"{batch_id}.json",
        {
            "batch_id": batch_id,
            "partner": feed,
            "ingested_at": batch.at.isoformat(),
            "run_id": record.run_id,
            "files": summary["files"],
            "refused": summary["refused"],
            "rows": total,
            "quarantined_at_ingest": quarantined,
        },
    )
    record.outputs.append({"table": f"bronze.{feed}", "partition": f"batch_id={batch_id}", "rows": total})
    if quarantined:
        where = f"batch_id={batch_id}/step=ingest"
        record.outputs.append({"table": f"quarantine.{feed}", "partition": where, "rows": quarantined})
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


def keep_copies(lake: Lake, feed: str, files: list[dict[str, Any]], staged: dict[str, Path]) -> list[str]:
    """Keep in the lake the delivered bytes of each file of a batch (its reports, `files`) whose
    rows reached the lake, from their staged copies (`staged`: sha256 -> path, in the lake's
    scratch, so a rename). A copy already kept (the same bytes: it is named by their hash)
    stays. Returns the sha256 of every copy the batch lists."""
    folder = lake.delivered(feed)
    kept = []
    for report in files:
        if report["status"] == REJECTED:  # none of its rows is in the lake: nothing to derive again
            continue
        if not folder.is_dir():
            folder.mkdir(parents=True)
            for f in (folder.parent, folder):
                os.chmod(f, COPIES_FOLDER_MODE)
        target = folder / report["sha256"]
        if not target.exists():
            os.chmod(staged[report["sha256"]], COPY_MODE)
            staged[report["sha256"]].rename(target)
        kept.append(report["sha256"])
    return kept


def drop_unlisted_copies(lake: Lake, feed: str, markers: list[dict[str, Any]]) -> list[Path]:
    """Remove the kept copies no batch marker lists (a run that died after keeping them, before
    its marker): raw data of nothing in the lake. Call under the feed's bronze lock."""
    folder = lake.delivered(feed)
    if not folder.is_dir():
        return []
    listed = {f["sha256"] for m in markers for f in m["files"] if f.get("sha256")}
    gone = [p for p in folder.iterdir() if p.name not in listed]
    for path in gone:
        path.unlink()
    return gone


def _identity(path: Path) -> str:
    try:
        info = path.lstat()
    except OSError:
        return f"{path.name}\0gone"
    return f"{path.name}\0{info.st_ino}\0{info.st_size}\0{info.st_mtime_ns}"


def _stage_files(
    spark: SparkSession,
    batch: _Delivery,
    frames: list[tuple[list[str], DataFrame]],
    table: Path,
    owner: str,
    partition: dict[str, str],
) -> tuple[StagedPartitions, dict[str, int]]:
    """Stage the files' rows as `partition` of `table` and count them back per file. A file
    whose rows in Spark differ from the records counted while staging is rejected and staged
    again without it. With no rows, the staged partition is empty: a rerun that now has
    nothing here clears it."""
    run_id, name = batch.record.run_id, f"{table.parent.name}.{table.name}"  # bronze.<feed>, ...
    if not frames:
        return StagedPartitions(
            name, Publisher(table, owner=owner, run_id=run_id), [partition], list(partition)
        ), {}
    rows = reduce(DataFrame.unionByName, [frame for _, frame in frames]).withColumns(
        {k: F.lit(v) for k, v in partition.items()}
    )

    def staged_of(df: DataFrame) -> StagedPartitions:
        staged = stage(
            df, table, partition_cols=list(partition), owned=[partition], owner=owner, run_id=run_id
        )
        staged.name = name
        return staged

    staged = staged_of(rows)
    counts = _staged_rows(spark, staged)
    mismatched = [file for files, _ in frames for file in files if counts.get(file, 0) != batch.records[file]]
    for file in mismatched:
        problem = (
            f"the file holds {batch.records[file]} record(s) (header excluded) as a CSV parser counts them, "
            f"but Spark read {counts.get(file, 0)} row(s) from it: it is not ingested"
        )
        report = next(r for r in batch.summary["files"] if r["file"] == file)
        report["problems"].append(problem)
        report["status"] = REJECTED
        batch.summary["rejected"].append(f"file {shown(file)}: {problem}")
        del batch.records[file]
    if mismatched:
        staged = staged_of(rows.where(~F.col("source_file").isin(mismatched)))
        counts = _staged_rows(spark, staged)
    return staged, counts


def _staged_rows(spark: SparkSession, staged: StagedPartitions) -> dict[str, int]:
    """Rows per source file in what is staged."""
    if not staged.publisher.staging.exists():
        return {}
    by_file = staged.read(spark).groupBy("source_file").count().collect()
    return {r["source_file"]: r["count"] for r in by_file}


def reconcile_rows(records: dict[str, int], bronze: dict[str, int], quarantine: dict[str, int]) -> str | None:
    """What a batch's staged partitions must hold (None when they do): for each file read, the
    records counted while staging it, in bronze (or in quarantine, for a file rejected with its
    rows), and no row of any other file."""
    files = sorted(set(records) | set(bronze) | set(quarantine))
    problems = [
        f"file {shown(f)}: {records.get(f, 0)} record(s) read, {bronze.get(f, 0)} row(s) staged in "
        f"bronze and {quarantine.get(f, 0)} in quarantine"
        for f in files
        if bronze.get(f, 0) + quarantine.get(f, 0) != records.get(f, 0)
    ]
    return "; ".join(problems) or None


def _as_quarantine(bronze: DataFrame) -> DataFrame:
    """Bronze rows of a rejected file in the quarantine layout (rule, reason, values, lineage)."""
    values = [c for c in bronze.columns if c not in BRONZE_LINEAGE]
    lineage = [c for c in BRONZE_LINEAGE if c not in INGEST_COLUMNS]
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
