"""Exploration on the six-year backtest's frames: model variants tried before one becomes an experiment.

    .venv/bin/python benchmarks/six_years_lab.py extract --work /tmp/six_years --target burglary
    .venv/bin/python benchmarks/six_years_lab.py variants --work /tmp/six_years --target burglary \
        --offset ewma_hl52 --offset kde_b150_w52

`extract` loads the backtest frames of a target from the lake of benchmarks/six_years.py (as
`riskradar train` does) into <work>/lab/<target>.pkl. `variants` backtests, on those frames and
untuned (one fit per 13 weeks, at most 156 weeks of history, the committed hyperparameters):
the boosted trees on the counts, the same trees on the ratio to each `--offset` map
(models.estimators.Offset), the average of the first with each of the others, and each of
these smoothed over the neighbouring cells (w x the forecast + (1 - w) x its Gaussian average
over the study cells around, sigma 1 or 2 cells); it prints PAI@1/3/5 % and the paired gains
over the best baseline. Exploration only: a variant that holds goes into an experiment YAML and
through benchmarks/six_years.py, the benchmark of record.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COVERAGES = ("pai_1", "pai_3", "pai_5")
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


def variants(work: Path, target: str, offsets: list[str]) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from models.backtest import Fitting, compare_paired, run_baseline, run_candidate, score_predictions
    from models.estimators import Offset
    from models.gate import best_of

    with (work / "lab" / f"{target}.pkl").open("rb") as f:
        saved = pickle.load(f)
    frames, baselines = saved["frames"], saved["baselines"]
    base = [run_baseline(n, b, frames.evaluate, frames.label) for n, b in baselines.items()]
    best = best_of(base, "baseline", "pai_3")
    models = {"counts": HistGradientBoostingRegressor(loss="poisson", **PARAMS)}
    for name in offsets:
        counts = HistGradientBoostingRegressor(loss="poisson", **PARAMS)
        models[f"ratio_{name}"] = Offset(counts, name, 0.05, baselines[name])
    fitting = Fitting(refit_every=13, max_history=156)
    predictions = {}
    for name, model in models.items():
        predictions[name] = run_candidate(name, model, frames, fitting).result.predictions
        print(f"{target}: {name} backtested", flush=True)
    for name in offsets:
        mix = predictions["counts"].copy()
        mix["mu"] = (mix["mu"].to_numpy() + predictions[f"ratio_{name}"]["mu"].to_numpy()) / 2
        predictions[f"mean_counts_ratio_{name}"] = mix
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["extract", "variants"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/six_years"))
    parser.add_argument("--target", required=True)
    parser.add_argument(
        "--offset", action="append", default=[], help="a baseline whose map a ratio model uses"
    )
    args = parser.parse_args()
    if args.step == "extract":
        extract(args.work, args.target)
    else:
        variants(args.work, args.target, args.offset)


if __name__ == "__main__":
    main()
