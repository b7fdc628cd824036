"""Exploration on the six-year backtest's frames: model variants tried before one becomes an experiment.

    .venv/bin/python benchmarks/six_years_lab.py extract --work /tmp/six_years --target robbery_assault
    .venv/bin/python benchmarks/six_years_lab.py variants --target robbery_assault --offset ewma_hl52 \
        [--max-history 156|all] [--stack] [--top-weight GAMMA ...]
    .venv/bin/python benchmarks/six_years_lab.py score --target robbery_assault [--smooth]
    .venv/bin/python benchmarks/six_years_lab.py headroom --target robbery_assault

`extract` loads the backtest frames of a target from the lake of benchmarks/six_years.py (as
`riskradar train` does) into <work>/lab/<target>.pkl. `variants` backtests, on those frames and
untuned (one fit per 13 weeks, at most `--max-history` weeks of history, default 156, the
committed hyperparameters), the boosted trees on the counts and the same trees on the ratio to
each `--offset` map (models.estimators.Offset), with `--stack` a Poisson GLM of the log maps
and with each `--top-weight` the trees leaning toward the first offset map's top cells, and
keeps each one's predictions in <work>/lab/preds/<target>/ (named `_h<weeks>` or `_hall` at
another history than 156). `score` scores every kept variant and the mean of every two of them
(and with `--smooth` each smoothed over the neighbouring cells: w x the forecast + (1 - w) x
its Gaussian average over the study cells around, sigma 1 or 2 cells), and prints PAI@1/3/5 %
and the paired gains over the best baseline as a markdown table. `headroom` says how far above
the best baseline any forecast could rank on those weeks. Exploration only: a variant that
holds goes into an experiment YAML and through benchmarks/six_years.py, the benchmark of record.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pickle
import sys
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

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


class MapStack(RegressorMixin, BaseEstimator):
    """A Poisson GLM of the count on the log of every history map's rate (plus a floor of 5 %
    of its mean): a learned geometric mix of the maps, the weights of each scale and window
    fitted, nothing else. Lab only."""

    def __init__(self, baselines: dict | None = None, alpha: float = 1e-4):
        self.baselines = baselines
        self.alpha = alpha

    def extra_inputs(self) -> list[str]:
        return [b.column for b in self.baselines.values()]

    def _logs(self, X):  # noqa: N803
        return np.column_stack([np.log(b.predict(X) + self.floors_[n]) for n, b in self.baselines.items()])

    def fit(self, X, y, sample_weight=None):  # noqa: N803
        from sklearn.linear_model import PoissonRegressor

        self.floors_ = {n: 0.05 * max(float(np.mean(b.predict(X))), 1e-9) for n, b in self.baselines.items()}
        self.glm_ = PoissonRegressor(alpha=self.alpha, max_iter=500).fit(
            self._logs(X), np.asarray(y, dtype=float), sample_weight=sample_weight
        )
        return self

    def predict(self, X):  # noqa: N803
        return self.glm_.predict(self._logs(X))


class TopWeighted(RegressorMixin, BaseEstimator):
    """The trees with each row's weight times (its map rate / the map's mean) ** gamma, at most
    10: the loss leans toward the cells the map already ranks high, where PAI's order is
    decided. Lab only."""

    def __init__(self, model=None, baseline=None, gamma: float = 0.5):
        self.model = model
        self.baseline = baseline
        self.gamma = gamma

    def extra_inputs(self) -> list[str]:
        return [self.baseline.column]

    def fit(self, X, y, sample_weight=None):  # noqa: N803
        from sklearn.base import clone

        rate = self.baseline.predict(X)
        emphasis = np.minimum((rate / max(float(rate.mean()), 1e-9)) ** self.gamma, 10.0)
        weight = (np.ones(len(rate)) if sample_weight is None else np.asarray(sample_weight)) * emphasis
        self.model_ = clone(self.model).fit(X, y, sample_weight=weight)
        return self

    def predict(self, X):  # noqa: N803
        return self.model_.predict(X)


def variants(
    work: Path,
    target: str,
    offsets: list[str],
    history: int | None,
    *,
    stack: bool = False,
    top_weights: list[float] = (),
) -> None:
    """Backtests the trees on the counts and on the ratio to each offset map, at a history cap
    (with `stack` the GLM of the maps, with each `top_weights` gamma the trees leaning toward
    the top of the first offset map); each variant's predictions are kept in
    <work>/lab/preds/<target>/ (one already there is not fitted again)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from models.backtest import Fitting, run_candidate
    from models.estimators import Offset

    frames, baselines = _load(work, target)
    suffix = "" if history == DEFAULT_HISTORY else f"_h{history or 'all'}"
    models = {f"counts{suffix}": HistGradientBoostingRegressor(loss="poisson", **PARAMS)}
    for name in offsets:
        counts = HistGradientBoostingRegressor(loss="poisson", **PARAMS)
        models[f"ratio_{name}{suffix}"] = Offset(counts, name, 0.05, baselines[name])
    if stack:
        models[f"stack{suffix}"] = MapStack(dict(baselines))
    for gamma in top_weights:
        counts = HistGradientBoostingRegressor(loss="poisson", **PARAMS)
        models[f"top_{offsets[0]}_g{gamma:g}{suffix}"] = TopWeighted(counts, baselines[offsets[0]], gamma)
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

    from models.backtest import compare_paired, score_predictions

    frames, baselines = _load(work, target)
    base, best = _baselines_scored(frames, baselines)
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


