"""The field's metrics for place-based forecasts, per week, in NumPy. No I/O.

For one week, `y` holds the observed counts per cell and `score` the predicted risk. Flagging
the top `coverage` share of the study area means flagging k = round(coverage * n) cells
(all cells have the same area). Cells tied at the cut-off are taken at random, so their
hits count in expectation: the tied cells' mean count times the slots left for them.

- hit rate: share of the week's incidents that fall in the flagged cells;
- PAI (predictive accuracy index): hit rate / flagged share of the area;
- PEI*: hits / the most hits any set of k cells could have caught that week.
A week with no incidents has no hit rate, PAI or PEI* (NaN): it is left out of the means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

COVERAGES = (0.01, 0.03, 0.05)


def flagged_count(n_cells: int, coverage: float) -> int:
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    return max(1, int(round(coverage * n_cells)))


def expected_hits(y: np.ndarray, score: np.ndarray, k: int) -> float:
    """Incidents caught by the k highest scores, ties at the cut-off shared in expectation."""
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    if k >= len(y):
        return float(y.sum())
    cut = np.sort(score)[::-1][k - 1]
    above = score > cut
    tied = score == cut
    slots = k - int(above.sum())
    return float(y[above].sum() + slots * y[tied].mean())


def hit_rate(y: np.ndarray, score: np.ndarray, coverage: float) -> float:
    total = float(np.sum(y))
    if total == 0:
        return float("nan")
    return expected_hits(y, score, flagged_count(len(y), coverage)) / total


def pai(y: np.ndarray, score: np.ndarray, coverage: float) -> float:
    k = flagged_count(len(y), coverage)
    return hit_rate(y, score, coverage) / (k / len(y))


def pai_at(y: np.ndarray, score: np.ndarray, coverages: np.ndarray) -> np.ndarray:
    """`pai` at each of `coverages`, the week sorted once (a PAI curve asks for dozens)."""
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    n, total = len(y), float(y.sum())
    if total == 0:
        return np.full(len(coverages), np.nan)
    order = np.argsort(-score, kind="stable")
    ranked, caught = score[order], np.concatenate([[0.0], np.cumsum(y[order])])
    out = []
    for coverage in coverages:
        k = flagged_count(n, float(coverage))
        if k >= n:
            out.append(n / k)
            continue
        cut = ranked[k - 1]
        # ranked is descending: the cells above the cut, then the tied ones
        above = int(np.searchsorted(-ranked, -cut, side="left"))
        tied = int(np.searchsorted(-ranked, -cut, side="right")) - above
        tied_mean = (caught[above + tied] - caught[above]) / tied
        hits = caught[above] + (k - above) * tied_mean
        out.append(hits / total / (k / n))
    return np.asarray(out, dtype=float)


def pei_star(y: np.ndarray, score: np.ndarray, coverage: float) -> float:
    k = flagged_count(len(y), coverage)
    best = float(np.sort(np.asarray(y, dtype=float))[::-1][:k].sum())
    if best == 0:
        return float("nan")
    return expected_hits(y, score, k) / best


def flagged_metrics(y: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """Hit rate, PAI and PEI* of a published set of flagged cells (no ties: the set is given).

    y: the incidents per cell that happened; flagged: a boolean per cell. NaN where the week
    had no incidents.
    """
    y = np.asarray(y, dtype=float)
    flagged = np.asarray(flagged, dtype=bool)
    total, k = float(y.sum()), int(flagged.sum())
    if total == 0 or k == 0:
        return {"hit_rate": float("nan"), "pai": float("nan"), "pei": float("nan"), "flagged": float(k)}
    hits = float(y[flagged].sum())
    best = float(np.sort(y)[::-1][:k].sum())
    return {
        "hit_rate": hits / total,
        "pai": (hits / total) / (k / len(y)),
        "pei": hits / best,
        "flagged": float(k),
    }


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    """Mean Poisson deviance; predictions are floored at 1e-9 (a zero forecast of a count)."""
    y = np.asarray(y, dtype=float)
    mu = np.maximum(np.asarray(mu, dtype=float), 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / mu), 0.0)
    return float(np.mean(2.0 * (term - (y - mu))))


def spearman(y: np.ndarray, score: np.ndarray) -> float:
    if np.all(y == y[0]) or np.all(score == score[0]):
        return float("nan")
    return float(spearmanr(y, score).statistic)


def calibration_by_decile(y: np.ndarray, mu: np.ndarray) -> list[dict[str, float]]:
    """Mean predicted vs mean observed count per decile of the prediction."""
    order = np.argsort(mu, kind="stable")
    out = []
    for d, idx in enumerate(np.array_split(order, 10), start=1):
        if len(idx):
            out.append(
                {
                    "decile": d,
                    "predicted": float(np.mean(mu[idx])),
                    "observed": float(np.mean(y[idx])),
                    "cells": int(len(idx)),
                }
            )
    return out


def _metric_functions(coverages: tuple[float, ...]) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """Each per-week metric by name: `incidents`, `deviance`, `spearman` and per coverage
    `hit_rate_<pct>`, `pai_<pct>`, `pei_<pct>`."""
    functions: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "incidents": lambda y, mu: float(np.sum(y)),
        "deviance": poisson_deviance,
        "spearman": lambda y, mu: spearman(np.asarray(y, float), np.asarray(mu, float)),
    }
    for c in coverages:
        tag = f"{round(c * 100):d}"
        functions[f"hit_rate_{tag}"] = lambda y, mu, c=c: hit_rate(y, mu, c)
        functions[f"pai_{tag}"] = lambda y, mu, c=c: pai(y, mu, c)
        functions[f"pei_{tag}"] = lambda y, mu, c=c: pei_star(y, mu, c)
    return functions


def week_metrics(y: np.ndarray, mu: np.ndarray, coverages: tuple[float, ...] = COVERAGES) -> dict[str, float]:
    """All per-week metrics of one prediction."""
    return {name: f(y, mu) for name, f in _metric_functions(coverages).items()}


def week_metric(
    y: np.ndarray, mu: np.ndarray, metric: str, coverages: tuple[float, ...] = COVERAGES
) -> float:
    """One of `week_metrics`, computed alone (a tuning asks for one metric thousands of times)."""
    functions = _metric_functions(coverages)
    if metric not in functions:
        raise KeyError(f"unknown metric {metric!r}; expected one of {', '.join(functions)}")
    return functions[metric](y, mu)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    weeks: int


def bootstrap_mean(values: np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean over weeks with a percentile bootstrap interval; NaN weeks are left out."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = rng.choice(v, size=(n_boot, len(v)), replace=True).mean(axis=1)
    tail = (1 - level) / 2
    return Interval(
        float(v.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)), len(v)
    )


@dataclass(frozen=True)
class PairedInterval:
    """The mean per-week difference a - b, its bootstrap interval, the weeks where both were
    defined and how many of them a won (a > b)."""

    mean: float
    low: float
    high: float
    weeks: int
    won: int

    def text(self) -> str:
        """E.g. "+0.42 [+0.18, +0.66], 19/26 weeks" (the version tag and the gate's reason)."""
        if self.weeks == 0:
            return "n/a (no week where both are defined)"
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}], {self.won}/{self.weeks} weeks"


