"""Validation of bronze batches into the published intake tables (see jobs/validate.py).

Per batch, in the order the batches were ingested: map to the canonical schema, route every
row to silver or quarantine (with its rule and reason), compare each row with the current
silver row of its key (event id, date, area code), write the batch's silver, history and
quarantine into run folders nothing reads yet, run the checks on them (the feed's expectation
suite as the batch gate; rows in = new + corrections + unchanged + quarantined, per batch and
per file, counted back from what was written) and only then commit the feed's state, which
names the folders (write-audit-publish through riskradar.publish: `BatchCommit`).

Silver holds one current row per key: a correction replaces the current row, which moves to
the history table with the batch that replaced it; the same content again changes nothing.
A batch that fails its gate is set aside (`rejected`, report written, nothing published) and
the next batch goes on. Operators discard or retry a set-aside batch (`riskradar batches`).
"""

from __future__ import annotations

import getpass
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from intake import conform
from intake.quality import failed_expectations, run_suite, write_report
from intake.retention import refuse_unfinished, rows_left
from riskradar import catalog
from riskradar.audit import RunRecord
from riskradar.config import Contract, Settings
from riskradar.errors import PublishRefused, ReconciliationError, RiskradarError, ValidationGateFailed
from riskradar.lake import FeedState, Lake, clear_scratch, lock, read_json_dir, run_folder, vacuum
from riskradar.log import Progress, step
from riskradar.publish import Check, publish

log = logging.getLogger(__name__)

PUBLISHED, REJECTED, DISCARDED = "published", "rejected", "discarded"


@dataclass(frozen=True)
class Written:
    """A folder a run wrote for one part of a table, and its rows counted back."""

    folder: Path
    rows: int
    by_file: dict[str, int]
    expected: int | None = None  # what the rows must be, where the write knows it (rewrites)


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
    """Validate the feed's new batches (or replay all of them), under the feed's lock."""
    feed = contract.name
    with lock(lake, f"intake.{feed}", run_id=record.run_id, job="validate") as notes:
        record.notes += notes
        refuse_unfinished(lake, feed)
        clear_scratch(lake, "validate", feed)  # what a crashed run left
        state = FeedState.read(lake, feed)
        markers = sorted(
            read_json_dir(lake.batch_markers(feed)), key=lambda m: (m["ingested_at"], m["batch_id"])
        )
        if reprocess:
            work = restart(state)
            todo = [m for m in markers if m["batch_id"] not in work.batches]
        else:
            work = state
            todo = [m for m in markers if m["batch_id"] not in state.batches]
        summaries = []
        try:
            with (
                step(f"validate {feed}", log, every_s=None),  # the batches' Progress speaks
                Progress(f"validate {feed}: batch", len(todo), logger=log) as p,
            ):
                for marker in todo:
                    args = (spark, settings, lake, contract, marker)
                    summaries.append(
                        validate_batch(*args, key=key, record=record, state=work, commit=not reprocess)
                    )
                    p.advance(f"({marker['batch_id']})")
            if reprocess and todo:
                work.commit(lake, run_id=record.run_id)
        finally:
            clear_scratch(lake, "validate", feed)
        vacuum(lake, FeedState.read(lake, feed), catalog.vacuum_roots(lake, contract))
    record.counts["batches"] = len(summaries)
    for name in ("rows_in", "published", "new", "corrections", "unchanged", "quarantined"):
        record.counts[name] = sum(s[name] for s in summaries)
    record.counts["quarantined_by_rule"] = sum_rules(summaries)
    record.counts["rejected_batches"] = [s["batch_id"] for s in summaries if s["gate"] == "failed"]
    return summaries


