"""Benchmark: build the cell x week panel for the whole bundled Chicago sample.

    .venv/bin/python benchmarks/features_chicago.py [--lake DIR] [--master local[2]]

Uses (or first creates, untimed) a lake with the validated silver tables of all bundled
feeds, then times `build-features --full` and samples the peak resident memory of the
driver and its Spark JVM. Writes benchmarks/results/features_chicago.json and prints the
feature summary (mean, share of non-zero rows, max) used in the issue notes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.memory import PeakMemory  # noqa: E402
from benchmarks.results_file import RESULTS, save_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", help="a lake with silver tables (default: a fresh temporary one)")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    os.environ.setdefault("RISKRADAR_PSEUDONYM_KEY", "benchmark-key-not-a-secret-0123456789")
    lake_dir = args.lake or tempfile.mkdtemp(prefix="rr-bench-features-")
    os.environ["RISKRADAR_LAKE"] = lake_dir

    from pyspark.sql import functions as F

    from jobs import build_features, ingest, validate
    from riskradar.config import load_settings
    from riskradar.lake import Lake
    from riskradar.spark import get_session

    settings = load_settings(ROOT / "conf" / "riskradar.yaml")
    spark = get_session("bench", master=args.master, conf=settings.spark.conf)
    lake = Lake(settings.lake_root)
    if not (lake.silver("events")).exists():
        ingest.main(["--all"], settings=settings, spark=spark)
        validate.main(["--all"], settings=settings, spark=spark)
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        summary = build_features.main(["--full"], settings=settings, spark=spark)
        elapsed = time.perf_counter() - t0
    result = {
        "benchmark": "features_chicago",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "master": args.master,
        "cells": summary["cells"],
        "weeks": summary["weeks_written"],
        "rows": summary["rows"],
        "build_s": round(elapsed, 1),
        "rows_per_s": round(summary["rows"] / elapsed),
        "peak_rss_gib": round(memory.peak_gib, 2),
    }
    save_result("features_chicago", result)

    panel = spark.read.parquet(str(lake.gold("features")))
    numeric = [
        f.name
        for f in panel.schema.fields
        if f.dataType.simpleString() in ("double", "int")
        and f.name not in ("ix", "iy", "week_idx", "area_code")
    ]
    stats = (
        panel.agg(
            *[F.avg(c).alias(f"{c}|mean") for c in numeric],
            *[F.avg(F.when(F.col(c) != 0, 1.0).otherwise(0.0)).alias(f"{c}|nonzero") for c in numeric],
            *[F.max(c).alias(f"{c}|max") for c in numeric],
            *[F.avg(F.when(F.col(c).isNull(), 1.0).otherwise(0.0)).alias(f"{c}|null") for c in numeric],
        )
        .first()
        .asDict()
    )
    lines = ["| feature | mean | non-zero share | max | null share |", "|---|---|---|---|---|"]
    for c in numeric:
        lines.append(
            f"| {c} | {stats[c + '|mean']:.4g} | {stats[c + '|nonzero']:.3f} | {stats[c + '|max']:.4g} "
            f"| {stats[c + '|null']:.3f} |"
        )
    (RESULTS / "features_chicago_summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    spark.stop()


if __name__ == "__main__":
    main()
