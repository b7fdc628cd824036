"""Candidate count models (scikit-learn), built from config hyperparameters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import PoissonRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data


class MedianImputer(TransformerMixin, BaseEstimator):
    """Fills each column's missing values with that column's median in the training rows.

    It does what SimpleImputer(strategy="median") does for dense features, one column at a
    time: SimpleImputer computes the medians on a masked array of the whole matrix, which
    held 3.4 more copies of the matrix while it fitted (measured; 3.4 GiB extra for the 10M
    benchmark's training rows). A column with no value at all is filled with 0 and kept, so
    the model's inputs do not depend on which rows a backtest fit saw.
    """

    def __init__(self, copy: bool = True):
        self.copy = copy

    def fit(self, X, y=None):  # noqa: N803
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", copy=False)  # noqa: N806
        medians = np.zeros(X.shape[1])
        for j in range(X.shape[1]):
            column = X[:, j]
            known = column[~np.isnan(column)]
            if known.size:
                medians[j] = np.median(known)
        self.statistics_ = medians
        return self

    def transform(self, X):  # noqa: N803
        check_is_fitted(self)
        X = validate_data(  # noqa: N806
            self, X, dtype=np.float64, ensure_all_finite="allow-nan", copy=self.copy, reset=False
        )
        for j, median in enumerate(self.statistics_):
            missing = np.isnan(X[:, j])
            if missing.any():
                X[missing, j] = median
        return X


FACTORIES = {
    "hgb_poisson": lambda p: HistGradientBoostingRegressor(loss="poisson", **p),
    # The linear model needs complete rows: missing covariates (e.g. weather) get the median.
    "poisson_glm": lambda p: Pipeline(
        [
            ("impute", MedianImputer()),
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


def design_matrix(frame: pd.DataFrame, columns: list[str], rows: np.ndarray | None = None) -> pd.DataFrame:
    """A new float64 frame of `columns`, restricted to `rows` (a boolean mask) when given.

    It is filled column by column into one Fortran-ordered block, so no other copy of the
    selection exists on the way (`frame.loc[rows, columns].astype(float)` holds two).
    """
    n = len(frame) if rows is None else int(np.count_nonzero(rows))
    block = np.empty((n, len(columns)), dtype=np.float64, order="F")
    for j, column in enumerate(columns):
        values = frame[column].to_numpy()
        block[:, j] = values if rows is None else values[rows]
    return pd.DataFrame(block, columns=columns, copy=False)


def fit_weighted(
    model: RegressorMixin,
    frame: pd.DataFrame,
    features: list[str],
    *,
    label: str,
    weight: str,
    rows: np.ndarray | None = None,
) -> RegressorMixin:
    """Fit on `features` -> `label` with the sample weights in column `weight`, on `rows` (a
    boolean mask) or on the whole frame; a pipeline passes the weights to its final step.

    The model sees float64, whatever the features arrive as: the boosted trees would copy them
    to float64 anyway, and the linear model's solver overflows in float32 (measured: with
    float32 features its fit diverged and it predicted one value for every cell). That float64
    matrix belongs to this fit, so the preprocessing steps of a pipeline (imputer, scaler)
    work on it in place instead of each holding a further copy of the training rows; they
    copy again once fitted, so that predicting never changes the caller's frame.
    """
    X = design_matrix(frame, features, rows)  # noqa: N806
    y = frame[label].to_numpy()
    sample_weight = frame[weight].to_numpy()
    if rows is not None:
        y, sample_weight = y[rows], sample_weight[rows]
    if not isinstance(model, Pipeline):
        return model.fit(X, y, sample_weight=sample_weight)
    in_place = [step for _, step in model.steps[:-1] if "copy" in step.get_params()]
    for step in in_place:
        step.set_params(copy=False)
    try:
        return model.fit(X, y, **{f"{model.steps[-1][0]}__sample_weight": sample_weight})
    finally:
        for step in in_place:
            step.set_params(copy=True)


class Blend(RegressorMixin, BaseEstimator):
    """w x a fitted model + (1 - w) x a baseline, as one estimator the registry and `score` run
    like any other: `features` are the model's inputs; the baseline reads its own column."""

    def __init__(self, model=None, baseline=None, weight: float = 1.0, features: tuple[str, ...] = ()):
        self.model = model
        self.baseline = baseline
        self.weight = weight
        self.features = features

    def fit(self, X: pd.DataFrame, y=None, sample_weight=None) -> Blend:  # noqa: N803
        """Fits the model on the `features` of X (the baseline learns nothing)."""
        self.model.fit(X[list(self.features)], y, sample_weight=sample_weight)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        mu = self.model.predict(X[list(self.features)])
        if self.baseline is None or self.weight == 1.0:
            return mu
        return self.weight * mu + (1.0 - self.weight) * self.baseline.predict(X)

    def inputs(self) -> list[str]:
        """Every column `predict` reads: the model's features and the baseline's column."""
        extra = getattr(self.baseline, "column", None)
        return [*self.features, *([extra] if extra and extra not in self.features else [])]
