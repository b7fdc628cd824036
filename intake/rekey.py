"""Move a lake to a new pseudonymisation key (`riskradar rekey`, see jobs/rekey.py).

Pseudonyms are one-way (keyed HMAC): none can be turned into the pseudonym of another key. The
raw ids exist only in the delivered files: in landing, which the partner may have changed since
(a correction is the same name sent again), and in the lake's own copy of every file version
whose rows reached it (`<lake>/_delivered/<feed>/<sha256>`, kept by ingest). So a rekey derives
every pseudonymised layer of the enabled feeds again with the new key from those copies (from
landing only for a file of which the lake keeps none: a batch ingested before copies were kept,
or a rejected file): each earlier batch is replayed exactly (its files, under their delivered
names, and its original `ingested_at`) and validated, in the original order, so that later
corrections still win over earlier versions. Discards and acknowledgements the old state held
are applied again, with their reason and a note that the rekey carried them over.

A run holds the lake-wide `rekey` lock and every enabled feed's `bronze.<feed>` and
`intake.<feed>` locks from start to end (each lent to ingest or validate only while that step,
which takes it itself, runs), and:

1. rolls back a rekey that was interrupted earlier (killed), from its manifest;
2. refuses unless the old key is the one the lake records and the new key differs, and unless
   every feed with data in the lake is enabled;
3. refuses, before moving anything, unless every file whose rows reached the lake (bronze or
   ingest quarantine) is there with the sha256 its batch recorded, as the lake's copy or else in
   landing, naming each missing or changed file and its batch;
4. moves the feeds' bronze folders (batch markers included), copies of the delivered files,
   quarantine, silver and history folders, commit records (`_state/<feed>.json`) and validation
   reports aside to `<lake>/_rekey/<run>/old/` (renames: quick and reversible; the replay reads
   the copies there and keeps its own), and replaces the key record with one that names no key
   ("rekey in progress"), which every other job refuses;
5. replays every feed, then checks per feed that the new lake has the same rows per batch in
   bronze and in ingest quarantine, the same silver and history rows (equal in every column but
   the pseudonyms), the same quarantined rows per rule, the same batch statuses and the same
   number of distinct pseudonyms, and that no pseudonym of the old lake is in the new one;
6. records the new key's fingerprint, and removes the old copy unless asked to keep it.

On any failure the new folders are moved away and the old ones back, key record included, and
the error says why. Gold tables, MLflow, the audit log and the reports other than validation
reports are not touched: they hold no pseudonyms (the unit of prediction is a place; audit holds
names, hashes and counts). Validation reports are written again by the replay and move with the
old lake: a failed expectation lists up to 20 unexpected values, which may be pseudonyms.
Messages name keys only by their fingerprints.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from intake import conform, delivery, ingestion, validation
from intake.pseudonym import check_lake_key, key_fingerprint, key_record_path, write_lake_key
from intake.retention import refuse_unfinished
from riskradar import catalog
from riskradar.audit import RunRecord
from riskradar.config import Contract, Settings
from riskradar.errors import KeyMismatch, RiskradarError
from riskradar.lake import FeedState, Lake, has_parquet, lock, new_run_id, read_json_dir, write_json

REKEY_DIR = "_rekey"
MANIFEST = "rekey.json"
RUNNING, RESTORING, RESTORED, DONE = "running", "restoring", "restored", "done"
IN_PROGRESS = "rekey-in-progress-"
LAKE_COPY, LANDING = "lake copy", "landing"  # where a replay reads a file
# Columns that differ between an old and a rekeyed lake by construction: the content hash is
# taken over pseudonymised values, and batches and replacement times are those of the replay.
_NOT_CONTENT = {"row_hash", "batch_id", catalog.SUPERSEDED_BY, catalog.SUPERSEDED_AT}


class RekeyRefused(RiskradarError):
    """A rekey that cannot start (keys, landing files, feeds): nothing was moved."""

    exit_code = 2


class RekeyFailed(RiskradarError):
    """A rekey that failed midway: the old lake and its key record were put back."""


@dataclass(frozen=True)
class Replay:
    """One earlier batch of a feed, as a rekey reads it again from landing."""

    batch_id: str
    ingested_at: str
    files: dict[str, dict[str, str]]  # name -> {sha256, status}: what is read again
    read_from: dict[str, str]  # name -> LAKE_COPY or LANDING
    refused: list[str]  # names of refused entries (links, ...) still there as they were
    dropped: list[str]  # rejected files no longer in landing: none of their rows reached the lake


def rekey_lake(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    *,
    old_key: bytes,
    new_key: bytes,
    old_key_env: str,
    key_env: str,
    record: RunRecord,
    keep_old: bool = False,
) -> dict[str, Any]:
    """Move the lake from `old_key` to `new_key` (see the module docstring). Returns the
    fingerprints, per feed the old batch -> new batch mapping and the verified counts, and where
    the old copy is kept (or None)."""
    feeds = list(settings.contracts)
    feed_locks = [name for feed in feeds for name in (f"bronze.{feed}", f"intake.{feed}")]
    with (
        lock(lake, "rekey", run_id=record.run_id, job="rekey") as notes,
        _Locks(lake, feed_locks, run_id=record.run_id, notes=record.notes) as locks,
    ):
        record.notes += notes
        record.notes += roll_back_interrupted(lake)
        for feed in feeds:
            refuse_unfinished(lake, feed)
        old_fp, new_fp = _check_keys(lake, old_key, new_key, old_key_env=old_key_env, key_env=key_env)
        _check_feeds_enabled(settings, lake)
        plans = plan_replays(settings, lake)
        record.inputs += _inputs(plans)
        record.notes += _dropped_notes(plans)
        moves = _Moves(lake, record.run_id)
        stage = "moving the old lake aside"
        try:
            moves.move_aside(_managed_paths(settings, lake), old_fp=old_fp, new_fp=new_fp)
            old_lake = moves.old
            result: dict[str, Any] = {}
            for feed, replays in plans.items():
                contract = settings.contract(feed)
                stage = f"replaying {feed}"
                mapping = _replay_feed(
                    spark,
                    settings,
                    lake,
                    contract,
                    replays,
                    old_lake,
                    key=new_key,
                    locks=locks,
                    record=record,
                )
                stage = f"verifying {feed}"
                result[feed] = {"batches": mapping, **verify_feed(spark, old_lake, lake, contract, mapping)}
            stage = "recording the new key"
            write_lake_key(lake.root, new_key)
            moves.finish(keep=keep_old)
        except BaseException as exc:
            _put_back(moves, exc, stage=stage, old_fp=old_fp)
            raise  # _put_back raises for an Exception; an interrupt goes on as it was
    record.counts.update(
        {
            "feeds": {feed: r["batches"] for feed, r in result.items()},
            "verified": {feed: {k: v for k, v in r.items() if k != "batches"} for feed, r in result.items()},
        }
    )
    return {
        "run_id": record.run_id,
        "old_fingerprint": old_fp,
        "new_fingerprint": new_fp,
        "feeds": result,
        "old_copy": str(moves.old.root) if keep_old else None,
    }


def _inputs(plans: dict[str, list[Replay]]) -> list[dict[str, str]]:
    """The audit's record of every file a rekey reads again, and where from."""
    return [
        {
            "partner": feed,
            "batch_id": r.batch_id,
            "file": name,
            "sha256": f["sha256"],
            "read_from": r.read_from[name],
        }
        for feed, replays in plans.items()
        for r in replays
        for name, f in r.files.items()
    ]


