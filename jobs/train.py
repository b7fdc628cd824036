"""Train: rolling-origin backtest of candidates against baselines, logged to MLflow, with a
promotion gate that cannot be talked around.

    riskradar train --target burglary [--config conf/riskradar.yaml]
    riskradar train --all

Per target: one MLflow experiment `riskradar-<target>`, a parent run per training with a
child run per candidate and per baseline. The best candidate is refitted on every labelled
week and registered as `riskradar-<target>`; it gets the alias `champion` only if its mean
promotion metric beats the best baseline and the current champion by the margin, otherwise
`challenger`, with the reason logged on the run.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features.panel import PanelSpec, feature_columns, role_indicators
from models.backtest import (
    BacktestResult,
    exposure_table,
    pai_curve,
    permutation_importances,
    run_baseline,
    run_candidate,
)
from models.baselines import HistoryRate, baselines_for
from models.estimators import FACTORIES, fit_weighted, make_candidates
from riskradar.audit import audited_run, git_commit
from riskradar.config import Settings, TrainingConfig
from riskradar.errors import ConfigError, NothingToDo
from riskradar.lake import Lake, has_parquet
from riskradar.registry import CHAMPION, find_champion, tracking_uri
from riskradar.runtime import add_target_arguments, context, job_parser, parse, selected_targets
from riskradar.spark import release_driver_heap

ID_COLUMNS = ["cell_id", "week_idx", "area_code"]
# Types our models hold that skops does not trust by default: the tree predictor of the
# gradient boosting model, our baselines and imputer, and the dtype that SimpleImputer kept in
# the linear models registered before MedianImputer replaced it.
SKOPS_TRUSTED_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "numpy.dtype",
    "models.baselines.HistoryRate",
    "models.estimators.MedianImputer",
]


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, dict[str, Any]]:
    parser = job_parser("riskradar train", __doc__)
    add_target_arguments(parser)
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    if settings.training is None or settings.features is None:
        raise ConfigError(f"{settings.config_file}: 'features' and 'training' sections are needed to train")
    targets = selected_targets(settings, args)
    panel_path = lake.gold("features")
    if not has_parquet(panel_path):
        raise NothingToDo(f"no feature panel under {panel_path}: run `riskradar build-features` first")
    panel = spark.read.parquet(str(panel_path))
    results = {}
    for target in targets:
        with audited_run(lake, "train", {"target": target}) as record:
            results[target] = train_target(spark, settings, lake, panel, target)
            record.inputs.append({"table": "gold.features", "weeks": results[target]["weeks"]})
            record.outputs.append(
                {
                    "model": results[target]["model"],
                    "version": results[target]["version"],
                    "alias": results[target]["alias"],
                    "run_id": results[target]["run_id"],
                }
            )
        print(_summary_table(target, results[target]))
    return results


def _config_hash(settings: Settings) -> str:
    payload = settings.model_dump(mode="json", exclude={"contracts", "config_file"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def load_frames(
    panel: DataFrame, features: list[str], label: str, horizon: int, training: TrainingConfig
) -> tuple[pd.DataFrame, pd.DataFrame, list[int]]:
    """(train sample, evaluation frame, backtest origins). Sampling happens in Spark: rows
    with events are kept, zero rows at `zero_row_fraction` with compensating weights."""
    labelled = panel.where(F.col(label).isNotNull())
    weeks = sorted(r[0] for r in labelled.select("week_idx").distinct().collect())
    if len(weeks) < training.backtest_weeks + 2:
        raise NothingToDo(
            f"{len(weeks)} labelled weeks in gold.features; the backtest of {training.backtest_weeks} weeks "
            f"needs at least {training.backtest_weeks + 2} (training.backtest_weeks)"
        )
    origins = weeks[-training.backtest_weeks :]
    # Features travel and sit in pandas as float32: half the memory of doubles, and the models
    # see the same values (counts are exact; the boosted trees bin them anyway).
    cols = [*ID_COLUMNS, *[F.col(c).cast("float").alias(c) for c in features], label]
    f = training.zero_row_fraction
    sample = labelled.where((F.col(label) > 0) | (F.rand(training.seed) < f)).withColumn(
        "sample_weight", F.when(F.col(label) > 0, 1.0).otherwise(1.0 / f)
    )
    n = sample.count()
    thinning = 1.0
    if n > training.max_train_rows:
        # A dense city keeps most cell-weeks (every row with an event). Every row is then kept
        # with the same probability, weighted back, so the driver holds about max_train_rows.
        thinning = training.max_train_rows / n
        sample = sample.where(F.rand(training.seed + 1) < thinning).withColumn(
            "sample_weight", F.col("sample_weight") / thinning
        )
        print(
            f"train {label}: the training sample has {n} rows, more than training.max_train_rows = "
            f"{training.max_train_rows}; keeping each row with probability {thinning:.4f}, weighted back"
        )
    train = sample.select(*cols, "sample_weight").toPandas()
    train.attrs["sampled_rows"], train.attrs["thinning"] = n, thinning
    evaluation = labelled.where(F.col("week_idx").isin(origins))
    m = evaluation.count()
    if m > training.max_evaluate_rows:
        raise ConfigError(
            f"the backtest frame has {m} rows ({len(origins)} weeks x study cells), more than "
            f"training.max_evaluate_rows = {training.max_evaluate_rows}; lower training.backtest_weeks "
            "or raise the bound"
        )
    evaluate = evaluation.select(*cols).toPandas()
    return train, evaluate, origins


ONE_STRATUM = "all cells"


def strata_indicator(settings: Settings) -> str | None:
    """The area indicator whose quintiles of areas are the exposure strata (None: no strata)."""
    role = settings.roles.area_indicators
    return role.exposure_strata if role else None


def _strata(evaluate: pd.DataFrame, indicator: str | None) -> pd.DataFrame:
    """Cells grouped by `indicator` of their area, in quintiles of areas; one stratum when there
    is no such indicator among the columns (or no area)."""
    if indicator is None or indicator not in evaluate.columns or "area_code" not in evaluate.columns:
        cells = evaluate.drop_duplicates("cell_id")[["cell_id"]].copy()
        cells["stratum"] = ONE_STRATUM
        return cells
    cells = evaluate.drop_duplicates("cell_id")[["cell_id", "area_code", indicator]]
    areas = cells.dropna(subset=["area_code", indicator]).drop_duplicates("area_code")
    words = indicator.replace("_", " ")
    quintile = pd.qcut(
        areas[indicator],
        5,
        labels=[
            f"Q{i} (lowest {words})" if i == 1 else (f"Q{i} (highest {words})" if i == 5 else f"Q{i}")
            for i in range(1, 6)
        ],
    )
    lookup = dict(zip(areas["area_code"], quintile.astype(str), strict=True))
    strata = cells[["cell_id"]].copy()
    strata["stratum"] = cells["area_code"].map(lookup).fillna("outside the areas").to_numpy()
    return strata


def train_target(
    spark: SparkSession, settings: Settings, lake: Lake, panel: DataFrame, target: str
) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    training, feats = settings.training, settings.features
    assert training is not None and feats is not None
    horizon = feats.horizons_weeks[0]
    label = f"label_{target}_h{horizon}"
    indicators = [c for c in role_indicators(settings) if c in panel.columns]
    features = [
        c for c in feature_columns(PanelSpec.from_settings(settings, indicators)) if c in panel.columns
    ]
    train, evaluate, origins = load_frames(panel, features, label, horizon, training)
    release_driver_heap(spark)  # the fits below run in Python, for minutes
    # A feature with no value at all (a feed that is not enabled, e.g. weather) carries nothing
    # and breaks the binning of the boosted trees: leave it out, and say so on the run.
    empty = [c for c in features if train[c].isna().all()]
    features = [c for c in features if c not in empty]

    results: list[BacktestResult] = []
    baseline_models = baselines_for(target, feats.windows_weeks, feats.decay_half_lives_weeks)
    for name, baseline in baseline_models.items():
        results.append(run_baseline(name, baseline, evaluate, label))

    def backtest(name: str, estimator) -> BacktestResult:
        result, model = run_candidate(
            name,
            estimator,
            train,
            evaluate,
            features=features,
            label=label,
            horizon=horizon,
            origins=origins,
            refit_every=training.refit_every_weeks,
        )
        # Importances of the last fit, on the weeks it predicted.
        last_block = evaluate[evaluate["week_idx"] >= origins[-1] - training.refit_every_weeks + 1]
        result.importances = permutation_importances(model, last_block, features, label, seed=training.seed)
        return result

    for name, estimator in make_candidates(training.candidates).items():
        results.append(backtest(name, estimator))
    metric = training.promotion_metric
    candidates = [r for r in results if r.kind == "candidate"]
    baselines = [r for r in results if r.kind == "baseline"]
    best = max(candidates, key=lambda r: np.nan_to_num(r.mean(metric), nan=-np.inf))
    best_baseline = max(baselines, key=lambda r: np.nan_to_num(r.mean(metric), nan=-np.inf))
    final = make_candidates({best.name: training.candidates[best.name]})[best.name]
    fit_weighted(final, train, features, label=label, weight="sample_weight")

    mlflow.set_tracking_uri(tracking_uri(settings, lake))
    experiment = f"riskradar-{target}"
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(
            experiment, artifact_location=(lake.root / "mlflow" / "artifacts" / target).as_uri()
        )
    mlflow.set_experiment(experiment)
    client = MlflowClient()
    model_name = f"riskradar-{target}"
    current_champion = find_champion(client, model_name)
    champion = _champion_recipe(current_champion)
    champion_value = None
    if champion is not None:
        # The champion's recipe on today's backtest: the gate compares like with like.
        name, params = champion
        champion_value = backtest(f"champion_{name}", make_candidates({name: params})[name]).mean(metric)
    tags = {
        "riskradar.target": target,
        "riskradar.git_commit": git_commit() or "unknown",
        "riskradar.config_hash": _config_hash(settings),
        "riskradar.label": label,
        "riskradar.features_table": str(lake.gold("features")),
    }
    weeks = {
        "backtest_first_week_idx": origins[0],
        "backtest_last_week_idx": origins[-1],
        "train_rows": len(train),
        "train_sample_rows_before_thinning": train.attrs["sampled_rows"],
        "train_thinning": round(train.attrs["thinning"], 6),
        "evaluate_rows": len(evaluate),
    }
    with mlflow.start_run(run_name=f"train-{target}", tags=tags) as parent:
        mlflow.log_params(
            {
                **weeks,
                "horizon_weeks": horizon,
                "backtest_weeks": training.backtest_weeks,
                "refit_every_weeks": training.refit_every_weeks,
                "zero_row_fraction": training.zero_row_fraction,
                "n_features": len(features),
                "features_left_out_empty": ",".join(empty) or "none",
            }
        )
        dataset = mlflow.data.from_pandas(
            evaluate.head(1000), source=str(lake.gold("features")), name="gold.features", targets=label
        )
        mlflow.log_input(dataset, context="backtest")
        strata = _strata(evaluate, strata_indicator(settings))
        child_runs = {}
        for result in results:
            with mlflow.start_run(
                run_name=result.name, nested=True, tags={**tags, "riskradar.kind": result.kind}
            ) as run:
                child_runs[result.name] = run.info.run_id
                _log_result(result, strata, training.candidates.get(result.name))
        mlflow.log_metrics(
            {
                f"best_{metric}_mean": best.mean(metric),
                f"best_baseline_{metric}_mean": best_baseline.mean(metric),
            }
        )
        mlflow.log_text(_comparison(results), "comparison.md")
        version = _register(final, "model", train[features].head(50), model_name)
        alias, reason = _gate(best, best_baseline, champion_value, metric, training.promotion_margin)
        client.set_registered_model_alias(model_name, alias, version)
        mlflow.set_tags(
            {"riskradar.alias": alias, "riskradar.gate_reason": reason, "riskradar.best_candidate": best.name}
        )
        client.set_model_version_tag(model_name, version, "gate_reason", reason)
        client.set_model_version_tag(model_name, version, f"{metric}_mean", repr(best.mean(metric)))
        client.set_model_version_tag(model_name, version, "candidate", best.name)
        client.set_model_version_tag(
            model_name, version, "params", json.dumps(training.candidates[best.name])
        )
        champion_version = version if alias == CHAMPION else None
        if alias != CHAMPION and current_champion is None:
            # Nothing to score with yet and no learned model beats the baseline: the best
            # baseline is registered and serves as the champion until a learned model beats it.
            champion_version = _register_baseline(
                client, model_name, best_baseline, baseline_models[best_baseline.name], evaluate, metric
            )
            reason += (
                f"; no champion yet, so the best baseline {best_baseline.name} is registered as "
                f"v{champion_version} and serves as champion until a learned model beats it by the margin"
            )
        mlflow.log_text(reason, "gate_decision.txt")
        card = _model_card(
            settings, target, label, best, best_baseline, results, features, origins, strata, panel.columns
        )
        card += _decision(model_name, best, version, alias, reason, champion_version)
        mlflow.log_text(card, "model_card.md")
    return {
        "experiment": experiment,
        "run_id": parent.info.run_id,
        "model": model_name,
        "version": version,
        "alias": alias,
        "reason": reason,
        "champion_version": champion_version,
        "weeks": [int(origins[0]), int(origins[-1])],
        "results": {r.name: r for r in results},
        "child_runs": child_runs,
    }


def _register(model, artifact: str, example: pd.DataFrame, model_name: str) -> str:
    """Log a fitted model in the active run, with the signature of `example`, as a new version."""
    import mlflow

    info = mlflow.sklearn.log_model(
        model,
        name=artifact,
        input_example=example.head(5),
        signature=mlflow.models.infer_signature(example, model.predict(example)),
        registered_model_name=model_name,
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )
    return info.registered_model_version


def _register_baseline(
    client,
    model_name: str,
    result: BacktestResult,
    baseline: HistoryRate,
    evaluate: pd.DataFrame,
    metric: str,
) -> str:
    """Register a baseline as a version of the target's model, with the alias champion."""
    example = evaluate[[baseline.column]].head(50)
    version = _register(baseline.fit(example), "baseline_model", example, model_name)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    for key, value in {
        "kind": "baseline",
        "candidate": result.name,
        f"{metric}_mean": repr(result.mean(metric)),
        "gate_reason": "best baseline, serving as champion: no learned candidate beat it by the margin",
    }.items():
        client.set_model_version_tag(model_name, version, key, value)
    return version