def restart(state: FeedState) -> FeedState:
    """The state a replay starts from: empty, but for the batches an operator discarded (their
    rows stay in quarantine) and what retention did (the counts of the events it removed, and
    the rows it removed from each batch's bronze: the replay expects the rest)."""
    discarded = {b: r for b, r in state.batches.items() if r["status"] == DISCARDED}
    quarantine = {b: rel for b, rel in state.tables.get("quarantine", {}).items() if b in discarded}
    tables = {
        "quarantine": quarantine,
        catalog.EXPIRED_COUNTS: dict(state.tables.get(catalog.EXPIRED_COUNTS, {})),
    }
    return FeedState(
        feed=state.feed, version=state.version, tables=tables, batches=discarded, retention=state.retention
    )


def check_no_rejected_batch(lake: Lake, feed: str) -> None:
    """Fail while a batch of the feed stays rejected: a rerun must not turn green by itself."""
    rejected = [(b, r) for b, r in FeedState.read(lake, feed).batches.items() if r["status"] == REJECTED]
    if rejected:
        raise ValidationGateFailed(
            "\n".join(
                f"{feed} batch {b}: the expectation suite failed; nothing of it was published. "
                f"Failed: {'; '.join(r.get('failed', []))}. Report: {r.get('report')}. It stays set "
                f"aside until it is discarded or retried: riskradar batches --partner {feed} "
                f"--discard {b} --reason '...' (or --retry {b})"
                for b, r in sorted(rejected)
            )
        )


def validate_batch(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    marker: dict[str, Any],
    *,
    key: bytes,
    record: RunRecord,
    state: FeedState,
    commit: bool = True,
) -> dict[str, Any]:
    """Route, gate and publish one batch and record its outcome in `state`, which is committed
    unless `commit` is False (a replay commits once, at its end). The batch's run folders are
    staged, checked (the expectation gate, `reconcile_batch`) and only then named by the
    commit record; a batch failing its gate is set aside as rejected, nothing of it published."""
    batch_id = marker["batch_id"]
    files = [{"file": f["file"], "sha256": f["sha256"]} for f in marker["files"] if f.get("sha256")]
    record.inputs.append({"table": f"bronze.{contract.name}", "batch_id": batch_id, "files": files})
    summary = {"batch_id": batch_id, **_counts([], rows_in=0), "gate": "skipped (no rows)"}
    outcome = {"validated_at": datetime.now(UTC).isoformat(timespec="seconds"), "run_id": record.run_id}
    found: dict[str, Any] = {}  # the gate's report, once it ran
    entry = lambda: {"status": PUBLISHED, **summary, **outcome, **found}  # noqa: E731
    batch = BatchCommit(
        f"intake.{contract.name} batch {batch_id}", lake, state, {}, entry, record.run_id, commit
    )
    left = rows_left(marker, state)
    if left == 0:  # every file rejected at ingest, or every row past retention
        batch.commit()
        return summary
    bronze = catalog.read_bronze_batch(spark, lake, contract.name, batch_id)
    scratch = lake.scratch("validate", contract.name, record.run_id) / batch_id
    routed = _route(spark, lake, settings, contract, state, bronze, key=key, scratch=scratch, rows=left)
    tally = _tally(routed)
    by_file_in = {r["source_file"]: r["count"] for r in bronze.groupBy("source_file").count().collect()}
    summary.update(_counts(tally, rows_in=sum(by_file_in.values())))
    if summary["rows_in"] != left:
        raise ReconciliationError(
            f"{contract.name} batch {batch_id}: {marker['rows']} rows ingested, of which retention "
            f"removed {marker['rows'] - left}, {summary['rows_in']} read from bronze; "
            f"nothing was published"
        )
    batch.written = _write_batch(spark, lake, contract, routed, batch_id, state, run_id=record.run_id)
    gate, result = _gate(settings, lake, contract, routed, summary, record, found)
    checks = [gate, _reconciled(contract, batch_id, by_file_in, tally, batch.written)]
    report = lake.reports("validation", contract.name) / f"{batch_id}.publish.json"
    try:
        publish([batch], checks=checks, report=report)
    except PublishRefused:
        if "error" in result:
            raise result["error"] from None
        if result.get("success", True):
            raise
        summary["gate"] = "failed"
        batch.written = {}  # set aside: the state names no folder of it
        batch.entry = lambda: {
            "status": REJECTED,
            **summary,
            **outcome,
            "failed": failed_expectations(result),
            **found,
            "suite": contract.expectation_suite,
        }
        batch.commit()
        return summary
    for table, info in batch.written.items():
        for w in info.values():
            record.outputs.append(
                {"table": table, "folder": str(w.folder.relative_to(lake.root)), "rows": w.rows}
            )
    return summary