def _dropped_notes(plans: dict[str, list[Replay]]) -> list[str]:
    return [
        f"{feed} batch {r.batch_id}: rejected file(s) no longer in landing, left out of its replay "
        f"(none of their rows reached the lake): {', '.join(map(delivery.shown, r.dropped))}"
        for feed, replays in plans.items()
        for r in replays
        if r.dropped
    ]


def _put_back(moves: _Moves, exc: BaseException, *, stage: str, old_fp: str) -> None:
    try:
        moves.restore()
    except Exception as restore_exc:
        raise RekeyFailed(
            f"rekey run {moves.run_id} failed while {stage}: {exc}. Putting the old lake back failed "
            f"too ({restore_exc!r}): its copy is in {moves.old.root}, and the lake refuses every job "
            f"until `riskradar rekey` is run again, which rolls the interrupted run back first "
            f"(manifest: {moves.manifest})"
        ) from exc
    if isinstance(exc, Exception):
        raise RekeyFailed(
            f"rekey run {moves.run_id} failed while {stage}: {exc}. The old lake and its key record "
            f"(fingerprint {old_fp}) are back as they were; nothing changed."
        ) from exc


# --------------------------------------------------------------------------- refusals


def _check_keys(
    lake: Lake, old_key: bytes, new_key: bytes, *, old_key_env: str, key_env: str
) -> tuple[str, str]:
    path = key_record_path(lake.root)
    if not path.exists():
        raise RekeyRefused(
            f"the lake at {lake.root} has no record of the key it was built with ({path}), so "
            f"{old_key_env} cannot be checked against it. Nothing to rekey in a lake no job has "
            f"written; for an older lake, run `riskradar validate --all` with its key in {key_env} "
            f"first (that records it), then rekey."
        )
    try:
        old_fp = check_lake_key(lake.root, old_key, key_env=old_key_env)
    except KeyMismatch as exc:
        raise KeyMismatch(f"rekey: {old_key_env} must hold the key the lake was built with. {exc}") from None
    new_fp = key_fingerprint(new_key)
    if new_fp == old_fp:
        raise RekeyRefused(
            f"{key_env} holds the lake's own key (fingerprint {new_fp}): set it to the new key, and "
            f"{old_key_env} to the lake's current one"
        )
    return old_fp, new_fp


