"""Benchmark: the pipeline on a synthetic country of N study cells, stage by stage, and its weekly run.

    .venv/bin/python benchmarks/country.py --cells 25000 [--months 36] [--work /tmp/rr-country] [--keep]
    .venv/bin/python benchmarks/country.py --table          # the markdown tables of all results

Writes the country with `riskradar synth-country` (timed, not part of the pipeline), then runs
each stage as its own process, as Airflow runs them: ingest, validate, build-features (the
full build: the lake has no panel yet), train (one target, all_incidents, with an 8-week
backtest, as benchmarks/scale.py), score and export. Then the WEEKLY RUN: the country's next
week of deliveries (`next_week/`: police, 311 and weather of the 7 days after the span) is
copied into landing, and ingest, validate, build-features (no flag: it rebuilds only the weeks
the new batches touch, and adds the new week to score), score and export run again.

Per stage: wall time, CPU time and peak resident memory of the process tree (the Python
driver, its Spark JVM and workers: `benchmarks/memory.py`), the rows in and out as the stage's
audit records give them, and the cost per cell-week: wall and CPU microseconds per study cell
and week the stage covers (every week of the panel for ingest, validate, build-features and
train of the full run; the weeks written for build-features of the weekly run; one week for
score, export and the weekly run's intake). The count panel is built from the same silver by
Spark and by DuckDB after validate (`benchmarks/reference_panel.py`), as scale.py does.
Results: benchmarks/results/country_<cells>.json (`--results` elsewhere), rewritten after each
stage, with `"complete": false` until the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.memory import measure  # noqa: E402
from benchmarks.results_file import code_commit  # noqa: E402
from benchmarks.scale import STAGES as CITY_STAGES  # noqa: E402
from benchmarks.scale import TARGET, bench_config, reference_panel, validated_rows  # noqa: E402
from riskradar.audit import read_audit  # noqa: E402
from riskradar.lake import Lake  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
# scale.py's stages (one target, as there) and the export of the scored week
STAGES = {**CITY_STAGES, "export": ["export", "--target", TARGET]}
WEEKLY = ["ingest", "validate", "build_features", "score", "export"]
# job -> (count of the rows it read, count of the rows it wrote), as its audit records name them
ROWS = {
    "ingest": ("rows_delivered", "rows_in"),
    "validate": ("rows_in", "published"),
    "build_features": (None, "rows"),
    "score": (None, "cells"),
}


class Run:
    """One benchmark run: the country's folder, its lake, the result so far and where it goes."""

    def __init__(self, cells: int, months: int, work: Path, results: Path):
        self.country = work / f"country_{cells}"
        self.logs = self.country / "logs"
        self.out = results / f"country_{cells}.json"
        self.result: dict = {
            "cells_asked": cells,
            "months": months,
            "date": datetime.now(UTC).date().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "commit": code_commit(),
            "complete": False,
            "stages": {},
            "weekly": {},
        }

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.result, indent=2) + "\n")

    def stage(self, part: str, name: str, argv: list[str]) -> dict:
        """Run a stage, measured; its audit records' rows; saved at once."""
        lake = Lake(self.country / "lake")
        seen = {r["run_id"] for r in read_audit(lake)}
        took = measure(argv, self.logs / f"{part}_{name}.log", cwd=ROOT)
        records = [r for r in read_audit(lake) if r["run_id"] not in seen]
        entry = {
            "wall_s": round(took.wall_s, 1),
            "cpu_s": round(took.cpu_s, 1),
            "peak_gib": round(took.peak_gib, 2),
            **stage_rows(name, records),
        }
        self.result[part][name] = entry
        self.save()
        print(
            f"country {self.country.name} {part}: {name} {took.wall_s:.1f} s, CPU {took.cpu_s:.1f} s, "
            f"peak {took.peak_gib:.2f} GiB",
            flush=True,
        )
        return {"entry": entry, "records": records}


def stage_rows(job: str, records: list[dict]) -> dict:
    """rows_in and rows_out of a stage from its audit records (null where the job does not count
    them); build-features' cells and weeks written too."""
    read, wrote = ROWS.get(job, (None, None))
    counts = [r.get("counts", {}) for r in records]
    out = {
        "rows_in": sum(int(c.get(read, 0)) for c in counts) if read else None,
        "rows_out": sum(int(c.get(wrote, 0)) for c in counts) if wrote else None,
    }
    if job == "validate":
        out["quarantined"] = sum(int(c.get("quarantined", 0)) for c in counts)
    if job == "build_features" and counts:
        out.update({k: counts[-1][k] for k in ("cells", "weeks_written")})
    return out


def run(cells: int, months: int, work: Path, keep: bool, results: Path) -> dict:
    """The full run and the weekly run; the result file is rewritten after each stage."""
    bench = Run(cells, months, work, results)
    if bench.country.exists():
        shutil.rmtree(bench.country)
    bench.logs.mkdir(parents=True)
    python = [sys.executable, "-m", "riskradar.cli"]
    synth = [
        *python,
        "synth-country",
        "--cells",
        str(cells),
        "--months",
        str(months),
        "--out",
        str(bench.country),
    ]
    took = measure(synth, bench.logs / "synth.log", cwd=ROOT)
    bench.result["synth"] = {
        "wall_s": round(took.wall_s, 1),
        "cpu_s": round(took.cpu_s, 1),
        "peak_gib": round(took.peak_gib, 2),
    }
    bench.result["study_cells"], bench.result["written"] = _printed_counts(bench.logs / "synth.log")
    config = bench_config(bench.country)
    for name, argv in STAGES.items():
        done = bench.stage("stages", name, [*python, *argv, "--config", str(config)])
        if name == "validate":
            bench.result["rows"] = validated_rows(bench.country)
            bench.result["reference_panel"] = reference_panel(config, bench.logs)
        if name == "build_features":
            bench.result["panel"] = {"cells": done["entry"]["cells"], "weeks": done["entry"]["weeks_written"]}
    _deliver_next_week(bench.country)
    for name in WEEKLY:
        bench.stage("weekly", name, [*python, *STAGES[name], "--config", str(config)])
    _add_costs(bench.result)
    bench.result["complete"] = True
    bench.save()
    if not keep:
        shutil.rmtree(bench.country)
    return bench.result


