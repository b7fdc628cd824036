"""The pure scoring transform: a fitted model's expected counts for one week of the panel,
ranked, with hotspot flags and the features that drive each cell's score, and the roll-up of
a scored week by area. Spark in, Spark out; no reads, writes or registry calls.

Counts are shown as published: below `min_count_shown` a count reads "<k", so that no
published number points at the few events of a cell or an area.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from models.explain import occlusion_contributions, top_drivers
from riskradar.catalog import MODEL_COLUMNS, SCORE_PARTITIONS, Feature


def score_cells(
    cells: DataFrame,
    model,
    features: list[str],
    *,
    drivers: int,
    min_count_shown: int,
    hotspots: int,
    described: Mapping[str, Feature] | None = None,
) -> DataFrame:
    """(cell_id, ix, iy, area_code, expected_count, rank, percentile, hotspot, driver_i,
    driver_i_detail) for the rows of one week.

    The model runs in the executors' Python (a broadcast copy); drivers compare each cell with
    the week's typical (median) cell. Rank 1 is the highest expected count (ties by cell id);
    percentile is the share of cells scoring at or below the cell; the `hotspots` top ranks
    are flagged. `described`: the panel's features by name (how analysts read them); a
    feature it lacks is shown by its name.
    """
    medians = cells.agg(*[F.percentile_approx(F.col(c).cast("double"), 0.5).alias(c) for c in features])
    reference = pd.Series(medians.first().asDict(), dtype=float).fillna(0.0)
    known = dict(described or {})
    shown = [known.get(name) or Feature(name, name.replace("_", " ")) for name in features]
    shared = cells.sparkSession.sparkContext.broadcast((model, shown, reference, drivers, min_count_shown))
    scored = cells.select("cell_id", *features).mapInPandas(_predict(shared), _prediction_schema(drivers))
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


def _prediction_schema(drivers: int) -> T.StructType:
    fields = [T.StructField("cell_id", T.StringType()), T.StructField("expected_count", T.DoubleType())]
    for i in range(1, drivers + 1):
        fields += [
            T.StructField(f"driver_{i}", T.StringType()),
            T.StructField(f"driver_{i}_detail", T.StringType()),
        ]
    return T.StructType(fields)


def _predict(shared):
    """The mapInPandas function: expected counts and the top drivers of each batch of cells."""

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model, shown, reference, k, min_shown = shared.value
        names = [f.name for f in shown]
        for batch in batches:
            X = batch[names].astype(float)
            mu, contributions = occlusion_contributions(model, X, reference)
            out = {"cell_id": batch["cell_id"].to_numpy(), "expected_count": mu}
            top = top_drivers(contributions, k)
            for i in range(top.shape[1]):
                idx = top[:, i]
                out[f"driver_{i + 1}"] = [names[j] for j in idx]
                out[f"driver_{i + 1}_detail"] = [
                    driver_detail(shown[j], X.iloc[r, j], reference.iloc[j], contributions[r, j], min_shown)
                    for r, j in enumerate(idx)
                ]
            for i in range(top.shape[1], k):  # a model with fewer inputs than drivers shown
                out[f"driver_{i + 1}"] = out[f"driver_{i + 1}_detail"] = None
            yield pd.DataFrame(out)

    return predict


def shown_count(value: float, min_count_shown: int) -> str:
    """A count as published: below k it is suppressed as '<k'."""
    if value < min_count_shown:
        return f"<{min_count_shown}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def driver_detail(feature: Feature, value: float, typical: float, effect: float, min_count_shown: int) -> str:
    """'<group> incidents in the cell, past 52 weeks: 7 (typical <5), +0.31 expected'."""
    if feature.counts_events:
        shown, usual = shown_count(value, min_count_shown), shown_count(typical, min_count_shown)
    else:
        shown, usual = f"{value:.4g}", f"{typical:.4g}"
    return f"{feature.description}: {shown} (typical {usual}), {effect:+.3f} expected"


def model_recipe(tags: dict[str, str]) -> str:
    """What the version is, from the tags train gives it: the candidate's name (hgb_poisson),
    or 'baseline <name>' (baseline prior_52w) for a baseline serving as champion."""
    recipe = tags.get("candidate", "unknown")
    return f"baseline {recipe}" if tags.get("kind") == "baseline" else recipe


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
        *[F.first(c).alias(c) for c in MODEL_COLUMNS + SCORE_PARTITIONS],
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
