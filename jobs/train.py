"""Train: rolling-origin backtest of candidates against baselines, logged to MLflow, with a
promotion gate that cannot be talked around.

    riskradar train --target burglary [--config conf/riskradar.yaml]
    riskradar train --all

Per target: one MLflow experiment `riskradar-<target>`, a parent run per training with a
child run per candidate and per baseline. The best candidate is refitted on every labelled
week and registered as `riskradar-<target>`; it gets the alias `champion` only if it beats
the best baseline (its mean promotion metric by the margin, or with
`training.promotion_lower_end` the lower end of its paired gain above that bar) and the current
champion by the margin, otherwise `challenger`, with the reason logged on the run.

The job reads, samples and logs; the backtest is `models.backtest`, the gate `models.gate`, the
exposure strata `models.strata`, the plots and the model card `reports.plots` and
`reports.model_card`. Each fit of the backtest is logged ("fit 3/7 for burglary, 2 min elapsed").

The backtest's evaluation rows (every study cell of the backtest and tuning weeks) are written
once to the run's scratch folder, a folder per week, and the driver reads a refit block (or a
tuning's validation weeks) at a time: `training.max_evaluate_rows` bounds those rows. The folder
goes when the training ends, failed or not (`evaluation_scratch`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from features.panel import PanelSpec, role_indicators, target_features
from models.backtest import (
    BacktestResult,
    CandidateRun,
    Fitting,
    Frames,
    PairedComparison,
    Rows,
    backtest_candidate,
    blend_name,
    compare_paired,
    fits_per_backtest,
    is_blend,
    recipe_of,
    run_baseline,
    tune_at,
)
from models.baselines import HistoryRate, baselines_for
from models.estimators import Blend, fit_weighted, inputs_of, make_candidates
from models.gate import (
    BASELINE_CHAMPION_REASON,
    baseline_serves_reason,
    best_non_inferior,
    best_of,
    champion_recipe,
    gate,
)
from models.metrics import PairedInterval, ranking_metrics
from models.strata import exposure_strata, strata_indicator
from models.study import (
    FULL,
    Variant,
    ablations,
    learning_curve,
    records,
    run_variant,
    study_row,
    study_table,
)
from models.tuning import known_rows, validation_span
from reports.model_card import (
    PAI_COLUMNS,
    Training,
    comparison_table,
    gate_decision,
    model_card,
    summary_table,
)
from reports.plots import write_result_artifacts
from riskradar.audit import RunRecord, audited_run, code_state
from riskradar.catalog import FEATURES, experiment_name, label_column, model_name, read_panel
from riskradar.config import Settings, TrainingConfig
from riskradar.errors import ConfigError, NothingToDo
from riskradar.lake import Lake, clear_scratch, lock
from riskradar.log import Progress, step
from riskradar.registry import CHAMPION, find_champion, register_model, tag_version, tracking_uri
from riskradar.runtime import add_target_arguments, context, job_parser, parse, selected_targets
from riskradar.spark import release_driver_heap
from riskradar.weekly_rows import WeeklyRows, write_weekly_rows

log = logging.getLogger(__name__)
ID_COLUMNS = ["cell_id", "week_idx", "area_code"]


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, dict[str, Any]]:
    parser = job_parser("riskradar train", __doc__)
    add_target_arguments(parser)
    parser.add_argument(
        "--study",
        action="store_true",
        help="also refit the best candidate without each feature family and with the history capped at "
        "training.learning_curve_weeks (ablation and learning curve, artifacts of the run); slow",
    )
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    if settings.training is None or settings.features is None:
        raise ConfigError(f"{settings.config_file}: 'features' and 'training' sections are needed to train")
    targets = selected_targets(settings, args)
    check_grid(settings)
    check_promotion_metric(settings)
    panel = read_panel(spark, lake)
    results = {}
    for target in targets:
        with audited_run(lake, "train", {"target": target}) as record:
            with evaluation_scratch(lake, target, record) as scratch:
                results[target] = result = train_target(
                    spark, settings, lake, panel, target, study=args.study, scratch=scratch
                )
            record.inputs.append({"table": "gold.features", "weeks": result["weeks"]})
            record.outputs.append({k: result[k] for k in ("model", "version", "alias", "run_id")})
            log.info("%s", summary_table(target, result))
    return results


@contextmanager
def evaluation_scratch(lake: Lake, target: str, record: RunRecord) -> Iterator[Path]:
    """The run's scratch folder for the evaluation rows of `target`, removed when the block
    ends, failed or not (a killed run's is removed by the next training of the target, or by
    the next run of any job that takes a lock of the lake). The target's lock is held meanwhile:
    a run that takes a lock removes the scratch of every run that holds none."""
    with lock(lake, f"train.{target}", run_id=record.run_id, job="train") as notes:
        record.notes += notes
        clear_scratch(lake, "train", target)  # what a killed training left
        try:
            yield lake.scratch("train", target, record.run_id)
        finally:
            clear_scratch(lake, "train", target)


def check_grid(settings: Settings) -> None:
    """Every point of the tuning grid must be hyperparameters of every candidate, or the first
    tuning would fail minutes into the training."""
    training = settings.training
    assert training is not None
    for name, estimator in make_candidates(training.candidates).items():
        for point in training.tuning.grid if training.tuning else []:
            unknown = sorted(set(point) - set(estimator.get_params()))
            if unknown:
                raise ConfigError(
                    f"{settings.config_file}: key 'training.tuning.grid' = {point}: {', '.join(unknown)} "
                    f"is not a hyperparameter of candidate {name}"
                )


def check_promotion_metric(settings: Settings) -> None:
    """The gate and the tuning keep the higher value of the promotion metric: it must be one of
    the metrics where higher is better, or the gate would promote the worse model."""
    training = settings.training
    assert training is not None
    allowed = ranking_metrics()
    checked = {"training.promotion_metric": training.promotion_metric}
    if training.non_inferiority is not None:
        checked |= {
            f"training.non_inferiority.metrics.{i}": m for i, m in enumerate(training.non_inferiority.metrics)
        }
    for key, metric in checked.items():
        if metric not in allowed:
            raise ConfigError(
                f"{settings.config_file}: key '{key}' = {metric!r}: "
                f"expected one of {', '.join(allowed)} (a metric where higher is better)"
            )


def _config_hash(settings: Settings) -> str:
    payload = settings.model_dump(mode="json", exclude={"contracts", "config_file"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def load_frames(
    panel: DataFrame,
    features: list[str],
    label: str,
    horizon: int,
    training: TrainingConfig,
    *,
    scratch: Path | None = None,
    study: bool = False,
) -> tuple[pd.DataFrame, Rows, Rows | None, list[int]]:
    """(train sample, evaluation rows, the weeks before them that tuning validates on (None
    without tuning), backtest origins). Sampling happens in Spark: rows with events are kept,
    zero rows at `zero_row_fraction` with compensating weights. The evaluation rows are pandas
    frames, or with `scratch`, `WeeklyRows` written there once (`evaluation_rows`; `study`: the
    study's refits read from them too)."""
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
    train = training_sample(labelled, cols, label, training)
    before_weeks = []
    if training.tuning is not None:
        first, _ = validation_span(origins[0], horizon, training.tuning)
        before_weeks = [w for w in weeks if first <= w < origins[0]]
    evaluation = labelled.where(F.col("week_idx").isin(origins + before_weeks))
    if scratch is None:
        evaluate, before = held_evaluation(evaluation.select(*cols), origins, len(before_weeks), training)
    else:
        rows = evaluation_rows(evaluation.select(*cols), scratch, training, study=study)
        evaluate, before = rows.only(origins), rows.only(before_weeks)
    return train, evaluate, before if training.tuning is not None else None, origins


def training_sample(labelled: DataFrame, cols: list, label: str, training: TrainingConfig) -> pd.DataFrame:
    """The weighted training sample of the labelled rows, thinned to about `max_train_rows`;
    its attrs say how many rows were sampled and the thinning."""
    f = training.zero_row_fraction
    sample = labelled.where((F.col(label) > 0) | (row_draw(training.seed) < f)).withColumn(
        "sample_weight", F.when(F.col(label) > 0, 1.0).otherwise(1.0 / f)
    )
    n = sample.count()
    thinning = 1.0
    if n > training.max_train_rows:
        # A dense city keeps most cell-weeks (every row with an event). Every row is then kept
        # with the same probability, weighted back, so the driver holds about max_train_rows.
        thinning = training.max_train_rows / n
        sample = sample.where(row_draw(training.seed + 1) < thinning).withColumn(
            "sample_weight", F.col("sample_weight") / thinning
        )
        log.info(
            "train %s: the training sample has %d rows, more than training.max_train_rows = %d; "
            "keeping each row with probability %.4f, weighted back",
            label,
            n,
            training.max_train_rows,
            thinning,
        )
    # In a fixed order (the trees' binning subsample and early-stopping split draw by position),
    # sorted by Spark: a sort in pandas would hold a second copy of the sample on the driver.
    train = sample.select(*cols, "sample_weight").orderBy("week_idx", "cell_id").toPandas()
    train.attrs["sampled_rows"], train.attrs["thinning"] = n, thinning
    return train


def row_draw(seed: int) -> Column:
    """A uniform draw in [0, 1) per cell-week, a hash of (cell_id, week_idx, seed): the same rows
    are drawn whatever the panel's partitioning, file order or path (`F.rand` draws by position
    within a partition, so the same panel read another way gave another sample)."""
    bits = F.xxhash64("cell_id", "week_idx", F.lit(seed)).bitwiseAND(F.lit((1 << 53) - 1))
    return bits / float(1 << 53)


def held_evaluation(
    evaluation: DataFrame, origins: list[int], before_weeks: int, training: TrainingConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The evaluation rows as pandas frames, (the backtest weeks, the weeks before them): the
    driver holds every row at once, so `max_evaluate_rows` bounds them all."""
    m = evaluation.count()
    if m > training.max_evaluate_rows:
        raise ConfigError(
            f"the backtest frame has {m} rows ({len(origins) + before_weeks} weeks x study cells), more "
            f"than training.max_evaluate_rows = {training.max_evaluate_rows}; lower training.backtest_weeks "
            "or raise the bound"
        )
    loaded = evaluation.toPandas()
    in_backtest = loaded["week_idx"].isin(origins)
    return loaded[in_backtest].reset_index(drop=True), loaded[~in_backtest].reset_index(drop=True)


def evaluation_rows(
    evaluation: DataFrame, scratch: Path, training: TrainingConfig, *, study: bool
) -> WeeklyRows:
    """The evaluation rows written under `scratch`, a folder per week. The driver reads at most
    a refit block, a tuning's validation weeks or (`study`) a study's block at once:
    `max_evaluate_rows` bounds the largest of those reads, refused before any fit."""
    rows = write_weekly_rows(evaluation, scratch)
    spans = {"training.refit_every_weeks": training.refit_every_weeks}
    if training.tuning is not None:
        spans["training.tuning.validation_weeks"] = training.tuning.validation_weeks
    if study and training.study.refit_every_weeks is not None:
        spans["training.study.refit_every_weeks"] = training.study.refit_every_weeks
    setting, span = max(spans.items(), key=lambda item: item[1])
    weeks = rows.weeks()
    most = max(sum(rows.rows[w] for w in weeks[i : i + span]) for i in range(len(weeks)))
    if most > training.max_evaluate_rows:
        raise ConfigError(
            f"the backtest reads up to {most} rows at once ({setting} = {span} weeks x study cells), "
            f"more than training.max_evaluate_rows = {training.max_evaluate_rows}; lower {setting} or "
            "raise the bound"
        )
    return rows


def read_frames(
    spark: SparkSession,
    settings: Settings,
    panel: DataFrame,
    target: str,
    label: str,
    horizon: int,
    *,
    without: tuple[str, ...] = (),
    baselines: dict[str, HistoryRate] | None = None,
    scratch: Path | None = None,
    study: bool = False,
) -> tuple[Frames, list[str]]:
    """The backtest's frames for `target` (its feature list, less the families in `without`)
    and the features left out because they hold no value at all. The columns the `baselines`
    read are loaded too, features or not. With `scratch`, the evaluation rows are written there
    and read a block at a time (`load_frames`)."""
    assert settings.training is not None
    spec = panel_spec(settings, panel)
    features = [c for c in target_features(spec, target, without) if c in panel.columns]
    needed = [b.column for b in (baselines or {}).values() if b.column in panel.columns]
    loaded = features + [c for c in dict.fromkeys(needed) if c not in features]
    train, evaluate, before, origins = load_frames(
        panel, loaded, label, horizon, settings.training, scratch=scratch, study=study
    )
    release_driver_heap(spark)  # the fits that follow run in Python, for minutes
    # A feature with no value at all (a feed that is not enabled, e.g. weather) carries nothing
    # and breaks the binning of the boosted trees: leave it out, and say so on the run.
    empty = [c for c in features if train[c].isna().all()]
    kept = [c for c in features if c not in empty]
    return Frames(train, evaluate, kept, label, horizon, origins, before), empty


def panel_spec(settings: Settings, panel: DataFrame) -> PanelSpec:
    """The configured panel, with the area indicators `panel` has columns for."""
    return PanelSpec.from_settings(settings, [c for c in role_indicators(settings) if c in panel.columns])


def target_baselines(settings: Settings, target: str, columns: list[str]) -> dict[str, HistoryRate]:
    """The baselines of `target` the config describes and the panel has the columns of."""
    feats = settings.features
    assert feats is not None
    every = baselines_for(
        target,
        feats.windows_weeks,
        feats.decay_half_lives_weeks,
        all_history=feats.all_history,
        kde=feats.kde,
    )
    return {k: b for k, b in every.items() if b.column in columns}


def fitting_for(training: TrainingConfig, baselines: dict[str, HistoryRate]) -> Fitting:
    """How the configured training fits each candidate."""
    return Fitting(
        refit_every=training.refit_every_weeks,
        max_history=training.max_history_weeks,
        tuning=training.tuning,
        baselines=baselines,
        metric=training.promotion_metric,
        seed=training.seed,
    )


def backtest_all(
    target: str,
    frames: Frames,
    training: TrainingConfig,
    baselines: dict[str, HistoryRate],
    champion: tuple[str, dict[str, Any]] | None,
) -> tuple[list[BacktestResult], float | None, dict[str, CandidateRun]]:
    """Every baseline and candidate (and its blend, with tuning's blend weights) backtested, in
    that order; the mean promotion metric of the current champion's recipe on today's backtest
    (None without a learned champion): the gate compares like with like; and each candidate's
    run (its tuning choices) by name. Each fit is logged with its count and the time elapsed."""
    with _phase("backtest baselines"):
        # Each baseline reads its ids, label and map of every backtest week: a few columns.
        results = [
            run_baseline(
                name,
                b,
                frames.backtest_columns(["cell_id", "week_idx", frames.label, b.column]),
                frames.label,
            )
            for name, b in baselines.items()
        ]
    recipes = dict(make_candidates(training.candidates, baselines))
    if champion is not None:
        base, params = recipe_of(champion[0]), champion[1]
        recipes[f"champion_{base}"] = make_candidates({base: params}, baselines)[base]
    fitting = fitting_for(training, baselines)
    fits = fits_per_backtest(frames.origins, training.refit_every_weeks, training.tuning) * len(recipes)
    runs: dict[str, CandidateRun] = {}
    with Progress("fit", fits, logger=log) as progress:
        for name, estimator in recipes.items():
            with step(f"backtest {name}", log, every_s=None):  # the fits' Progress speaks
                runs[name] = backtest_candidate(
                    name, estimator, frames, fitting, on_fit=lambda: progress.advance(f"for {target}")
                )
    champion_value = None
    if champion is not None:
        run = runs.pop(f"champion_{recipe_of(champion[0])}")
        held = run.blend if is_blend(champion[0]) and run.blend is not None else run.result
        champion_value = held.mean(training.promotion_metric)
    candidates = [r for run in runs.values() for r in (run.result, run.blend) if r is not None]
    return results + candidates, champion_value, runs


def cell_strata(frames: Frames, settings: Settings) -> pd.DataFrame:
    """The exposure strata of the backtest's cells (`models.strata`), read from the area
    columns of every backtest row."""
    indicator = strata_indicator(settings)
    columns = ["cell_id", "area_code", *([indicator] if indicator else [])]
    return exposure_strata(frames.backtest_columns(columns), indicator)


@dataclass(frozen=True)
class FinalModel:
    """The refitted best candidate: the estimator registered, its hyperparameters, the columns
    it reads and, for a blend, what it mixes ("0.75 x model + 0.25 x ewma_hl52")."""

    model: Any
    params: dict[str, Any]
    inputs: list[str]
    blend: str | None = None


def final_model(
    best: str, frames: Frames, training: TrainingConfig, baselines: dict[str, HistoryRate]
) -> FinalModel:
    """The best candidate refitted on every labelled week (within the history cap), tuned on the
    newest weeks as each backtest fit was. A blend wraps the model with the baseline and weight
    its tuning chose."""
    base = recipe_of(best)
    estimator = make_candidates({base: training.candidates[base]}, baselines)[base]
    fitting = fitting_for(training, baselines)
    origin = max(frames.last_week(), int(frames.train["week_idx"].max())) + frames.horizon
    # A choice can change the final model only with a grid to choose from or a blend to make.
    matters = training.tuning is not None and (len(training.tuning.grid) > 1 or is_blend(best))
    choice = tune_at(estimator, frames, fitting, origin) if matters else None
    tuned = choice.params if choice else {}
    estimator.set_params(**tuned)
    rows = known_rows(frames.train, frames.label, frames.horizon, origin, training.max_history_weeks)
    fit_weighted(
        estimator, frames.train, frames.features, label=frames.label, weight="sample_weight", rows=rows
    )
    params = {**training.candidates[base], **tuned}
    inputs = inputs_of(estimator, frames.features)
    if not is_blend(best) or choice is None or choice.baseline is None:
        return FinalModel(estimator, params, inputs)  # a blend of weight 1 is the model
    blend = Blend(estimator, baselines[choice.baseline], choice.weight, tuple(inputs))
    mix = f"{choice.weight:g} x model + {1 - choice.weight:g} x {choice.baseline}"
    return FinalModel(blend, params, blend.inputs(), mix)


def train_target(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    panel: DataFrame,
    target: str,
    *,
    study: bool = False,
    scratch: Path | None = None,
) -> dict[str, Any]:
    """Backtest, refit the best candidate, log it all to MLflow, register and gate (and with
    `study`, the ablation and learning curve); the outcome (experiment, run id, model, version,
    alias, reason, champion version, backtest weeks, the results by name, the child runs by
    name, the paired comparison on the promotion metric and on the other PAI coverages
    (`paired_also`) and the study rows). With `scratch`, the evaluation rows are written there
    (`load_frames`)."""
    import mlflow
    from mlflow import MlflowClient

    training, feats = settings.training, settings.features
    assert training is not None and feats is not None
    horizon = feats.horizons_weeks[0]
    label = label_column(target, horizon)
    baselines = target_baselines(settings, target, panel.columns)
    with _phase("read panel"):
        frames, empty = read_frames(
            spark, settings, panel, target, label, horizon, baselines=baselines, scratch=scratch, study=study
        )
    name = model_name(target)
    mlflow.set_tracking_uri(tracking_uri(settings, lake))
    client = MlflowClient()
    current_champion = find_champion(client, name)
    recipe = champion_recipe(current_champion.tags if current_champion is not None else None)
    results, champion_value, runs = backtest_all(target, frames, training, baselines, recipe)
    ranked = standings(results, training)
    best, best_baseline, paired, paired_also = ranked.best, ranked.baseline, ranked.paired, ranked.paired_also
    with _phase("final fit"):
        final = final_model(best.name, frames, training, baselines)
    experiment = _experiment(lake, target)
    tags = _run_tags(settings, lake, target, label)
    with mlflow.start_run(run_name=f"train-{target}", tags=tags) as parent:
        strata = cell_strata(frames, settings)
        with _phase("log runs"):
            child_runs = _log_backtest(
                lake, frames, training, empty, results, strata, tags, (paired, *paired_also), _choices(runs)
            )
        _log_comparison(results, best, best_baseline, paired, paired_also)
        with _phase("registration"):
            version = register_model(final.model, "model", frames.train[final.inputs].head(50), name)
        with _phase("gate"):
            first_model = current_champion is None
            alias, reason, champion_version = _gate(
                client, name, version, ranked, champion_value, final, training, baselines, frames, first_model
            )
        training_done = Training(
            target, frames, results, best, best_baseline, strata, panel.columns, paired, paired_also
        )
        card = model_card(settings, training_done)
        card += gate_decision(name, best, version, alias, reason, champion_version)
        mlflow.log_text(card, "model_card.md")
        rows = _study(settings, panel, target, frames, runs, best, best_baseline, baselines) if study else []
    return {
        "experiment": experiment,
        "run_id": parent.info.run_id,
        "model": name,
        "version": version,
        "alias": alias,
        "reason": reason,
        "champion_version": champion_version,
        "weeks": [int(frames.origins[0]), int(frames.origins[-1])],
        "results": {r.name: r for r in results},
        "child_runs": child_runs,
        "paired": paired,
        "paired_also": paired_also,
        "study": rows,
    }


@dataclass(frozen=True)
class Standings:
    """What the backtest ranked: the best baseline, the best candidate (with
    `training.non_inferiority`, the best that loses at none of its metrics), the paired
    comparisons with that baseline and, per metric the gate checks non-inferiority at, each
    candidate's paired gain."""

    best: BacktestResult
    baseline: BacktestResult
    paired: PairedComparison
    paired_also: tuple[PairedComparison, ...]
    checks: dict[str, dict[str, PairedInterval]]

    def verdict(self, champion_value: float | None, training: TrainingConfig) -> tuple[str, str]:
        """The gate's (alias, reason) for the best candidate."""
        checked = training.non_inferiority
        return gate(
            self.best,
            self.baseline,
            champion_value,
            training.promotion_metric,
            training.promotion_margin,
            paired=self.paired.gains[self.best.name],
            non_inferior={m: gains[self.best.name] for m, gains in self.checks.items()},
            tolerance=checked.tolerance if checked else 0.0,
            lower_end=training.promotion_lower_end,
            block=self.paired.block,
        )


def standings(results: list[BacktestResult], training: TrainingConfig) -> Standings:
    """The `Standings` of a backtest's results."""
    metric = training.promotion_metric
    baseline = best_of(results, "baseline", metric)
    paired, paired_also = paired_comparisons(results, baseline, training)
    checks = non_inferiority_gains(paired_also, training)
    best = best_of(results, "candidate", metric)
    if checks:
        assert training.non_inferiority is not None
        best = best_non_inferior(results, metric, checks, training.non_inferiority.tolerance)
    return Standings(best, baseline, paired, paired_also, checks)


def paired_comparisons(
    results: list[BacktestResult], best_baseline: BacktestResult, training: TrainingConfig
) -> tuple[PairedComparison, tuple[PairedComparison, ...]]:
    """Every candidate against the best baseline, week by week: on the promotion metric (what
    the gate reports), and on the table's other PAI coverages (what an analyst flagging more or
    fewer cells would gain, reported beside it; the gate does not use them)."""
    metric, block = training.promotion_metric, training.paired_block_weeks or training.refit_every_weeks
    others = [*PAI_COLUMNS, *(training.non_inferiority.metrics if training.non_inferiority else [])]

    def on(m: str) -> PairedComparison:
        return compare_paired(results, best_baseline, m, block=block, seed=training.seed)

    return on(metric), tuple(on(m) for m in dict.fromkeys(others) if m != metric)


def non_inferiority_gains(
    paired_also: tuple[PairedComparison, ...], training: TrainingConfig
) -> dict[str, dict[str, PairedInterval]]:
    """metric -> candidate name -> paired gain over the best baseline, for each metric the gate
    judges non-inferiority at (empty without `training.non_inferiority`)."""
    if training.non_inferiority is None:
        return {}
    by_metric = {c.metric: c.gains for c in paired_also}
    return {m: by_metric[m] for m in training.non_inferiority.metrics if m != training.promotion_metric}


def _choices(runs: dict[str, CandidateRun]) -> dict[str, list[dict[str, Any]]]:
    """Each candidate's tuning choices (one record per tuning), under its name and its blend's."""
    choices = {n: [c.record() for c in run.choices] for n, run in runs.items()}
    return {**choices, **{blend_name(n): c for n, c in choices.items()}}


@contextmanager
def _phase(name: str) -> Iterator[None]:
    """A step of the training (its time in the audit record) that says every 50 s that it is
    still at work (riskradar.log.step): no phase of a long training is silent for a minute."""
    with step(name, log):
        yield


def _study(
    settings: Settings,
    panel: DataFrame,
    target: str,
    frames: Frames,
    runs: dict[str, CandidateRun],
    best: BacktestResult,
    best_baseline: BacktestResult,
    baselines: dict[str, HistoryRate],
) -> list[dict[str, Any]]:
    """The best candidate's recipe refitted without each feature family and with less history,
    into the active run as ablation.md, learning_curve.md and study.json; the rows."""
    import mlflow

    training = settings.training
    assert training is not None
    recipe = recipe_of(best.name)
    estimator = make_candidates({recipe: training.candidates[recipe]}, baselines)[recipe]
    spec = panel_spec(settings, panel)
    study = training.study
    fitting = fitting_for(training, baselines)
    same = study.tuned and study.refit_every_weeks in (None, training.refit_every_weeks)
    if not same:
        fitting = replace(
            fitting,
            refit_every=study.refit_every_weeks or training.refit_every_weeks,
            tuning=training.tuning if study.tuned else None,
        )
    block = training.paired_block_weeks or fitting.refit_every
    full = Variant(FULL, frames.features, None)
    parts = {
        "ablation": ablations(spec, target, frames.features),
        "learning_curve": learning_curve(frames.features, study.learning_curve_weeks),
    }
    count = sum(len(v) for v in parts.values()) + (0 if same else 1)
    n = count * fits_per_backtest(frames.origins, fitting.refit_every, fitting.tuning)
    with step("study", log, every_s=None), Progress("study fit", n, logger=log) as progress:
        advance = lambda: progress.advance(f"for {target}")  # noqa: E731
        if same:  # the training's own backtest is the all-features row
            main = runs[recipe]
            results = [r for r in (main.result, main.blend) if r is not None]
            first = study_row(full, results, best_baseline, fitting, block)
        else:
            first = run_variant(
                full, recipe, estimator, frames, fitting, best_baseline, block=block, on_fit=advance
            )
        rows = [first]
        for kind, variants in parts.items():
            table = [first]
            for variant in variants:
                row = run_variant(
                    variant, recipe, estimator, frames, fitting, best_baseline, block=block, on_fit=advance
                )
                table.append(row)
                log.info("study %s: %s, %s %.3f", target, variant.name, fitting.metric, row[fitting.metric])
            how = (
                "tuned as the training" if fitting.tuning else "every fit as configured (no tuning, no blend)"
            )
            note = f"Refit every {fitting.refit_every} weeks, {how}; paired blocks of {block} weeks.\n\n"
            mlflow.log_text(note + study_table(table, fitting.metric), f"{kind}.md")
            rows += table[1:]
    mlflow.log_table(records(rows), "study.json")
    return rows


def _experiment(lake: Lake, target: str) -> str:
    """The target's experiment, made on first use with its artifacts under the lake; active."""
    import mlflow

    experiment = experiment_name(target)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(
            experiment, artifact_location=(lake.root / "mlflow" / "artifacts" / target).as_uri()
        )
    mlflow.set_experiment(experiment)
    return experiment


def _run_tags(settings: Settings, lake: Lake, target: str, label: str) -> dict[str, str]:
    commit, dirty = code_state()  # as the job's audit record has them
    return {
        "riskradar.target": target,
        "riskradar.git_commit": commit or "unknown",
        # true: trained from uncommitted changes, which the commit alone does not reproduce
        "riskradar.git_dirty": {True: "true", False: "false", None: "unknown"}[dirty],
        "riskradar.config_hash": _config_hash(settings),
        "riskradar.label": label,
        "riskradar.features_table": str(lake.gold(FEATURES)),
    }


def _log_backtest(
    lake: Lake,
    frames: Frames,
    training: TrainingConfig,
    empty: list[str],
    results: list[BacktestResult],
    strata: pd.DataFrame,
    tags: dict[str, str],
    paired: tuple[PairedComparison, ...],
    choices: dict[str, list[dict[str, Any]]],
) -> dict[str, str]:
    """Into the active (parent) run: the training's parameters and input; a child run per
    backtested model (the parent's `tags` and its kind) with its metrics and artifacts, and for
    a candidate its paired comparisons with the best baseline (the promotion metric's first)
    and its tuning `choices` (one row per tuning). The child run ids by model name."""
    import mlflow

    train, evaluate, origins = frames.train, frames.evaluate, frames.origins
    mlflow.log_params(
        {
            "backtest_first_week_idx": origins[0],
            "backtest_last_week_idx": origins[-1],
            "train_rows": len(train),
            "train_sample_rows_before_thinning": train.attrs["sampled_rows"],
            "train_thinning": round(train.attrs["thinning"], 6),
            "evaluate_rows": len(evaluate),
            "horizon_weeks": frames.horizon,
            "backtest_weeks": training.backtest_weeks,
            "refit_every_weeks": training.refit_every_weeks,
            "paired_block_weeks": paired[0].block,
            "paired_n_boot": paired[0].n_boot,
            "zero_row_fraction": training.zero_row_fraction,
            "max_history_weeks": training.max_history_weeks or "all",
            "tuning": training.tuning.model_dump_json() if training.tuning else "none",
            "n_features": len(frames.features),
            "features_left_out_empty": ",".join(empty) or "none",
        }
    )
    source = str(lake.gold(FEATURES))
    dataset = mlflow.data.from_pandas(
        evaluate.head(1000), source=source, name="gold.features", targets=frames.label
    )
    mlflow.log_input(dataset, context="backtest")
    child_runs = {}
    for result in results:
        run_tags = {**tags, "riskradar.kind": result.kind}
        with mlflow.start_run(run_name=result.name, nested=True, tags=run_tags) as run:
            child_runs[result.name] = run.info.run_id
            params = training.candidates.get(recipe_of(result.name))
            _log_result(result, strata, params, paired)
            if choices.get(result.name):
                mlflow.log_table(pd.DataFrame(choices[result.name]), "tuning.json")
    return child_runs


def _log_comparison(
    results: list[BacktestResult],
    best: BacktestResult,
    best_baseline: BacktestResult,
    paired: PairedComparison,
    paired_also: tuple[PairedComparison, ...],
) -> None:
    """Into the active run: the best candidate's and baseline's means, the best candidate's
    paired gains over that baseline (promotion metric and `paired_also`) and the comparison
    table."""
    import mlflow

    metric = paired.metric
    mlflow.log_metrics(
        {
            f"best_{metric}_mean": best.mean(metric),
            f"best_baseline_{metric}_mean": best_baseline.mean(metric),
            **_gain_metrics((paired, *paired_also), best.name, prefix="best_"),
        }
    )
    mlflow.log_text(comparison_table(results, paired, paired_also), "comparison.md")


def _gain_metrics(comparisons: tuple[PairedComparison, ...], name: str, prefix: str = "") -> dict[str, float]:
    """`<prefix>paired_gain_<metric>_mean/_low/_high` of candidate `name` in each comparison."""
    return {
        f"{prefix}paired_gain_{c.metric}_{end}": getattr(c.gains[name], end)
        for c in comparisons
        for end in ("mean", "low", "high")
    }


def _log_result(
    result: BacktestResult,
    strata: pd.DataFrame,
    params: dict[str, Any] | None,
    paired: tuple[PairedComparison, ...],
) -> None:
    """Into the active run: a model's hyperparameters, its summary and weekly metrics, a
    candidate's paired gains over the best baseline (weeks won and the weekly table of the
    first, the promotion metric) and the artifacts of `reports.plots`."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    if params:
        mlflow.log_params(params)
    gain = paired[0].gains.get(result.name)
    if gain is not None:
        mlflow.log_metrics({**_gain_metrics(paired, result.name), "weeks_won": gain.won})
    for name, interval in result.summary.items():
        mlflow.log_metrics(
            {f"{name}_mean": interval.mean, f"{name}_low": interval.low, f"{name}_high": interval.high}
        )
    # Every week's metrics in one write (a call per week was a tenth of the training's logging).
    now = int(time.time() * 1000)
    weekly = [
        Metric(k, float(v), now, int(row["week_idx"]))
        for _, row in result.weekly.iterrows()
        for k, v in row.items()
        if k != "week_idx" and pd.notna(v)
    ]
    MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=weekly)
    with tempfile.TemporaryDirectory() as tmp:
        write_result_artifacts(result, strata, Path(tmp), paired[0].weekly.get(result.name))
        mlflow.log_artifacts(tmp)


def _gate(
    client,
    name: str,
    version: str,
    ranked: Standings,
    champion_value: float | None,
    final: FinalModel,
    training: TrainingConfig,
    baselines: dict[str, HistoryRate],
    frames: Frames,
    first_model: bool,
) -> tuple[str, str, str | None]:
    """The gate's alias and reason on the new `version` (into the active run too), and with
    `first_model` (no champion yet), the best baseline registered as the champion when no
    learned model beats it. (alias, reason, the champion's version; None: the champion stays.)"""
    import mlflow

    best, best_baseline, metric = ranked.best, ranked.baseline, training.promotion_metric
    alias, reason = ranked.verdict(champion_value, training)
    _set_alias(
        client, name, version, alias, reason, best, metric, final.params, ranked.paired.gains[best.name]
    )
    if final.blend is not None:
        tag_version(client, name, version, {"blend": final.blend})
    champion_version = version if alias == CHAMPION else None
    if alias != CHAMPION and first_model:
        # Nothing to score with yet and no learned model beats the baseline: the best
        # baseline is registered and serves as the champion until a learned model beats it.
        baseline = baselines[best_baseline.name]
        champion_version = _register_baseline(client, name, best_baseline, baseline, frames.evaluate, metric)
        reason = baseline_serves_reason(reason, best_baseline, champion_version)
    mlflow.log_text(reason, "gate_decision.txt")
    return alias, reason, champion_version


def _set_alias(
    client,
    name: str,
    version: str,
    alias: str,
    reason: str,
    best: BacktestResult,
    metric: str,
    params: dict[str, Any],
    gain: PairedInterval,
) -> None:
    """The gate's alias on the new version, its reason on the run and on the version, and the
    best candidate's paired gain over the best baseline and its final hyperparameters on the
    version."""
    import mlflow

    client.set_registered_model_alias(name, alias, version)
    mlflow.set_tags(
        {"riskradar.alias": alias, "riskradar.gate_reason": reason, "riskradar.best_candidate": best.name}
    )
    tag_version(
        client,
        name,
        version,
        {
            "gate_reason": reason,
            f"{metric}_mean": repr(best.mean(metric)),
            "candidate": best.name,
            "params": json.dumps(params),
            f"paired_gain_{metric}": gain.text(),
        },
    )


def _register_baseline(
    client, name: str, result: BacktestResult, baseline: HistoryRate, evaluate: Rows, metric: str
) -> str:
    """Register a baseline as a version of the target's model, with the alias champion."""
    example = evaluate.head(50)[[baseline.column]]
    version = register_model(baseline.fit(example), "baseline_model", example, name)
    client.set_registered_model_alias(name, CHAMPION, version)
    tags = {
        "kind": "baseline",
        "candidate": result.name,
        f"{metric}_mean": repr(result.mean(metric)),
        "gate_reason": BASELINE_CHAMPION_REASON,
    }
    tag_version(client, name, version, tags)
    return version


if __name__ == "__main__":
    main()
