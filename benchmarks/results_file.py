"""Where a benchmark's raw result goes: benchmarks/results/<name>.json (the README's tables are
copied from there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def save_result(name: str, result: dict[str, Any], *, show: bool = True) -> Path:
    """Write `result` to results/<name>.json and, with `show`, print it."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    if show:
        print(json.dumps(result, indent=2))
    return path
