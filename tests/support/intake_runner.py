"""Run `riskradar validate` for one feed in a process of its own, and end it at a chosen step.

    python tests/support/intake_runner.py CONFIG FEED kill-after-write N
    python tests/support/intake_runner.py CONFIG FEED kill-after-commit
    python tests/support/intake_runner.py CONFIG FEED hold-lock READY_FILE GO_FILE

`kill-after-write N`: the process SIGKILLs itself (by its own PID) right after validation's N-th
Parquet write has completed; `kill-after-commit`: right after the feed's state was committed,
before old folders are cleaned. `hold-lock`: once the feed's lock is held, write READY_FILE
and wait (up to 120 s) until GO_FILE exists, then finish normally. Test tooling only.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    config, feed, mode, *rest = sys.argv[1:]
    from pyspark.sql.readwriter import DataFrameWriter

    from intake import validation
    from jobs import validate
    from riskradar.config import load_settings
    from riskradar.spark import get_session

    if mode == "kill-after-write":
        target, calls = int(rest[0]), [0]
        real = DataFrameWriter.parquet

        def parquet(self, *args, **kwargs):
            real(self, *args, **kwargs)
            calls[0] += 1
            if calls[0] == target:
                _die()

        DataFrameWriter.parquet = parquet
    elif mode == "kill-after-commit":
        validation.vacuum = lambda *a, **k: _die()
    elif mode == "hold-lock":
        ready, go = Path(rest[0]), Path(rest[1])
        real_clear = validation.clear_scratch

        def clear(*args, **kwargs):
            ready.write_text(str(os.getpid()))
            deadline = time.monotonic() + 120
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            return real_clear(*args, **kwargs)

        validation.clear_scratch = clear
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    settings = load_settings(config)
    spark = get_session("intake-runner", master="local[1]", conf={"spark.sql.shuffle.partitions": "2"})
    validate.main(["--partner", feed], settings=settings, spark=spark)


if __name__ == "__main__":
    main()
