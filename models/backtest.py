"""Rolling-origin backtest: for each of the last weeks, fit only on weeks before it.

Pure pandas / NumPy / scikit-learn. `train` holds the (sampled) training rows with a
`sample_weight` column; `evaluate` holds every study cell of the backtest weeks, as a pandas
frame or as `EvaluationRows` read a few weeks at a time. The refit cadence bounds the cost: a
fit at origin w predicts weeks w .. w + refit_every - 1, and reads only those weeks' rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.base import RegressorMixin, clone

from models.estimators import fit_weighted, inputs_of
from models.metrics import COVERAGES, Interval, PairedInterval, bootstrap_mean, paired_gain, week_metrics
from models.tuning import Choice, known_rows, tune, validation_span
from riskradar.config import TuningConfig

Baseline = Callable[[pd.DataFrame], np.ndarray]
BLEND_SUFFIX = "_blend"


@dataclass
class BacktestResult:
    name: str
    kind: str  # "candidate" | "baseline"
    weekly: pd.DataFrame  # one row per backtest week, one column per metric
    predictions: pd.DataFrame  # cell_id, week_idx, y, mu
    summary: dict[str, Interval] = field(default_factory=dict)
    importances: pd.DataFrame | None = None  # candidates: permutation importances of the last fit

    def mean(self, metric: str) -> float:
        return self.summary[metric].mean


def _summarise(weekly: pd.DataFrame) -> dict[str, Interval]:
    return {m: bootstrap_mean(weekly[m].to_numpy()) for m in weekly.columns if m not in ("week_idx",)}


def score_predictions(
    name: str, kind: str, predictions: pd.DataFrame, coverages: tuple[float, ...] = COVERAGES
) -> BacktestResult:
    """The result of forecasts `predictions` (cell_id, week_idx, y, mu): every week's metrics
    and their means with bootstrap intervals."""
    rows = []
    for week, group in predictions.groupby("week_idx", sort=True):
        rows.append(
            {"week_idx": week, **week_metrics(group["y"].to_numpy(), group["mu"].to_numpy(), coverages)}
        )
    weekly = pd.DataFrame(rows)
    return BacktestResult(name, kind, weekly, predictions, _summarise(weekly.drop(columns=["incidents"])))


def backtest_weeks(weeks: list[int], n: int) -> list[int]:
    return sorted(weeks)[-n:]


def run_baseline(
    name: str,
    baseline: Baseline,
    evaluate: pd.DataFrame,
    label: str,
    coverages: tuple[float, ...] = COVERAGES,
) -> BacktestResult:
    preds = evaluate[["cell_id", "week_idx"]].copy()
    preds["y"] = evaluate[label].to_numpy(dtype=float)
    preds["mu"] = baseline(evaluate)
    return score_predictions(name, "baseline", preds, coverages)


class EvaluationRows(Protocol):
    """Rows of every study cell of some weeks, kept out of the driver's memory and read a few
    weeks at a time (`riskradar.weekly_rows.WeeklyRows`). A read returns the rows of its weeks
    in the order the whole frame would hold them."""

    columns: list[str]

    def weeks(self) -> list[int]: ...

    def read(self, weeks: Iterable[int], columns: list[str] | None = None) -> pd.DataFrame: ...

    def head(self, n: int) -> pd.DataFrame: ...

    def __len__(self) -> int: ...


Rows = pd.DataFrame | EvaluationRows


def weeks_of(rows: Rows) -> list[int]:
    """The weeks `rows` hold, oldest first."""
    if isinstance(rows, pd.DataFrame):
        return sorted(int(w) for w in rows["week_idx"].unique())
    return rows.weeks()


def rows_of_weeks(rows: Rows, weeks: Iterable[int], columns: list[str] | None = None) -> pd.DataFrame:
    """`columns` (None: all) of the rows of `weeks`, in the order `rows` hold them."""
    if isinstance(rows, pd.DataFrame):
        picked = rows[rows["week_idx"].isin(list(weeks))]
        return picked if columns is None else picked[columns]
    return rows.read(weeks, columns)


@dataclass(frozen=True)
class Frames:
    """What a candidate's backtest reads: the (sampled, weighted) training rows, every study cell
    of the backtest weeks, the feature and label columns, the horizon and the backtest origins;
    `before`: every study cell of the weeks before the first origin that a tuning validates on
    (None without tuning). `evaluate` and `before` are pandas frames or `EvaluationRows`: the
    backtest asks them for a block of weeks at a time (`rows`, `cells`), and for a few columns
    of every backtest week (`backtest_columns`)."""

    train: pd.DataFrame
    evaluate: Rows
    features: list[str]
    label: str
    horizon: int
    origins: list[int]
    before: Rows | None = None

    def rows(self, weeks: Iterable[int]) -> pd.DataFrame:
        """Every column of the backtest rows of `weeks`."""
        return rows_of_weeks(self.evaluate, weeks)

    def cells(self, first: int, last: int) -> pd.DataFrame:
        """Every study cell of weeks `first` .. `last` that is loaded (`before`, then the
        backtest weeks): only those rows are read."""
        held = [f for f in (self.before, self.evaluate) if f is not None]
        return pd.concat([rows_of_weeks(f, range(first, last + 1)) for f in held], ignore_index=True)

    def backtest_columns(self, columns: list[str]) -> pd.DataFrame:
        """`columns` (those the rows have) of every backtest row: the reads of every week read
        only a few columns (a baseline's ids, label and map; the cells' areas)."""
        kept = [c for c in dict.fromkeys(columns) if c in self.evaluate.columns]
        if isinstance(self.evaluate, pd.DataFrame):
            return self.evaluate[kept]
        return self.evaluate.read(self.evaluate.weeks(), kept)

    def last_week(self) -> int:
        """The newest backtest week held."""
        return weeks_of(self.evaluate)[-1]


@dataclass(frozen=True)
class Fitting:
    """How each fit of a backtest is made: refit cadence, history cap, tuning (None: the
    candidate as configured), the baselines a blend may use, the metric tuning maximises and
    the seed of the permutation importances."""

    refit_every: int
    max_history: int | None = None
    tuning: TuningConfig | None = None
    baselines: Mapping[str, Baseline] = field(default_factory=dict)
    metric: str = "pai_3"
    seed: int = 0

    def blends(self) -> bool:
        return self.tuning is not None and self.tuning.blend_weights is not None


def blend_name(name: str) -> str:
    """The blend of candidate `name` with the best-blending baseline."""
    return f"{name}{BLEND_SUFFIX}"


def is_blend(name: str) -> bool:
    return name.endswith(BLEND_SUFFIX)


def recipe_of(name: str) -> str:
    """The candidate whose recipe (estimator, parameters) a result `name` uses: a blend's model's."""
    return name.removesuffix(BLEND_SUFFIX)


@dataclass
class CandidateRun:
    """A candidate's backtest: its result, its blend's (None without), the tuning choices, and
    the last fit with its choice (for the permutation importances)."""

    result: BacktestResult
    blend: BacktestResult | None
    choices: list[Choice]
    model: RegressorMixin


def run_candidate(
    name: str,
    estimator: RegressorMixin,
    frames: Frames,
    fitting: Fitting,
    *,
    coverages: tuple[float, ...] = COVERAGES,
    on_fit: Callable[[], None] | None = None,
) -> CandidateRun:
    """Refit every `fitting.refit_every` weeks on rows whose label was known at the origin (and
    within the history cap), tuned on the fit's own past when `fitting.tuning` is set; `on_fit`
    is called after each fit, tuning fits included (progress)."""
    parts, blended, choices = [], [], []
    model, choice = None, None
    train, label, horizon = frames.train, frames.label, frames.horizon
    for start in range(0, len(frames.origins), fitting.refit_every):
        block = frames.origins[start : start + fitting.refit_every]
        origin = block[0]
        if fitting.tuning is not None and (
            choice is None or origin - choice.origin >= fitting.tuning.every_weeks
        ):
            choice = tune_at(estimator, frames, fitting, origin, on_fit)
            choices.append(choice)
        known = known_rows(train, label, horizon, origin, fitting.max_history)
        if not known.any():
            raise ValueError(f"no training rows before week {origin}: the backtest starts too early")
        params = choice.params if choice is not None else {}
        model = fit_weighted(
            clone(estimator).set_params(**params),
            train,
            frames.features,
            label=label,
            weight="sample_weight",
            rows=known,
        )
        if on_fit is not None:
            on_fit()
        # The block's rows live only inside this call: the next block is read after they are gone.
        part, mix = predict_block(model, frames.rows(block), frames, fitting, choice)
        parts.append(part)
        if mix is not None:
            blended.append(mix)
    assert model is not None
    result = score_predictions(name, "candidate", pd.concat(parts, ignore_index=True), coverages)
    blend = None
    if blended:
        blend = score_predictions(
            blend_name(name), "candidate", pd.concat(blended, ignore_index=True), coverages
        )
    return CandidateRun(result, blend, choices, model)


def predict_block(
    model: RegressorMixin, rows: pd.DataFrame, frames: Frames, fitting: Fitting, choice: Choice | None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The predictions (cell_id, week_idx, y, mu) of `model` for `rows`, and with blends those
    of the blend `choice` made (None without)."""
    part = rows[["cell_id", "week_idx"]].copy()
    part["y"] = rows[frames.label].to_numpy(dtype=float)
    part["mu"] = model.predict(rows[inputs_of(model, frames.features)])
    if not fitting.blends():
        return part, None
    assert choice is not None
    mix = part.copy()
    if choice.baseline is not None:
        base = np.asarray(fitting.baselines[choice.baseline](rows), dtype=float)
        mix["mu"] = choice.weight * part["mu"].to_numpy() + (1.0 - choice.weight) * base
    return part, mix


