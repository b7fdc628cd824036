"""Lake layout and the write-audit-publish mechanics.

Tables are Parquet folders partitioned by key=value directories. A job writes into a
staging folder first and then publishes each partition it owns by renaming it into place,
so readers (which skip `_`-prefixed folders) never see a half-written partition, and a
rerun replaces exactly the partitions the job owns.

Intake tables (silver and validated quarantine) are published differently: every write goes
to a new folder named after its run, invisible until the feed's commit record
(`_state/<feed>.json`, see `FeedState`) names it. Replacing that one small file is the commit:
a reader resolves a table through the record and sees the state before or the state after,
never a mix, whichever step a run dies at. Folders no record names are removed by the next
run of the feed (`vacuum`).

Every publishing step holds a lock (`lock`), so that two runs never publish the same table or
feed at once. The lake root is a local (or NFS) folder; object stores need a table format
with atomic commits and are refused by the config.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from riskradar.config import check_name
from riskradar.errors import LakeLocked


@dataclass(frozen=True)
class Lake:
    """Paths of the lake layers under one root."""

    root: Path

    def bronze(self, feed: str) -> Path:
        return self.root / "bronze" / check_name(feed, "partner")

    def quarantine(self, feed: str) -> Path:
        return self.root / "quarantine" / check_name(feed, "partner")

    def silver(self, table: str) -> Path:
        return self.root / "silver" / check_name(table, "table")

    def gold(self, table: str) -> Path:
        return self.root / "gold" / check_name(table, "table")

    def reports(self, *parts: str) -> Path:
        return self.root.joinpath("reports", *parts)

    @property
    def audit(self) -> Path:
        return self.root / "audit"

    def outbox(self, recipient: str) -> Path:
        """Where a recipient's delivered packages are served from: <week>/ each."""
        return self.root / "outbox" / check_name(recipient, "recipient")

    @property
    def disclosures(self) -> Path:
        """The register of disclosures: one JSON record per delivery or withdrawal."""
        return self.root / "register" / "disclosures"

    def delivered(self, feed: str) -> Path:
        """The pipeline's copies of a feed's delivered files, one per version (`<sha256>`, the
        name in the batch markers): the bytes as delivered, raw, so owner-only. Ingest keeps one
        for every file whose rows reached the lake; a rekey reads them instead of landing."""
        return self.root / "_delivered" / check_name(feed, "partner")

    def batch_markers(self, feed: str) -> Path:
        """One JSON per ingested batch: files, hashes, rows. Its presence commits the batch."""
        return self.bronze(feed) / "_batches"

    def validated_markers(self, feed: str) -> Path:
        return self.root / "silver" / "_batches" / check_name(feed, "partner")

    def scratch(self, job: str, feed: str, run_id: str) -> Path:
        """Where a run keeps intermediate files it reads several times; the run deletes it, and
        the next run of the same job and feed removes what a crash left (`clear_scratch`).
        Under the lake root, so that a cluster's executors share it as they share the lake."""
        return self.scratch_root(job, feed) / run_id

    def scratch_root(self, job: str, feed: str) -> Path:
        return self.root / "_scratch" / check_name(job, "job") / check_name(feed, "partner")

    def state(self, feed: str) -> Path:
        """The feed's commit record: which folders make up its published intake tables."""
        return self.root / "_state" / f"{check_name(feed, 'partner')}.json"

    def locks(self) -> Path:
        return self.root / "_locks"


def partition_path(values: Mapping[str, str]) -> Path:
    return Path(*(f"{k}={v}" for k, v in values.items()))


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class Publisher:
    """Stage a table's partitions, then publish them with renames.

    `owned` lists every partition this run is responsible for: a staged one replaces the
    published one, and an owned partition that ended up empty is removed, so a rerun
    overwrites exactly its own partitions and nothing else.
    """

    def __init__(self, table: Path, *, owner: str, run_id: str):
        self.table = table
        self.run_id = run_id
        self.staging_root = table / "_staging" / check_name(owner, "owner")
        self.staging = self.staging_root / run_id

    def write(self, df: DataFrame, partition_cols: list[str]) -> None:
        # Leftovers of a crashed run of the same owner are never published: clear them.
        if self.staging_root.exists():
            shutil.rmtree(self.staging_root)
        df.write.mode("overwrite").partitionBy(*partition_cols).parquet(str(self.staging))

    def publish(self, owned: Iterable[Mapping[str, str]]) -> list[str]:
        published: list[str] = []
        trash = self.table / "_trash" / self.run_id
        for values in owned:
            rel = partition_path(values)
            staged, target = self.staging / rel, self.table / rel
            if target.exists():
                (trash / rel).parent.mkdir(parents=True, exist_ok=True)
                target.rename(trash / rel)
            if staged.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                staged.rename(target)
                published.append(str(rel))
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(self.staging, ignore_errors=True)
        return published

    def discard(self) -> None:
        """Drop what this run staged; the published table is untouched."""
        shutil.rmtree(self.staging, ignore_errors=True)