def paired_gain(
    a_weekly: np.ndarray,
    b_weekly: np.ndarray,
    *,
    block: int,
    n_boot: int = 5000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedInterval:
    """Mean of d_t = a_t - b_t over the weeks where both are defined (NaN weeks dropped
    pairwise), with a percentile interval from a circular block bootstrap over weeks.

    Each resample joins ceil(n / block) runs of `block` consecutive weeks, each starting at a
    uniform random week and wrapping around the end, cut to n weeks. Whole runs are drawn
    because weeks predicted by one fit share its errors: resampling single weeks would treat
    them as independent and give too narrow an interval. `a_weekly` and `b_weekly` are aligned
    week by week.
    """
    a, b = np.asarray(a_weekly, dtype=float), np.asarray(b_weekly, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"paired_gain needs two 1-D series of one length, got shapes {a.shape} and {b.shape}"
        )
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive number of weeks, got {block!r}")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"n_boot must be >= 1 and level in (0, 1), got {n_boot} and {level}")
    both = ~(np.isnan(a) | np.isnan(b))
    d = a[both] - b[both]
    n = len(d)
    if n == 0:
        return PairedInterval(float("nan"), float("nan"), float("nan"), 0, 0)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(n_boot, -(-n // block)))
    rows = ((starts[:, :, None] + np.arange(block)) % n).reshape(n_boot, -1)[:, :n]
    means = d[rows].mean(axis=1)
    tail = (1 - level) / 2
    return PairedInterval(
        float(d.mean()),
        float(np.quantile(means, tail)),
        float(np.quantile(means, 1 - tail)),
        n,
        int(np.sum(d > 0)),
    )
