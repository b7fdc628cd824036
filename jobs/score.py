"""Score: the champion model's expected counts for every study cell of one week -> gold.scores.

    riskradar score --target burglary [--week 2014-12-29]
    riskradar score --all
    riskradar score --target burglary --off --reason "under review"     # stop scoring it; --on: resume

The week defaults to the newest week of gold.features: the week after the newest complete
data, whose features are known at its start. The model is `models:/riskradar-<target>@champion`;
scoring runs inside Spark partitions (the fitted model is broadcast to the executors), never by
collecting the cells to the driver. Each cell gets its expected count, rank, percentile, a
hotspot flag (the top `scoring.hotspot_coverage` of the cells) and the features that raise its
score most, shown with counts below `scoring.min_count_shown` suppressed. The result passes the
gold.scores expectation suite, then replaces exactly the (target, week) partition.

With an area-boundaries feed (config `roles.area_boundaries`), the week's scores are also
rolled up by area into gold.scores_by_area: per area its study cells, the sum of their expected
counts (also as published, below `scoring.min_count_shown` shown as "<k"), its hotspot cells
and their share of all hotspot cells. It passes its own suite, and is published with the
scores or not at all.

Human oversight: `--off --reason "..."` switches scoring of a target off. The reason, the day and
the user are kept on the registered model (tag `riskradar.scoring_off`), and every later run
refuses the target before it starts Spark (with `--skip-without-champion`, as the weekly DAG
runs it, skips it and audits why) until `--on`, whatever the trainings promote meanwhile.
Taking the alias `champion` away stops scoring only until the next training sets it again.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features.grid import Grid, with_geometry
from features.panel import PanelSpec, panel_features, role_indicators
from intake.quality import failed_expectations, run_suite, write_report
from models.metrics import flagged_count
from models.scoring import model_recipe, score_cells, scores_by_area
from riskradar.audit import audited_run
from riskradar.catalog import (
    SCORE_PARTITIONS,
    SCORES,
    SCORES_BY_AREA,
    Feature,
    area_columns,
    model_name,
    panel_builds,
    panel_weeks,
    read_panel,
    read_silver,
    score_columns,
    silver_table,
)
from riskradar.config import Settings, load_settings
from riskradar.errors import ConfigError, NoChampion, NothingToDo, ScoringOff
from riskradar.lake import Lake, read_json_dir
from riskradar.log import step
from riskradar.publish import Check, StagedPartitions, publish, stage
from riskradar.registry import champion_version, require_scoring_on, switch_scoring, tracking_uri
from riskradar.runtime import add_target_arguments, context, job_parser, monday, parse, selected_targets

SUITE = "gold_scores.json"
AREA_SUITE = "gold_scores_by_area.json"

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, dict[str, Any]]:
    parser = job_parser("riskradar score", __doc__)
    add_target_arguments(parser)
    parser.add_argument("--week", type=monday, help="the Monday of the week to score (default: newest)")
    parser.add_argument(
        "--skip-without-champion",
        action="store_true",
        help="a target without a champion, or whose scoring is switched off, is reported (and audited as "
        "skipped) instead of failing the run",
    )
    switch = parser.add_mutually_exclusive_group()
    switch.add_argument(
        "--off",
        action="store_true",
        help="switch scoring of the targets off and score nothing: every later score of them is refused "
        "(skipped by the weekly run), whatever the trainings promote, until --on; needs --reason",
    )
    switch.add_argument(
        "--on", action="store_true", help="switch scoring of the targets back on; score nothing"
    )
    parser.add_argument(
        "--reason", help="with --off: why (kept on the registered model and in the audit log)"
    )
    args = parse(parser, argv)
    if args.off and not (args.reason or "").strip():
        parser.error("--off needs --reason: say why scoring stops")
    settings = settings or load_settings(args.config)
    targets = selected_targets(settings, args)
    if args.off or args.on:
        return switch_targets(settings, targets, reason=args.reason if args.off else None)
    targets = [t for t in targets if scoring_is_on(settings, t, args.week, skip=args.skip_without_champion)]
    if not targets:
        return {}
    settings, lake, spark = context(args, settings, spark)
    week = args.week or (panel_weeks(lake) or [None])[-1]
    panel = read_panel(spark, lake, week)  # the week's rows only: the panel's history is not read
    results = {}
    for target in targets:
        with audited_run(lake, "score", {"target": target, "week": str(week)}) as record:
            try:
                results[target] = r = score_target(spark, settings, lake, panel, target, week)
            except NoChampion as exc:
                if not args.skip_without_champion:
                    raise
                record.notes.append(f"skipped: {exc}")
                log.warning("score %s %s: skipped, %s", target, week, exc)
                continue
            record.inputs.append({"table": "gold.features", "week": str(week)})
            record.inputs.append({k: r[k] for k in ("model", "version", "model_run_id")})
            record.outputs.append({"table": "gold.scores", "partition": r["partition"]})
            if r["areas_partition"]:
                record.outputs.append({"table": "gold.scores_by_area", "partition": r["areas_partition"]})
            record.counts = {"cells": r["cells"], "hotspots": r["hotspots"]}
            log.info(
                "score %s %s: %d cells, %d hotspots, %s v%s -> %s",
                *(target, week, r["cells"], r["hotspots"], r["model"], r["version"]),
                lake.gold(SCORES) / r["partition"],
            )
    return results


def switch_targets(
    settings: Settings, targets: list[str], *, reason: str | None
) -> dict[str, dict[str, Any]]:
    """Switch scoring of `targets` off (with `reason`, the day and the user: the note on the
    registered model) or, without a reason, on again; each switch audited."""
    from mlflow import MlflowClient

    lake = Lake(settings.lake_root)
    client = MlflowClient(tracking_uri(settings, lake))
    note = (
        None if reason is None else f"{datetime.now(UTC):%Y-%m-%d} by {getpass.getuser()}: {reason.strip()}"
    )
    state = "off" if note else "on"
    out = {}
    for target in targets:
        with audited_run(lake, "score", {"target": target, "switch": state, "reason": reason}) as record:
            switch_scoring(client, model_name(target), note)
            record.notes.append(f"scoring switched {state}" + (f": {note}" if note else ""))
        log.info("score %s: scoring switched %s%s", target, state, f" ({note})" if note else "")
        out[target] = {"scoring": state, "note": note}
    return out


def scoring_is_on(settings: Settings, target: str, week: date | None, *, skip: bool) -> bool:
    """True when scoring of `target` is on. When it is off: ScoringOff, or with `skip` False;
    either way the run is audited (failed, or skipped with the reason)."""
    from mlflow import MlflowClient

    lake = Lake(settings.lake_root)
    client = MlflowClient(tracking_uri(settings, lake))
    try:
        require_scoring_on(client, model_name(target), target)
    except ScoringOff as exc:
        with audited_run(lake, "score", {"target": target, "week": str(week or "newest")}) as record:
            if not skip:
                raise
            record.notes.append(f"skipped: {exc}")
            log.warning("score %s: skipped, %s", target, exc)
        return False
    return True


def load_champion(settings: Settings, lake: Lake, target: str):
    """(model version, fitted estimator, its input columns) of the target's champion."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(settings, lake)
    mlflow.set_tracking_uri(uri)
    name = model_name(target)
    version = champion_version(MlflowClient(uri), name)
    model_uri = f"models:/{name}/{version.version}"
    signature = mlflow.models.get_model_info(model_uri).signature
    if signature is None:
        raise ConfigError(f"{model_uri} has no signature: the features it expects are unknown")
    return version, mlflow.sklearn.load_model(model_uri), signature.inputs.input_names()


