"""The promotion gate: which backtest result is best, and whether it may become the champion.

Pure: it compares backtest results and returns the alias with the reason in words; the train
job sets the alias and logs the reason. A learned candidate becomes `champion` only if its mean
promotion metric beats the best baseline and the current champion's (the champion's recipe
backtested on today's data) by the margin; otherwise it is a `challenger`. With a bar on the
paired gain (`training.promotion_lower_end`), beating the best baseline means instead that the
lower end of the paired gain's interval lies above that bar: a lead the weeks show clearly counts,
however small, and a large mean whose interval reaches the bar does not, so the bar follows the
noise of each target (the gain of a sparse target spans ten times a dense one's). The paired gain
of the best candidate over the best baseline (with its interval) is appended to the reason. With a
non-inferiority check (`training.non_inferiority`), a candidate must also not lose at the other
coverages: the lower end of its paired gain over the best baseline at each of them may not lie
below -tolerance, so a candidate that buys PAI@3 % with a loss at 1 % or 5 % stays a challenger,
and the best candidate that passes is the one the gate judges.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from models.backtest import BacktestResult, recipe_of
from models.estimators import FACTORIES
from models.metrics import PairedInterval
from riskradar.registry import CHAMPION

CHALLENGER = "challenger"
# The paired interval of fewer blocks of weeks than this is too coarse to promote by: with one
# block every resample is the same weeks, and the interval shrinks to the mean.
MIN_BLOCKS = 4
BASELINE_CHAMPION_REASON = "best baseline, serving as champion: no learned candidate passed the gate"


def best_of(results: list[BacktestResult], kind: str, metric: str) -> BacktestResult:
    """The result of `kind` ("candidate" or "baseline") with the highest mean `metric`; a NaN
    mean ranks last, ties go to the first."""
    return max(
        (r for r in results if r.kind == kind), key=lambda r: np.nan_to_num(r.mean(metric), nan=-np.inf)
    )


def shortfall(gains: Mapping[str, PairedInterval], tolerance: float) -> str | None:
    """Where a candidate is not non-inferior to the best baseline: the first metric of `gains`
    (its paired gains over that baseline) whose interval's lower end lies below -tolerance, or
    that has no week to judge; None where every one holds."""
    for metric, gain in gains.items():
        if gain.weeks == 0 or not gain.low >= -tolerance:
            return metric
    return None


def best_non_inferior(
    results: list[BacktestResult],
    metric: str,
    gains: Mapping[str, Mapping[str, PairedInterval]],
    tolerance: float,
) -> BacktestResult:
    """The candidate with the highest mean `metric` among those without a `shortfall` at the
    metrics of `gains` (metric -> candidate name -> paired gain over the best baseline); the
    best candidate on `metric` where none is without one."""
    ranked = sorted(
        (r for r in results if r.kind == "candidate"),
        key=lambda r: -np.nan_to_num(r.mean(metric), nan=-np.inf),
    )
    for result in ranked:
        if shortfall({m: by_name[result.name] for m, by_name in gains.items()}, tolerance) is None:
            return result
    return best_of(results, "candidate", metric)


def gate(
    best: BacktestResult,
    baseline: BacktestResult,
    champion: float | None,
    metric: str,
    margin: float,
    *,
    paired: PairedInterval | None = None,
    non_inferior: Mapping[str, PairedInterval] | None = None,
    tolerance: float = 0.0,
    lower_end: float | None = None,
    block: int = 1,
) -> tuple[str, str]:
    """(alias, reason): champion only if `best` beats the best baseline and the current
    champion's value (None: no champion yet) by the margin on `metric` (with `lower_end`, the
    best baseline is beaten when its mean is beaten and the lower end of `paired` lies above
    `lower_end` instead, if `paired` holds at least MIN_BLOCKS blocks of `block` weeks) and,
    with `non_inferior` (its paired gains over `baseline` at other metrics), has no `shortfall`
    at any of them. `paired`, the paired gain of `best` over `baseline` on `metric`, is appended
    to the reason; so is which metric decided."""
    if lower_end is not None and paired is None:
        raise ValueError("a bar on the paired gain's lower end needs the paired gain")
    bar, coarse = None, ""
    if lower_end is not None and paired.weeks >= MIN_BLOCKS * block:
        bar = (paired, lower_end)
    elif lower_end is not None:
        coarse = (
            f" ({paired.weeks} weeks paired, fewer than {MIN_BLOCKS} blocks of {block}: too few for the "
            "interval to judge, so the margin on the mean did)"
        )
    alias, reason = _rule(best, baseline, champion, metric, margin, bar)
    reason += coarse
    if non_inferior and alias != CHAMPION:
        reason += f"; decided by {metric}"
    elif non_inferior:
        missing = shortfall(non_inferior, tolerance)
        if missing is not None:
            alias, reason = (
                CHALLENGER,
                (
                    f"{reason}, but at {missing} its paired gain {non_inferior[missing].text()} reaches "
                    f"below -{tolerance:g}: not non-inferior to {baseline.name}; held back by {missing}"
                ),
            )
        else:
            lows = ", ".join(f"{m} {g.low:+.2f}" for m, g in non_inferior.items())
            reason += (
                f"; non-inferior at {' and '.join(non_inferior)} (lower ends of the paired gains "
                f"{lows}, none below -{tolerance:g}); decided by {metric}"
            )
    if paired is not None:
        reason += f"; paired gain over {baseline.name}, {metric} {paired.text()}"
    return alias, reason


def _rule(
    best: BacktestResult,
    baseline: BacktestResult,
    champion: float | None,
    metric: str,
    margin: float,
    bar=None,
) -> tuple[str, str]:
    """The gate's rule on the promotion metric; `bar`: (the paired gain over `baseline`, of at
    least MIN_BLOCKS blocks of weeks, and the bar its lower end must pass), or None for the
    margin on the mean."""
    value, base = best.mean(metric), baseline.mean(metric)
    paired, lower_end = bar if bar is not None else (None, None)
    if paired is None and not value > base + margin:
        return CHALLENGER, (
            f"{best.name} {metric} {value:.3f} does not beat the best baseline "
            f"{baseline.name} ({base:.3f}) by the margin {margin}"
        )
    if paired is not None and not (value > base and paired.low > lower_end):
        return CHALLENGER, (
            f"{best.name} {metric} {value:.3f} does not beat the best baseline {baseline.name} "
            f"({base:.3f}) clearly: its paired gain {paired.text()} has no lower end above {lower_end:g}"
        )
    if champion is not None and not value > champion + margin:
        return CHALLENGER, (
            f"{best.name} {metric} {value:.3f} does not beat the current champion "
            f"({champion:.3f}) by the margin {margin}"
        )
    if paired is not None:
        return CHAMPION, (
            f"{best.name} {metric} {value:.3f} beats the best baseline {baseline.name} ({base:.3f}) "
            f"with the lower end of its paired gain, {paired.low:+.2f}, above {lower_end:g}"
            + (
                f", and the champion ({champion:.3f}) by more than {margin}"
                if champion is not None
                else " (no champion yet)"
            )
        )
    return CHAMPION, (
        f"{best.name} {metric} {value:.3f} beats the best baseline {baseline.name} ({base:.3f})"
        + (f" and the champion ({champion:.3f})" if champion is not None else " (no champion yet)")
        + f" by more than {margin}"
    )


def baseline_serves_reason(reason: str, baseline: BacktestResult, version: str) -> str:
    """The gate's reason when no champion exists yet and the best baseline is registered as one."""
    return (
        f"{reason}; no champion yet, so the best baseline {baseline.name} is registered as "
        f"v{version} and serves as champion until a learned model passes the gate"
    )


def champion_recipe(tags: Mapping[str, str] | None) -> tuple[str, dict[str, Any]] | None:
    """(candidate name, hyperparameters) from the champion version's tags, if it is a learned
    candidate or the blend of one (a baseline champion, or no champion, gives None)."""
    tags = tags or {}
    if "candidate" not in tags or recipe_of(tags["candidate"]) not in FACTORIES:
        return None
    return tags["candidate"], json.loads(tags.get("params", "{}"))
