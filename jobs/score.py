"""Score: the champion model's expected counts for every study cell of one week -> gold.scores.

    riskradar score --target burglary [--week 2014-12-29]
    riskradar score --all

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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.grid import Grid, with_geometry
from features.panel import PanelSpec, describe_feature, is_count_feature, weather_descriptions
from intake.quality import failed_expectations, run_suite, write_report
from models.explain import occlusion_contributions, top_drivers
from models.metrics import flagged_count
from riskradar.audit import audited_run
from riskradar.catalog import read_silver, silver_table
from riskradar.config import Settings
from riskradar.errors import ConfigError, NoChampion, NothingToDo, ValidationGateFailed
from riskradar.lake import Lake, Publisher, has_parquet, partition_values, read_json_dir
from riskradar.registry import champion_version, model_name, tracking_uri
from riskradar.runtime import add_target_arguments, context, job_parser, monday, parse, selected_targets

SUITE = "gold_scores.json"
AREA_SUITE = "gold_scores_by_area.json"


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
        help="a target without a champion is reported (and audited as skipped) instead of failing the run",
    )
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    targets = selected_targets(settings, args)
    panel = read_panel(spark, lake)
    weeks = panel_weeks(lake)
    week = args.week or weeks[-1]
    results = {}
    for target in targets:
        with audited_run(lake, "score", {"target": target, "week": str(week)}) as record:
            try:
                results[target] = score_target(spark, settings, lake, panel, target, week)
            except NoChampion as exc:
                if not args.skip_without_champion:
                    raise
                record.notes.append(f"skipped: {exc}")
                print(f"score {target} {week}: skipped, {exc}")
                continue
            record.inputs.append({"table": "gold.features", "week": str(week)})
            record.inputs.append({k: results[target][k] for k in ("model", "version", "model_run_id")})
            record.outputs.append({"table": "gold.scores", "partition": results[target]["partition"]})
            if results[target]["areas_partition"]:
                record.outputs.append(
                    {"table": "gold.scores_by_area", "partition": results[target]["areas_partition"]}
                )
            record.counts = {"cells": results[target]["cells"], "hotspots": results[target]["hotspots"]}
        r = results[target]
        print(
            f"score {target} {week}: {r['cells']} cells, {r['hotspots']} hotspots, "
            f"{r['model']} v{r['version']} -> {lake.gold('scores') / r['partition']}"
        )
    return results


def read_panel(spark: SparkSession, lake: Lake) -> DataFrame:
    path = lake.gold("features")
    if not has_parquet(path):
        raise NothingToDo(f"no feature panel under {path}: run `riskradar build-features` first")
    return spark.read.parquet(str(path))


def panel_weeks(lake: Lake) -> list[date]:
    return [date.fromisoformat(v) for v in partition_values(lake.gold("features"), "week")]


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
    version, model, features = load_champion(settings, lake, target)
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
    cells = panel.where(F.col("week") == F.lit(week))
    n_cells = cells.count()
    scoring = settings.scoring
    scored = score_cells(
        cells,
        model,
        features,
        drivers=scoring.drivers,
        min_count_shown=scoring.min_count_shown,
        hotspots=flagged_count(n_cells, scoring.hotspot_coverage),
        descriptions=_feature_descriptions(settings),
    )
    grid = Grid(settings.grid.cell_size_m, settings.project_crs)
    out = (
        with_geometry(scored, grid)
        .join(_area_names(spark, settings, lake), "area_code", "left")
        .withColumns(
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
        )
        .select(*score_columns(scoring.drivers))
    )
    run_id = f"{target}-{week}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    publisher = Publisher(lake.gold("scores"), owner=f"score_{target}", run_id=run_id)
    publisher.write(out, ["target", "week"])
    staged = spark.read.parquet(str(publisher.staging)).where(
        (F.col("target") == target) & (F.col("week") == F.lit(week))
    )
    result = run_suite(staged, settings.suite_path_for(SUITE), run_name=f"gold-scores-{target}")
    hotspots = staged.where("hotspot").count()
    counts = {"cells": n_cells, "hotspots": hotspots, "model_version": int(version.version)}
    write_report(
        lake.reports("scores", target),
        f"{week}-validation",
        result,
        title=f"gold.scores {target} {week}",
        counts=counts,
    )
    gates = [("gold.scores", result)]
    area_publisher = None
    if settings.roles.area_boundaries is not None:
        area_publisher = Publisher(lake.gold("scores_by_area"), owner=f"score_{target}", run_id=run_id)
        area_publisher.write(
            scores_by_area(staged, min_count_shown=scoring.min_count_shown).select(*area_columns()),
            ["target", "week"],
        )
        staged_areas = spark.read.parquet(str(area_publisher.staging)).where(
            (F.col("target") == target) & (F.col("week") == F.lit(week))
        )
        area_result = run_suite(
            staged_areas, settings.suite_path_for(AREA_SUITE), run_name=f"gold-scores-by-area-{target}"
        )
        write_report(
            lake.reports("scores", target),
            f"{week}-areas-validation",
            area_result,
            title=f"gold.scores_by_area {target} {week}",
            counts={"areas": staged_areas.count(), "model_version": int(version.version)},
        )
        gates.append(("gold.scores_by_area", area_result))
    failed = [f"{table}: " + "; ".join(failed_expectations(r)) for table, r in gates if not r["success"]]
    if failed:
        raise ValidationGateFailed(
            f"the scores of {target} {week} failed their suites (nothing published): " + " | ".join(failed)
        )
    owned = [{"target": target, "week": str(week)}]
    partition = publisher.publish(owned)
    areas_partition = area_publisher.publish(owned)[0] if area_publisher else None
    return {
        "partition": partition[0],
        "areas_partition": areas_partition,
        "cells": n_cells,
        "hotspots": hotspots,
        "model": model_name(target),
        "version": int(version.version),
        "model_run_id": version.run_id,
        "week": week,
    }


def model_recipe(tags: dict[str, str]) -> str:
    """What the version is, from the tags train gives it: the candidate's name (hgb_poisson),
    or 'baseline <name>' (baseline prior_52w) for a baseline serving as champion."""
    recipe = tags.get("candidate", "unknown")
    return f"baseline {recipe}" if tags.get("kind") == "baseline" else recipe


# What every published row says of its forecast, and the partitions of the scored tables.
MODEL_COLUMNS = [
    "model_name",
    "model_version",
    "model_run_id",
    "model_recipe",
    "features_version",
    "scored_at",
]
PARTITIONS = ["target", "week"]


def score_columns(drivers: int) -> list[str]:
    """The columns of gold.scores, in order (target and week are its partitions)."""
    cols = ["cell_id", "lon", "lat", "polygon_wkt", "area_code", "area_name", "expected_count"]
    cols += ["rank", "percentile", "hotspot"]
    for i in range(1, drivers + 1):
        cols += [f"driver_{i}", f"driver_{i}_detail"]
    return [*cols, *MODEL_COLUMNS, *PARTITIONS]


def score_cells(
    cells: DataFrame,
    model,
    features: list[str],
    *,
    drivers: int,
    min_count_shown: int,
    hotspots: int,
    descriptions: dict[str, str] | None = None,
) -> DataFrame:
    """(cell_id, ix, iy, area_code, expected_count, rank, percentile, hotspot, driver_i,
    driver_i_detail) for the rows of one week.

    The model runs in the executors' Python (a broadcast copy); drivers compare each cell with
    the week's typical (median) cell. Rank 1 is the highest expected count (ties by cell id);
    percentile is the share of cells scoring at or below the cell; the `hotspots` top ranks
    are flagged. `descriptions`: plain-language names of features the config describes.
    """
    spark = cells.sparkSession
    medians = cells.agg(*[F.percentile_approx(F.col(c).cast("double"), 0.5).alias(c) for c in features])
    reference = pd.Series(medians.first().asDict(), dtype=float).fillna(0.0)
    shared = spark.sparkContext.broadcast(
        (model, features, reference, drivers, min_count_shown, descriptions)
    )
    fields = [
        T.StructField("cell_id", T.StringType()),
        T.StructField("expected_count", T.DoubleType()),
    ]
    for i in range(1, drivers + 1):
        fields += [
            T.StructField(f"driver_{i}", T.StringType()),
            T.StructField(f"driver_{i}_detail", T.StringType()),
        ]

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model, features, reference, k, min_shown, described = shared.value
        for batch in batches:
            X = batch[features].astype(float)
            mu, contributions = occlusion_contributions(model, X, reference)
            out = {"cell_id": batch["cell_id"].to_numpy(), "expected_count": mu}
            top = top_drivers(contributions, k)
            for i in range(top.shape[1]):
                idx = top[:, i]
                names = [features[j] for j in idx]
                out[f"driver_{i + 1}"] = names
                out[f"driver_{i + 1}_detail"] = [
                    driver_detail(
                        n, X.iloc[r, j], reference.iloc[j], contributions[r, j], min_shown, described
                    )
                    for r, (n, j) in enumerate(zip(names, idx, strict=True))
                ]
            for i in range(top.shape[1], k):  # a model with fewer inputs than drivers shown
                out[f"driver_{i + 1}"] = out[f"driver_{i + 1}_detail"] = None
            yield pd.DataFrame(out)

    scored = cells.select("cell_id", *features).mapInPandas(predict, T.StructType(fields))
    # One week of one target: a single window over all its cells.
    whole = Window.partitionBy(F.lit(1))
    n = F.count(F.lit(1)).over(whole)
    order = whole.orderBy(F.desc("expected_count"), F.asc("cell_id"))
    return (
        scored.join(cells.select("cell_id", "ix", "iy", "area_code"), "cell_id")
        .withColumn("rank", F.row_number().over(order))
        .withColumn("percentile", F.round(100.0 * (n - F.col("rank") + 1) / n, 2))
        .withColumn("hotspot", F.col("rank") <= hotspots)
    )


def shown_count(value: float, min_count_shown: int) -> str:
    """A count as published: below k it is suppressed as '<k'."""
    if value < min_count_shown:
        return f"<{min_count_shown}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def driver_detail(
    name: str,
    value: float,
    typical: float,
    effect: float,
    min_count_shown: int,
    descriptions: dict[str, str] | None = None,
) -> str:
    """'<group> incidents in the cell, past 52 weeks: 7 (typical <5), +0.31 expected'."""
    if is_count_feature(name):
        shown, usual = shown_count(value, min_count_shown), shown_count(typical, min_count_shown)
    else:
        shown, usual = f"{value:.4g}", f"{typical:.4g}"
    return f"{describe_feature(name, descriptions)}: {shown} (typical {usual}), {effect:+.3f} expected"


def _feature_descriptions(settings: Settings) -> dict[str, str]:
    """Plain-language names of the features the config describes (the weather role's)."""
    if settings.features is None:
        return {}
    return weather_descriptions(PanelSpec.from_settings(settings, []))


def area_columns() -> list[str]:
    """The columns of gold.scores_by_area, in order (target and week are its partitions)."""
    cols = ["area_code", "area_name", "cells", "expected_count", "expected_count_shown", "hotspot_cells"]
    return [*cols, "share_of_hotspots", *MODEL_COLUMNS, *PARTITIONS]


def scores_by_area(scores: DataFrame, *, min_count_shown: int) -> DataFrame:
    """One (target, week) of gold.scores rolled up by area: per `area_code` (null: the cells
    outside every area) its `area_name`, study `cells`, `expected_count` (the sum of its cells'),
    `expected_count_shown` (as published: below `min_count_shown` it is "<k"), `hotspot_cells`
    and `share_of_hotspots` (its hotspot cells / all hotspot cells of the week; 0 without any).
    The model and week columns of the scores are carried over."""
    areas = scores.groupBy("area_code").agg(
        F.first("area_name", ignorenulls=True).alias("area_name"),
        F.count(F.lit(1)).cast("int").alias("cells"),
        F.sum("expected_count").alias("expected_count"),
        F.sum(F.col("hotspot").cast("int")).cast("int").alias("hotspot_cells"),
        *[F.first(c).alias(c) for c in MODEL_COLUMNS + PARTITIONS],
    )
    all_hot = F.sum("hotspot_cells").over(Window.partitionBy(F.lit(1)))
    areas = areas.withColumn(
        "share_of_hotspots", F.coalesce(F.col("hotspot_cells") / F.nullif(all_hot, F.lit(0)), F.lit(0.0))
    )
    schema = T.StructType([*areas.schema.fields, T.StructField("expected_count_shown", T.StringType())])

    def shown(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # shown_count itself, so that an area's count reads exactly as the cells' counts do
        for batch in batches:
            batch["expected_count_shown"] = [shown_count(v, min_count_shown) for v in batch["expected_count"]]
            yield batch

    return areas.mapInPandas(shown, schema)


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
        for b in read_json_dir(lake.gold("features") / "_builds")
        if b.get("first_week", "") <= str(week) <= b.get("last_week", "")
    ]
    if not builds:
        return "unknown"
    return max(builds, key=lambda b: b["built_at"])["run_id"]


if __name__ == "__main__":
    main()
