"""Exploration on the six-year backtest's frames: model variants tried before one becomes an experiment.

    .venv/bin/python benchmarks/six_years_lab.py extract --work /tmp/six_years --target robbery_assault
    .venv/bin/python benchmarks/six_years_lab.py variants --target robbery_assault --offset ewma_hl52 \
        [--max-history 156|all]
    .venv/bin/python benchmarks/six_years_lab.py score --target robbery_assault [--smooth]

`extract` loads the backtest frames of a target from the lake of benchmarks/six_years.py (as
`riskradar train` does) into <work>/lab/<target>.pkl. `variants` backtests, on those frames and
untuned (one fit per 13 weeks, at most `--max-history` weeks of history, default 156, the
committed hyperparameters), the boosted trees on the counts and the same trees on the ratio to
each `--offset` map (models.estimators.Offset), and keeps each one's predictions in
<work>/lab/preds/<target>/ (named `_h<weeks>` or `_hall` at another history than 156). `score`
scores every kept variant and the mean of every two of them (and with `--smooth` each smoothed
over the neighbouring cells: w x the forecast + (1 - w) x its Gaussian average over the study
cells around, sigma 1 or 2 cells), and prints PAI@1/3/5 % and the paired gains over the best
baseline as a markdown table. Exploration only: a variant that holds goes into an experiment
YAML and through benchmarks/six_years.py, the benchmark of record.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COVERAGES = ("pai_1", "pai_3", "pai_5")
DEFAULT_HISTORY = 156  # weeks, as conf/riskradar.yaml's training.max_history_weeks
PARAMS = {
    "max_iter": 200,
    "learning_rate": 0.08,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 50,
    "random_state": 42,
}


def extract(work: Path, target: str) -> None:
    os.environ["RISKRADAR_LAKE"] = str(work / "lake")
    from jobs.train import read_frames, target_baselines
    from riskradar.catalog import label_column, read_panel
    from riskradar.config import load_settings
    from riskradar.lake import Lake
    from riskradar.spark import get_session

    settings = load_settings(work / "riskradar.yaml")
    spark = get_session("lab", master="local[2]", conf=settings.spark.conf)
    panel = read_panel(spark, Lake(settings.lake_root))
    label = label_column(target, 1)
    baselines = target_baselines(settings, target, panel.columns)
    frames, _ = read_frames(spark, settings, panel, target, label, 1, baselines=baselines)
    (work / "lab").mkdir(exist_ok=True)
    with (work / "lab" / f"{target}.pkl").open("wb") as out:
        pickle.dump({"frames": frames, "baselines": baselines}, out, protocol=5)


def smoothed(predictions, sigma: float, weight: float):
    """w x mu + (1 - w) x the Gaussian average of mu over the study cells around, week by week."""
    from scipy.ndimage import gaussian_filter

    from features.grid import cell_indices

    ix, iy = (np.asarray(v) for v in cell_indices(predictions["cell_id"]))
    ix, iy = ix - ix.min(), iy - iy.min()
    mask = np.zeros((ix.max() + 1, iy.max() + 1))
    mask[ix, iy] = 1.0
    norm = np.maximum(gaussian_filter(mask, sigma, truncate=2.0), 1e-12)
    mu, out = predictions["mu"].to_numpy(), predictions.copy()
    new = np.empty_like(mu)
    for rows in predictions.groupby("week_idx").indices.values():
        grid = np.zeros(mask.shape)
        grid[ix[rows], iy[rows]] = mu[rows]
        around = gaussian_filter(grid, sigma, truncate=2.0) / norm
        new[rows] = weight * mu[rows] + (1 - weight) * around[ix[rows], iy[rows]]
    out["mu"] = new
    return out


def variants(work: Path, target: str, offsets: list[str], history: int | None) -> None:
    """Backtests the trees on the counts and on the ratio to each offset map, at a history cap;
    each variant's predictions are kept in <work>/lab/preds/<target>/ (one already there is
    not fitted again)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from models.backtest import Fitting, run_candidate
    from models.estimators import Offset

    frames, baselines = _load(work, target)
    suffix = "" if history == DEFAULT_HISTORY else f"_h{history or 'all'}"
    models = {f"counts{suffix}": HistGradientBoostingRegressor(loss="poisson", **PARAMS)}
    for name in offsets:
        counts = HistGradientBoostingRegressor(loss="poisson", **PARAMS)
        models[f"ratio_{name}{suffix}"] = Offset(counts, name, 0.05, baselines[name])
    folder = work / "lab" / "preds" / target
    folder.mkdir(parents=True, exist_ok=True)
    fitting = Fitting(refit_every=13, max_history=history)
    for name, model in models.items():
        if (folder / f"{name}.pkl").exists():
            continue
        predictions = run_candidate(name, model, frames, fitting).result.predictions
        predictions.to_pickle(folder / f"{name}.pkl")
        print(f"{target}: {name} backtested", flush=True)