@dataclass
class BatchCommit:
    """A batch's validated run folders as staged output (riskradar.publish.Staged): nothing reads
    them until the feed's commit record names them. `commit` names them and the batch's `entry`
    in the state and commits the record (unless `durable` is False: a replay commits at its end);
    `discard` removes the folders."""

    name: str
    lake: Lake
    state: FeedState
    written: dict[str, dict[str, Written]]
    entry: Callable[[], dict[str, Any]]  # the batch's record, once its checks ran
    run_id: str
    durable: bool

    def commit(self) -> None:
        _register(self.lake, self.state, self.written)
        entry = self.entry()
        self.state.batches[entry["batch_id"]] = entry
        if self.durable:
            self.state.commit(self.lake, run_id=self.run_id)

    def discard(self) -> None:
        for parts in self.written.values():
            for w in parts.values():
                shutil.rmtree(w.folder, ignore_errors=True)


def _gate(
    settings: Settings,
    lake: Lake,
    contract: Contract,
    routed: DataFrame,
    summary: dict[str, Any],
    record: RunRecord,
    found: dict[str, Any],
) -> tuple[Check, dict[str, Any]]:
    """The feed's expectation suite as a check of the batch's routed rows (staged as Parquet).
    It writes the validation report (its path goes to `found["report"]`, and the gate to
    `summary`); the returned dict gets the suite's result, or the `error` it could not run with."""
    outcome: dict[str, Any] = {}
    batch_id = summary["batch_id"]

    def run() -> str | None:
        canonical = conform.canonical_columns(routed) + [conform.RULE]
        try:
            result = run_suite(
                routed.select(*canonical),
                settings.suite_path(contract),
                run_name=f"{contract.name}-{batch_id}",
            )
        except Exception as exc:  # a suite that cannot run: raised as it is (see validate_batch)
            outcome["error"] = exc
            raise
        outcome.update(result)
        report = write_report(
            lake.reports("validation", contract.name),
            batch_id,
            result,
            title=f"Validation of {contract.name}, batch {batch_id}",
            counts={k: v for k, v in summary.items() if k != "gate"},
        )
        found["report"] = str(report)
        record.outputs.append({"report": str(report)})
        if not result["success"]:
            return "failed: " + "; ".join(failed_expectations(result))
        summary["gate"] = "passed"
        return None

    return Check("expectation gate", run), outcome


def _reconciled(*args: Any) -> Check:
    """`reconcile_batch(*args)` as a check: its error is the check's problem."""

    def run() -> str | None:
        try:
            reconcile_batch(*args)
        except ReconciliationError as exc:
            return str(exc)
        return None

    return Check("reconciliation", run)


def _counts(tally: list[dict[str, Any]], *, rows_in: int) -> dict[str, Any]:
    """The batch's counts, from the routed rows' tally."""
    by_rule = _sum_over(tally, conform.RULE, skip_null=True)
    by_change = _sum_over(tally, conform.CHANGE, skip_null=True)
    new, corrections = by_change.get(conform.NEW, 0), by_change.get(conform.CORRECTION, 0)
    return {
        "rows_in": rows_in,
        "published": new + corrections,
        "new": new,
        "corrections": corrections,
        "unchanged": by_change.get(conform.UNCHANGED, 0) + by_change.get(conform.OUTDATED, 0),
        "outdated": by_change.get(conform.OUTDATED, 0),
        "quarantined": sum(by_rule.values()),
        "quarantined_by_rule": dict(sorted(by_rule.items())),
        "time_notes": dict(sorted(_sum_over(tally, conform.TIME_NOTE, skip_null=True).items())),
    }


