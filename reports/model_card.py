"""The model card of a training (`model_card.md` of its MLflow run), the comparison table of
the backtested models (`comparison.md`) and the summary the train job logs.

Pure text from the config, the backtest results and the gate's decision.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.panel import role_indicators, week_of
from models.backtest import BacktestResult, Frames, PairedComparison
from models.metrics import PairedInterval
from models.strata import ONE_STRATUM, strata_indicator
from riskradar.audit import code_state
from riskradar.catalog import model_name
from riskradar.config import Settings


@dataclass(frozen=True)
class Training:
    """What the card describes: the target, the backtest's frames (label, the features the
    candidates saw, origins), the backtested models, the best candidate and baseline, the
    exposure strata, the panel's columns and the paired comparison with the best baseline on the
    promotion metric (`paired`) and on the PAI coverages of the table other than the promotion
    metric (`paired_also`)."""

    target: str
    frames: Frames
    results: list[BacktestResult]
    best: BacktestResult
    best_baseline: BacktestResult
    strata: pd.DataFrame
    columns: list[str]
    paired: PairedComparison | None = None
    paired_also: tuple[PairedComparison, ...] = ()


# The coverages the comparison table shows PAI at (the promotion metric is usually one of them).
PAI_COLUMNS = ("pai_1", "pai_3", "pai_5")


def metric_label(metric: str) -> str:
    """How a table names a metric: pai_3 -> PAI@3 (the share of area flagged, in %)."""
    found = re.fullmatch(r"(pai|pei|hit_rate)_(\d+)", metric)
    if found is None:
        return metric
    return {"pai": "PAI", "pei": "PEI*", "hit_rate": "hit rate"}[found[1]] + f"@{found[2]}"


def paired_header(paired: PairedComparison) -> str:
    return f"paired gain vs {paired.baseline}, {metric_label(paired.metric)} [95% CI] (weeks won)"


def paired_cell(gain: PairedInterval | None) -> str:
    """E.g. "+0.42 [+0.18, +0.66] (19/26)"; "n/a" without a gain or weeks to draw it from."""
    if gain is None or gain.weeks == 0:
        return "n/a"
    return f"{gain.mean:+.2f} [{gain.low:+.2f}, {gain.high:+.2f}] ({gain.won}/{gain.weeks})"


def comparison_table(
    results: list[BacktestResult],
    paired: PairedComparison | None = None,
    also: Sequence[PairedComparison] = (),
) -> str:
    """Markdown: one row per model, best PAI@3% first, means with their 95% intervals and, with
    `paired`, each candidate's paired gain over the best baseline (whose own row is the
    reference, 0), then its paired gains on the metrics of `also` (shown only with `paired`)."""
    comparisons = [paired, *also] if paired is not None else []
    head = "| model | kind | PAI@1% | PAI@3% | PAI@5% | PEI*@3% | deviance |"
    head += "".join(f" {paired_header(c)} |" for c in comparisons)
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in sorted(results, key=lambda r: -np.nan_to_num(r.mean("pai_3"), nan=-1)):
        cells = [
            f"{r.summary[m].mean:.2f} [{r.summary[m].low:.2f}, {r.summary[m].high:.2f}]" for m in PAI_COLUMNS
        ]
        pei, dev = r.mean("pei_3"), r.mean("deviance")
        row = f"| {r.name} | {r.kind} | {' | '.join(cells)} | {pei:.3f} | {dev:.4f} |"
        for c in comparisons:
            gain = c.gains.get(r.name)
            reference = "0 (reference)" if r.name == c.baseline else ""
            row += f" {paired_cell(gain) if gain is not None else reference} |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def paired_section(paired: PairedComparison | None, also: Sequence[PairedComparison] = ()) -> str:
    """The card's section on the paired comparison: the method in two sentences, the numbers
    (on the promotion metric, then on the metrics of `also`)."""
    if paired is None or not paired.gains:
        return ""
    label = metric_label(paired.metric)
    weeks = max(g.weeks for g in paired.gains.values())
    comparisons = [paired, *also]
    rows = "\n".join(
        f"| {name} | " + " | ".join(paired_cell(c.gains.get(name)) for c in comparisons) + " |"
        for name in paired.gains
    )
    others = ", ".join(metric_label(c.metric) for c in also)
    at_others = (
        f" The same gain at {others} is shown beside it; the gate decides on {label} only." if also else ""
    )
    return f"""
