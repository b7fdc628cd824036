"""Run `riskradar retention` for one feed in a process of its own, and end it at a chosen step.

    python tests/support/retention_runner.py CONFIG FEED AS_OF kill-after-write N
    python tests/support/retention_runner.py CONFIG FEED AS_OF kill-after-swap N

`kill-after-write N`: the process SIGKILLs itself (by its own PID) right after the run's N-th
Parquet write has completed, before anything is committed; `kill-after-swap N`: after the feed's
record was committed and N of the partitions it lists were renamed into place, the rest not.
Test tooling only.
"""

from __future__ import annotations

import os
import signal
import sys


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _counting(calls: list[int], target: int, real):
    def counted(*args, **kwargs):
        result = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == target:
            _die()
        return result

    return counted


def main() -> None:
    config, feed, as_of, mode, n = sys.argv[1:]
    from pyspark.sql.readwriter import DataFrameWriter

    from intake import retention
    from jobs import retention as job
    from riskradar.config import load_settings
    from riskradar.spark import get_session

    calls = [0]
    if mode == "kill-after-write":
        DataFrameWriter.parquet = _counting(calls, int(n), DataFrameWriter.parquet)
    elif mode == "kill-after-swap":
        retention.swap_in = _counting(calls, int(n), retention.swap_in)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    settings = load_settings(config)
    spark = get_session("retention-runner", master="local[1]", conf={"spark.sql.shuffle.partitions": "2"})
    job.main(["--partner", feed, "--as-of", as_of], settings=settings, spark=spark)


if __name__ == "__main__":
    main()