def tune_at(
    estimator: RegressorMixin,
    frames: Frames,
    fitting: Fitting,
    origin: int,
    on_fit: Callable[[], None] | None = None,
) -> Choice:
    """`models.tuning.tune` at `origin` on the frames' cells and training rows."""
    assert fitting.tuning is not None
    return tune(
        estimator,
        frames.train,
        frames.cells(*validation_span(origin, frames.horizon, fitting.tuning)),
        features=frames.features,
        label=frames.label,
        horizon=frames.horizon,
        origin=origin,
        tuning=fitting.tuning,
        baselines=fitting.baselines,
        metric=fitting.metric,
        max_history=fitting.max_history,
        on_fit=on_fit,
    )


def fits_per_backtest(origins: list[int], refit_every: int, tuning: TuningConfig | None = None) -> int:
    """How many fits one candidate's backtest makes: one per block of `refit_every` origins, and
    with tuning one per grid point at each tuning."""
    fits = math.ceil(len(origins) / refit_every)
    if tuning is None:
        return fits
    tunings, last = 0, None
    for start in range(0, len(origins), refit_every):
        if last is None or origins[start] - last >= tuning.every_weeks:
            tunings, last = tunings + 1, origins[start]
    return fits + tunings * len(tuning.grid)


def backtest_candidate(
    name: str,
    estimator: RegressorMixin,
    frames: Frames,
    fitting: Fitting,
    *,
    on_fit: Callable[[], None] | None = None,
) -> CandidateRun:
    """`run_candidate` on `frames`, with the permutation importances of the last fit on the
    weeks it predicted (on the candidate's result and its blend's)."""
    run = run_candidate(name, estimator, frames, fitting, on_fit=on_fit)
    first = frames.origins[-1] - fitting.refit_every + 1
    last_block = [w for w in weeks_of(frames.evaluate) if w >= first]
    importances = permutation_importances(
        run.model, frames.rows(last_block), frames.features, frames.label, seed=fitting.seed
    )
    run.result.importances = importances
    if run.blend is not None:
        run.blend.importances = importances
    return run