def score(work: Path, target: str, smooth: bool) -> None:
    """Every kept variant, the mean of every two (and, with `smooth`, each smoothed over the
    neighbouring cells), scored against the baselines: PAI@1/3/5 % and paired gains over the
    best baseline, as a markdown table."""
    import pandas as pd

    from models.backtest import compare_paired, run_baseline, score_predictions
    from models.gate import best_of

    frames, baselines = _load(work, target)
    base = [run_baseline(n, b, frames.evaluate, frames.label) for n, b in baselines.items()]
    best = best_of(base, "baseline", "pai_3")
    folder = work / "lab" / "preds" / target
    predictions = {p.stem: pd.read_pickle(p) for p in sorted(folder.glob("*.pkl"))}
    for a, b in itertools.combinations(list(predictions), 2):
        mix = predictions[a].copy()
        mix["mu"] = (mix["mu"].to_numpy() + predictions[b]["mu"].to_numpy()) / 2
        predictions[f"mean({a}, {b})"] = mix
    if smooth:
        for name, p in list(predictions.items()):
            for sigma, weight in ((1.0, 0.7), (1.0, 0.5), (2.0, 0.7)):
                predictions[f"{name}_smoothed_s{sigma:g}_w{weight:g}"] = smoothed(p, sigma, weight)
    results = [score_predictions(n, "candidate", p) for n, p in predictions.items()]
    gains = {m: compare_paired(base + results, best, m, block=13).gains for m in COVERAGES}
    print(f"\n{target}, best baseline {best.name}: " + " / ".join(f"{best.mean(m):.2f}" for m in COVERAGES))
    print("| variant | PAI@1 / 3 / 5 % | gain @1 % | gain @3 % | gain @5 % |\n|---|---|---|---|---|")
    for r in results:
        row = " | ".join(gains[m][r.name].text().rsplit(",", 1)[0] for m in COVERAGES)
        print(f"| {r.name} | " + " / ".join(f"{r.mean(m):.2f}" for m in COVERAGES) + f" | {row} |")


def _load(work: Path, target: str):
    with (work / "lab" / f"{target}.pkl").open("rb") as f:
        saved = pickle.load(f)
    return saved["frames"], saved["baselines"]


def _history(text: str) -> int | None:
    return None if text == "all" else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["extract", "variants", "score"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/six_years"))
    parser.add_argument("--target", required=True)
    parser.add_argument(
        "--offset", action="append", default=[], help="a baseline whose map a ratio model uses"
    )
    parser.add_argument(
        "--max-history", type=_history, default=DEFAULT_HISTORY, help="weeks each fit learns from, or all"
    )
    parser.add_argument("--smooth", action="store_true", help="score each variant smoothed too")
    args = parser.parse_args()
    if args.step == "extract":
        extract(args.work, args.target)
    elif args.step == "variants":
        variants(args.work, args.target, args.offset, args.max_history)
    else:
        score(args.work, args.target, args.smooth)


if __name__ == "__main__":
    main()