def partition_values(table: Path, key: str) -> list[str]:
    """The values of a table's top-level partition column that hold data, sorted (a listing,
    no scan)."""
    if not table.exists():
        return []
    return sorted(p.name.split("=", 1)[1] for p in table.glob(f"{key}=*") if has_parquet(p))


def has_parquet(path: Path) -> bool:
    """Whether a table folder holds any data file (Spark cannot read an empty folder)."""
    return path.exists() and any(path.rglob("*.parquet"))


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write a small JSON document atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str), encoding="utf-8")
    tmp.rename(path)


def read_json_dir(folder: Path) -> list[dict[str, Any]]:
    if not folder.exists():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


# --------------------------------------------------------------------------- locks

# A lock whose holder cannot be checked (another host) is taken over after this long.
STALE_LOCK_AFTER_S = 6 * 3600


def _process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if it does not run."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return -1.0  # it runs, as another user


def _holder_is_gone(holder: dict[str, Any], now: float, stale_after_s: float) -> bool:
    if holder.get("host") == socket.gethostname():
        started = _process_started(int(holder.get("pid", -1)))
        # A recycled pid belongs to a process that started after the lock was taken.
        return started is None or (started > 0 and abs(started - holder.get("pid_started", started)) > 1)
    return now - holder.get("acquired_at_epoch", now) > stale_after_s


@contextmanager
def lock(
    lake: Lake, name: str, *, run_id: str, job: str, stale_after_s: float = STALE_LOCK_AFTER_S
) -> Iterator[list[str]]:
    """Hold the lake-level lock `name` (e.g. `silver.events[police_crimes]`) for a block.

    Refuses with LakeLocked, naming the holder's job, run id, process and age, when another
    run holds it. A lock left by a dead process on this host, or older than `stale_after_s`
    when held from another host, is taken over; the yielded list then says so.
    """
    folder = lake.locks()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.lock"
    notes: list[str] = []
    me = {
        "lock": name,
        "run_id": run_id,
        "job": job,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_started": _process_started(os.getpid()),
        "acquired_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "acquired_at_epoch": time.time(),
    }
    for _attempt in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_holder(path)
            now = time.time()
            if holder is not None and not _holder_is_gone(holder, now, stale_after_s):
                age = now - holder.get("acquired_at_epoch", now)
                raise LakeLocked(
                    f"{name} is locked by run {holder.get('run_id')} ({holder.get('job')}, pid "
                    f"{holder.get('pid')} on {holder.get('host')}), held for {age:.0f} s since "
                    f"{holder.get('acquired_at')}: another run is publishing it; try again when it "
                    f"has finished (lock file: {path})"
                ) from None
            stale = path.with_name(f"{path.name}.stale-{run_id}")
            try:
                path.rename(stale)
            except FileNotFoundError:
                continue  # its holder just released it
            notes.append(
                f"took over the stale lock {name} of run "
                f"{(holder or {}).get('run_id', '?')} (its process is gone)"
            )
            stale.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(me, fh)
        break
    else:
        raise LakeLocked(f"{name}: could not take the lock at {path}")
    try:
        notes += clear_dead_scratch(lake)
        yield notes
    finally:
        holder = _read_holder(path)
        if holder is not None and holder.get("run_id") == run_id:
            path.unlink(missing_ok=True)


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def clear_dead_scratch(lake: Lake) -> list[str]:
    """Remove the scratch of every run that holds no lock (a run keeps scratch only while it
    holds its lock, so such a run ended or was killed): staged copies of delivered files, raw
    data included, never outlive the next run that takes any lock of the lake. What went."""
    root = lake.root / "_scratch"
    if not root.is_dir():
        return []
    holders = {h.get("run_id") for h in (_read_holder(p) for p in lake.locks().glob("*.lock")) if h}
    removed = []
    for run in sorted(root.glob("*/*/*")):
        if run.is_dir() and run.name not in holders:
            shutil.rmtree(run, ignore_errors=True)
            removed.append(f"removed the scratch a stopped run left: {run.relative_to(lake.root)}")
    return removed