def _route(
    spark: SparkSession,
    lake: Lake,
    settings: Settings,
    contract: Contract,
    state: FeedState,
    bronze: DataFrame,
    *,
    key: bytes,
    scratch: Path,
    rows: int,
) -> DataFrame:
    """The batch's rows routed by the rules and compared with the feed's published rows (the
    current ones, and the versions they replaced), computed once into `scratch` and read back.
    `rows`: the batch's rows as ingested (a small batch reads only its keys' published rows)."""
    name = catalog.silver_key(contract)
    current = catalog.read_feed_table(spark, lake, contract, state, "silver")
    if current is not None:
        # Events also keep their time: the stray rule measures from the feed's newest event.
        times = ["occurred_at"] if contract.kind == "events" else []
        current = current.select(
            F.col(name).alias("key"), "row_hash", F.col("batch_id").cast("string"), *times
        )
    replaced = catalog.read_feed_table(spark, lake, contract, state, "history")
    if replaced is not None:
        replaced = replaced.select(F.col(name).alias("key"), "row_hash")
    if contract.kind == "events":
        routed = conform.route_events(
            bronze, contract, settings, key=key, current=current, replaced=replaced, batch_rows=rows
        )
    elif contract.kind == "series":
        routed = conform.route_series(bronze, contract, current=current, replaced=replaced, batch_rows=rows)
    else:
        routed = conform.route_areas(bronze, contract, current=current, replaced=replaced, batch_rows=rows)
    # The routed batch is read several times (counts, each expectation of the suite, silver,
    # quarantine): it is computed once and staged as Parquet, so that each read takes only
    # its columns. (A memory cache ran a 4 GB heap out at 10M rows; a disk cache is read
    # whole by each of the suite's jobs.)
    routed.write.mode("overwrite").parquet(str(scratch))
    return spark.read.parquet(str(scratch))


def _tally(routed: DataFrame) -> list[dict[str, Any]]:
    """Rows per (file, quarantine rule, change, time note): every count the batch reports is a
    sum of these."""
    rows = routed.groupBy("source_file", conform.RULE, conform.CHANGE, conform.TIME_NOTE).count().collect()
    return [r.asDict() for r in rows]


def _sum_over(tally: list[dict[str, Any]], column: str, *, skip_null: bool = False) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for row in tally:
        if skip_null and row[column] is None:
            continue
        out[row[column]] = out.get(row[column], 0) + row["count"]
    return out


# --------------------------------------------------------------------------- publishing


