"""The append-only audit log: one JSON document per job run under audit/date=YYYY-MM-DD/.

Each run writes a new file and never rewrites an old one, which works the same on a local
folder and on an object store. Records hold names, hashes and counts, never row contents.
"""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskradar.lake import Lake, new_run_id, write_json
from riskradar.log import run_context


@dataclass
class RunRecord:
    job: str
    run_id: str
    arguments: dict[str, Any]
    started_at: str
    ended_at: str | None = None
    status: str = "running"
    error: str | None = None
    error_type: str | None = None
    git_commit: str | None = None
    host: str = field(default_factory=socket.gethostname)
    user: str = field(default_factory=getpass.getuser)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step (riskradar.log.step)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


@contextmanager
def audited_run(lake: Lake, job: str, arguments: dict[str, Any]) -> Iterator[RunRecord]:
    """Record a job run; the record is written on success and on failure (then re-raised)."""
    record = RunRecord(
        job=job, run_id=new_run_id(), arguments=arguments, started_at=_now(), git_commit=git_commit()
    )
    try:
        with run_context(job, record.run_id, record.timings):
            yield record
        record.status = "succeeded"
    except BaseException as exc:
        record.status = "failed"
        record.error_type = type(exc).__name__
        record.error = str(exc) or traceback.format_exception_only(exc)[-1].strip()
        raise
    finally:
        record.ended_at = _now()
        _write(lake, record)


def record_failure(lake: Lake, job: str, arguments: dict[str, Any], error: BaseException) -> RunRecord:
    """A failed run reported from outside a job (e.g. by the orchestrator's failure callback)."""
    now = _now()
    record = RunRecord(
        job=job,
        run_id=new_run_id(),
        arguments=arguments,
        started_at=now,
        ended_at=now,
        status="failed",
        error=str(error) or type(error).__name__,
        error_type=type(error).__name__,
        git_commit=git_commit(),
    )
    _write(lake, record)
    return record


def _write(lake: Lake, record: RunRecord) -> None:
    day = record.started_at[:10]
    name = f"{record.started_at[11:19].replace(':', '')}-{record.job}-{record.run_id}.json"
    write_json(lake.audit / f"date={day}" / name, asdict(record))


def read_audit(lake: Lake) -> list[dict[str, Any]]:
    """All run records, oldest first."""
    if not lake.audit.exists():
        return []
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in lake.audit.glob("date=*/*.json")]
    return sorted(docs, key=lambda d: d["started_at"])