## Paired comparison with the best baseline
The gain is the mean, over the backtest weeks where both are defined, of a candidate's {label} minus
that of {paired.baseline} (the baseline the gate compares with). Its 95% interval is the percentile
interval of {paired.n_boot} circular block-bootstrap resamples of those weeks in runs of {paired.block}
consecutive weeks (seed {paired.seed}), because the weeks one fit predicts share its errors.{at_others}

With {weeks} weeks in {math.ceil(weeks / paired.block)} blocks the interval is approximate: read it with
the weeks won. The gate reports it with its decision and does not enforce it.

| candidate | {" | ".join(paired_header(c) for c in comparisons)} |
|---|{"---|" * len(comparisons)}
{rows}
"""


def absent_parts(settings: Settings, columns: list[str]) -> list[str]:
    """What the city's config or data lack, as the model card states it: roles left out, or
    whose feed had published nothing when the features were built, and no calendar."""
    roles, feats = settings.roles, settings.features
    assert feats is not None
    out = []
    if roles.area_boundaries is None:
        out.append("no area boundaries (roles.area_boundaries): cells belong to no area; no roll-up by area")
    indicators = roles.area_indicators
    if indicators is None:
        out.append(
            "no area indicators (roles.area_indicators): no area covariates; exposure strata not computed"
        )
    elif not any(c in columns for c in role_indicators(settings)):
        out.append(f"no area indicators in gold.features ({indicators.feed} had published nothing)")
    if indicators is not None and strata_indicator(settings) not in columns:
        out.append("no exposure strata (roles.area_indicators.exposure_strata): exposure strata not computed")
    if roles.weather is None:
        out.append("no weather series (roles.weather): no weather features")
    if feats.calendar is None:
        out.append("no holiday calendar (features.calendar): no week is marked as a holiday week")
    if not signal_feeds(settings):
        out.append("no other partners' signals (features.signals)")
    return out


def signal_feeds(settings: Settings) -> list[str]:
    """The feeds of `features.signals` that are enabled (the others count nothing)."""
    assert settings.features is not None
    return [s for s in settings.features.signals if s in settings.contracts]


def data_sources(settings: Settings) -> str:
    """The feature groups of the panel, with the feeds they come from."""
    roles, feats = settings.roles, settings.features
    assert feats is not None
    parts = ["past counts per category group", "decayed counts", "spatial lags"]
    if signal_feeds(settings):
        parts.append(f"other partners' signals ({', '.join(signal_feeds(settings))})")
    if roles.area_indicators:
        parts.append(f"area covariates ({roles.area_indicators.feed})")
    if roles.weather:
        parts.append(f"last week's weather ({roles.weather.feed})")
    calendar = feats.calendar
    if calendar:
        where = calendar.country + (f"-{calendar.subdivision}" if calendar.subdivision else "")
        parts.append(f"calendar (public holidays of {where})")
    else:
        parts.append("calendar (week of the year)")
    return ", ".join(parts)


def exposure_text(settings: Settings, strata: pd.DataFrame) -> str:
    """The card's sentence on the exposure table: its strata, or why there are none."""
    indicator = strata_indicator(settings)
    if indicator is None or (strata["stratum"] == ONE_STRATUM).all():
        return (
            "the exposure table (artifact `exposure_3pct.csv` of each run) has one stratum: exposure strata "
            "not computed (no area indicator defines them)"
        )
    role = settings.roles.area_indicators
    assert role is not None
    return (
        "the exposure table (artifact `exposure_3pct.csv` of each run) compares the share of flagged cells "
        f"with the share of area and of incidents per quintile of areas by `{indicator}` (feed {role.feed}; "
        f"{strata['stratum'].nunique()} strata). Population per area is not among the area indicators, "
        "so population shares are not reported"
    )