def _write_batch(
    spark: SparkSession,
    lake: Lake,
    contract: Contract,
    routed: DataFrame,
    batch_id: str,
    state: FeedState,
    *,
    run_id: str,
) -> dict[str, dict[str, Written]]:
    """Write the batch's silver rows, its quarantine, and (for corrections) the replaced rows'
    history and their batches without them, each into a new run folder that nothing reads
    until the state names it. Returns {table: {part: what was written, counted back}}.

    An earlier batch rewritten without its replaced rows goes to a folder named after this run
    and this batch (`r-<run>-<batch>`): the run may have written that batch's current folder
    itself (a replay, or several batches validated in one run), and that is what is read."""
    roots = catalog.intake_roots(lake, contract)
    leaf = run_folder(run_id)
    rewrite = run_folder(f"{run_id}-{batch_id}")
    data_columns = _silver_data_columns(routed, contract)
    written: dict[str, dict[str, Written]] = {"silver": {}, "history": {}, "quarantine": {}}

    def put(table: str, part: str, df: DataFrame, folder: Path, expected: int | None = None) -> None:
        df.write.mode("overwrite").parquet(str(folder))
        counts = spark.read.parquet(str(folder)).groupBy("source_file").count().collect()
        by_file = {r["source_file"]: r["count"] for r in counts}
        written[table][part] = Written(folder, sum(by_file.values()), by_file, expected)

    publish = routed.where(F.col(conform.CHANGE).isin(conform.NEW, conform.CORRECTION))
    put("silver", batch_id, publish.select(*data_columns), roots["silver"] / f"batch_id={batch_id}" / leaf)
    quarantined = routed.where(F.col(conform.RULE).isNotNull()).select(
        conform.RULE,
        conform.REASON,
        f"{conform.DELIVERED}.*",
        *catalog.ROW_LINEAGE,
    )
    put(
        "quarantine",
        batch_id,
        quarantined,
        roots["quarantine"] / catalog.quarantine_partition(batch_id, "validate") / leaf,
    )
    replaced = routed.where(F.col(conform.CHANGE) == conform.CORRECTION).select(
        F.col(catalog.silver_key(contract)).alias("__key"), F.col(conform.REPLACES).alias("__in_batch")
    )
    replaced_in = {r[0]: r[1] for r in replaced.groupBy("__in_batch").count().collect()}
    if not replaced_in:
        return written
    current = catalog.read_feed_table(spark, lake, contract, state, "silver")
    assert current is not None, "a correction replaces a current row"
    # Only the batches that hold a replaced row are read (partition pruning on `batch_id=`).
    current = current.where(F.col("batch_id").isin(sorted(replaced_in)))
    key = catalog.silver_key(contract)
    old = current.join(replaced, current[key] == replaced["__key"], "left_semi")
    history = old.select(*data_columns, "batch_id").withColumn(
        catalog.SUPERSEDED_AT, F.lit(datetime.now(UTC)).cast("timestamp")
    )
    put("history", batch_id, history, roots["history"] / f"{catalog.SUPERSEDED_BY}={batch_id}" / leaf)
    for other in sorted(replaced_in):
        before = current.where(F.col("batch_id") == other)
        remaining = before.join(
            replaced.where(F.col("__in_batch") == other), current[key] == replaced["__key"], "left_anti"
        )
        put(
            "silver",
            other,
            remaining.select(*data_columns),
            roots["silver"] / f"batch_id={other}" / rewrite,
            expected=before.count() - replaced_in[other],
        )
    return written


def _silver_data_columns(routed: DataFrame, contract: Contract) -> list[str]:
    """What a silver file holds: the canonical columns and the lineage; the feed and batch
    come from the folder names (`partner=`, `batch_id=`)."""
    partition = {"partner"} if catalog.shares_table(contract) else set()
    canonical = [c for c in conform.canonical_columns(routed) if c not in partition]
    return canonical + catalog.ROW_LINEAGE


def reconcile_batch(
    contract: Contract,
    batch_id: str,
    by_file_in: dict[str, int],
    tally: list[dict[str, Any]],
    written: dict[str, dict[str, Written]],
) -> None:
    """Check what was written against what came in, before anything is committed: per file,
    rows in = new + corrections + unchanged (or outdated) + quarantined, and the batch's silver
    and quarantine folders hold, per file, the new + corrected and the quarantined rows; the
    history holds one replaced row per correction, and each batch rewritten without its replaced
    rows lost exactly those."""
    problems = []
    routed: dict[str, int] = {}
    published: dict[str, int] = {}
    quarantined: dict[str, int] = {}
    for row in tally:
        file, n = row["source_file"], row["count"]
        routed[file] = routed.get(file, 0) + n
        if row[conform.CHANGE] in (conform.NEW, conform.CORRECTION):
            published[file] = published.get(file, 0) + n
        if row[conform.RULE] is not None:
            quarantined[file] = quarantined.get(file, 0) + n
    for file in sorted(set(by_file_in) | set(routed)):
        if routed.get(file, 0) != by_file_in.get(file, 0):
            problems.append(
                f"file {file!r}: {by_file_in.get(file, 0)} rows in bronze, {routed.get(file, 0)} routed"
            )
    for table, expected in (("silver", published), ("quarantine", quarantined)):
        got = written[table][batch_id].by_file if batch_id in written[table] else {}
        if sum(got.values()) != sum(expected.values()):
            problems.append(
                f"{table} of batch {batch_id}: {sum(expected.values())} rows expected, "
                f"{sum(got.values())} written"
            )
        for file in sorted(set(expected) | set(got)):
            if expected.get(file, 0) != got.get(file, 0):
                problems.append(
                    f"{table} of file {file!r}: {expected.get(file, 0)} rows expected, "
                    f"{got.get(file, 0)} written"
                )
    corrections = sum(published.values()) - sum(r["count"] for r in tally if r[conform.CHANGE] == conform.NEW)
    history = written["history"][batch_id].rows if batch_id in written["history"] else 0
    if history != corrections:
        problems.append(
            f"history of batch {batch_id}: {corrections} replaced rows expected, {history} written"
        )
    for part, w in written["silver"].items():
        if w.expected is not None and w.rows != w.expected:
            problems.append(
                f"silver of batch {part} without its replaced rows: {w.expected} rows expected, "
                f"{w.rows} written"
            )
    if problems:
        raise ReconciliationError(
            f"{contract.name} batch {batch_id}: what was written does not add up to what came in "
            f"({'; '.join(problems)}); nothing was published"
        )


