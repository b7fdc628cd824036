"""A single-node reference for the weekly count panel: DuckDB SQL over the silver Parquet.

    .venv/bin/python benchmarks/reference_panel.py --config <riskradar.yaml> [--threads 2]

Builds the table of `features.panel.weekly_counts` (one row per cell and week with events:
weighted counts per category group, counts per signal feed, target counts) twice from the same
`silver/events`: with Spark (local, the config's session settings) and with DuckDB. Checks that
both give the same rows and values, and prints both wall times and their ratio Spark/DuckDB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.panel import EPOCH_MONDAY, PanelSpec  # noqa: E402


def _in(column: str, values: list[str]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"


def weekly_counts_sql(spec: PanelSpec, silver_events: str) -> str:
    """DuckDB SQL with the column contract of `weekly_counts` (ix, iy, week_idx, c_<group>,
    c_sig_<feed>, y_<target>). `silver_events` is the folder of the silver events table."""
    crime = _in("partner", spec.crime_feeds)
    weight = f"CASE WHEN origin = 'discovered' THEN {float(spec.discovered_weight)!r} ELSE 1.0 END"
    aggs = [
        f"SUM(CASE WHEN {crime} AND {_in('category', cats)} THEN {weight} ELSE 0.0 END) AS c_{g}"
        for g, cats in spec.groups.items()
    ]
    aggs += [
        f"SUM(CASE WHEN partner = '{s}' AND {_in('category', cats)} THEN 1.0 ELSE 0.0 END) AS c_sig_{s}"
        for s, cats in spec.signals.items()
    ]
    for t, target in spec.targets.items():
        hit = f"{crime} AND {_in('category', target.categories)}"
        if target.exclude_domestic:
            hit += " AND NOT coalesce(domestic, false)"
        aggs.append(f"SUM(CASE WHEN {hit} THEN 1.0 ELSE 0.0 END) AS y_{t}")
    size = float(spec.grid.cell_size_m)
    # Spark writes instants as UTC; DuckDB reads them as naive timestamps holding the UTC time.
    local = f"timezone('{spec.timezone}', timezone('UTC', occurred_at))"
    days = f"date_diff('day', DATE '{EPOCH_MONDAY}', CAST(date_trunc('week', {local}) AS DATE))"
    return f"""
        WITH ev AS (
            SELECT CAST(floor(x / {size!r}) AS INTEGER) AS ix,
                   CAST(floor(y / {size!r}) AS INTEGER) AS iy,
                   CAST(floor({days} / 7) AS INTEGER) AS week_idx,
                   partner, category, origin, domestic
            FROM read_parquet('{silver_events}/partner=*/**/*.parquet', hive_partitioning = true)
        )
        SELECT ix, iy, week_idx, {", ".join(aggs)}
        FROM ev GROUP BY ix, iy, week_idx
    """


def duckdb_weekly_counts(spec: PanelSpec, silver_events: str, out: str, *, threads: int = 2) -> int:
    """Write the reference table to `out` (one Parquet file); returns its row count."""
    import duckdb

    with duckdb.connect(config={"threads": threads}) as con:
        con.execute(f"COPY ({weekly_counts_sql(spec, silver_events)}) TO '{out}' (FORMAT parquet)")
        return con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]


def spark_weekly_counts(spark, spec: PanelSpec, silver_events: str, out: str) -> int:
    from features.panel import weekly_counts

    weekly_counts(spark.read.parquet(silver_events), spec).write.mode("overwrite").parquet(out)
    return spark.read.parquet(out).count()


def same_rows(spark_out: str, duckdb_out: str) -> None:
    """Raise AssertionError unless both tables hold the same rows and values."""
    import pandas as pd

    keys = ["ix", "iy", "week_idx"]
    a = pd.read_parquet(spark_out).sort_values(keys).reset_index(drop=True)
    b = pd.read_parquet(duckdb_out)[list(a.columns)].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--json", help="write the result here as well")
    args = parser.parse_args()
    os.environ.setdefault("RISKRADAR_PSEUDONYM_KEY", "benchmark-key-not-a-secret-0123456789")

    from riskradar.config import load_settings
    from riskradar.lake import Lake
    from riskradar.spark import get_session

    settings = load_settings(args.config)
    lake = Lake(settings.lake_root)
    silver = str(lake.silver("events"))
    spark = get_session("bench-reference-panel", master=args.master, conf=settings.spark.conf)
    spec = PanelSpec.from_settings(settings, [])  # area indicators play no part in the counts
    work = Path(tempfile.mkdtemp(prefix="rr-reference-"))
    spark.read.parquet(silver).limit(1).collect()  # session warm, as in a job

    start = time.perf_counter()
    rows = spark_weekly_counts(spark, spec, silver, str(work / "spark"))
    spark_s = time.perf_counter() - start
    start = time.perf_counter()
    duck_rows = duckdb_weekly_counts(spec, silver, str(work / "duckdb.parquet"), threads=args.threads)
    duck_s = time.perf_counter() - start
    same_rows(str(work / "spark"), str(work / "duckdb.parquet"))
    result = {
        "rows": rows,
        "spark_s": round(spark_s, 2),
        "duckdb_s": round(duck_s, 2),
        "ratio_spark_duckdb": round(spark_s / duck_s, 2),
        "equal": rows == duck_rows,
    }
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
