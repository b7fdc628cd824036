"""Benchmark: a police delivery of many one-row files (issue 27, item 6).

    .venv/bin/python benchmarks/many_files.py [--files 5000] [--master local[2]] [--driver-memory 4g]

Writes --files gzipped CSV files of one row each (the header and rows of the newest bundled
police file, each row under its own file name) into a landing folder in a temporary directory,
then runs ingest and validate in one process on a fresh lake, as intake_police.py does. Reports
wall time per job, the peak resident memory of the driver and its Spark JVM together, and the
progress lines ingest logged while it staged the files (one per 100 files, and a line at least
every 50 s). The result is written to benchmarks/results/many_files.json; the table in
benchmarks/README.md is copied from there.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.intake_police import police_config  # noqa: E402
from benchmarks.memory import PeakMemory  # noqa: E402
from benchmarks.results_file import save_result  # noqa: E402

FEED = "police_crimes"


def one_row_files(landing: Path, files: int) -> int:
    """`files` one-row files of the newest bundled police file's rows; returns the bytes written."""
    newest = sorted((ROOT / "data" / "chicago" / FEED).glob("*.csv.gz"))[-1]
    header, *rows = gzip.decompress(newest.read_bytes()).decode("utf-8").splitlines(keepends=True)
    if len(rows) < files:
        raise SystemExit(f"{newest.name} holds {len(rows)} rows, fewer than --files {files}")
    folder = landing / FEED
    folder.mkdir(parents=True)
    written = 0
    for i, row in enumerate(rows[:files]):
        data = gzip.compress((header + row).encode("utf-8"), mtime=0)
        (folder / f"chicago_crimes_2099-01-{i:05d}.csv.gz").write_bytes(data)
        written += len(data)
    return written


class ProgressLines(logging.Handler):
    """Keeps the log lines of ingest's file progress, with the seconds since the start."""

    def __init__(self):
        super().__init__()
        self.started = time.perf_counter()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if ": file " in message or "at work" in message:
            self.lines.append(f"+{time.perf_counter() - self.started:.0f} s: {message}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args()
    os.environ.setdefault("RISKRADAR_PSEUDONYM_KEY", "benchmark-key-not-a-secret-0123456789abcdef")
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmp:
        landing = Path(tmp) / "landing"
        delivered = one_row_files(landing, args.files)
        path = police_config(Path(tmp), landing, args.master, args.driver_memory)

        from jobs import ingest, validate
        from riskradar.config import load_settings
        from riskradar.spark import get_session

        settings = load_settings(path)
        progress = ProgressLines()
        logging.getLogger("intake").addHandler(progress)
        with PeakMemory() as memory:
            spark = get_session("bench", master=settings.spark.master, conf=settings.spark.conf)
            progress.started = t1 = time.perf_counter()
            ingested = ingest.main(["--partner", FEED], settings=settings, spark=spark)[FEED]
            t2 = time.perf_counter()
            (validated,) = validate.main(["--partner", FEED], settings=settings, spark=spark)[FEED]
            t3 = time.perf_counter()
        spark.stop()
    result = {
        "benchmark": "many_files",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "master": args.master,
        "driver_memory": args.driver_memory,
        "files": args.files,
        "delivered_bytes": delivered,
        "files_ingested": len(ingested["files"]),
        "rows": ingested["rows"],
        "published": validated["published"],
        "quarantined": validated["quarantined"],
        "ingest_s": round(t2 - t1, 1),
        "validate_s": round(t3 - t2, 1),
        "peak_rss_gib": round(memory.peak_gib, 2),
        "progress_lines": progress.lines,
    }
    save_result("many_files", result)


if __name__ == "__main__":
    main()