def score_target(
    spark: SparkSession, settings: Settings, lake: Lake, panel: DataFrame, target: str, week: date
) -> dict[str, Any]:
    """Score one week for one target with its champion and publish the scores (and their
    roll-up by area) behind their suites; the published partitions and counts."""
    version, model, features = load_champion(settings, lake, target)
    cells = _week_cells(lake, panel, target, version, features, week)
    n_cells = cells.count()
    with step(f"score {target} {week}", log):
        out = _scored_rows(spark, settings, lake, cells, model, features, n_cells)
        out = out.withColumns(
            {
                "target": F.lit(target),
                "week": F.lit(week),
                "model_name": F.lit(model_name(target)),
                "model_version": F.lit(int(version.version)),
                "model_run_id": F.lit(version.run_id),
                "model_recipe": F.lit(model_recipe(version.tags)),
                "features_version": F.lit(_features_version(lake, week)),
                "scored_at": F.lit(datetime.now(UTC)).cast("timestamp"),
            }
        ).select(*score_columns(settings.scoring.drivers))
    with step(f"publish {target} {week}", log):
        published = _publish_scores(spark, settings, lake, out, target, week, int(version.version), n_cells)
    return {
        **published,
        "cells": n_cells,
        "model": model_name(target),
        "version": int(version.version),
        "model_run_id": version.run_id,
        "week": week,
    }


def _week_cells(
    lake: Lake, panel: DataFrame, target: str, version, features: list[str], week: date
) -> DataFrame:
    """The panel's rows of the week, once the model's features and the week are there."""
    missing = [c for c in features if c not in panel.columns]
    if missing:
        raise ConfigError(
            f"{model_name(target)} v{version.version} expects features that gold.features lacks: "
            f"{', '.join(missing)}; rebuild the features with the config the model was trained with"
        )
    weeks = panel_weeks(lake)
    if week not in weeks:
        raise NothingToDo(
            f"no features for the week of {week} in gold.features (it holds {weeks[0]} .. {weeks[-1]}): "
            "run `riskradar build-features` once the data before that week has arrived"
        )
    # the partition column: Spark reads only that week's folder
    return panel.where(F.col("week") == F.lit(week))


