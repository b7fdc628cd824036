"""Benchmark: the 52-week backtest of 2016 on six years of the police feed (issue 28).

    .venv/bin/python benchmarks/six_years.py --change "what this row measures" [--work /tmp/six_years]
        [--data ../shared/data/chicago_2011_2016] [--target T ...] [--study] [--from train]
        [--experiment benchmarks/experiments/X.yaml]

Every model or feature change is judged here first, then on the demo's two years: 26 test weeks
of one period can reward a choice that is worse elsewhere. The config is the committed
conf/riskradar.yaml with the overrides of benchmarks/six_years.yaml (the police feed alone, a
52-week backtest refitted every 13 weeks) and of each `--experiment` (a change tried before it is
committed to conf/riskradar.yaml), written to <work>/riskradar.yaml. Stages, each its
own process as Airflow runs them: ingest, validate, build-features (skipped with `--from train`
on a lake that has them), then every target's training (benchmarks/train_chicago.py; the
MLflow store is emptied first, so no earlier champion's recipe is backtested beside the
candidates and every row starts alike), with `--study` the ablation and learning curve too.

Writes benchmarks/results/six_years.json (the last run: the comparison per target) and appends
one row per target to benchmarks/results/six_years_regression.json (the change, the commit, the
best candidate and baseline, PAI@1/3/5 %, the paired gains at each coverage, the gate's alias,
the training time), and prints both as markdown for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.memory import run_measured  # noqa: E402
from benchmarks.results_file import RESULTS, code_commit, save_result  # noqa: E402

OVERRIDES = ROOT / "benchmarks" / "six_years.yaml"
STAGES = {
    "ingest": ["ingest", "--all"],
    "validate": ["validate", "--all"],
    "features": ["build-features"],
}
COVERAGES = ("pai_1", "pai_3", "pai_5")


def merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` laid over it, key by key into nested mappings."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and value and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def write_config(work: Path, data: Path, experiments: list[Path] = ()) -> Path:
    """<work>/riskradar.yaml: the committed config, the overrides, then each experiment's
    (whose `training.candidates`, if it has them, replace the committed ones), absolute paths."""
    conf = ROOT / "conf"
    config = merged(
        yaml.safe_load((conf / "riskradar.yaml").read_text()), yaml.safe_load(OVERRIDES.read_text())
    )
    for path in experiments:
        experiment = yaml.safe_load(path.read_text())
        candidates = experiment.get("training", {}).pop("candidates", None)
        config = merged(config, experiment)
        if candidates is not None:
            config["training"]["candidates"] = candidates
    config["partners"]["landing_root"] = str(data.resolve())
    config["partners"]["contracts_dir"] = str((conf / config["partners"]["contracts_dir"]).resolve())
    config["expectations_dir"] = str((conf / config["expectations_dir"]).resolve())
    config["lake"]["root"] = str(work / "lake")
    path = work / "riskradar.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def regression_rows(change: str, trained: dict, at: str, code: str) -> list[dict]:
    """One row per target: what the gate chose, against the best baseline, at each coverage."""
    rows = []
    for target, t in trained["targets"].items():
        by_name = {r["name"]: r for r in t["results"]}
        best, base = by_name[t["best_candidate"]], by_name[t["best_baseline"]]
        rows.append(
            {
                "change": change,
                "commit": code,
                "at": at,
                "target": target,
                "alias": t["alias"],
                "best_candidate": best["name"],
                "best_baseline": base["name"],
                **{f"{m}": best[m] for m in COVERAGES},
                **{f"baseline_{m}": base[m] for m in COVERAGES},
                "gains": best["paired_gains"],
                "train_s": t["train_s"],
            }
        )
    return rows


def regression_table(rows: list[dict]) -> str:
    """The regression table as markdown, one row per change and target."""
    lines = [
        "| change | commit | target | best candidate | PAI@1/3/5 % | best baseline | PAI@1/3/5 % "
        "| gain @1 % | gain @3 % | gain @5 % | alias | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---:|",
    ]
    for r in rows:
        gains = [r["gains"].get(m, "") for m in COVERAGES]
        lines.append(
            f"| {r['change']} | {r['commit']} | {r['target']} | {r['best_candidate']} | "
            + "/".join(f"{r[m]:.2f}" for m in COVERAGES)
            + f" | {r['best_baseline']} | "
            + "/".join(f"{r['baseline_' + m]:.2f}" for m in COVERAGES)
            + " | "
            + " | ".join(gains)
            + f" | {r['alias']} | {r['train_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--change", required=True, help="what this row of the regression table measures")
    parser.add_argument("--work", type=Path, default=Path("/tmp/six_years"))
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "chicago_2011_2016")
    parser.add_argument("--target", action="append", help="default: every configured target")
    parser.add_argument("--study", action="store_true", help="the ablation and learning curve too")
    parser.add_argument("--from", dest="start", choices=[*STAGES, "train"], default="ingest")
    parser.add_argument(
        "--experiment",
        type=Path,
        action="append",
        default=[],
        help="a YAML laid over the config (a change tried)",
    )
    args = parser.parse_args()
    work = args.work.resolve()
    if args.start == "ingest" and work.exists():
        shutil.rmtree(work)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    config = write_config(work, args.data, args.experiment)
    key = work / "pseudonym.key"  # a benchmark's own key, made once per work folder
    if not key.exists():
        key.write_text(secrets.token_hex(32))
        key.chmod(0o600)
    os.environ["RISKRADAR_PSEUDONYM_KEY"] = key.read_text()
    python = sys.executable
    at, code = datetime.now(UTC).isoformat(timespec="seconds"), code_commit()  # the code the run starts with
    stages = {}
    names = [*STAGES, "train"]
    for name in names[names.index(args.start) :]:
        if name == "train":
            continue
        argv = [python, "-m", "riskradar.cli", *STAGES[name], "--config", str(config)]
        wall, peak = run_measured(argv, work / "logs" / f"{name}.log", cwd=ROOT)
        stages[name] = {"wall_s": round(wall, 1), "peak_gib": round(peak, 2)}
        print(f"six years: {name} {wall:.0f} s, peak {peak:.2f} GiB", flush=True)
    shutil.rmtree(work / "lake" / "mlflow", ignore_errors=True)
    trained_json = work / "train.json"
    argv = [python, str(ROOT / "benchmarks" / "train_chicago.py"), "--config", str(config)]
    argv += ["--lake", str(work / "lake"), "--out", str(trained_json)]
    argv += [] if args.study else ["--no-study"]
    for target in args.target or []:
        argv += ["--target", target]
    wall, peak = run_measured(argv, work / "logs" / "train.log", cwd=ROOT)
    stages["train"] = {"wall_s": round(wall, 1), "peak_gib": round(peak, 2)}
    trained = json.loads(trained_json.read_text())
    result = {
        "benchmark": "six_years",
        "change": args.change,
        "commit": code,
        "at": at,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "stages": stages,
        **{k: trained[k] for k in ("master", "targets")},
    }
    save_result("six_years", result, show=False)
    history = RESULTS / "six_years_regression.json"
    rows = json.loads(history.read_text()) if history.exists() else []
    rows += regression_rows(args.change, trained, at, code)
    history.write_text(json.dumps(rows, indent=2) + "\n")
    print((work / "logs" / "train.log").read_text().split("\n## ", 1)[-1])
    print(regression_table(rows))


if __name__ == "__main__":
    main()
