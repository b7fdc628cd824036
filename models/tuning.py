"""Choices made inside one backtest fit, on a time split of that fit's own past.

At origin t the fit may learn from the weeks whose labels are known at t. The tuning holds out
the last `validation_weeks` of them: a fit on the weeks before predicts them, every study cell,
and the mean promotion metric over those weeks picks the hyperparameters (one point of the
grid) and, for the blend, the baseline and the weight w of w x model + (1 - w) x baseline.
The weeks the backtest scores are never looked at. Pure pandas / NumPy / scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import RegressorMixin, clone

from models.estimators import fit_weighted, inputs_of
from models.metrics import week_metric
from riskradar.config import TuningConfig

Baseline = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Choice:
    """What a tuning at `origin` chose: the hyperparameters over the candidate's own, the
    baseline and weight of the blend (None without a blend), and the mean validation metric of
    the plain model and of the blend on weeks `weeks` (first, last)."""

    origin: int
    params: dict[str, Any]
    baseline: str | None
    weight: float
    model_score: float
    blend_score: float
    weeks: tuple[int, int]

    def record(self) -> dict[str, Any]:
        """One row of the tuning table logged with a candidate's run."""
        return {
            "origin_week_idx": self.origin,
            "validation_weeks": f"{self.weeks[0]}..{self.weeks[1]}",
            "params": repr(self.params),
            "model_score": round(self.model_score, 4),
            "blend_baseline": self.baseline or "",
            "blend_weight": self.weight,
            "blend_score": round(self.blend_score, 4),
        }


def known_rows(
    train: pd.DataFrame, label: str, horizon: int, before: int, max_history: int | None
) -> np.ndarray:
    """Rows whose label is known at week `before` (the horizon has passed), within the last
    `max_history` weeks before it when set."""
    weeks = train["week_idx"]
    known = (weeks + horizon - 1 < before) & train[label].notna()
    if max_history is not None:
        known &= weeks >= before - max_history
    return known.to_numpy()


def validation_span(origin: int, horizon: int, tuning: TuningConfig) -> tuple[int, int]:
    """(first, last): the weeks a tuning at `origin` validates on, the newest `validation_weeks`
    whose labels are known at the origin."""
    last = origin - horizon
    return last - tuning.validation_weeks + 1, last


def mean_metric(frame: pd.DataFrame, mu: np.ndarray, label: str, metric: str) -> float:
    """The mean over the weeks of `frame` of `metric` (week_metrics) of predictions `mu`."""
    values = []
    y = frame[label].to_numpy(dtype=float)
    for rows in frame.groupby("week_idx", sort=True).indices.values():
        values.append(week_metric(y[rows], mu[rows], metric))
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def tune(
    estimator: RegressorMixin,
    train: pd.DataFrame,
    cells: pd.DataFrame,
    *,
    features: list[str],
    label: str,
    horizon: int,
    origin: int,
    tuning: TuningConfig,
    baselines: Mapping[str, Baseline],
    metric: str,
    max_history: int | None = None,
    on_fit: Callable[[], None] | None = None,
) -> Choice:
    """The choice at `origin`. `cells`: every study cell of the validation weeks
    (`validation_span`; other weeks are ignored), with their labels; `train`: the weighted
    training sample."""
    first, last = validation_span(origin, horizon, tuning)
    in_span = cells["week_idx"].between(first, last)
    validation = cells if in_span.all() else cells[in_span]  # no copy of rows read for the span
    if validation["week_idx"].nunique() < tuning.validation_weeks:
        raise ValueError(
            f"tuning at week {origin} needs every study cell of weeks {first}..{last}; "
            f"{validation['week_idx'].nunique()} of them are loaded"
        )
    rows = known_rows(train, label, horizon, first, max_history)
    if not rows.any():
        raise ValueError(
            f"no training rows before week {first}: the tuning at week {origin} starts too early "
            f"(its {tuning.validation_weeks} validation weeks need labelled weeks before them); lower "
            "training.tuning.validation_weeks or training.backtest_weeks"
        )
    best: tuple[float, dict[str, Any], np.ndarray] | None = None
    for params in tuning.grid:
        model = fit_weighted(
            clone(estimator).set_params(**params),
            train,
            features,
            label=label,
            weight="sample_weight",
            rows=rows,
        )
        if on_fit is not None:
            on_fit()
        mu = model.predict(validation[inputs_of(model, features)])
        score = mean_metric(validation, mu, label, metric)
        if best is None or score > best[0] or np.isnan(best[0]):
            best = (score, dict(params), mu)
    assert best is not None
    score, params, mu = best
    baseline, weight, blended = _blend(validation, mu, label, metric, tuning, baselines, score)
    return Choice(origin, params, baseline, weight, score, blended, (first, last))


def _blend(
    validation: pd.DataFrame,
    mu: np.ndarray,
    label: str,
    metric: str,
    tuning: TuningConfig,
    baselines: Mapping[str, Baseline],
    model_score: float,
) -> tuple[str | None, float, float]:
    """(baseline, weight, score) of the best blend on the validation weeks; weight 1 (the model
    alone) wins ties, so a blend is only chosen where it did better."""
    if tuning.blend_weights is None or not baselines:
        return None, 1.0, model_score
    best: tuple[float, str | None, float] = (model_score, None, 1.0)
    for name, baseline in baselines.items():
        base = np.asarray(baseline(validation), dtype=float)
        for w in sorted(tuning.blend_weights, reverse=True):
            if w == 1.0:
                continue
            score = mean_metric(validation, w * mu + (1.0 - w) * base, label, metric)
            if score > best[0] or (np.isnan(best[0]) and not np.isnan(score)):
                best = (score, name, w)
    score, name, weight = best
    return name, weight, score
