"""Benchmark: the pipeline from landing to scores on a synthetic city of N events.

    .venv/bin/python benchmarks/scale.py --events 1000000 [--work /tmp/rr-scale] [--keep]
    .venv/bin/python benchmarks/scale.py --table          # the markdown table of all results

Writes the city with `riskradar synth` (timed, but not part of the pipeline), then runs each
stage as its own process, as Airflow runs them: ingest, validate, build-features, train, score.
Per stage: wall time and peak resident memory of the process tree (the Python driver plus its
Spark JVM; `benchmarks/memory.py`). Then the weekly count panel is built from the same silver
Parquet by Spark and by DuckDB (`benchmarks/reference_panel.py`), checked equal, and timed.

Training runs one target (all_incidents) with an 8-week backtest: its cost follows the panel
(cells x weeks, fixed for the city), not the number of events, and the full 26-week backtest
of three targets is measured on the real data in benchmarks/README.md.
Results: benchmarks/results/scale_<events>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.memory import run_measured  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGET = "all_incidents"
STAGES = {
    "ingest": ["ingest", "--all"],
    "validate": ["validate", "--all"],
    "build_features": ["build-features"],
    "train": ["train", "--target", TARGET],
    "score": ["score", "--target", TARGET],
}


def bench_config(city: Path) -> Path:
    """The city's config with the benchmark's training settings."""
    data = yaml.safe_load((city / "riskradar.yaml").read_text())
    data["training"]["backtest_weeks"] = 8
    # Everything else is the committed config (conf/riskradar.yaml): 8 shuffle partitions, a
    # 4 GB heap, Arrow, training.max_train_rows 1M (a bigger sample is thinned to it).
    # Event logs for benchmarks/spark_profile.py (the city's key is a benchmark key; see there).
    events = city / "eventlog"
    events.mkdir(exist_ok=True)
    data["spark"]["conf"].update({"spark.eventLog.enabled": "true", "spark.eventLog.dir": events.as_uri()})
    path = city / "riskradar-bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(events: int, work: Path, keep: bool, resume_from: str | None = None) -> dict:
    """Run every stage; the result file is rewritten after each, so a cut-short run keeps what
    it measured (with `"complete": false`). `resume_from` reruns from that stage on the kept
    city and lake, keeping the stages measured before it."""
    python = sys.executable
    city = work / f"synth_{events}"
    logs = city / "logs"
    out = RESULTS / f"scale_{events}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "events": events,
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "complete": False,
        "stages": {},
    }
    names = ["synth", *STAGES]
    if resume_from:
        kept = json.loads(out.read_text())
        result["stages"] = {n: kept["stages"][n] for n in names[: names.index(resume_from)]}
        result.update({k: kept[k] for k in ("rows", "reference_panel") if k in kept})
        result["resumed_from"] = resume_from
        if resume_from == "ingest":
            # The whole lake again from the kept partner files (ingest skips files it has seen).
            shutil.rmtree(city / "lake", ignore_errors=True)
            shutil.rmtree(city / "eventlog", ignore_errors=True)
        elif names.index(resume_from) <= names.index("train"):
            # A first training, as in a full run: no champion whose recipe the gate would re-run.
            shutil.rmtree(city / "lake" / "mlflow", ignore_errors=True)
    else:
        if city.exists():
            shutil.rmtree(city)
        logs.mkdir(parents=True)

    def measure(name: str, argv: list[str]) -> None:
        wall, peak = run_measured(argv, logs / f"{name}.log", cwd=ROOT)
        result["stages"][name] = {"wall_s": round(wall, 1), "peak_gib": round(peak, 2)}
        pipeline = [v for k, v in result["stages"].items() if k in STAGES]
        result["pipeline_s"] = round(sum(v["wall_s"] for v in pipeline), 1)
        result["pipeline_peak_gib"] = max((v["peak_gib"] for v in pipeline), default=0.0)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"scale {events:,}: {name} {wall:.1f} s, peak {peak:.2f} GiB", flush=True)

    if not resume_from:
        measure(
            "synth", [python, "-m", "riskradar.cli", "synth", "--events", str(events), "--out", str(city)]
        )
    config = bench_config(city)
    for name, argv in STAGES.items():
        if name not in names[names.index(resume_from or "synth") :]:
            continue
        measure(name, [python, "-m", "riskradar.cli", *argv, "--config", str(config)])
        if name == "validate":
            result["rows"] = validated_rows(city)
            result["reference_panel"] = reference_panel(config, logs)
    result["complete"] = True
    out.write_text(json.dumps(result, indent=2) + "\n")
    if not keep:
        shutil.rmtree(city)
    return result


def reference_panel(config: Path, logs: Path) -> dict:
    """The count panel built by Spark and by DuckDB from the same silver (reference_panel.py)."""
    reference = logs / "reference.json"
    script = str(ROOT / "benchmarks" / "reference_panel.py")
    run_measured(
        [sys.executable, script, "--config", str(config), "--json", str(reference)],
        logs / "reference.log",
        cwd=ROOT,
    )
    return json.loads(reference.read_text())


def validated_rows(city: Path) -> dict[str, int]:
    """Rows delivered to validation, published and quarantined, from the audit log."""
    from riskradar.audit import read_audit
    from riskradar.lake import Lake

    out = {"delivered": 0, "published": 0, "quarantined": 0}
    for record in read_audit(Lake(city / "lake")):
        if record.get("job") == "validate" and record.get("status") == "succeeded":
            counts = record.get("counts", {})
            for key, name in (
                ("delivered", "rows_in"),
                ("published", "published"),
                ("quarantined", "quarantined"),
            ):
                out[key] += int(counts.get(name, 0))
    return out


def table() -> str:
    results = sorted(
        (json.loads(p.read_text()) for p in RESULTS.glob("scale_*.json")), key=lambda r: r["events"]
    )
    names = ["synth", *STAGES]
    lines = [
        "| events | "
        + " | ".join(f"{n} s (GiB)" for n in names)
        + " | pipeline s | peak GiB | panel Spark s | DuckDB s | Spark/DuckDB |",
        "|---" * (len(names) + 6) + "|",
    ]
    for r in results:
        st = r["stages"]
        cells = [f"{st[n]['wall_s']:.1f} ({st[n]['peak_gib']:.2f})" if n in st else "not run" for n in names]
        cells += [
            f"{r['pipeline_s']:.1f}" + ("" if r["complete"] else " (partial)"),
            f"{r['pipeline_peak_gib']:.2f}",
        ]
        ref = r.get("reference_panel")
        cells += (
            [f"{ref['spark_s']:.1f}", f"{ref['duckdb_s']:.1f}", f"{ref['ratio_spark_duckdb']:.1f}"]
            if ref
            else ["not run"] * 3
        )
        lines.append(f"| {r['events']:,} | " + " | ".join(cells) + " |")
    small = next((r for r in results if r["events"] == 1_000_000), None)
    large = next((r for r in results if r["events"] == 10_000_000), None)
    if small and large:
        both = [n for n in names if n in small["stages"] and n in large["stages"]]
        ratios = [f"{n} {large['stages'][n]['wall_s'] / small['stages'][n]['wall_s']:.1f}" for n in both]
        if "reference_panel" in small and "reference_panel" in large:
            ratio = large["reference_panel"]["spark_s"] / small["reference_panel"]["spark_s"]
            ratios.append(f"count panel (Spark) {ratio:.1f}")
        lines += ["", "Cost ratio 10M / 1M (wall time): " + ", ".join(ratios)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="repeatable: 1000000, 3000000, 10000000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rr-scale"))
    parser.add_argument("--keep", action="store_true", help="keep the city and its lake")
    parser.add_argument("--table", action="store_true", help="print the table of the stored results")
    parser.add_argument("--resume-from", choices=list(STAGES), help="rerun from this stage on a kept city")
    args = parser.parse_args()
    os.environ.setdefault("RISKRADAR_PSEUDONYM_KEY", "benchmark-key-not-a-secret-0123456789")
    for events in args.events or []:
        result = run(events, args.work, args.keep, args.resume_from)
        print(json.dumps(result, indent=2), flush=True)
    if args.table or not args.events:
        print(table())


if __name__ == "__main__":
    main()
