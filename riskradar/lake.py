"""Lake layout and the write-audit-publish mechanics.

Tables are Parquet folders partitioned by key=value directories. A job writes into a
staging folder first and then publishes each partition it owns by renaming it into place,
so readers (which skip `_`-prefixed folders) never see a half-written partition, and a
rerun replaces exactly the partitions the job owns.

The lake root is a local folder in the embedded setup; object stores are future work
(see README, "Limits").
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from riskradar.config import check_name


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

    def batch_markers(self, feed: str) -> Path:
        """One JSON per ingested batch: files, hashes, rows. Its presence commits the batch."""
        return self.bronze(feed) / "_batches"

    def validated_markers(self, feed: str) -> Path:
        return self.root / "silver" / "_batches" / check_name(feed, "partner")

    def scratch(self, job: str, run_id: str) -> Path:
        """Where a run keeps intermediate tables it reads several times; the run deletes it.
        Under the lake root, so that a cluster's executors share it as they share the lake."""
        return self.root / "_scratch" / check_name(job, "job") / run_id


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