def paired_weekly(candidate: BacktestResult, baseline: BacktestResult, metric: str) -> pd.DataFrame:
    """One row per backtest week of either: week, candidate, baseline (their `metric` that
    week) and difference (candidate - baseline; NaN where either is undefined)."""
    a = candidate.weekly[["week_idx", metric]].rename(columns={"week_idx": "week", metric: "candidate"})
    b = baseline.weekly[["week_idx", metric]].rename(columns={"week_idx": "week", metric: "baseline"})
    table = a.merge(b, on="week", how="outer", validate="one_to_one").sort_values("week", ignore_index=True)
    table["difference"] = table["candidate"] - table["baseline"]
    return table


@dataclass(frozen=True)
class PairedComparison:
    """Every candidate against one baseline (the best, which the gate compares with), week by
    week on `metric`: the weekly table and the paired gain of each candidate, by name, from a
    circular block bootstrap with runs of `block` weeks, `n_boot` resamples and `seed`."""

    baseline: str
    metric: str
    block: int
    n_boot: int
    seed: int
    weekly: dict[str, pd.DataFrame]
    gains: dict[str, PairedInterval]


def compare_paired(
    results: list[BacktestResult],
    baseline: BacktestResult,
    metric: str,
    *,
    block: int,
    n_boot: int = 5000,
    seed: int = 0,
) -> PairedComparison:
    """The paired gain of each candidate in `results` over `baseline` on `metric`."""
    weekly = {r.name: paired_weekly(r, baseline, metric) for r in results if r.kind == "candidate"}
    gains = {
        name: paired_gain(
            table["candidate"].to_numpy(), table["baseline"].to_numpy(), block=block, n_boot=n_boot, seed=seed
        )
        for name, table in weekly.items()
    }
    return PairedComparison(baseline.name, metric, block, n_boot, seed, weekly, gains)


