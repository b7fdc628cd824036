"""Naive baselines every model must beat, predicted from a target's own past counts.

They read the panel's `hist_<target>_w<k>` (events of the target in the k weeks before),
`histd_<target>_hl<h>` (the same, exponentially decayed), `histr_<target>_all` (per week over
all history) and `khist_<target>_b<sigma>_<window>` (kernel-smoothed weekly rates: the hotspot
map an analyst would draw in a GIS) columns. No fitting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from riskradar.catalog import (
    decayed_history_column,
    history_column,
    history_rate_column,
    smoothed_target_history,
)
from riskradar.config import KdeConfig


class HistoryRate(RegressorMixin, BaseEstimator):
    """A baseline as a model: the weekly rate `column * scale` of one history column.

    Nothing is learnt, so `fit` only checks the column. It is callable like every baseline and
    predicts like a fitted estimator, so the gate can register the best baseline as the champion
    when no learned model beats it, and `score` runs it like any other model.
    """

    def __init__(self, column: str = "", scale: float = 1.0):
        self.column = column
        self.scale = scale

    def fit(self, X: pd.DataFrame, y=None, sample_weight=None) -> HistoryRate:
        if self.column not in X.columns:
            raise ValueError(f"{self.column!r} is not among the columns {list(X.columns)}")
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X[self.column].to_numpy(dtype=float) * self.scale

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict(frame)


def prior_counts(target: str, weeks: int) -> HistoryRate:
    """Mean weekly count over the `weeks` weeks before."""
    return HistoryRate(history_column(target, weeks), 1.0 / weeks)


def exponentially_weighted(target: str, half_life: float) -> HistoryRate:
    """Decayed history turned into a weekly rate: a constant rate c decays to c * r / (1 - r)."""
    r = 2.0 ** (-1.0 / half_life)
    return HistoryRate(decayed_history_column(target, half_life), (1 - r) / r)


def baselines_for(
    target: str,
    windows: list[int],
    half_lives: list[float],
    *,
    all_history: bool = False,
    kde: KdeConfig | None = None,
) -> dict[str, HistoryRate]:
    """Prior counts over 1, 4, 13, 52 and 104 weeks, an EWMA per half-life, and with the long-run
    columns the rate over all history (`prior_all`) and a kernel-smoothed map per bandwidth and
    window (`kde_b300_w52`, `kde_b300_all`), where the panel has those columns."""
    out: dict[str, HistoryRate] = {
        f"prior_{k}w": prior_counts(target, k) for k in (1, 4, 13, 52, 104) if k in windows
    }
    for h in half_lives:
        out[f"ewma_hl{h:g}"] = exponentially_weighted(target, h)
    if all_history:
        out["prior_all"] = HistoryRate(history_rate_column(target), 1.0)
    if kde is not None:
        for b in kde.bandwidths_m:
            for k in [*kde.windows_weeks, None]:
                column = smoothed_target_history(target, b, k).name
                out["kde" + column.removeprefix(f"khist_{target}")] = HistoryRate(column, 1.0)
    return out