def model_card(settings: Settings, training: Training) -> str:
    """Markdown: intended use, data, absent parts, metrics, limitations, fairness risks."""
    t, frames = training, training.frames
    origins = frames.origins
    assert settings.training is not None
    partners = ", ".join(f"{c.name} ({c.partner})" for c in settings.contracts.values())
    absent = absent_parts(settings, list(t.columns))
    absent_text = "\n".join(f"- {a}" for a in absent) if absent else "- nothing: every role has its feed"
    return f"""# Model card: {model_name(t.target)}

## Intended use
Forecast the expected number of `{t.target}` incidents per {settings.grid.cell_size_m:g} m grid cell for
the coming week in {settings.city}, to direct place-based prevention (patrols, lighting, outreach).
**Not for individuals.** It scores places only; it must not be used to score, rank or list
people, and its inputs hold no person identifiers (pseudonymised or dropped at ingest).

## Data
Partners: {partners}. Label `{frames.label}`. {len(frames.features)} features from the cell x week panel
(gold.features): {data_sources(settings)}. Backtest weeks {week_of(origins[0])} ..
{week_of(origins[-1])} ({len(origins)} weeks, rolling origin, refit every
{settings.training.refit_every_weeks} weeks).

## Absent parts
{absent_text}

## Metrics (mean over backtest weeks, 95% bootstrap interval)
{comparison_table(t.results, t.paired, t.paired_also)}
Best candidate: **{t.best.name}**; best baseline: **{t.best_baseline.name}**.
{paired_section(t.paired, t.paired_also)}
## Limitations
- Police counts reflect where incidents are recorded, not where they all happen; officer-initiated
  categories follow patrol patterns (config `features.discovered_weight` controls their weight).
- Trained on {settings.city} data of a limited period; performance elsewhere or later is unknown
  until monitored.
- Weeks with few incidents make PAI noisy; read the intervals, not only the means.

## Fairness and feedback-loop risks
- Flagging places concentrates attention; {exposure_text(settings, t.strata)}.
- Extra patrols in flagged cells can raise recorded crime there and reinforce the forecast;
  monitor realised hit rates and prefer citizen-reported events for features.
"""


def gate_decision(
    name: str, best: BacktestResult, version: str, alias: str, reason: str, champion_version: str | None
) -> str:
    """The model card's last section: what the gate did with this run's models."""
    if champion_version is None:
        serving = f"The champion is unchanged: {name}@champion is still the version promoted before."
    elif champion_version == version:
        serving = f"**{best.name}** (v{version}) is the champion: `score` uses it from now on."
    else:
        serving = (
            f"**The champion is a baseline** (v{champion_version}): no learned candidate passed the "
            f"gate, so the forecast is the baseline's. {best.name} (v{version}) stays a challenger."
        )
    return f"""
## Decision of the promotion gate
{best.name} was registered as v{version} with the alias `{alias}`: {reason}.

{serving} A data scientist can move the alias `champion` in the MLflow UI after review.

{code_line()}
"""


def code_line() -> str:
    """The card's line on the code that trained the version (riskradar.audit.code_state)."""
    commit, dirty = code_state()
    if commit is None:
        return "Code: not run from a git checkout, so no commit names the code that trained this version."
    if dirty:
        return (
            f"Code: commit `{commit[:12]}` **with uncommitted changes**: that commit does not hold the "
            "code that trained this version (tag `riskradar.git_dirty`); do not promote it."
        )
    return f"Code: commit `{commit[:12]}`, with no uncommitted changes (tag `riskradar.git_commit`)."


def summary_table(target: str, result: dict[str, Any]) -> str:
    """What `riskradar train` reports per target: the registered version, its alias and why,
    and the comparison table."""
    rows = [
        f"train {target}: {result['model']} v{result['version']} -> {result['alias']} ({result['reason']})"
    ]
    rows.append(
        comparison_table(
            list(result["results"].values()), result.get("paired"), result.get("paired_also", ())
        )
    )
    return "\n".join(rows)
