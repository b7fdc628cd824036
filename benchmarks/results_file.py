"""Where a benchmark's raw result goes: benchmarks/results/<name>.json (the README's tables are
copied from there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def code_commit() -> str:
    """HEAD's short hash, with "+changes" where the work tree differs from it (riskradar.audit):
    the code a benchmark run starts with, for its results."""
    from riskradar.audit import git_commit, git_dirty

    return (git_commit(ROOT) or "unknown")[:7] + ("+changes" if git_dirty(ROOT) else "")


def save_result(name: str, result: dict[str, Any], *, show: bool = True) -> Path:
    """Write `result` to results/<name>.json and, with `show`, print it."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    if show:
        print(json.dumps(result, indent=2))
    return path