def clear_scratch(lake: Lake, job: str, feed: str) -> None:
    """Remove what a crashed run of `job` for `feed` left in the scratch space (call under the
    feed's lock: no other run of it can be using it)."""
    shutil.rmtree(lake.scratch_root(job, feed), ignore_errors=True)


# --------------------------------------------------------------------------- feed state

RUN_FOLDER_PREFIX = "r-"


def run_folder(run_id: str) -> str:
    """The leaf folder a run writes one table partition into (no `=`: not a partition column)."""
    return f"{RUN_FOLDER_PREFIX}{run_id}"


@dataclass
class FeedState:
    """A feed's commit record, `_state/<feed>.json`: the folders that hold its published intake
    tables, and every validated batch with its outcome.

    `tables` maps a logical table ("silver", "history", "quarantine", and the two retention
    writes: "ingest_quarantine", "expired_counts") to {part key -> folder relative to the lake
    root}; `batches` maps a batch id to its record
    (status `published`, `rejected` or `discarded`, counts, report, run); `retention` is what
    `riskradar retention` did to the feed (intake/retention.py). Replacing the file is the commit.
    """

    feed: str
    version: int = 0
    tables: dict[str, dict[str, str]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    committed_at: str | None = None
    run_id: str | None = None
    retention: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, lake: Lake, feed: str) -> FeedState:
        path = lake.state(feed)
        if not path.exists():
            return cls(feed=feed)
        doc = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            feed=doc["feed"],
            version=doc["version"],
            tables={k: dict(v) for k, v in doc["tables"].items()},
            batches=doc["batches"],
            committed_at=doc.get("committed_at"),
            run_id=doc.get("run_id"),
            retention=doc.get("retention", {}),
        )

    def parts(self, table: str) -> dict[str, str]:
        return self.tables.setdefault(table, {})

    def folders(self, lake: Lake, table: str) -> list[Path]:
        """The published folders of one logical table that hold data (a part named with no
        folder, "", has none: retention removed every row of a part that is not its own)."""
        return [lake.root / rel for _, rel in sorted(self.tables.get(table, {}).items()) if rel]

    def commit(self, lake: Lake, *, run_id: str) -> None:
        """Make this state the published one (atomic: a temp file renamed over the record)."""
        self.version += 1
        self.committed_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.run_id = run_id
        doc = {
            "feed": self.feed,
            "version": self.version,
            "committed_at": self.committed_at,
            "run_id": run_id,
            "tables": self.tables,
            "batches": self.batches,
        }
        write_json(lake.state(self.feed), {**doc, "retention": self.retention} if self.retention else doc)

    def referenced(self, lake: Lake) -> set[Path]:
        return {
            (lake.root / rel).resolve() for parts in self.tables.values() for rel in parts.values() if rel
        }


def vacuum(lake: Lake, state: FeedState, roots: Iterable[Path]) -> list[Path]:
    """Remove, under each of `roots`, the run folders the committed state does not name (left
    by a crashed run, or replaced by a newer write) and loose files outside run folders (data
    of a lake written before run folders). Call under the feed's lock. Returns what went."""
    keep = state.referenced(lake)
    removed: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root, topdown=True):
            here = Path(dirpath)
            for name in [d for d in dirnames if d.startswith(RUN_FOLDER_PREFIX)]:
                dirnames.remove(name)  # a run folder is kept or removed whole
                if (here / name).resolve() not in keep:
                    shutil.rmtree(here / name, ignore_errors=True)
                    removed.append(here / name)
            for name in filenames:
                (here / name).unlink(missing_ok=True)
                removed.append(here / name)
        for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda w: -len(Path(w[0]).parts)):
            if Path(dirpath) != root and not os.listdir(dirpath):
                os.rmdir(dirpath)
    return removed
