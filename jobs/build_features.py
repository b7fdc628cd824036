"""Build features: silver tables -> gold/features, the cell x week panel (partitioned by week).

    riskradar build-features [--config conf/riskradar.yaml] [--full | --from-week 2014-06-02]

By default only the weeks whose inputs changed are rebuilt: those from the earliest week
holding an event of a batch validated since the last build (later weeks depend on it through
their windows). `--full` rebuilds every week. The panel runs from the first week with crime
data to the week after the last complete one (the week to score, whose labels are null).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from features.grid import Grid, cells_in_areas
from features.panel import (
    PanelSpec,
    build_panel,
    check_schema,
    index_of,
    role_indicators,
    week_index,
    week_of,
    week_start,
)
from riskradar.audit import audited_run
from riskradar.catalog import published_batches, read_history, read_silver, silver_table
from riskradar.config import Settings
from riskradar.errors import ConfigError, NothingToDo
from riskradar.lake import Lake, Publisher, read_json_dir, write_json
from riskradar.runtime import context, job_parser, parse


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, Any]:
    parser = job_parser("riskradar build-features", __doc__)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--full", action="store_true", help="rebuild every week")
    which.add_argument("--from-week", type=date.fromisoformat, help="rebuild weeks from this Monday on")
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    if settings.features is None:
        raise ConfigError(f"{settings.config_file}: no 'features' section: nothing to build")
    with audited_run(lake, "build_features", {"full": args.full, "from_week": str(args.from_week)}) as record:
        summary = build(spark, settings, lake, full=args.full, from_week=args.from_week, run_id=record.run_id)
        record.inputs += summary.pop("inputs")
        record.outputs.append(
            {"table": "gold.features", "weeks": summary["weeks_written"], "rows": summary["rows"]}
        )
        record.counts.update({k: v for k, v in summary.items() if isinstance(v, int)})
    print(
        f"build-features: {summary['cells']} cells x {summary['weeks_written']} weeks written "
        f"({summary['rows']} rows), weeks {summary['first_week']}..{summary['last_week']}"
    )
    return summary


def _latest(df: DataFrame, key: str) -> DataFrame:
    """One row per key from the most recently ingested batch (a re-delivery supersedes)."""
    order = Window.partitionBy(key).orderBy(F.col("ingested_at").desc(), F.col("batch_id").desc())
    return df.withColumn("__n", F.row_number().over(order)).where("__n = 1").drop("__n")


def role_feeds(settings: Settings) -> dict[str, str | None]:
    """The keys of `load_inputs` that hold a role's feed -> that feed (None: no such role)."""
    roles = settings.roles
    return {
        "series": roles.weather.feed if roles.weather else None,
        "areas": roles.area_indicators.feed if roles.area_indicators else None,
        "boundaries": roles.area_boundaries.feed if roles.area_boundaries else None,
    }


def load_inputs(spark: SparkSession, settings: Settings, lake: Lake) -> dict[str, DataFrame | None]:
    """The current rows (one per event, day and area) the panel reads, as published: `events`
    (every events feed), and the feeds of the roles: `series` (weather), `areas` (area
    indicators) and `boundaries` (area boundaries). None for a role the config leaves out or
    whose feed has published nothing yet."""
    inputs = {"events": read_silver(spark, settings, lake, "events")}
    for key, feed in role_feeds(settings).items():
        table = silver_table(settings.contract(feed)) if feed else ""
        inputs[key] = read_silver(spark, settings, lake, table, feeds=[feed]) if feed else None
    return inputs


def _input_tables(settings: Settings, inputs: dict[str, DataFrame | None]) -> list[dict[str, str]]:
    """The audit record's inputs: each silver table read, with the feed of its role."""
    feeds = role_feeds(settings)
    out = []
    for key, df in inputs.items():
        feed = feeds.get(key)
        if df is not None:
            table = silver_table(settings.contract(feed)) if feed else key
            out.append({"table": f"silver.{table}", **({"feed": feed} if feed else {})})
    return out


def study_cells(
    spark: SparkSession, events: DataFrame, boundaries: DataFrame | None, grid: Grid
) -> DataFrame:
    """(ix, iy, area_code): cells holding any event, plus cells inside the boundary polygons."""
    from features.grid import assign_cells

    with_events = assign_cells(events, grid).select("ix", "iy").distinct()
    if boundaries is None:
        return with_events.withColumn("area_code", F.lit(None).cast("string"))
    polygons = [(r["area_code"], r["geometry_geojson"]) for r in _latest(boundaries, "area_code").collect()]
    inside = spark.createDataFrame(cells_in_areas(polygons, grid), "ix int, iy int, area_code string")
    inside = inside.dropDuplicates(["ix", "iy"])
    return with_events.join(inside, ["ix", "iy"], "full").select("ix", "iy", "area_code")


