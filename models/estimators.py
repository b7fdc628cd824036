"""Candidate count models (scikit-learn), built from config hyperparameters."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import PoissonRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FACTORIES = {
    "hgb_poisson": lambda p: HistGradientBoostingRegressor(loss="poisson", **p),
    # The linear model needs complete rows: missing covariates (e.g. weather) get the median.
    "poisson_glm": lambda p: Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("glm", PoissonRegressor(**p)),
        ]
    ),
}


def make_candidates(params: dict[str, dict[str, Any]]) -> dict[str, RegressorMixin]:
    """One unfitted estimator per configured candidate (name -> hyperparameters)."""
    unknown = sorted(set(params) - set(FACTORIES))
    if unknown:
        raise ValueError(f"unknown candidates {unknown}; known: {sorted(FACTORIES)}")
    return {name: FACTORIES[name](dict(p)) for name, p in params.items()}


def fit_weighted(model: RegressorMixin, X, y, sample_weight) -> RegressorMixin:  # noqa: N803
    """Fit with sample weights; a pipeline passes them to its final step.

    The features are fitted as float64, whatever they arrive as: the boosted trees would copy
    them to float64 anyway, and the linear model's solver overflows in float32 (measured: with
    float32 features its fit diverged and it predicted one value for every cell).
    """
    X = X.astype(np.float64)  # noqa: N806
    if isinstance(model, Pipeline):
        return model.fit(X, y, **{f"{model.steps[-1][0]}__sample_weight": sample_weight})
    return model.fit(X, y, sample_weight=sample_weight)
