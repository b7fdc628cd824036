"""Test support, spark-submitted by tests/security/test_listen_and_leaks.py: pseudonymise a few
hundred made-up ids with the key in RISKRADAR_PSEUDONYM_KEY, write them as Parquet, print the
plan, then wait while the test looks at the running driver.

    spark-submit tests/security/pseudonymise_app.py <work dir> [<ids>]

In <work dir>: out/ (the Parquet), then ready.json ({"app_id", "ui_url", "rows"}) once the
work is done; the application then waits until a file `release` appears (at most 300 s: the
tests submit several at once and look at them in turn), and stops its session.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pyspark.sql import functions as F

from intake.pseudonym import load_key, pseudonymise
from riskradar.spark import get_session

WAIT_SECONDS = 300


def main(argv: list[str]) -> None:
    work = Path(argv[0])
    count = int(argv[1]) if len(argv) > 1 else 300
    key = load_key("RISKRADAR_PSEUDONYM_KEY")
    spark = get_session("riskradar-security-test")
    # Sequential police-like ids, some with surrounding spaces, as a delivery could hold them.
    ids = [(f" {99000000 + i} " if i % 7 == 0 else str(99000000 + i),) for i in range(count)]
    df = spark.createDataFrame(ids, "ID string")
    out = pseudonymise(df, {"ID": F.col("ID")}, key, domain="police_crimes")
    out.explain("extended")  # the plan on stdout, which the test reads too
    out.write.mode("overwrite").parquet(str(work / "out"))
    rows = spark.read.parquet(str(work / "out")).count()
    ready = {"app_id": spark.sparkContext.applicationId, "ui_url": spark.sparkContext.uiWebUrl, "rows": rows}
    (work / "ready.json.tmp").write_text(json.dumps(ready))
    (work / "ready.json.tmp").rename(work / "ready.json")
    deadline = time.monotonic() + WAIT_SECONDS
    while not (work / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
