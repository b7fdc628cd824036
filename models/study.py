"""What each feature family and each length of history is worth, measured with the backtest.

An ablation refits a candidate (and its blend) without one feature family at a time; a learning
curve refits it with the fits capped at k weeks of history. Every variant runs on the same
frames, backtest weeks and tuning rule as the training, and is compared with the same best
baseline by the paired gain in the promotion metric. Pure pandas / scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd
from sklearn.base import RegressorMixin

from features.panel import FAMILIES, PanelSpec, target_features
from models.backtest import BacktestResult, Fitting, Frames, paired_weekly, run_candidate
from models.metrics import PairedInterval, paired_gain

FULL = "all features"


@dataclass(frozen=True)
class Variant:
    """One refit of the study: its name (`all features`, `without long_run`, `history 52 weeks`),
    the features it learns from and the history cap of its fits."""

    name: str
    features: list[str]
    max_history: int | None


def ablations(spec: PanelSpec, target: str, features: list[str]) -> list[Variant]:
    """`features` (what the training used) less each family in turn; a family the target has no
    feature of is skipped. The fits keep the training's history cap (None here: the caller's)."""
    out = []
    for family in FAMILIES:
        kept = set(target_features(spec, target, (family,)))
        subset = [c for c in features if c in kept]
        if len(subset) < len(features):
            out.append(Variant(f"without {family}", subset, None))
    return out


def learning_curve(features: list[str], weeks: list[int]) -> list[Variant]:
    """Every feature, with the fits capped at each number of weeks of history."""
    return [Variant(f"history {k} weeks", features, k) for k in weeks]


def run_variant(
    variant: Variant,
    name: str,
    estimator: RegressorMixin,
    frames: Frames,
    fitting: Fitting,
    baseline: BacktestResult,
    *,
    block: int,
    on_fit: Callable[[], None] | None = None,
) -> dict[str, object]:
    """One row of the study table: the variant's better candidate (the model or its blend) by
    mean promotion metric, that mean and its paired gain over `baseline`."""
    history = variant.max_history if variant.max_history is not None else fitting.max_history
    run = run_candidate(
        name,
        estimator,
        replace(frames, features=variant.features),
        replace(fitting, max_history=history),
        on_fit=on_fit,
    )
    return study_row(variant, [r for r in (run.result, run.blend) if r is not None], baseline, fitting, block)


def study_row(
    variant: Variant, results: list[BacktestResult], baseline: BacktestResult, fitting: Fitting, block: int
) -> dict[str, object]:
    """The row of `variant` from its candidates' backtests (the better one is reported)."""
    metric = fitting.metric
    best = max(results, key=lambda r: r.mean(metric))
    history = variant.max_history if variant.max_history is not None else fitting.max_history
    table = paired_weekly(best, baseline, metric)
    gain = paired_gain(
        table["candidate"].to_numpy(), table["baseline"].to_numpy(), block=block, seed=fitting.seed
    )
    return {
        "variant": variant.name,
        "features": len(variant.features),
        "history_weeks": history or "all",
        "candidate": best.name,
        metric: best.mean(metric),
        "baseline": baseline.name,
        f"baseline_{metric}": baseline.mean(metric),
        "gain": gain,
    }


def study_table(rows: list[dict[str, object]], metric: str) -> str:
    """The study as a markdown table; Δ is each variant's mean less the first row's."""
    first = float(rows[0][metric])  # type: ignore[arg-type]
    head = (
        f"| variant | features | history (weeks) | best candidate | {metric} | Δ vs {rows[0]['variant']} "
        f"| paired gain vs {rows[0]['baseline']} [95% CI] (weeks won) |"
    )
    out = [head, "|---|---:|---:|---|---:|---:|---|"]
    for row in rows:
        gain = row["gain"]
        assert isinstance(gain, PairedInterval)
        value = float(row[metric])  # type: ignore[arg-type]
        out.append(
            f"| {row['variant']} | {row['features']} | {row['history_weeks']} | {row['candidate']} | "
            f"{value:.3f} | {value - first:+.3f} | {gain.text()} |"
        )
    return "\n".join(out) + "\n"


def records(rows: list[dict[str, object]]) -> pd.DataFrame:
    """The study rows with the paired gain spread into columns (for a JSON or CSV artifact)."""
    flat = []
    for row in rows:
        gain = row["gain"]
        assert isinstance(gain, PairedInterval)
        flat.append(
            {
                **{k: v for k, v in row.items() if k != "gain"},
                "gain_mean": gain.mean,
                "gain_low": gain.low,
                "gain_high": gain.high,
                "weeks_won": gain.won,
                "weeks": gain.weeks,
            }
        )
    return pd.DataFrame(flat)