def _register(lake: Lake, state: FeedState, written: dict[str, dict[str, Written]]) -> None:
    """Name the written folders in the state: a part with no rows is dropped from it."""
    for table, parts in written.items():
        for part, w in parts.items():
            if w.rows:
                state.parts(table)[part] = str(w.folder.relative_to(lake.root))
            else:
                state.parts(table).pop(part, None)


def list_batches(lake: Lake, contract: Contract) -> list[dict[str, Any]]:
    """Every ingested batch of a feed, oldest first, with what ingest and validation made of it."""
    state = FeedState.read(lake, contract.name)
    out = []
    for marker in sorted(read_json_dir(lake.batch_markers(contract.name)), key=lambda m: m["ingested_at"]):
        rec = state.batches.get(marker["batch_id"], {})
        rejected_files = [f["file"] for f in marker["files"] if f["status"] != "ingested"]
        rejected_files += [f["file"] for f in marker.get("refused", [])]
        out.append(
            {
                "batch_id": marker["batch_id"],
                "ingested_at": marker["ingested_at"],
                "files": len(marker["files"]) + len(marker.get("refused", [])),
                "rows": marker["rows"] + marker.get("quarantined_at_ingest", 0),
                "rejected_files": rejected_files,
                "status": rec.get("status", "pending"),
                "counts": {
                    k: rec.get(k) for k in ("new", "corrections", "unchanged", "quarantined") if k in rec
                },
                "report": rec.get("report"),
                "failed": rec.get("failed", []),
                "acknowledged": rec.get("acknowledged"),
            }
        )
    return out


def discard_batch(
    spark: SparkSession, lake: Lake, contract: Contract, batch_id: str, *, reason: str, record: RunRecord
) -> dict[str, Any]:
    """Set a rejected (or never validated) batch aside for good: all its bronze rows go to
    quarantine as `discarded_batch`, with who discarded it, when and why. For a published batch
    this acknowledges the files ingest rejected in it."""
    with lock(lake, f"intake.{contract.name}", run_id=record.run_id, job="batches") as notes:
        record.notes += notes
        refuse_unfinished(lake, contract.name)
        return _discard(spark, lake, contract, batch_id, reason=reason, record=record)