def headroom(work: Path, target: str, draws: int = 5) -> None:
    """How much better than the best baseline a forecast of the backtest weeks could rank, as a
    markdown table: the best baseline; an oracle map no forecast can have (each cell's mean count
    over the other backtest weeks); their half-half mix; and each of the best map and the mix
    taken as the true weekly rate (scaled to each week's total), scored on Poisson counts drawn
    from it (`draws` draws, seeded): the PAI a forecast that knew the rates exactly would get if
    the map were right. A map's spread over cells is its rates' plus its own noise, which
    overstates the reachable; rates that change from week to week, which a map cannot hold and a
    forecast might, would understate it. An estimate of the headroom, not a bound."""
    from models.backtest import score_predictions

    frames, baselines = _load(work, target)
    _, best = _baselines_scored(frames, baselines)
    p = best.predictions
    cells = p.groupby("cell_id")["y"]
    oracle = p.assign(mu=(cells.transform("sum") - p["y"]) / (cells.transform("count") - 1))
    mix = p.assign(mu=0.5 * oracle["mu"] / oracle["mu"].mean() + 0.5 * p["mu"] / p["mu"].mean())
    rows = {
        f"{best.name} (the best baseline)": best,
        "oracle: each cell's mean over the other backtest weeks": score_predictions("o", "candidate", oracle),
        f"half oracle, half {best.name}": score_predictions("m", "candidate", mix),
    }
    rng = np.random.default_rng(0)
    weekly_total = p.groupby("week_idx")["y"].transform("sum")
    for name, m in ((best.name, p["mu"]), (f"half oracle, half {best.name}", mix["mu"])):
        rate = (m * weekly_total / m.groupby(p["week_idx"]).transform("sum")).to_numpy()
        drawn = [
            score_predictions("d", "candidate", p.assign(mu=rate, y=rng.poisson(rate))) for _ in range(draws)
        ]
        rows[f"{name} as the true rate, on Poisson draws (mean of {draws})"] = drawn
    print(f"\n{target}\n| map | PAI@1 / 3 / 5 % |\n|---|---|")
    for name, r in rows.items():
        results = r if isinstance(r, list) else [r]
        means = [np.mean([x.mean(m) for x in results]) for m in COVERAGES]
        print(f"| {name} | " + " / ".join(f"{v:.2f}" for v in means) + " |")


def _baselines_scored(frames, baselines):
    """(every baseline's backtest result, the best of them on PAI@3 %)."""
    from models.backtest import run_baseline
    from models.gate import best_of

    base = [run_baseline(n, b, frames.evaluate, frames.label) for n, b in baselines.items()]
    return base, best_of(base, "baseline", "pai_3")


def _load(work: Path, target: str):
    with (work / "lab" / f"{target}.pkl").open("rb") as f:
        saved = pickle.load(f)
    return saved["frames"], saved["baselines"]


def _history(text: str) -> int | None:
    return None if text == "all" else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["extract", "variants", "score", "headroom"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/six_years"))
    parser.add_argument("--target", required=True)
    parser.add_argument(
        "--offset", action="append", default=[], help="a baseline whose map a ratio model uses"
    )
    parser.add_argument(
        "--max-history", type=_history, default=DEFAULT_HISTORY, help="weeks each fit learns from, or all"
    )
    parser.add_argument("--smooth", action="store_true", help="score each variant smoothed too")
    parser.add_argument("--stack", action="store_true", help="the Poisson GLM of the log maps too")
    parser.add_argument(
        "--top-weight", type=float, action="append", default=[], help="gamma of a top-weighted fit"
    )
    args = parser.parse_args()
    if args.top_weight and not args.offset:
        parser.error("--top-weight leans toward the first --offset map: name one")
    if args.step == "extract":
        extract(args.work, args.target)
    elif args.step == "variants":
        variants(
            args.work,
            args.target,
            args.offset,
            args.max_history,
            stack=args.stack,
            top_weights=args.top_weight,
        )
    elif args.step == "headroom":
        headroom(args.work, args.target)
    else:
        score(args.work, args.target, args.smooth)


if __name__ == "__main__":
    main()