def _decision(
    model_name: str,
    best: BacktestResult,
    version: str,
    alias: str,
    reason: str,
    champion_version: str | None,
) -> str:
    """The model card's last section: what the gate did with this run's models."""
    if champion_version is None:
        serving = f"The champion is unchanged: {model_name}@champion is still the version promoted before."
    elif champion_version == version:
        serving = f"**{best.name}** (v{version}) is the champion: `score` uses it from now on."
    else:
        serving = (
            f"**The champion is a baseline** (v{champion_version}): no learned candidate beat it by the "
            f"margin, so the forecast is the baseline's. {best.name} (v{version}) stays a challenger."
        )
    return f"""
## Decision of the promotion gate
{best.name} was registered as v{version} with the alias `{alias}`: {reason}.

{serving} A data scientist can move the alias `champion` in the MLflow UI after review.
"""


def _champion_recipe(version) -> tuple[str, dict[str, Any]] | None:
    """(candidate name, hyperparameters) of the champion version, if it is a learned candidate."""
    if version is None:
        return None
    tags = version.tags or {}
    if "candidate" not in tags or tags["candidate"] not in FACTORIES:
        return None
    return tags["candidate"], json.loads(tags.get("params", "{}"))


def _gate(best: BacktestResult, baseline: BacktestResult, champion: float | None, metric: str, margin: float):
    """champion only if the best candidate beats the best baseline and the champion by the margin."""
    value, base = best.mean(metric), baseline.mean(metric)
    if not value > base + margin:
        return "challenger", (
            f"{best.name} {metric} {value:.3f} does not beat the best baseline "
            f"{baseline.name} ({base:.3f}) by the margin {margin}"
        )
    if champion is not None and not value > champion + margin:
        return "challenger", (
            f"{best.name} {metric} {value:.3f} does not beat the current champion "
            f"({champion:.3f}) by the margin {margin}"
        )
    return "champion", (
        f"{best.name} {metric} {value:.3f} beats the best baseline {baseline.name} ({base:.3f})"
        + (f" and the champion ({champion:.3f})" if champion is not None else " (no champion yet)")
        + f" by more than {margin}"
    )