def _check_feeds_enabled(settings: Settings, lake: Lake) -> None:
    """Refuse when the lake holds feeds the config does not enable: their pseudonyms would stay
    under the old key while the lake records the new one."""
    found: set[str] = set()
    for layer in ("bronze", "quarantine"):
        folder = lake.root / layer
        if folder.is_dir():
            found |= {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    states = lake.root / "_state"
    if states.is_dir():
        found |= {p.stem for p in states.glob("*.json")}
    others = sorted(found - set(settings.contracts))
    if others:
        raise RekeyRefused(
            f"the lake at {lake.root} holds data of feeds that {settings.config_file} does not enable: "
            f"{', '.join(others)}. A rekey moves every pseudonymised layer to the new key: enable "
            f"them (their landing files must be there), or take their data out of the lake first."
        )


def plan_replays(settings: Settings, lake: Lake) -> dict[str, list[Replay]]:
    """Every batch of every enabled feed, oldest first, with the files to read again and where:
    the lake's copy of each file, or landing where the lake keeps none.

    Raises RekeyRefused, naming each file and its batch, when a file whose rows reached the lake
    (status other than `rejected`) is neither kept in the lake nor in landing as it was ingested
    (missing, another sha256, not a regular file). A rejected file that is gone from landing is
    left out of its replay (the lake keeps no copy of it: none of its rows reached the lake)."""
    problems: list[str] = []
    plans: dict[str, list[Replay]] = {}
    for feed, contract in settings.contracts.items():
        folder = settings.landing_dir(contract)
        entries = {e.name: e for e in delivery.list_landing(folder, contract.landing.pattern)}
        markers = sorted(
            read_json_dir(lake.batch_markers(feed)), key=lambda m: (m["ingested_at"], m["batch_id"])
        )
        plans[feed] = []
        for marker in markers:
            files: dict[str, dict[str, str]] = {}
            read_from: dict[str, str] = {}
            dropped: list[str] = []
            for f in marker["files"]:
                where, problem = _where_to_read(f, lake.delivered(feed), entries.get(f["file"]), folder)
                if where is not None:
                    files[f["file"]] = {"sha256": f["sha256"], "status": f["status"]}
                    read_from[f["file"]] = where
                elif f["status"] == ingestion.REJECTED:
                    dropped.append(f["file"])
                else:
                    problems.append(
                        f"{feed} batch {marker['batch_id']}: {delivery.shown(f['file'])} {problem}"
                    )
            refused = [
                r["file"] for r in marker.get("refused", []) if _identity(folder / r["file"]) == r["identity"]
            ]
            plans[feed].append(
                Replay(marker["batch_id"], marker["ingested_at"], files, read_from, refused, dropped)
            )
    if problems:
        raise RekeyRefused(
            "a rekey reads every ingested file again, from the lake's copy of it or else from landing "
            + f"(the raw ids exist nowhere else), but {len(problems)} file(s) are not in landing as they "
            + "were ingested and the lake keeps no intact copy of them; nothing was moved:\n  "
            + "\n  ".join(problems)
            + "\nPut them back in landing exactly as delivered (the same sha256), then run `riskradar "
            + "rekey` again."
        )
    return plans


def _where_to_read(
    file: dict[str, Any], copies: Path, entry: delivery.LandingEntry | None, folder: Path
) -> tuple[str | None, str]:
    """Where a replay reads a file of a batch (its marker's report `file`): LAKE_COPY, LANDING,
    or None and why neither holds it as it was ingested."""
    sha256 = file["sha256"]
    copy = copies / sha256
    if not os.path.lexists(copy):
        kept = "the lake keeps no copy of it (ingested before the lake kept copies, or rejected)"
    else:
        problem = _changed(copy, sha256)
        if problem is None:
            return LAKE_COPY, ""
        kept = f"the lake's copy of it {problem}"
    landing = _landing_problem(entry, sha256, folder)
    return (LANDING, "") if landing is None else (None, f"{landing}, and {kept}")


def _changed(path: Path, sha256: str) -> str | None:
    """Why the file at `path` is not the one hashed `sha256` (None when it is)."""
    try:
        now = delivery.sha256_of(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None if now == sha256 else f"has changed since it was ingested (sha256 {now}, was {sha256})"


def _landing_problem(entry: delivery.LandingEntry | None, sha256: str, folder: Path) -> str | None:
    if entry is None:
        return f"is not in landing ({folder})"
    if entry.problem is not None:
        return entry.problem
    return _changed(entry.path, sha256)


def _identity(path: Path) -> str:
    """What ingest recorded of a refused entry (name, inode, size, mtime)."""
    try:
        info = path.lstat()
    except OSError:
        return ""
    return f"{path.name}\0{info.st_ino}\0{info.st_size}\0{info.st_mtime_ns}"


# --------------------------------------------------------------------------- replay


class _Locks(AbstractContextManager["_Locks"]):
    """Locks held for a whole rekey, each lent out (released, then taken back) while a step that
    takes it itself runs: two holds of one lock, even by one process, refuse each other."""

    def __init__(self, lake: Lake, names: list[str], *, run_id: str, notes: list[str]):
        self._lake, self._names, self._run_id, self._notes = lake, names, run_id, notes
        self._held: dict[str, AbstractContextManager[list[str]]] = {}

    def __enter__(self) -> _Locks:
        try:
            for name in self._names:
                self._take(name)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in reversed(list(self._held)):
            self._held.pop(name).__exit__(None, None, None)

    def _take(self, name: str) -> None:
        held = lock(self._lake, name, run_id=self._run_id, job="rekey")
        self._notes += held.__enter__()
        self._held[name] = held

    @contextmanager
    def lent(self, name: str) -> Iterator[None]:
        self._held.pop(name).__exit__(None, None, None)
        try:
            yield
        finally:
            self._take(name)


def _replay_feed(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    replays: list[Replay],
    old_lake: Lake,
    *,
    key: bytes,
    locks: _Locks,
    record: RunRecord,
) -> dict[str, str | None]:
    """Ingest and validate each batch again, in the original order, from the old lake's copies
    of its files (moved aside with it) or landing; re-apply the operators' discards and
    acknowledgements. Returns old batch id -> new batch id (the same when every file of the
    batch is still there; None when nothing of it is left to read)."""
    feed = contract.name
    old_state = FeedState.read(old_lake, feed)
    mapping: dict[str, str | None] = {}
    for replay in replays:
        if not replay.files and not replay.refused:
            mapping[replay.batch_id] = None  # only rejected files, all gone: no row of it is in the lake
            continue
        step = _step(record, "ingest", feed, replay.batch_id)
        with locks.lent(f"bronze.{feed}"):
            summary = ingestion.ingest_feed(
                spark,
                settings,
                lake,
                contract,
                key=key,
                record=step,
                only=_entries(settings, contract, replay, old_lake.delivered(feed)),
                ingested_at=datetime.fromisoformat(replay.ingested_at),
            )
        _fold(record, step)
        new_id = _check_replayed(feed, replay, summary)
        mapping[replay.batch_id] = new_id
        old = old_state.batches.get(replay.batch_id)
        if old is None:  # ingested but never validated: it stays pending
            continue
        if old["status"] == validation.DISCARDED:
            # Before validating, as the operator's decision stands whatever the gate says now.
            _carry_over(spark, lake, contract, new_id, old, locks=locks, record=record)
            continue
        step = _step(record, "validate", feed, replay.batch_id)
        with locks.lent(f"intake.{feed}"):
            validation.validate_feed(spark, settings, lake, contract, key=key, record=step)
        _fold(record, step)
        if old.get("acknowledged"):
            _carry_over(spark, lake, contract, new_id, old, locks=locks, record=record)
    return mapping


def _entries(
    settings: Settings, contract: Contract, replay: Replay, copies: Path
) -> list[delivery.LandingEntry]:
    """What the replay of a batch reads: each file from where the plan found it (a kept copy,
    under its delivered name), and the refused entries of landing. A landing file gone since the
    plan is left out, and the replay's check names it."""
    landing = {
        e.name: e
        for e in delivery.list_landing(settings.landing_dir(contract), contract.landing.pattern)
        if e.name in replay.read_from or e.name in replay.refused
    }
    entries = [
        delivery.LandingEntry(copies / f["sha256"], name)
        if replay.read_from[name] == LAKE_COPY
        else landing.get(name)
        for name, f in replay.files.items()
    ]
    return [e for e in entries + [landing.get(name) for name in replay.refused] if e is not None]


def _step(record: RunRecord, step: str, feed: str, batch_id: str) -> RunRecord:
    """The run record a replayed step writes into (not written itself: see `_fold`)."""
    return RunRecord(
        job="rekey",
        run_id=new_run_id(),
        arguments={"rekey_run_id": record.run_id, "step": step, "partner": feed, "batch_id": batch_id},
        started_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )


def _fold(record: RunRecord, step: RunRecord) -> None:
    """Keep a replayed step's outputs and notes in the rekey's audit record."""
    record.outputs += [{**out, **step.arguments} for out in step.outputs]
    record.notes += step.notes


def _check_replayed(feed: str, replay: Replay, summary: dict[str, Any]) -> str:
    """The replayed batch's id, once its files came out as they did the first time."""
    got = {r["file"]: {"sha256": r["sha256"], "status": r["status"]} for r in summary["files"]}
    refused = sorted(r["file"] for r in summary["refused"])
    if summary["batch_id"] is None or got != replay.files or refused != sorted(replay.refused):
        why = [f"{item['file']!r}: {item['reason']}" for item in summary["skipped"] + summary["deferred"]]
        raise RiskradarError(
            f"{feed} batch {replay.batch_id} did not come out of landing as it was ingested: files "
            f"{_statuses(replay.files)} and refused {sorted(replay.refused)} then, {_statuses(got)} and "
            f"refused {refused} now" + (f" ({'; '.join(why)})" if why else "")
        )
    return summary["batch_id"]


def _statuses(files: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: f"{f['status']} (sha256 {f['sha256'][:12]}...)" for name, f in sorted(files.items())}


def _carry_over(
    spark: SparkSession,
    lake: Lake,
    contract: Contract,
    batch_id: str,
    old: dict[str, Any],
    *,
    locks: _Locks,
    record: RunRecord,
) -> None:
    """Discard (or acknowledge) `batch_id` again, with the original reason and who decided it."""
    note = old.get("acknowledged") or {}
    action = "discarded" if old["status"] == validation.DISCARDED else "acknowledged"
    reason = (
        f"{note.get('reason', '(no reason recorded)')} [carried over by rekey run {record.run_id}: "
        f"{action} by {note.get('by', '?')} at {note.get('at', '?')} in run {note.get('run_id', '?')}]"
    )
    step = _step(record, "discard", contract.name, batch_id)
    with locks.lent(f"intake.{contract.name}"):
        validation.discard_batch(spark, lake, contract, batch_id, reason=reason, record=step)
    _fold(record, step)


# --------------------------------------------------------------------------- verification


def feed_tables(spark: SparkSession, lake: Lake, contract: Contract) -> dict[str, DataFrame | None]:
    """A feed's bronze, quarantine, silver and history rows, as its commit record names them."""
    state = FeedState.read(lake, contract.name)
    bronze = lake.bronze(contract.name)
    return {
        "bronze": spark.read.parquet(str(bronze)) if has_parquet(bronze) else None,
        "quarantine": catalog.read_quarantine(spark, lake, contract.name),
        "silver": catalog.read_feed_table(spark, lake, contract, state, "silver"),
        "history": catalog.read_feed_table(spark, lake, contract, state, "history"),
    }


def feed_summary(lake: Lake, contract: Contract, tables: dict[str, DataFrame | None]) -> dict[str, Any]:
    """What a rekey must keep of one feed (`tables` from `feed_tables`): per batch its status
    and its rows in bronze and in ingest quarantine; the silver and history rows; the
    quarantined rows per rule; and the number of distinct pseudonyms in each table."""
    state = FeedState.read(lake, contract.name)
    bronze_rows = _counts(_by_batch(tables["bronze"]))
    # One pass over the quarantine: rows per rule, and per batch those ingest quarantined.
    per_rule: dict[str, int] = {}
    ingest_rows: dict[str, int] = {}
    if tables["quarantine"] is not None:
        step = F.regexp_extract(F.input_file_name(), "/step=([^/]+)/", 1).alias("step")
        counts = _counts(_by_batch(tables["quarantine"], F.col(conform.RULE), step))
        for (batch, rule, step_name), n in counts.items():
            per_rule[rule] = per_rule.get(rule, 0) + n
            if step_name == "ingest":
                ingest_rows[batch] = ingest_rows.get(batch, 0) + n
    return {
        "batches": {
            m["batch_id"]: {
                "status": state.batches.get(m["batch_id"], {}).get("status", "pending"),
                "bronze_rows": bronze_rows.get(m["batch_id"], 0),
                "ingest_quarantine_rows": ingest_rows.get(m["batch_id"], 0),
            }
            for m in read_json_dir(lake.batch_markers(contract.name))
        },
        "silver_rows": _count(tables["silver"]),
        "history_rows": _count(tables["history"]),
        "quarantine_by_rule": dict(sorted(per_rule.items())),
        "distinct_pseudonyms": _distinct_pseudonyms(pseudonyms(contract, tables)),
    }


def verify_feed(
    spark: SparkSession, old: Lake, new: Lake, contract: Contract, mapping: dict[str, str | None]
) -> dict[str, Any]:
    """Check a rekeyed feed against its old lake (batch ids mapped by `mapping`); returns the new
    lake's summary, or raises naming each difference."""
    feed = contract.name
    old_tables, new_tables = feed_tables(spark, old, contract), feed_tables(spark, new, contract)
    before, after = feed_summary(old, contract, old_tables), feed_summary(new, contract, new_tables)
    problems: list[str] = []
    expected: dict[str, Any] = {}
    for batch, counts in before["batches"].items():
        target = mapping.get(batch, batch)
        if target is not None:
            expected[target] = counts
        elif counts["bronze_rows"] or counts["ingest_quarantine_rows"]:
            problems.append(f"batch {batch} was not replayed, but its rows are in the old lake ({counts})")
    for batch in sorted(set(expected) | set(after["batches"])):
        if expected.get(batch) != after["batches"].get(batch):
            problems.append(f"batch {batch}: {expected.get(batch)} before, {after['batches'].get(batch)} now")
    for name in ("silver_rows", "history_rows", "quarantine_by_rule", "distinct_pseudonyms"):
        if before[name] != after[name]:
            problems.append(f"{name}: {before[name]} before, {after[name]} now")
    for table in ("silver", "history"):
        problems += content_differences(contract, table, old_tables[table], new_tables[table])
    old_ids, new_ids = pseudonyms(contract, old_tables), pseudonyms(contract, new_tables)
    if old_ids is not None and new_ids is not None:
        shared = old_ids.select("pseudonym").join(new_ids.select("pseudonym"), "pseudonym", "left_semi")
        if shared.limit(1).count():
            problems.append("pseudonyms of the old key are in the new lake")
    if problems:
        raise RiskradarError(
            f"the rekeyed {feed} differs from the old lake: " + "; ".join(problems) + ". If its contract, "
            f"suite or the pipeline changed since the lake was built, run `riskradar validate --partner "
            f"{feed} --reprocess` with the old key first, so that the old lake is what a replay gives."
        )
    return {k: v for k, v in after.items() if k != "batches"}


def _count(df: DataFrame | None) -> int:
    return 0 if df is None else df.count()


def _pseudonym_columns(contract: Contract, table: str) -> list[str]:
    """The columns of a feed's table that hold pseudonyms: the delivered personal columns in
    bronze and quarantine, the event id in silver and history."""
    if table in ("bronze", "quarantine"):
        return list(contract.pseudonymised_columns)
    return ["event_id"] if contract.kind == "events" else []


def pseudonyms(contract: Contract, tables: dict[str, DataFrame | None]) -> DataFrame | None:
    """(table, column, pseudonym) of every non-null pseudonym in `tables`, or None if none can be."""
    parts = [
        df.select(F.lit(table).alias("table"), F.lit(c).alias("column"), F.col(f"`{c}`").alias("pseudonym"))
        for table, df in tables.items()
        if df is not None
        for c in _pseudonym_columns(contract, table)
        if c in df.columns
    ]
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out.where(F.col("pseudonym").isNotNull())


def _distinct_pseudonyms(df: DataFrame | None) -> dict[str, int]:
    if df is None:
        return {}
    rows = df.groupBy("table", "column").agg(F.count_distinct("pseudonym").alias("n")).collect()
    return {
        f"{r['table']}.{r['column']}": r["n"] for r in sorted(rows, key=lambda r: (r["table"], r["column"]))
    }


def content_differences(
    contract: Contract, table: str, before: DataFrame | None, after: DataFrame | None
) -> list[str]:
    """Rows of a silver or history table that differ between the lakes in a column other than
    the pseudonyms (and the columns derived from them or from the run)."""
    if before is None or after is None:
        return [] if before is after else [f"{table}: one lake has rows, the other none"]
    skip = _NOT_CONTENT | set(_pseudonym_columns(contract, table))
    columns = [sorted(c for c in df.columns if c not in skip) for df in (before, after)]
    if columns[0] != columns[1]:
        return [f"{table} columns: {columns[0]} before, {columns[1]} now"]
    # Each distinct row counted +1 per copy in the old lake and -1 in the new: one job, where two
    # exceptAll would take two.
    sides = [
        df.select(*[F.col(f"`{c}`") for c in columns[0]], F.lit(n).alias("__side"))
        for df, n in ((before, 1), (after, -1))
    ]
    net = (
        sides[0]
        .unionByName(sides[1])
        .groupBy(*[F.col(f"`{c}`") for c in columns[0]])
        .agg(F.sum("__side").alias("n"))
    )
    gone, added = net.agg(
        F.coalesce(F.sum(F.when(F.col("n") > 0, F.col("n"))), F.lit(0)),
        F.coalesce(F.sum(F.when(F.col("n") < 0, -F.col("n"))), F.lit(0)),
    ).first()
    if gone or added:
        return [f"{table}: {gone} row(s) of the old lake are not in the new one, {added} are new"]
    return []


def _by_batch(df: DataFrame | None, *columns: Column) -> DataFrame | None:
    """Rows per `batch_id=` folder (and `columns`), the batch taken from the files' paths: a
    partition value is not inferred (a batch id of digits only would lose its leading zeros)."""
    if df is None:
        return None
    batch = F.regexp_extract(F.input_file_name(), "/batch_id=([^/]+)/", 1).alias("batch")
    keyed = df.select(batch, *columns)
    return keyed.where(F.col("batch") != "").groupBy(*keyed.columns).count()


def _counts(df: DataFrame | None) -> dict[Any, int]:
    """{key: count} of a grouped count; the key is a tuple when there are several columns."""
    if df is None:
        return {}
    return {(r[0] if len(r) == 2 else tuple(r[:-1])): r["count"] for r in df.collect()}


# --------------------------------------------------------------------------- moving the lake


def _managed_paths(settings: Settings, lake: Lake) -> list[str]:
    """What a rekey moves aside and rebuilds, relative to the lake root; the key record last, so
    that a restore puts it back after everything else."""
    paths: list[Path] = []
    for contract in settings.contracts.values():
        roots = catalog.intake_roots(lake, contract)
        paths += [
            lake.bronze(contract.name),
            lake.delivered(contract.name),
            roots["quarantine"],
            roots["silver"],
            roots["history"],
            lake.state(contract.name),
            lake.reports("validation", contract.name),
        ]
    paths.append(key_record_path(lake.root))
    return [str(p.relative_to(lake.root)) for p in paths]


class _Moves:
    """The old lake of one rekey run under `<lake>/_rekey/<run>/old/`, and how to put it back.

    The manifest (`rekey.json`) lists what was moved (`moved`) and the paths that did not exist
    before the run (`absent`, by their topmost missing folder); it is written before anything
    moves, so a run killed at any point can be rolled back from it (`roll_back_interrupted`)."""

    def __init__(self, lake: Lake, run_id: str):
        self.lake, self.run_id = lake, run_id
        self.root = lake.root / REKEY_DIR / run_id
        self.manifest = self.root / MANIFEST

    @property
    def old(self) -> Lake:
        return Lake(self.root / "old")

    def move_aside(self, paths: list[str], *, old_fp: str, new_fp: str) -> None:
        root = self.lake.root
        moved = [p for p in paths if os.path.lexists(root / p)]
        absent = sorted({_topmost_missing(root, p) for p in paths if not os.path.lexists(root / p)})
        self._write(
            {
                "run_id": self.run_id,
                "status": RUNNING,
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "from_fingerprint": old_fp,
                "to_fingerprint": new_fp,
                "moved": moved,
                "absent": absent,
            }
        )
        # The key record first, and copied: the lake is never without one (a job would record its
        # own key in a lake without), and from here on every job refuses it.
        record = str(key_record_path(root).relative_to(root))
        target = self.old.root / record
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / record, target)
        write_json(
            root / record,
            {
                "fingerprint": f"{IN_PROGRESS}{self.run_id}",
                "rekey_run_id": self.run_id,
                "from_fingerprint": old_fp,
                "to_fingerprint": new_fp,
                "note": "riskradar rekey is moving this lake to a new key, and every job refuses it "
                "until the rekey ends; if it was interrupted, run `riskradar rekey` again: it rolls "
                "the interrupted run back first",
            },
        )
        for rel in moved:
            if rel != record:
                target = self.old.root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                (root / rel).rename(target)

    def restore(self) -> None:
        """Move what the run wrote away and the old lake back (safe to repeat after a crash)."""
        if not self.manifest.exists():  # stopped before it moved anything
            return
        manifest = json.loads(self.manifest.read_text(encoding="utf-8"))
        self._write({**manifest, "status": RESTORING})
        away = self.root / "new"
        for rel in manifest["absent"]:
            _move(self.lake.root / rel, away / rel)
        for rel in manifest["moved"]:
            old = self.old.root / rel
            if os.path.lexists(old):  # else never moved (the run stopped first), or back already
                _move(self.lake.root / rel, away / rel)
                _move(old, self.lake.root / rel)
        self._write({**manifest, "status": RESTORED})
        shutil.rmtree(self.root)
        _remove_if_empty(self.root.parent)

    def finish(self, *, keep: bool) -> None:
        manifest = json.loads(self.manifest.read_text(encoding="utf-8"))
        self._write({**manifest, "status": DONE, "ended_at": datetime.now(UTC).isoformat(timespec="seconds")})
        if not keep:
            shutil.rmtree(self.root)
            _remove_if_empty(self.root.parent)

    def _write(self, manifest: dict[str, Any]) -> None:
        write_json(self.manifest, manifest)


def roll_back_interrupted(lake: Lake) -> list[str]:
    """Put back the old lake of every rekey run that did not end (its process was killed); call
    under the `rekey` lock and the feeds' locks. Returns a note per run rolled back."""
    notes = []
    for manifest in sorted((lake.root / REKEY_DIR).glob(f"*/{MANIFEST}")):
        status = json.loads(manifest.read_text(encoding="utf-8"))["status"]
        if status in (RUNNING, RESTORING):
            _Moves(lake, manifest.parent.name).restore()
            notes.append(f"rolled back the interrupted rekey run {manifest.parent.name}")
        elif status == RESTORED:
            shutil.rmtree(manifest.parent)
    return notes


def _topmost_missing(root: Path, rel: str) -> str:
    parts = Path(rel).parts
    for i in range(1, len(parts) + 1):
        if not os.path.lexists(root.joinpath(*parts[:i])):
            return str(Path(*parts[:i]))
    return rel


def _move(src: Path, dst: Path) -> None:
    if not os.path.lexists(src):
        return
    if os.path.lexists(dst):  # left by an earlier, interrupted restore
        shutil.rmtree(dst) if dst.is_dir() and not dst.is_symlink() else dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    src.rename(dst)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (a run kept with --keep-old), or gone
