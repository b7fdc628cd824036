"""Candidate count models (scikit-learn), built from config hyperparameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
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


class Offset(RegressorMixin, BaseEstimator):
    """A count model of the ratio to a history map: it learns what the map misses.

    With b the map's weekly rate in a cell (a baseline: `baselines.HistoryRate`, e.g. the
    52-week EWMA) plus a floor (`floor` x its mean in the training rows, so a cell the map has
    never seen still counts), the model fits y / b with sample weights w x b and predicts b x
    its ratio. For a Poisson loss with a log link this is the offset log b: the trees start
    from the map instead of a constant, and spend their splits on where it is wrong. The
    model sees every input column, the map's included; `offset` names the baseline, which
    `make_candidates` binds for the target (`baseline`).
    """

    def __init__(self, model=None, offset: str = "", floor: float = 0.05, baseline=None):
        self.model = model
        self.offset = offset
        self.floor = floor
        self.baseline = baseline

    def extra_inputs(self) -> list[str]:
        """The map's column: read beside the features, whether it is one or not."""
        if self.baseline is None:
            raise ValueError(
                f"the offset {self.offset!r} is not bound to a baseline (make_candidates does it)"
            )
        return [self.baseline.column]

    def _map(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return X[self.baseline.column].to_numpy(dtype=float) * self.baseline.scale

    def fit(self, X: pd.DataFrame, y, sample_weight=None) -> Offset:  # noqa: N803
        rate = self._map(X)
        weight = np.ones(len(rate)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.floor_ = self.floor * max(float(np.average(rate, weights=weight)), 1e-9)
        rate = rate + self.floor_
        self.model_ = clone(self.model).fit(X, np.asarray(y, dtype=float) / rate, sample_weight=weight * rate)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        check_is_fitted(self)
        return (self._map(X) + self.floor_) * self.model_.predict(X)


class Average(RegressorMixin, BaseEstimator):
    """The mean forecast of several count models, each fitted on the same rows.

    Two fits that err differently (the trees on the counts, and the trees on the ratio to a
    history map) rank the top cells better together than either alone: on the six-year
    backtest of burglary, PAI@1/3/5 % 7.58/5.38/4.54 against 7.42/5.29/4.53 and 7.65/5.30/4.48
    (benchmarks/README.md). Every member sees every input column.
    """

    def __init__(self, members: tuple = ()):
        self.members = members

    def extra_inputs(self) -> list[str]:
        return list(
            dict.fromkeys(c for m in self.members if hasattr(m, "extra_inputs") for c in m.extra_inputs())
        )

    def fit(self, X: pd.DataFrame, y, sample_weight=None) -> Average:  # noqa: N803
        self.members_ = [clone(m).fit(X, y, sample_weight=sample_weight) for m in self.members]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        check_is_fitted(self)
        return np.mean([m.predict(X) for m in self.members_], axis=0)


def inputs_of(model: RegressorMixin, features: list[str]) -> list[str]:
    """The columns `model` fits and predicts on: the features and what it reads beside them
    (an `Offset`'s map)."""
    extra = model.extra_inputs() if hasattr(model, "extra_inputs") else []
    return [*features, *(c for c in extra if c not in features)]


def _offset(p: dict[str, Any]) -> Offset:
    own = {k: p.pop(k) for k in ("offset", "floor") if k in p}
    return Offset(HistGradientBoostingRegressor(loss="poisson", **p), **own)


def _ensemble(p: dict[str, Any]) -> Average:
    """The boosted trees on the counts and on the ratio to a map (`offset`), averaged."""
    own = {k: p.pop(k) for k in ("offset", "floor") if k in p}
    return Average((HistGradientBoostingRegressor(loss="poisson", **p), _offset({**p, **own})))


def _bind(name: str, estimator: RegressorMixin, baselines: Mapping[str, Any]) -> None:
    """Bind the map of `estimator` (an `Offset`, or the offsets among an `Average`'s members)."""
    for model in estimator.members if isinstance(estimator, Average) else (estimator,):
        if not isinstance(model, Offset):
            continue
        if model.offset not in baselines:
            raise ValueError(
                f"candidate {name}: offset {model.offset!r} is not a baseline of the target; "
                f"known: {', '.join(sorted(baselines))}"
            )
        model.set_params(baseline=baselines[model.offset])


FACTORIES = {
    "hgb_poisson": lambda p: HistGradientBoostingRegressor(loss="poisson", **p),
    # The boosted trees on the ratio to a history map (`offset`: a baseline's name).
    "hgb_poisson_offset": _offset,
    # Both, averaged (the same hyperparameters; `offset` names the map of the second).
    "hgb_poisson_ensemble": _ensemble,
    # The linear model needs complete rows: missing covariates (e.g. weather) get the median.
    "poisson_glm": lambda p: Pipeline(
        [
            ("impute", MedianImputer()),
            ("scale", StandardScaler()),
            ("glm", PoissonRegressor(**p)),
        ]
    ),
}


def make_candidates(
    params: dict[str, dict[str, Any]], baselines: Mapping[str, Any] | None = None
) -> dict[str, RegressorMixin]:
    """One unfitted estimator per configured candidate (name -> hyperparameters); an offset
    candidate's map is bound to the baseline of that name among `baselines` (the target's)."""
    unknown = sorted(set(params) - set(FACTORIES))
    if unknown:
        raise ValueError(f"unknown candidates {unknown}; known: {sorted(FACTORIES)}")
    out = {name: FACTORIES[name](dict(p)) for name, p in params.items()}
    for name, estimator in out.items():
        if baselines is not None:
            _bind(name, estimator, baselines)
    return out


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
    X = design_matrix(frame, inputs_of(model, features), rows)  # noqa: N806
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
