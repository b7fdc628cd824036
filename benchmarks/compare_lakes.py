"""Compare two lakes built from the same data with the same key (e.g. `riskradar demo` at two
commits): silver tables, quarantine, the gold panel and the gold scores, row for row, without
provenance columns (batch and run ids, times, the MLflow run).

    .venv/bin/python benchmarks/compare_lakes.py LAKE_BEFORE LAKE_AFTER [CONFIG]

Prints one line per table and EQUAL or DIFFERENT; exits 1 when different.
"""

import sys
from pathlib import Path

from riskradar.catalog import read_quarantine, read_silver
from riskradar.config import load_settings
from riskradar.lake import Lake
from riskradar.spark import get_session

before, after = Lake(Path(sys.argv[1])), Lake(Path(sys.argv[2]))
settings = load_settings(sys.argv[3] if len(sys.argv) > 3 else None)
spark = get_session("compare", master="local[2]", conf={"spark.driver.memory": "6g"})
PROVENANCE = {
    "batch_id",
    "ingested_at",
    "run_id",
    "source_file",
    "source_sha256",
    "source_row",
    "validated_at",
    "model_run_id",
    "scored_at",
    "built_at",
    "_run",
    "features_version",
}


def same(name, a, b):
    if a is None and b is None:
        print(f"{name}: empty in both")
        return True
    if a is None or b is None:
        print(f"{name}: missing in {'before' if a is None else 'after'}")
        return False
    cols = sorted(set(a.columns) - PROVENANCE)
    if cols != sorted(set(b.columns) - PROVENANCE):
        print(f"{name}: columns differ: {sorted(set(a.columns) ^ set(b.columns))}")
        return False
    a, b = a.select(*cols), b.select(*cols)
    na, nb = a.count(), b.count()
    left, right = a.exceptAll(b).count(), b.exceptAll(a).count()
    print(
        f"{name}: {na} vs {nb} rows; only before {left}, only after {right}; columns compared {len(cols)}"
        f" (left out: {sorted((set(a.columns) | set(b.columns)) & PROVENANCE)})"
    )
    return na == nb and left == right == 0


ok = True
for table in ["events", "weather", "areas", "boundaries"]:
    ok &= same(
        f"silver.{table}",
        read_silver(spark, settings, before, table),
        read_silver(spark, settings, after, table),
    )
for feed in settings.contracts:
    ok &= same(
        f"quarantine.{feed}", read_quarantine(spark, before, feed), read_quarantine(spark, after, feed)
    )
for table in ["features", "scores", "scores_by_area"]:
    pa, pb = before.gold(table), after.gold(table)
    ok &= same(f"gold.{table}", spark.read.parquet(str(pa)), spark.read.parquet(str(pb)))
print("EQUAL" if ok else "DIFFERENT")
sys.exit(0 if ok else 1)