def _log_result(result: BacktestResult, strata: pd.DataFrame, params: dict[str, Any] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    if params:
        mlflow.log_params(params)
    for name, interval in result.summary.items():
        mlflow.log_metrics(
            {f"{name}_mean": interval.mean, f"{name}_low": interval.low, f"{name}_high": interval.high}
        )
    for _, row in result.weekly.iterrows():
        mlflow.log_metrics(
            {k: float(v) for k, v in row.items() if k != "week_idx" and pd.notna(v)},
            step=int(row["week_idx"]),
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        result.weekly.to_csv(out / "weekly_metrics.csv", index=False)
        coverage = np.linspace(0.005, 0.2, 40)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(coverage * 100, pai_curve(result.predictions, coverage))
        ax.set(
            xlabel="share of the study area flagged (%)",
            ylabel="mean PAI over backtest weeks",
            title=f"PAI vs coverage: {result.name}",
        )
        fig.savefig(out / "pai_curve.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        from models.metrics import calibration_by_decile

        cal = pd.DataFrame(
            calibration_by_decile(result.predictions["y"].to_numpy(), result.predictions["mu"].to_numpy())
        )
        cal.to_csv(out / "calibration.csv", index=False)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(cal["predicted"], cal["observed"], "o-")
        top = max(cal["predicted"].max(), cal["observed"].max())
        ax.plot([0, top], [0, top], "--", color="grey")
        ax.set(
            xlabel="mean predicted count", ylabel="mean observed count", title=f"Calibration: {result.name}"
        )
        fig.savefig(out / "calibration.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        exposure_table(result.predictions, strata, 0.03).to_csv(out / "exposure_3pct.csv", index=False)
        if result.importances is not None:
            result.importances.to_csv(out / "permutation_importances.csv", index=False)
            top = result.importances.head(20).iloc[::-1]
            fig, ax = plt.subplots(figsize=(6, 6))
            ax.barh(top["feature"], top["importance_mean"], xerr=top["importance_std"])
            ax.set(
                xlabel="increase in mean Poisson deviance when shuffled",
                title=f"Permutation importance: {result.name}",
            )
            fig.savefig(out / "permutation_importances.png", dpi=100, bbox_inches="tight")
            plt.close(fig)
        mlflow.log_artifacts(tmp)


def _comparison(results: list[BacktestResult]) -> str:
    lines = [
        "| model | kind | PAI@1% | PAI@3% | PAI@5% | PEI*@3% | deviance |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: -np.nan_to_num(r.mean("pai_3"), nan=-1)):
        cells = [
            f"{r.summary[m].mean:.2f} [{r.summary[m].low:.2f}, {r.summary[m].high:.2f}]"
            for m in ("pai_1", "pai_3", "pai_5")
        ]
        pei, dev = r.mean("pei_3"), r.mean("deviance")
        lines.append(f"| {r.name} | {r.kind} | {' | '.join(cells)} | {pei:.3f} | {dev:.4f} |")
    return "\n".join(lines) + "\n"


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
    if not _signal_feeds(settings):
        out.append("no other partners' signals (features.signals)")
    return out


def _signal_feeds(settings: Settings) -> list[str]:
    """The feeds of `features.signals` that are enabled (the others count nothing)."""
    assert settings.features is not None
    return [s for s in settings.features.signals if s in settings.contracts]


def _data_sources(settings: Settings) -> str:
    """The feature groups of the panel, with the feeds they come from."""
    roles, feats = settings.roles, settings.features
    assert feats is not None
    parts = ["past counts per category group", "decayed counts", "spatial lags"]
    if _signal_feeds(settings):
        parts.append(f"other partners' signals ({', '.join(_signal_feeds(settings))})")
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


def _exposure_text(settings: Settings, strata: pd.DataFrame) -> str:
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


def _model_card(
    settings, target, label, best, best_baseline, results, features, origins, strata, columns
) -> str:
    from features.panel import week_of

    partners = ", ".join(f"{c.name} ({c.partner})" for c in settings.contracts.values())
    absent = absent_parts(settings, list(columns))
    absent_text = "\n".join(f"- {a}" for a in absent) if absent else "- nothing: every role has its feed"
    return f"""# Model card: riskradar-{target}

## Intended use
Forecast the expected number of `{target}` incidents per {settings.grid.cell_size_m:g} m grid cell for
the coming week in {settings.city}, to direct place-based prevention (patrols, lighting, outreach).
**Not for individuals.** It scores places only; it must not be used to score, rank or list
people, and its inputs hold no person identifiers (pseudonymised or dropped at ingest).

## Data
Partners: {partners}. Label `{label}`. {len(features)} features from the cell x week panel
(gold.features): {_data_sources(settings)}. Backtest weeks {week_of(origins[0])} ..
{week_of(origins[-1])} ({len(origins)} weeks, rolling origin, refit every
{settings.training.refit_every_weeks} weeks).

## Absent parts
{absent_text}

## Metrics (mean over backtest weeks, 95% bootstrap interval)
{_comparison(results)}
Best candidate: **{best.name}**; best baseline: **{best_baseline.name}**.

## Limitations
- Police counts reflect where incidents are recorded, not where they all happen; officer-initiated
  categories follow patrol patterns (config `features.discovered_weight` controls their weight).
- Trained on {settings.city} data of a limited period; performance elsewhere or later is unknown
  until monitored.
- Weeks with few incidents make PAI noisy; read the intervals, not only the means.

## Fairness and feedback-loop risks
- Flagging places concentrates attention; {_exposure_text(settings, strata)}.
- Extra patrols in flagged cells can raise recorded crime there and reinforce the forecast;
  monitor realised hit rates and prefer citizen-reported events for features.
"""


def _summary_table(target: str, result: dict[str, Any]) -> str:
    rows = [
        f"train {target}: {result['model']} v{result['version']} -> {result['alias']} ({result['reason']})"
    ]
    rows.append(_comparison(list(result["results"].values())))
    return "\n".join(rows)


if __name__ == "__main__":
    main()
