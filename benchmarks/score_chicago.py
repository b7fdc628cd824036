"""Benchmark: score every study cell of one week with a target's champion (issue 5).

    .venv/bin/python benchmarks/score_chicago.py --lake DIR [--target burglary] [--week W] [--master local[2]]

Needs a lake where `riskradar demo` (or build-features and train) has run and the target has a
champion. Times `riskradar score` for the newest week (all study cells: predictions and the
occlusion drivers inside Spark, the gold.scores expectation suite, the publish) and `riskradar
export` (CSV, GeoJSON, HTML), with the peak resident memory of the driver and its Spark JVM.
Writes benchmarks/results/score_chicago.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.memory import PeakMemory  # noqa: E402
from benchmarks.results_file import save_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="a lake with gold.features and a champion")
    parser.add_argument("--target", default="burglary")
    parser.add_argument("--week", help="the Monday to score (default: the newest panel week)")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    os.environ["RISKRADAR_LAKE"] = args.lake

    from jobs import export, score
    from riskradar.config import load_settings
    from riskradar.spark import get_session

    settings = load_settings(ROOT / "conf" / "riskradar.yaml")
    spark = get_session("bench", master=args.master, conf=settings.spark.conf)
    week = ["--week", args.week] if args.week else []
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        scored = score.main(["--target", args.target, *week], settings=settings, spark=spark)[args.target]
        t1 = time.perf_counter()
        files = export.main(["--target", args.target, *week], settings=settings, spark=spark)[args.target]
        t2 = time.perf_counter()
    result = {
        "benchmark": "score_chicago",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "master": args.master,
        "target": args.target,
        "week": str(scored["week"]),
        "model": f"{scored['model']} v{scored['version']}",
        "cells": scored["cells"],
        "score_s": round(t1 - t0, 1),
        "cells_per_s": round(scored["cells"] / (t1 - t0)),
        "export_s": round(t2 - t1, 1),
        "export_mb": {k: round(p.stat().st_size / 2**20, 1) for k, p in files.items()},
        "peak_rss_gib": round(memory.peak_gib, 2),
    }
    save_result("score_chicago", result)


if __name__ == "__main__":
    main()
