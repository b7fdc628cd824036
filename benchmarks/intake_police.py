"""Benchmark: ingest + validate of the two bundled years of police crimes (~582,000 rows).

    .venv/bin/python benchmarks/intake_police.py [--master local[2]] [--driver-memory 4g]

Runs both jobs in one process on a fresh lake in a temporary folder, with the bundled files
as landing, and reports wall time, rows per second and the peak resident memory of the
driver and its Spark JVM together. The result is appended to benchmarks/results/ as JSON;
the table in benchmarks/README.md is copied from there.
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.memory import PeakMemory  # noqa: E402
from benchmarks.results_file import save_result  # noqa: E402


def police_config(tmp: Path, landing: Path, master: str, driver_memory: str) -> Path:
    """The default config with only the police feed enabled, its landing `landing` and a lake
    in `tmp`; written to tmp/riskradar.yaml."""
    config = yaml.safe_load((ROOT / "conf" / "riskradar.yaml").read_text())
    config["lake"]["root"] = str(tmp / "lake")
    config["partners"]["landing_root"] = str(landing)
    config["partners"]["contracts_dir"] = str(ROOT / "conf" / "partners")
    config["expectations_dir"] = str(ROOT / "expectations")
    config["partners"]["enabled"] = ["police_crimes"]
    config["roles"] = {}  # a role must name an enabled feed: only the police feed is
    config["spark"]["master"] = master
    config["spark"]["conf"]["spark.driver.memory"] = driver_memory
    path = tmp / "riskradar.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args()
    os.environ.setdefault("RISKRADAR_PSEUDONYM_KEY", "benchmark-key-not-a-secret-0123456789")
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as tmp:
        path = police_config(Path(tmp), ROOT / "data" / "chicago", args.master, args.driver_memory)
        from jobs import ingest, validate
        from riskradar.config import load_settings
        from riskradar.spark import get_session

        settings = load_settings(path)
        with PeakMemory() as memory:
            t0 = time.perf_counter()
            spark = get_session("bench", master=settings.spark.master, conf=settings.spark.conf)
            t1 = time.perf_counter()
            ingested = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
            t2 = time.perf_counter()
            validated = validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)
            t3 = time.perf_counter()
        rows = ingested["police_crimes"]["rows"]
        (summary,) = validated["police_crimes"]
        result = {
            "benchmark": "intake_police",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "master": args.master,
            "driver_memory": args.driver_memory,
            "rows": rows,
            "published": summary["published"],
            "quarantined": summary["quarantined"],
            "session_s": round(t1 - t0, 1),
            "ingest_s": round(t2 - t1, 1),
            "validate_s": round(t3 - t2, 1),
            "total_s": round(t3 - t1, 1),
            "rows_per_s": round(rows / (t3 - t1)),
            "peak_rss_gib": round(memory.peak_gib, 2),
        }
        spark.stop()
    save_result("intake_police", result)
    print(
        f"| {result['rows']:,} | {result['ingest_s']} | {result['validate_s']} | {result['total_s']} "
        f"| {result['rows_per_s']:,} | {result['peak_rss_gib']} |"
    )


if __name__ == "__main__":
    main()