def _scored_rows(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    cells: DataFrame,
    model,
    features: list[str],
    n_cells: int,
) -> DataFrame:
    """The week's scored cells with their geometry and area name."""
    scoring = settings.scoring
    scored = score_cells(
        cells,
        model,
        features,
        drivers=scoring.drivers,
        min_count_shown=scoring.min_count_shown,
        hotspots=flagged_count(n_cells, scoring.hotspot_coverage),
        described=_described_features(settings),
    )
    grid = Grid(settings.grid.cell_size_m, settings.project_crs)
    return with_geometry(scored, grid).join(_area_names(spark, settings, lake), "area_code", "left")


def _publish_scores(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    out: DataFrame,
    target: str,
    week: date,
    version: int,
    n_cells: int,
) -> dict[str, Any]:
    """Stage the scores (and, with an area-boundaries feed, their roll-up by area), run their
    suites on what was staged and publish both or nothing (PublishRefused names the report)."""
    owned = [{"target": target, "week": str(week)}]
    run_id = f"{target}-{week}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    where = {"partition_cols": SCORE_PARTITIONS, "owned": owned, "owner": f"score_{target}", "run_id": run_id}
    reports = lake.reports("scores", target)

    def suite_check(
        table: str, rows: DataFrame, suite: str, report: str, counts: Callable[[], dict]
    ) -> Check:
        """The table's expectation suite on the staged rows, with its validation report (and
        `counts()` in it)."""

        def run() -> str | None:
            result = run_suite(
                rows,
                settings.suite_path_for(suite),
                run_name=f"{table.replace('.', '-').replace('_', '-')}-{target}",
            )
            write_report(reports, report, result, title=f"{table} {target} {week}", counts=counts())
            return None if result["success"] else "; ".join(failed_expectations(result))

        return Check(table, run)

    scores = stage(out, lake.gold(SCORES), **where)
    staged_scores = _this_week(spark, scores, target, week)
    hotspots = staged_scores.where("hotspot").count()
    counts = {"cells": n_cells, "hotspots": hotspots, "model_version": version}
    staged = [scores]
    checks = [suite_check("gold.scores", staged_scores, SUITE, f"{week}-validation", lambda: counts)]
    if settings.roles.area_boundaries is not None:
        rollup = scores_by_area(staged_scores, min_count_shown=settings.scoring.min_count_shown)
        areas = stage(rollup.select(*area_columns()), lake.gold(SCORES_BY_AREA), **where)
        staged.append(areas)
        staged_areas = _this_week(spark, areas, target, week)
        checks.append(
            suite_check(
                "gold.scores_by_area",
                staged_areas,
                AREA_SUITE,
                f"{week}-areas-validation",
                lambda: {"areas": staged_areas.count(), "model_version": version},
            )
        )
    partitions = publish(staged, checks=checks, report=reports / f"{week}-publish.json")
    return {
        "partition": partitions[0][0],
        "areas_partition": partitions[1][0] if len(partitions) > 1 else None,
        "hotspots": hotspots,
    }


def _this_week(spark: SparkSession, staged: StagedPartitions, target: str, week: date) -> DataFrame:
    return staged.read(spark).where((F.col("target") == target) & (F.col("week") == F.lit(week)))


def _described_features(settings: Settings) -> dict[str, Feature]:
    """The configured panel's features by name, with how analysts read them."""
    if settings.features is None:
        return {}
    spec = PanelSpec.from_settings(settings, role_indicators(settings))
    return {f.name: f for f in panel_features(spec)}


def _area_names(spark: SparkSession, settings: Settings, lake: Lake) -> DataFrame:
    """(area_code, area_name): the names the area-indicators feed gives, then those of the
    boundaries feed for areas it alone names. The indicators come first as they did before the
    roles: the bundled census spells three community-area names differently from its map."""
    names = spark.createDataFrame([], "area_code string, area_name string")
    for role in (settings.roles.area_indicators, settings.roles.area_boundaries):
        rows = None
        if role is not None:
            contract = settings.contract(role.feed)
            rows = read_silver(spark, settings, lake, silver_table(contract), feeds=[role.feed])
        if rows is not None:
            rows = rows.select("area_code", "area_name").dropDuplicates(["area_code"])
            names = names.unionByName(rows.join(names, "area_code", "left_anti"))
    return names


def _features_version(lake: Lake, week: date) -> str:
    """The id of the newest feature build that wrote this week ('unknown' for a panel built
    outside `riskradar build-features`)."""
    builds = [
        b
        for b in read_json_dir(panel_builds(lake))
        if b.get("first_week", "") <= str(week) <= b.get("last_week", "")
    ]
    if not builds:
        return "unknown"
    return max(builds, key=lambda b: b["built_at"])["run_id"]


if __name__ == "__main__":
    main()
