"""Benchmark: train every target on the bundled data, with the ablation and learning curve (issue 17).

    .venv/bin/python benchmarks/train_chicago.py --lake DIR [--target T ...] [--no-study] [--master local[2]]
        [--out benchmarks/results/train_chicago.json] [--config conf/riskradar.yaml]

Needs a lake where build-features has run with the config (by default conf/riskradar.yaml; e.g. the lake of
`benchmarks/features_chicago.py` or of `riskradar demo`). Runs `riskradar train --target T
--study` per target, one after the other, and times the training apart from the study (the
study's own step time, from the audit record, is subtracted). Writes
benchmarks/results/train_chicago.json (or --out) and prints, per target, the comparison (PAI@1/3/5%,
PEI*, deviance, paired gains over the best baseline at PAI@3%, the gate's, and at PAI@1/5%), the
ablation and the learning curve as markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _row(result, comparisons) -> dict:
    """A model's means and, for a candidate, its paired gains (the promotion metric's first)."""
    gains = {c.metric: c.gains.get(result.name) for c in comparisons}
    gain = gains[comparisons[0].metric]
    return {
        "name": result.name,
        "kind": result.kind,
        **{m: round(result.mean(m), 3) for m in ("pai_1", "pai_3", "pai_5", "pei_3", "deviance")},
        "paired_gain": None if gain is None else gain.text(),
        "gain_low": None if gain is None else gain.low,
        "paired_gains": {m: g.text() for m, g in gains.items() if g is not None},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="a lake with gold.features")
    parser.add_argument("--target", action="append", help="default: every configured target")
    parser.add_argument("--no-study", action="store_true", help="train only")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_chicago.json")
    parser.add_argument("--config", type=Path, default=ROOT / "conf" / "riskradar.yaml")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)  # before minutes of training, not after
    os.environ["RISKRADAR_LAKE"] = args.lake

    from jobs import train
    from models.study import records, study_table
    from reports.model_card import metric_label
    from riskradar.audit import read_audit
    from riskradar.config import load_settings
    from riskradar.lake import Lake
    from riskradar.spark import get_session

    settings = load_settings(args.config)
    assert settings.training is not None
    metric = settings.training.promotion_metric
    spark = get_session("bench", master=args.master, conf=settings.spark.conf)
    out = {
        "benchmark": "train_chicago",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "master": args.master,
        "config": str(args.config),
        "targets": {},
    }
    for target in args.target or list(settings.targets):
        study = [] if args.no_study else ["--study"]
        t0 = time.perf_counter()
        result = train.main(["--target", target, *study], settings=settings, spark=spark)[target]
        wall = time.perf_counter() - t0
        record = read_audit(Lake(settings.lake_root))[-1]
        study_s = record["timings"].get("study", 0.0)
        comparisons = [result["paired"], *result["paired_also"]]
        rows = [_row(r, comparisons) for r in result["results"].values()]
        rows.sort(key=lambda r: -r[metric])
        study_rows = result["study"]
        out["targets"][target] = {
            "train_s": round(wall - study_s, 1),
            "study_s": round(study_s, 1),
            "best_candidate": max((r for r in rows if r["kind"] == "candidate"), key=lambda r: r[metric])[
                "name"
            ],
            "best_baseline": result["paired"].baseline,
            "alias": result["alias"],
            "reason": result["reason"],
            "results": rows,
            "study": records(study_rows).to_dict(orient="records") if study_rows else [],
        }
        print(f"\n## {target}: train {wall - study_s:.0f} s, study {study_s:.0f} s, alias {result['alias']}")
        print(f"{result['reason']}\n")
        labels = [metric_label(c.metric) + ("%" if c.metric.startswith("pai_") else "") for c in comparisons]
        print(
            "| model | kind | PAI@1% | PAI@3% | PAI@5% | PEI*@3% | deviance |"
            + "".join(f" paired gain {label} |" for label in labels)
        )
        print("|---|---|---:|---:|---:|---:|---:|" + "---|" * len(comparisons))
        for r in rows[:8]:
            gains = "".join(f" {r['paired_gains'].get(c.metric, '')} |" for c in comparisons)
            print(
                f"| {r['name']} | {r['kind']} | {r['pai_1']:.2f} | {r['pai_3']:.2f} | {r['pai_5']:.2f} | "
                f"{r['pei_3']:.3f} | {r['deviance']:.4f} |{gains}"
            )
        if study_rows:
            print()
            print(study_table(study_rows, metric), flush=True)
        args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