def _printed_counts(log: Path) -> tuple[int, dict[str, int]]:
    """The study cells and the rows per file set that synth-country printed
    ("synth-country: 25,012 study cells, ..." and "... police_crimes 1,234 rows, ...")."""
    text = log.read_text()
    cells = re.search(r"([\d,]+) study cells", text)
    if cells is None:
        raise SystemExit(f"{log}: synth-country printed no study cells")
    rows = {name: int(n.replace(",", "")) for name, n in re.findall(r"([a-z_0-9]+) ([\d,]+) rows", text)}
    return int(cells.group(1).replace(",", "")), rows


def _deliver_next_week(country: Path) -> None:
    """Copy next_week/<feed>/* into landing/<feed>/: one new week of deliveries."""
    for source in sorted((country / "next_week").rglob("*")):
        if source.is_file():
            target = country / "landing" / source.relative_to(country / "next_week")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _add_costs(result: dict) -> None:
    """Microseconds of wall and CPU time per cell-week each stage covers, and the runs' totals."""
    cells, weeks = result["panel"]["cells"], result["panel"]["weeks"]
    for part in ("stages", "weekly"):
        for name, entry in result[part].items():
            if part == "stages":
                covered = 1 if name in ("score", "export") else weeks
            else:
                covered = entry["weeks_written"] if name == "build_features" else 1
            entry["cell_weeks"] = cells * covered
            entry["wall_us_per_cell_week"] = round(1e6 * entry["wall_s"] / entry["cell_weeks"], 2)
            entry["cpu_us_per_cell_week"] = round(1e6 * entry["cpu_s"] / entry["cell_weeks"], 2)
        result[f"{part}_s"] = round(sum(e["wall_s"] for e in result[part].values()), 1)
        result[f"{part}_peak_gib"] = max(e["peak_gib"] for e in result[part].values())


def table(results: Path) -> str:
    """The README's tables: one row per size, then one per size, run and stage."""
    found = sorted(
        (json.loads(p.read_text()) for p in results.glob("country_*.json")), key=lambda r: r["cells_asked"]
    )
    lines = [
        "| study cells | weeks | police events/year | synth s | full run s | peak GiB | weekly run s | "
        "weekly peak GiB | count panel Spark s | DuckDB s | Spark/DuckDB |",
        "|---" * 11 + "|",
    ]
    for r in found:
        ref = r.get("reference_panel")
        per_year = r["written"]["police_crimes"] * 12 / r["months"]
        cells = [
            f"{_cells(r):,}",
            str(r["panel"]["weeks"]) if "panel" in r else "-",
            f"{per_year:,.0f}",
            f"{r['synth']['wall_s']:.1f}",
            *_total(r, "stages"),
            *_total(r, "weekly"),
            *(
                [f"{ref['spark_s']:.1f}", f"{ref['duckdb_s']:.1f}", f"{ref['ratio_spark_duckdb']:.1f}"]
                if ref
                else ["-"] * 3
            ),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| study cells | run | stage | wall s | CPU s | peak GiB | rows in | rows out | "
        "cell-weeks | wall µs/cell-week | CPU µs/cell-week |",
        "|---" * 11 + "|",
    ]
    for r in found:
        for part, label in (("stages", "full"), ("weekly", "weekly")):
            for name, e in r[part].items():
                row = [
                    f"{_cells(r):,}",
                    label,
                    name,
                    f"{e['wall_s']:.1f}",
                    f"{e['cpu_s']:.1f}",
                    f"{e['peak_gib']:.2f}",
                    _count(e.get("rows_in")),
                    _count(e.get("rows_out")),
                    _count(e.get("cell_weeks")),
                    _micro(e.get("wall_us_per_cell_week")),
                    _micro(e.get("cpu_us_per_cell_week")),
                ]
                lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _total(result: dict, part: str) -> list[str]:
    if f"{part}_s" not in result:
        return ["not run", "-"]
    partial = "" if result["complete"] else " (partial)"
    return [f"{result[f'{part}_s']:.1f}{partial}", f"{result[f'{part}_peak_gib']:.2f}"]


def _cells(result: dict) -> int:
    """The study cells: the panel's, else those synth-country printed, else those asked for."""
    return result.get("panel", {}).get("cells") or result.get("study_cells") or result["cells_asked"]


def _micro(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, action="append", help="repeatable: 25000, 100000, 250000")
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rr-country"))
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of country_<cells>.json")
    parser.add_argument("--keep", action="store_true", help="keep the country and its lake")
    parser.add_argument("--table", action="store_true", help="print the tables of the stored results")
    args = parser.parse_args()
    os.environ.setdefault("RISKRADAR_PSEUDONYM_KEY", "benchmark-key-not-a-secret-0123456789")
    for cells in args.cells or []:
        result = run(cells, args.months, args.work, args.keep, args.results)
        print(json.dumps(result, indent=2), flush=True)
    if args.table or not args.cells:
        print(table(args.results))


if __name__ == "__main__":
    main()