def retry_batch(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    batch_id: str,
    *,
    key: bytes,
    record: RunRecord,
) -> list[dict[str, Any]]:
    """Validate a rejected batch again (e.g. after its suite or contract was mended). When a
    later batch was published meanwhile, the feed is replayed in ingest order, so that the
    newer delivery still wins."""
    with lock(lake, f"intake.{contract.name}", run_id=record.run_id, job="batches") as notes:
        record.notes += notes
        refuse_unfinished(lake, contract.name)
        state = FeedState.read(lake, contract.name)
        rec = state.batches.get(batch_id)
        if rec is None or rec["status"] != REJECTED:
            status = rec["status"] if rec else "not validated yet"
            raise RiskradarError(
                f"{contract.name} batch {batch_id} is {status}: only a rejected batch can be retried"
            )
        markers = {m["batch_id"]: m for m in read_json_dir(lake.batch_markers(contract.name))}
        mine = markers[batch_id]["ingested_at"]
        replay = any(
            r["status"] == PUBLISHED and markers.get(b, {}).get("ingested_at", "") > mine
            for b, r in state.batches.items()
        )
        del state.batches[batch_id]
        state.commit(lake, run_id=record.run_id)
    return validate_feed(spark, settings, lake, contract, key=key, record=record, reprocess=replay)


def _discard(
    spark: SparkSession, lake: Lake, contract: Contract, batch_id: str, *, reason: str, record: RunRecord
) -> dict[str, Any]:
    state = FeedState.read(lake, contract.name)
    status = state.batches.get(batch_id, {}).get("status")
    markers = {m["batch_id"]: m for m in read_json_dir(lake.batch_markers(contract.name))}
    if batch_id not in markers:
        raise RiskradarError(
            f"{contract.name}: there is no batch {batch_id!r} (known: {', '.join(sorted(markers)) or 'none'})"
        )
    who = getpass.getuser()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    note = {"by": who, "at": when, "reason": reason, "run_id": record.run_id}
    if status in (PUBLISHED, DISCARDED) or rows_left(markers[batch_id], state) == 0:
        # Nothing left to set aside: what is acknowledged is the files ingest rejected.
        status = status or DISCARDED
        state.batches[batch_id] = {
            **state.batches.get(batch_id, {"batch_id": batch_id, "quarantined": 0}),
            "status": status,
            "acknowledged": note,
        }
        state.commit(lake, run_id=record.run_id)
        return {"batch_id": batch_id, "status": status, "acknowledged": note, "quarantined": 0}
    bronze = spark.read.parquet(str(lake.bronze(contract.name))).where(F.col("batch_id") == batch_id)
    text = f"batch discarded by {who} at {when}: {reason}"
    values = [c for c in bronze.columns if c not in (*catalog.BRONZE_LINEAGE, "batch_id")]
    rows = bronze.select(
        F.lit("discarded_batch").alias(conform.RULE),
        F.lit(text).alias(conform.REASON),
        *[F.col(f"`{c}`") for c in values],
        *catalog.ROW_LINEAGE,
    )
    folder = (
        catalog.intake_roots(lake, contract)["quarantine"]
        / catalog.quarantine_partition(batch_id, "validate")
        / run_folder(record.run_id)
    )
    rows.write.mode("overwrite").parquet(str(folder))
    counted = spark.read.parquet(str(folder)).count()
    if counted != rows_left(markers[batch_id], state):
        raise ReconciliationError(
            f"{contract.name} batch {batch_id}: {rows_left(markers[batch_id], state)} rows in bronze, "
            f"{counted} written to quarantine; nothing was discarded"
        )
    _register(lake, state, {"quarantine": {batch_id: Written(folder, counted, {})}})
    previous = state.batches.get(batch_id, {})
    state.batches[batch_id] = {
        **previous,
        "batch_id": batch_id,
        "status": DISCARDED,
        "previous_status": status or "pending",
        "quarantined": counted,
        "acknowledged": note,
    }
    state.commit(lake, run_id=record.run_id)
    vacuum(lake, state, catalog.vacuum_roots(lake, contract))
    return {"batch_id": batch_id, "status": DISCARDED, "quarantined": counted, "acknowledged": note}


def sum_rules(summaries: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for s in summaries:
        for rule, n in s["quarantined_by_rule"].items():
            total[rule] = total.get(rule, 0) + n
    return dict(sorted(total.items()))