def pai_curve(predictions: pd.DataFrame, coverages: np.ndarray) -> np.ndarray:
    """Mean PAI over weeks at each coverage (for the PAI-vs-coverage plot)."""
    from models.metrics import pai_at

    weeks = [
        pai_at(g["y"].to_numpy(), g["mu"].to_numpy(), coverages) for _, g in predictions.groupby("week_idx")
    ]
    values = np.asarray(weeks, dtype=float).reshape(len(weeks), len(coverages))
    return np.asarray(
        [np.nanmean(col) if np.any(~np.isnan(col)) else np.nan for col in values.T], dtype=float
    )


def exposure_table(predictions: pd.DataFrame, strata: pd.DataFrame, coverage: float) -> pd.DataFrame:
    """Per area stratum: share of flagged cell-weeks vs share of area, of incidents and, when
    `strata` has a `population` column, of population.

    `strata`: cell_id, stratum[, population]. Flagged = each week's top `coverage` of cells.
    """
    from models.metrics import flagged_count

    flagged = [
        g.nlargest(flagged_count(len(g), coverage), "mu", keep="first")["cell_id"]
        for _, g in predictions.groupby("week_idx")
    ]
    flags = pd.concat(flagged).value_counts().rename("flagged")
    incidents = predictions.groupby("cell_id")["y"].sum().rename("incidents")
    table = (
        strata.set_index("cell_id")
        .join(flags, how="left")
        .join(incidents, how="left")
        .fillna({"flagged": 0, "incidents": 0})
    )
    sums = {"flagged": ("flagged", "sum"), "incidents": ("incidents", "sum"), "cells": ("stratum", "size")}
    if "population" in table:
        sums["population"] = ("population", "sum")
    agg = table.groupby("stratum").agg(**sums)
    for col in sums:
        total = agg[col].sum()
        agg[f"share_{col}"] = agg[col] / total if total else np.nan
    return agg.reset_index()


def permutation_importances(
    model: RegressorMixin,
    frame: pd.DataFrame,
    features: list[str],
    label: str,
    *,
    n_rows: int = 20_000,
    repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Increase in mean Poisson deviance when each feature is shuffled, on a sample of `frame`."""
    from sklearn.inspection import permutation_importance

    sample = frame.sample(n=min(n_rows, len(frame)), random_state=seed)
    features = inputs_of(model, features)
    found = permutation_importance(
        model,
        sample[features],
        sample[label].to_numpy(dtype=float),
        scoring="neg_mean_poisson_deviance",
        n_repeats=repeats,
        random_state=seed,
    )
    table = pd.DataFrame(
        {
            "feature": features,
            "importance_mean": found.importances_mean,
            "importance_std": found.importances_std,
        }
    )
    return table.sort_values("importance_mean", ascending=False, ignore_index=True)