def build(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    *,
    full: bool,
    from_week: date | None,
    run_id: str,
) -> dict[str, Any]:
    f = settings.features
    assert f is not None
    inputs = load_inputs(spark, settings, lake)
    events = inputs["events"]
    crime_feeds = f.crime_feeds
    if events is None or events.where(F.col("partner").isin(crime_feeds)).limit(1).count() == 0:
        raise NothingToDo(
            f"silver.events holds no events of the crime feeds {crime_feeds}: run "
            f"`riskradar ingest --all` and `riskradar validate --all` first"
        )
    events = events.select("partner", "category", "occurred_at", "x", "y", "origin", "domestic", "batch_id")
    local = F.from_utc_timestamp(F.col("occurred_at"), settings.timezone)
    span = (
        events.where(F.col("partner").isin(crime_feeds))
        .select(week_index(week_start(F.col("occurred_at"), settings.timezone)).alias("w"), local.alias("t"))
        .agg(F.min("w").alias("first"), F.max("w").alias("last"), F.max("t").alias("newest"))
        .first()
    )
    history_start = span["first"]
    # A label needs a whole week: if the newest data end before Sunday, the last week is partial
    # and only the weeks before it get labels (the partial week is the week to score).
    complete = span["newest"].date().weekday() == 6
    data_end = span["last"] if complete else span["last"] - 1
    if data_end - history_start < 1:
        raise NothingToDo(
            f"the crime feeds {crime_feeds} hold less than two complete weeks of data (from "
            f"{week_of(history_start)} to {span['newest']:%Y-%m-%d}); the panel needs at least two "
            f"(one to learn from, one to predict)"
        )
    counts = events.groupBy("category").count().collect()
    present = {r["category"] for r in counts}
    for name, target in settings.targets.items():
        if not present & set(target.categories):
            raise NothingToDo(
                f"target {name!r} has no events in silver.events (categories {target.categories}); "
                f"check 'targets.{name}.categories' in {settings.config_file}"
            )
    areas = inputs["areas"]
    indicators = role_indicators(settings) if areas is not None else []
    if areas is not None:
        areas = _latest(areas, "area_code")
    spec = PanelSpec.from_settings(settings, indicators)
    cells = study_cells(spark, events, inputs["boundaries"], spec.grid).cache()
    n_cells = cells.count()

    last_week = data_end + 1  # the week to score next
    first_week = _first_changed_week(
        spark, lake, events, settings, history_start, full=full, from_week=from_week
    )
    weather = inputs["series"]
    if weather is not None:
        weather = _latest(weather, "date")
    panel = build_panel(
        events,
        cells,
        spec,
        first_week=first_week,
        last_week=last_week,
        data_end_week=data_end,
        history_start_week=history_start,
        weather=weather,
        areas=areas,
    )
    check_schema(panel, spec)
    publisher = Publisher(lake.gold("features"), owner="build_features", run_id=run_id)
    publisher.write(panel, ["week"])
    written = spark.read.parquet(str(publisher.staging)).count()
    weeks = [week_of(w).isoformat() for w in range(first_week, last_week + 1)]
    publisher.publish([{"week": w} for w in weeks])
    write_json(
        lake.gold("features") / "_builds" / f"{run_id}.json",
        {
            "run_id": run_id,
            "built_at": datetime.now(UTC).isoformat(),
            "validated_batches": _validated_batches(lake, settings),
            "first_week": weeks[0],
            "last_week": weeks[-1],
            "rows": written,
            "cells": n_cells,
        },
    )
    cells.unpersist()
    if written != n_cells * len(weeks):
        raise ValueError(f"panel rows {written} != cells {n_cells} x weeks {len(weeks)}")
    return {
        "cells": n_cells,
        "weeks_written": len(weeks),
        "rows": written,
        "first_week": weeks[0],
        "last_week": weeks[-1],
        "inputs": _input_tables(settings, inputs),
    }


def _validated_batches(lake: Lake, settings: Settings) -> list[str]:
    return published_batches(lake, settings)


def _first_changed_week(
    spark: SparkSession,
    lake: Lake,
    events: DataFrame,
    settings: Settings,
    history_start: int,
    *,
    full: bool,
    from_week: date | None,
) -> int:
    """The first week to rebuild: given, everything, or the earliest week touched by new batches."""
    if from_week is not None:
        if from_week.weekday() != 0:
            raise ConfigError(f"--from-week {from_week} is not a Monday (weeks start on Monday)")
        return max(index_of(from_week), history_start)
    builds = sorted(read_json_dir(lake.gold("features") / "_builds"), key=lambda b: b["built_at"])
    if full or not builds:
        return history_start
    seen = set(builds[-1]["validated_batches"]) if builds else set()
    new = sorted(set(_validated_batches(lake, settings)) - seen)
    if not new:
        return index_of(date.fromisoformat(builds[-1]["last_week"]))  # only the newest week again
    # A new batch touches the weeks of its events, and a correction also those of the versions
    # it replaced (an event moved to another week leaves its old week).
    times = events.where(F.col("batch_id").isin(new)).select("occurred_at")
    replaced = read_history(spark, settings, lake, "events")
    if replaced is not None:
        times = times.unionByName(replaced.where(F.col("superseded_by").isin(new)).select("occurred_at"))
    touched = times.select(F.min(week_index(week_start(F.col("occurred_at"), settings.timezone)))).first()[0]
    return history_start if touched is None else max(touched, history_start)


if __name__ == "__main__":
    main()
