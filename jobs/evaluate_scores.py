"""Evaluate published scores once their week has passed: did the hotspots catch what happened?

    riskradar evaluate-scores --week 2014-12-22 [--target burglary | --all]

For each target scored for that week: the hit rate, PAI and PEI* of the published hotspot flags
against the incidents of the week (the label column of gold.features, built once the week's data
arrived), logged to MLflow as an `evaluate-<week>` run tagged with the model version that made
the scores (a rerun updates the same run). It warns, and records an alert on the run and in the
audit log, when the realised PAI falls below the lower end of the model's backtest interval.
Without --week: the newest scored week whose incidents are known.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from models.metrics import flagged_metrics
from riskradar.audit import audited_run
from riskradar.catalog import SCORES, label_column, model_name, read_panel, read_scores, scored_weeks
from riskradar.config import Settings
from riskradar.errors import NothingToDo
from riskradar.lake import Lake
from riskradar.registry import tracking_uri
from riskradar.runtime import context, job_parser, monday, parse

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, dict[str, Any]]:
    parser = job_parser("riskradar evaluate-scores", __doc__)
    parser.add_argument("--week", type=monday, help="the Monday of the scored week (default: newest passed)")
    parser.add_argument("--target", action="append", help="a target (repeatable; default: every scored one)")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="a target without scores for the week, or a week not passed yet, is reported and skipped "
        "(the weekly DAG's first runs)",
    )
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    targets = args.target or [t for t in settings.targets if scored_weeks(lake, t)]
    if not targets and not args.skip_missing:
        raise NothingToDo(f"no scores under {lake.gold(SCORES)}: run `riskradar score` first")
    panel = read_panel(spark, lake) if targets else None
    results = {}
    for target in targets:
        if args.skip_missing and args.week and args.week not in scored_weeks(lake, target):
            log.warning("evaluate-scores %s %s: skipped, the week was not scored", target, args.week)
            continue
        week = args.week or _newest_passed(spark, lake, panel, target, settings)
        if args.skip_missing and not _passed(panel, settings, target, week):
            log.warning("evaluate-scores %s %s: skipped, the week has not passed yet", target, week)
            continue
        with audited_run(lake, "evaluate_scores", {"target": target, "week": str(week)}) as record:
            results[target] = evaluate_week(spark, settings, lake, panel, target, week)
            record.inputs.append({"table": "gold.scores", "target": target, "week": str(week)})
            record.outputs.append({"mlflow_run": results[target]["run_id"]})
            if results[target]["alert"]:
                record.notes.append(results[target]["alert"])
            r = results[target]
            log.info(
                f"evaluate-scores {target} {week}: realised hit rate {r['hit_rate']:.3f}, PAI {r['pai']:.2f} "
                f"at {r['coverage']:.0%} (backtest {r['backtest_low']:.2f} .. {r['backtest_high']:.2f})"
            )
            if r["alert"]:
                log.warning("WARNING: %s", r["alert"])
    return results


def _label(settings: Settings, target: str) -> str:
    assert settings.features is not None
    return label_column(target, settings.features.horizons_weeks[0])


def _newest_passed(spark: SparkSession, lake: Lake, panel, target: str, settings: Settings) -> date:
    for week in reversed(scored_weeks(lake, target)):
        if _passed(panel, settings, target, week):
            return week
    raise NothingToDo(
        f"no scored week of {target!r} has passed yet (scored: "
        f"{', '.join(map(str, scored_weeks(lake, target)))}): evaluate once its data are in gold.features"
    )


def _passed(panel, settings: Settings, target: str, week: date) -> bool:
    """Whether the panel knows the week's incidents (its labels are built)."""
    label = _label(settings, target)
    return bool(panel.where((F.col("week") == F.lit(week)) & F.col(label).isNotNull()).limit(1).count())


def evaluate_week(
    spark: SparkSession, settings: Settings, lake: Lake, panel, target: str, week: date
) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    scores = read_scores(spark, lake, target, week)
    label = _label(settings, target)
    happened = panel.where(F.col("week") == F.lit(week)).select("cell_id", F.col(label).alias("y")).toPandas()
    merged = scores[["cell_id", "hotspot", "expected_count"]].merge(happened, on="cell_id", how="left")
    if merged["y"].isna().any():
        missing = int(merged["y"].isna().sum())
        raise NothingToDo(
            f"the week of {week} has not passed for {target!r}: {missing} of {len(merged)} scored cells "
            f"have no {label} in gold.features yet; evaluate after build-features has run on that "
            "week's data"
        )
    m = flagged_metrics(merged["y"].to_numpy(), merged["hotspot"].to_numpy())
    coverage = m["flagged"] / len(merged)
    version, run_id = int(scores["model_version"].iloc[0]), scores["model_run_id"].iloc[0]

    uri = tracking_uri(settings, lake)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    low, high = _backtest_interval(client, run_id, settings.scoring.hotspot_coverage)
    alert = None
    if not np.isnan(m["pai"]) and not np.isnan(low) and m["pai"] < low:
        alert = (
            f"{target} week of {week}: realised PAI {m['pai']:.2f} is below the backtest interval "
            f"[{low:.2f}, {high:.2f}] of {model_name(target)} v{version}: review the model and the data"
        )
    tags = {
        "riskradar.kind": "evaluation",
        "riskradar.target": target,
        "riskradar.week": str(week),
        "riskradar.model_version": str(version),
        "riskradar.model_run_id": run_id,
        "riskradar.alert": alert or "",
    }
    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id)
    previous = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"tags.`riskradar.kind` = 'evaluation' and tags.`riskradar.week` = '{week}' "
            f"and tags.`riskradar.model_version` = '{version}'"
        ),
    )
    metrics = {
        "realised_hit_rate": m["hit_rate"],
        "realised_pai": m["pai"],
        "realised_pei": m["pei"],
        "flagged_cells": m["flagged"],
        "scored_cells": float(len(merged)),
        "incidents": float(merged["y"].sum()),
        "backtest_pai_low": low,
        "backtest_pai_high": high,
    }
    with mlflow.start_run(
        run_id=previous[0].info.run_id if previous else None,
        experiment_id=experiment.experiment_id,
        run_name=f"evaluate-{week}",
        tags=tags,
    ) as run:
        mlflow.set_tags(tags)
        mlflow.log_metrics({k: v for k, v in metrics.items() if not np.isnan(v)})
    client.set_model_version_tag(model_name(target), str(version), f"realised_pai_{week}", f"{m['pai']:.4f}")
    return {
        **m,
        "coverage": coverage,
        "backtest_low": low,
        "backtest_high": high,
        "alert": alert,
        "run_id": run.info.run_id,
        "model_version": version,
        "incidents": metrics["incidents"],
    }


def _backtest_interval(client, model_run_id: str, coverage: float) -> tuple[float, float]:
    """The 95% interval of the mean PAI at the published coverage, from the backtest of the
    candidate that became this model (a child run of the training run)."""
    parent = client.get_run(model_run_id)
    best = parent.data.tags.get("riskradar.best_candidate")
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{model_run_id}'"
    )
    key = f"pai_{round(coverage * 100):d}"
    for child in children:
        if child.data.tags.get("mlflow.runName") == best:
            return child.data.metrics.get(f"{key}_low", np.nan), child.data.metrics.get(f"{key}_high", np.nan)
    return float("nan"), float("nan")


if __name__ == "__main__":
    main()
