"""Candidate count models (scikit-learn), built from config hyperparameters."""

from __future__ import annotations

from typing import Any

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
    """Fit with sample weights; a pipeline passes them to its final step."""
    if isinstance(model, Pipeline):
        return model.fit(X, y, **{f"{model.steps[-1][0]}__sample_weight": sample_weight})
    return model.fit(X, y, sample_weight=sample_weight)
