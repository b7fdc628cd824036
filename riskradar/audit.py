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
    git_dirty: bool | None = None  # the code differed from git_commit (see git_dirty)
    host: str = field(default_factory=socket.gethostname)
    user: str = field(default_factory=getpass.getuser)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step (riskradar.log.step)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _git(*args: str, cwd: Path | None = None) -> str | None:
    """The output of `git <args>` in `cwd` (default: this package's folder), or None where git or
    a checkout is missing."""
    try:
        out = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=cwd or Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit the running code was checked out at, or None outside a checkout."""
    return (_git("rev-parse", "HEAD", cwd=cwd) or "").strip() or None


def git_dirty(cwd: Path | None = None) -> bool | None:
    """Whether the running code differs from that commit: a tracked file changed, or a file that
    .gitignore does not cover added. Then the commit alone does not reproduce what ran. None
    outside a checkout."""
    if git_commit(cwd) is None:
        return None
    out = _git("status", "--porcelain", cwd=cwd)
    return None if out is None else bool(out.strip())


@contextmanager
def audited_run(lake: Lake, job: str, arguments: dict[str, Any]) -> Iterator[RunRecord]:
    """Record a job run; the record is written on success and on failure (then re-raised)."""
    record = RunRecord(
        job=job,
        run_id=new_run_id(),
        arguments=arguments,
        started_at=_now(),
        git_commit=git_commit(),
        git_dirty=git_dirty(),
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
        git_dirty=git_dirty(),
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
