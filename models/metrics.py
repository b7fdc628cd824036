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


def _caught(y: np.ndarray, score: np.ndarray, ks: list[int]) -> np.ndarray:
    """Incidents caught by the k highest scores, for each k of `ks`, the week ranked once.

    The tie rule: the cells scored above the k-th highest score are flagged, and the slots left
    go at random to the cells tied with it, so each of those catches their mean count. A cell
    without a score (NaN) ranks below every scored cell."""
    order = np.argsort(-score, kind="stable")
    descending = -score[order]  # ascending, as searchsorted needs
    caught = np.concatenate([[0.0], np.cumsum(y[order])])
    out = np.empty(len(ks))
    for i, k in enumerate(ks):
        if k >= len(y):
            out[i] = caught[-1]
            continue
        above = int(np.searchsorted(descending, descending[k - 1], side="left"))
        tied_end = int(np.searchsorted(descending, descending[k - 1], side="right"))
        tied_mean = (caught[tied_end] - caught[above]) / (tied_end - above)
        out[i] = caught[above] + (k - above) * tied_mean
    return out


def _at_coverages(
    y: np.ndarray, score: np.ndarray, coverages: tuple[float, ...], *, pei: bool = True
) -> dict[str, np.ndarray]:
    """Hit rate, PAI and (if `pei`) PEI* at each of `coverages`, all NaN in a week without
    incidents."""
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    n, total = len(y), float(y.sum())
    ks = [flagged_count(n, float(c)) for c in coverages]
    if total == 0:
        nan = np.full(len(ks), np.nan)
        return {"hit_rate": nan, "pai": nan, "pei": nan}
    hits = _caught(y, score, ks)
    flagged_share = np.asarray(ks, dtype=float) / n
    out = {"hit_rate": hits / total, "pai": hits / total / flagged_share}
    if pei:
        most = np.cumsum(np.sort(y)[::-1])  # the most any k cells could have caught: most[k - 1]
        out["pei"] = hits / most[np.asarray(ks, dtype=int) - 1]
    return out


def expected_hits(y: np.ndarray, score: np.ndarray, k: int) -> float:
    """Incidents caught by the k highest scores, ties at the cut-off shared in expectation."""
    return float(_caught(np.asarray(y, dtype=float), np.asarray(score, dtype=float), [k])[0])


def hit_rate(y: np.ndarray, score: np.ndarray, coverage: float) -> float:
    return float(_at_coverages(y, score, (coverage,), pei=False)["hit_rate"][0])


def pai(y: np.ndarray, score: np.ndarray, coverage: float) -> float:
    return float(_at_coverages(y, score, (coverage,), pei=False)["pai"][0])


def pai_at(y: np.ndarray, score: np.ndarray, coverages: np.ndarray) -> np.ndarray:
    """`pai` at each of `coverages`, the week ranked once (a PAI curve asks for dozens)."""
    return _at_coverages(y, score, tuple(coverages), pei=False)["pai"]


def pei_star(y: np.ndarray, score: np.ndarray, coverage: float) -> float:
    return float(_at_coverages(y, score, (coverage,))["pei"][0])


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


_FAMILIES = ("hit_rate", "pai", "pei")
_WHOLE_WEEK: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "incidents": lambda y, mu: float(np.sum(y)),
    "deviance": poisson_deviance,
    "spearman": lambda y, mu: spearman(np.asarray(y, float), np.asarray(mu, float)),
}


def _tags(coverages: tuple[float, ...]) -> list[str]:
    """Each coverage's name in the metrics' names: its percentage, rounded (0.03 -> "3")."""
    tags = [f"{round(c * 100):d}" for c in coverages]
    if len(set(tags)) < len(tags):
        raise ValueError(f"coverages {coverages} share a name when rounded to whole percents: {tags}")
    return tags


def week_metrics(y: np.ndarray, mu: np.ndarray, coverages: tuple[float, ...] = COVERAGES) -> dict[str, float]:
    """All per-week metrics of one prediction: `incidents`, `deviance`, `spearman` and per
    coverage `hit_rate_<pct>`, `pai_<pct>`, `pei_<pct>` (the week ranked once for all)."""
    tags = _tags(coverages)
    out = {name: f(y, mu) for name, f in _WHOLE_WEEK.items()}
    at = _at_coverages(y, mu, coverages)
    for i, tag in enumerate(tags):
        out.update({f"{family}_{tag}": float(at[family][i]) for family in _FAMILIES})
    return out


def ranking_metrics(coverages: tuple[float, ...] = COVERAGES) -> list[str]:
    """The metrics of `week_metrics` where a higher value is a better forecast (what the gate
    and the tuning can choose by): not `incidents` or `deviance`."""
    return ["spearman", *(f"{family}_{tag}" for tag in _tags(coverages) for family in _FAMILIES)]


def week_metric(
    y: np.ndarray, mu: np.ndarray, metric: str, coverages: tuple[float, ...] = COVERAGES
) -> float:
    """One of `week_metrics`, computed alone (a tuning asks for one metric thousands of times)."""
    if metric in _WHOLE_WEEK:
        return _WHOLE_WEEK[metric](y, mu)
    tags = _tags(coverages)
    for c, tag in zip(coverages, tags, strict=True):
        for family in _FAMILIES:
            if metric == f"{family}_{tag}":
                return float(_at_coverages(y, mu, (c,), pei=family == "pei")[family][0])
    names = [*_WHOLE_WEEK, *(f"{family}_{tag}" for tag in tags for family in _FAMILIES)]
    raise KeyError(f"unknown metric {metric!r}; expected one of {', '.join(names)}")


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
