"""The append-only audit log: one JSON document per job run under audit/date=YYYY-MM-DD/.

Each run writes a new file and never rewrites an old one, which works the same on a local
folder and on an object store. Records hold names, hashes and counts, never row contents.
"""

from __future__ import annotations

import getpass
import json
import logging
import socket
import subprocess
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from riskradar.lake import Lake, new_run_id, write_json
from riskradar.log import run_context

log = logging.getLogger(__name__)


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


# The folder this package's source tree sits in: a checkout's top level when it runs from one.
PROJECT = Path(__file__).resolve().parents[1]


def _git(*args: str, root: Path) -> str | None:
    """The output of `git <args>` in `root`, or None where git fails or is missing."""
    try:
        out = subprocess.run(
            ["git", "--no-optional-locks", *args], capture_output=True, text=True, timeout=5, cwd=root
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _checkout(root: Path | None) -> Path | None:
    """`root` (default PROJECT) if it is the top level of a git checkout. Not a repository found
    further up: a copy installed into a checkout's ignored .venv is not that checkout's code."""
    root = (root or PROJECT).resolve()
    top = _git("rev-parse", "--show-toplevel", root=root)
    return root if top is not None and Path(top.strip()).resolve() == root else None


def _code_state(root: Path | None) -> tuple[str | None, bool | None]:
    """The commit the code at `root` (default: this package's tree) is checked out at, and
    whether it differs from it: a tracked file changed, or a file that .gitignore does not cover
    added (whatever the user's git config shows). Then the commit alone does not reproduce what
    ran. (None, None) where `root` is no checkout's top level or has no commit."""
    checkout = _checkout(root)
    commit = None if checkout is None else (_git("rev-parse", "HEAD", root=checkout) or "").strip() or None
    if commit is None:
        return None, None
    out = _git("status", "--porcelain", "--untracked-files=normal", "--ignore-submodules=none", root=checkout)
    return commit, None if out is None else bool(out.strip())


def git_commit(root: Path | None = None) -> str | None:
    return _code_state(root)[0]


def git_dirty(root: Path | None = None) -> bool | None:
    return _code_state(root)[1]


@lru_cache(maxsize=1)
def code_state() -> tuple[str | None, bool | None]:
    """_code_state of this package's tree, read once per process, at its first job: close to
    when its modules were imported. An edit or a checkout while a job runs does not change the
    code that runs, and the audit record and the run's tags say the same."""
    return _code_state(None)


@contextmanager
def audited_run(lake: Lake, job: str, arguments: dict[str, Any]) -> Iterator[RunRecord]:
    """Record a job run; the record is written on success and on failure (then re-raised)."""
    commit, dirty = code_state()
    record = RunRecord(
        job=job,
        run_id=new_run_id(),
        arguments=arguments,
        started_at=_now(),
        git_commit=commit,
        git_dirty=dirty,
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
        _write_or_warn(lake, record)


def record_failure(lake: Lake, job: str, arguments: dict[str, Any], error: BaseException) -> RunRecord:
    """A failed run reported from outside a job (e.g. by the orchestrator's failure callback)."""
    now, (commit, dirty) = _now(), code_state()
    record = RunRecord(
        job=job,
        run_id=new_run_id(),
        arguments=arguments,
        started_at=now,
        ended_at=now,
        status="failed",
        error=str(error) or type(error).__name__,
        error_type=type(error).__name__,
        git_commit=commit,
        git_dirty=dirty,
    )
    _write(lake, record)
    return record


def _write_or_warn(lake: Lake, record: RunRecord) -> None:
    """Write the run's record; where the lake cannot take it (a full disk, a read-only lake) say
    so in the log and let the run's own error, if any, be the one raised."""
    try:
        _write(lake, record)
    except OSError as exc:
        log.warning(
            "the audit record of %s %s could not be written to %s: %s",
            record.job,
            record.run_id,
            lake.audit,
            exc,
        )


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
