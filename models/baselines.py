"""Naive baselines every model must beat, predicted from a target's own past counts.

They read the panel's `hist_<target>_w<k>` (events of the target in the k weeks before)
and `histd_<target>_hl<h>` (the same, exponentially decayed) columns. No fitting.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

Baseline = Callable[[pd.DataFrame], np.ndarray]


def prior_counts(target: str, weeks: int) -> Baseline:
    """Mean weekly count over the `weeks` weeks before."""

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return frame[f"hist_{target}_w{weeks}"].to_numpy(dtype=float) / weeks

    return predict


def exponentially_weighted(target: str, half_life: float) -> Baseline:
    """Decayed history turned into a weekly rate: a constant rate c decays to c * r / (1 - r)."""
    r = 2.0 ** (-1.0 / half_life)
    column = f"histd_{target}_hl{half_life:g}".replace(".", "p")

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return frame[column].to_numpy(dtype=float) * (1 - r) / r

    return predict


def baselines_for(target: str, windows: list[int], half_lives: list[float]) -> dict[str, Baseline]:
    """Prior counts over 1, 4, 13 and 52 weeks and an EWMA, where the panel has those columns."""
    out: dict[str, Baseline] = {
        f"prior_{k}w": prior_counts(target, k) for k in (1, 4, 13, 52) if k in windows
    }
    for h in half_lives:
        out[f"ewma_hl{h:g}"] = exponentially_weighted(target, h)
    return out
