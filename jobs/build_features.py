"""Build features: silver tables -> gold/features, the cell x week panel (partitioned by week).

    riskradar build-features [--config conf/riskradar.yaml] [--full | --from-week 2014-06-02] [--allow-growth]

By default only the weeks whose inputs changed are rebuilt: those from the earliest week
holding an event of a batch validated since the last build (later weeks depend on it through
their windows). `--full` rebuilds every week. The panel runs from the first week with crime
data to the week after the last complete one (the week to score, whose labels are null). Events
after a run of more than `features.max_gap_weeks` empty weeks are a stray (a mistyped year) and do
not stretch the panel (a warning names them); a build that would add more than
`features.max_new_weeks` weeks at once is refused unless `--allow-growth`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features.grid import Grid, assign_cells, cells_in_areas
from features.panel import (
    N_EVENTS,
    PanelSpec,
    build_panel,
    check_schema,
    count_basis,
    index_of,
    role_indicators,
    schema_difference,
    week_index,
    week_of,
    week_start,
)
from riskradar.audit import audited_run
from riskradar.catalog import (
    AREAS,
    EXPIRED_COUNTS,
    FEATURES,
    feed_freshness,
    latest,
    panel_builds,
    published_batches,
    read_events_and_expired,
    read_history,
    read_silver,
    silver_table,
)
from riskradar.config import Settings
from riskradar.errors import ConfigError, NothingToDo, PanelGrowthRefused
from riskradar.lake import Lake, read_json_dir, write_json
from riskradar.log import step
from riskradar.publish import Check, StagedPartitions, publish, rows_equal, stage
from riskradar.runtime import context, job_parser, parse

log = logging.getLogger(__name__)


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
    parser.add_argument(
        "--allow-growth",
        action="store_true",
        help="accept a panel that grows by more than features.max_new_weeks at once (the data advanced)",
    )
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    if settings.features is None:
        raise ConfigError(f"{settings.config_file}: no 'features' section: nothing to build")
    with audited_run(lake, "build_features", {"full": args.full, "from_week": str(args.from_week)}) as record:
        summary = build(
            spark,
            settings,
            lake,
            full=args.full,
            from_week=args.from_week,
            run_id=record.run_id,
            allow_growth=args.allow_growth,
        )
        if summary["left_out"]:
            record.notes.append(summary["left_out"])
        record.inputs += summary.pop("inputs")
        record.outputs.append(
            {"table": "gold.features", "weeks": summary["weeks_written"], "rows": summary["rows"]}
        )
        record.counts.update({k: v for k, v in summary.items() if isinstance(v, int)})
        log.info(
            "build-features: %d cells x %d weeks written (%d rows), weeks %s..%s",
            *(summary["cells"], summary["weeks_written"], summary["rows"]),
            *(summary["first_week"], summary["last_week"]),
        )
    return summary


def role_feeds(settings: Settings) -> dict[str, str | None]:
    """The keys of `load_inputs` that hold a role's feed -> that feed (None: no such role)."""
    roles = settings.roles
    return {
        "series": roles.weather.feed if roles.weather else None,
        "areas": roles.area_indicators.feed if roles.area_indicators else None,
        "boundaries": roles.area_boundaries.feed if roles.area_boundaries else None,
    }


def load_inputs(
    spark: SparkSession, settings: Settings, lake: Lake
) -> tuple[dict[str, DataFrame | None], date | None]:
    """The current rows (one per event, day and area) the panel reads, as published: `events`
    (every events feed) and `expired` (the counts of the events retention removed from it,
    checked to be counted on the config's grid and weeks), and the feeds of the roles: `series`
    (weather), `areas` (area indicators) and `boundaries` (area boundaries); None for a role the
    config leaves out or whose feed has published nothing yet. And the local day of the newest
    crime event retention removed (None: none was)."""
    events, expired, retained = read_events_and_expired(spark, settings, lake)
    check_counted_on(settings, {feed: r["counted_on"] for feed, r in retained.items()})
    inputs = {"events": events, "expired": expired}
    for key, feed in role_feeds(settings).items():
        table = silver_table(settings.contract(feed)) if feed else ""
        inputs[key] = read_silver(spark, settings, lake, table, feeds=[feed]) if feed else None
    crime = [r["newest_expired"] for feed, r in retained.items() if feed in settings.features.crime_feeds]
    return inputs, date.fromisoformat(max(crime)) if crime else None


def check_counted_on(settings: Settings, counted_on: dict[str, dict]) -> None:
    """Refuse a panel whose grid or weeks differ from those the expired events were counted on
    (`counted_on`: feed -> what `riskradar retention` recorded): those weeks cannot be counted
    again, the events are gone."""
    now = count_basis(Grid(settings.grid.cell_size_m, settings.project_crs), settings.timezone)
    for feed, then in sorted(counted_on.items()):
        changed = [f"{k} {then.get(k)!r} then, {v!r} now" for k, v in now.items() if then.get(k) != v]
        if changed:
            raise ConfigError(
                f"{settings.config_file}: the events of {feed} that retention removed live on as counts "
                f"per week and cell of the grid they were counted on, and the config changed it "
                f"({'; '.join(changed)}): the weeks whose events expired cannot be counted again. Put "
                f"'grid.cell_size_m', 'project_crs' and 'timezone' back as they were"
            )


def _input_tables(settings: Settings, inputs: dict[str, DataFrame | None]) -> list[dict[str, str]]:
    """The audit record's inputs: each silver table read, with the feed of its role."""
    feeds = role_feeds(settings)
    tables = {"expired": EXPIRED_COUNTS}
    out = []
    for key, df in inputs.items():
        feed = feeds.get(key)
        if df is not None:
            table = silver_table(settings.contract(feed)) if feed else tables.get(key, key)
            out.append({"table": f"silver.{table}", **({"feed": feed} if feed else {})})
    return out


def study_cells(
    spark: SparkSession,
    events: DataFrame,
    boundaries: DataFrame | None,
    grid: Grid,
    expired: DataFrame | None = None,
) -> DataFrame:
    """(ix, iy, area_code): cells holding any event (or any event retention removed, counted in
    `expired`), plus cells inside the boundary polygons."""
    with_events = assign_cells(events, grid).select("ix", "iy")
    if expired is not None:
        with_events = with_events.unionByName(expired.select("ix", "iy"))
    with_events = with_events.distinct()
    if boundaries is None:
        return with_events.withColumn("area_code", F.lit(None).cast("string"))
    polygons = [(r["area_code"], r["geometry_geojson"]) for r in latest(boundaries, "area_code").collect()]
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
    allow_growth: bool = False,
) -> dict[str, Any]:
    """Build the weeks of the panel that need it and publish them behind their checks (rows =
    cells x weeks, the declared schema); what was written and read."""
    f = settings.features
    assert f is not None
    with step("read the silver tables and the crime feeds' span", log):
        inputs, newest_expired = load_inputs(spark, settings, lake)
        expired = inputs["expired"]
        events = _crime_events(spark, inputs["events"], expired, f.crime_feeds)
        weeks = _crime_weeks(events, expired, settings, newest_expired)
        history_start, data_end, left_out = _data_span(weeks, settings)
        _check_targets(events, expired, settings)
    if left_out:
        log.warning("build-features: %s", left_out)
    areas, weather = inputs["areas"], inputs["series"]
    spec = PanelSpec.from_settings(settings, role_indicators(settings) if areas is not None else [])
    cells = study_cells(spark, events, inputs["boundaries"], spec.grid, expired).cache()
    try:
        with step("find the study cells and the weeks to build", log):
            n_cells = cells.count()
            last_week = data_end + 1  # the week to score next
            _check_growth(lake, settings, last_week, allow=allow_growth)
            first_week = _first_changed_week(
                spark, lake, events, settings, history_start, full=full, from_week=from_week
            )
        panel = build_panel(
            events,
            cells,
            spec,
            first_week=first_week,
            last_week=last_week,
            data_end_week=data_end,
            history_start_week=history_start,
            weather=latest(weather, "date") if weather is not None else None,
            areas=latest(areas, "area_code") if areas is not None else None,
            expired=expired,
        )
        check_schema(panel, spec)
        weeks = [week_of(w).isoformat() for w in range(first_week, last_week + 1)]
        outlines = _stage_outlines(settings, lake, inputs["boundaries"], run_id)
        with step("build and publish the panel", log):
            written = _publish_panel(spark, lake, panel, spec, weeks, n_cells, run_id, outlines)
    finally:
        cells.unpersist()
    with step("record the build", log):
        freshness = feed_freshness(spark, settings, lake)
    write_json(
        panel_builds(lake) / f"{run_id}.json",
        {
            "run_id": run_id,
            "built_at": datetime.now(UTC).isoformat(),
            "validated_batches": _validated_batches(lake, settings),
            "first_week": weeks[0],
            "last_week": weeks[-1],
            "rows": written,
            "cells": n_cells,
            # what the panel knew of each feed: the packages shared from its weeks say so
            "freshness": freshness,
        },
    )
    return {
        "left_out": left_out,
        "cells": n_cells,
        "weeks_written": len(weeks),
        "rows": written,
        "first_week": weeks[0],
        "last_week": weeks[-1],
        "inputs": _input_tables(settings, inputs),
    }


_EVENT_COLUMNS = ["partner", "category", "occurred_at", "x", "y", "origin", "domestic", "batch_id"]


def _crime_events(
    spark: SparkSession, events: DataFrame | None, expired: DataFrame | None, crime_feeds: list[str]
) -> DataFrame:
    """The silver events the panel reads (their columns it uses), once the crime feeds hold any
    (or once retention counted some of theirs in `expired`: silver may then hold none)."""

    def has_crime(df: DataFrame | None) -> bool:
        return df is not None and df.where(F.col("partner").isin(crime_feeds)).limit(1).count() > 0

    if not (has_crime(events) or has_crime(expired)):
        raise NothingToDo(
            f"silver.events holds no events of the crime feeds {crime_feeds}: run "
            f"`riskradar ingest --all` and `riskradar validate --all` first"
        )
    if events is None:
        schema = "partner string, category string, occurred_at timestamp, x double, y double, "
        return spark.createDataFrame([], schema + "origin string, domestic boolean, batch_id string")
    return events.select(*_EVENT_COLUMNS)


def _crime_weeks(
    events: DataFrame, expired: DataFrame | None, settings: Settings, newest_expired: date | None
) -> list[dict[str, Any]]:
    """The weeks holding crime events, in order: (w: week index, n: events, newest: the local
    time of the newest). A week of expired events only has no times: its newest is the newest
    event retention removed where it is that week (the data may end there), else its Sunday."""
    crime_feeds = settings.features.crime_feeds
    local = F.from_utc_timestamp(F.col("occurred_at"), settings.timezone)
    found = {
        r["w"]: {"w": r["w"], "n": r["n"], "newest": r["newest"]}
        for r in events.where(F.col("partner").isin(crime_feeds))
        .select(week_index(week_start(F.col("occurred_at"), settings.timezone)).alias("w"), local.alias("t"))
        .groupBy("w")
        .agg(F.count(F.lit(1)).alias("n"), F.max("t").alias("newest"))
        .collect()
    }
    if expired is not None:
        counted = expired.where(F.col("partner").isin(crime_feeds)).groupBy(
            week_index(F.col("week")).alias("w")
        )
        for r in counted.agg(F.sum(N_EVENTS).alias("n")).collect():
            ends = newest_expired if newest_expired and index_of(newest_expired) == r["w"] else None
            day = ends or week_of(r["w"]) + timedelta(days=6)
            week = found.setdefault(r["w"], {"w": r["w"], "n": 0, "newest": datetime.combine(day, time())})
            week["n"] += r["n"]
    return [found[w] for w in sorted(found)]


def _data_span(weeks: list[dict[str, Any]], settings: Settings) -> tuple[int, int, str | None]:
    """(first week, last complete week) of the crime feeds' data (`_crime_weeks`), as week
    indexes, and what was left out: events after a run of more than `features.max_gap_weeks`
    empty weeks are a stray (a mistyped year), not the data's end, until the data catch up."""
    crime_feeds = settings.features.crime_feeds
    bulk, stray = _before_a_gap(weeks, settings.features.max_gap_weeks)
    history_start, last, newest = bulk[0]["w"], bulk[-1]["w"], bulk[-1]["newest"]
    # A label needs a whole week: if the newest data end before Sunday, the last week is partial
    # and only the weeks before it get labels (the partial week is the week to score).
    data_end = last if newest.date().weekday() == 6 else last - 1
    if data_end - history_start < 1:
        raise NothingToDo(
            f"the crime feeds {crime_feeds} hold less than two complete weeks of data (from "
            f"{week_of(history_start)} to {newest:%Y-%m-%d}); the panel needs at least two "
            f"(one to learn from, one to predict)"
        )
    left_out = None
    if stray:
        left_out = (
            f"{sum(r['n'] for r in stray)} event(s) of the crime feeds from {stray[0]['newest']:%Y-%m-%d} to "
            f"{stray[-1]['newest']:%Y-%m-%d} lie after {stray[0]['w'] - last - 1} empty weeks (more than "
            f"features.max_gap_weeks = {settings.features.max_gap_weeks}): the panel ends with the data "
            f"before them ({newest:%Y-%m-%d}); check them for a mistyped date"
        )
    return history_start, data_end, left_out


def _before_a_gap(weeks: list, max_gap: int) -> tuple[list, list]:
    """The weekly rows up to the first run of more than `max_gap` empty weeks, and those after it."""
    for i in range(1, len(weeks)):
        if weeks[i]["w"] - weeks[i - 1]["w"] - 1 > max_gap:
            return weeks[:i], weeks[i:]
    return weeks, []


def _check_growth(lake: Lake, settings: Settings, last_week: int, *, allow: bool) -> None:
    """Refuse a build that would add more than `features.max_new_weeks` after the newest
    published week (a stray date that is no gap away, or a pause longer than expected)."""
    builds = read_json_dir(panel_builds(lake))
    if allow or not builds:
        return
    newest = max(builds, key=lambda b: b["built_at"])["last_week"]
    grown = last_week - index_of(date.fromisoformat(newest))
    limit = settings.features.max_new_weeks
    if grown > limit:
        raise PanelGrowthRefused(
            f"the crime feeds' data now reach the week of {week_of(last_week - 1)}, so the panel would grow "
            f"by {grown} weeks after its newest week {newest}: more than features.max_new_weeks = {limit} at "
            f"once. Check the newest events for a mistyped date (riskradar.catalog.read_silver), or, if the "
            f"data really advanced that far, run `riskradar build-features --allow-growth`"
        )


def _check_targets(events: DataFrame, expired: DataFrame | None, settings: Settings) -> None:
    """Every target has events of its categories in silver.events (or counted when they expired)."""
    present = {r["category"] for r in events.groupBy("category").count().collect()}
    if expired is not None:
        present |= {r["category"] for r in expired.groupBy("category").count().collect()}
    for name, target in settings.targets.items():
        if not present & set(target.categories):
            raise NothingToDo(
                f"target {name!r} has no events in silver.events (categories {target.categories}); "
                f"check 'targets.{name}.categories' in {settings.config_file}"
            )


def _stage_outlines(
    settings: Settings, lake: Lake, boundaries: DataFrame | None, run_id: str
) -> tuple[StagedPartitions, int] | None:
    """gold.areas of the boundaries feed, staged: each area's code, name and outline (GeoJSON,
    WGS84), the areas the panel's cells belong to. Shared packages at area level take their
    outlines from it (they read gold only). None without an area-boundaries feed."""
    role = settings.roles.area_boundaries
    if role is None or boundaries is None:
        return None
    rows = latest(boundaries, "area_code").select(
        "area_code", "area_name", "geometry_geojson", F.lit(role.feed).alias("feed")
    )
    staged = stage(
        rows,
        lake.gold(AREAS),
        partition_cols=["feed"],
        owned=[{"feed": role.feed}],
        owner="build_features",
        run_id=run_id,
    )
    return staged, rows.count()


def _publish_panel(
    spark: SparkSession,
    lake: Lake,
    panel: DataFrame,
    spec: PanelSpec,
    weeks: list[str],
    n_cells: int,
    run_id: str,
    outlines: tuple[StagedPartitions, int] | None = None,
) -> int:
    """Stage the panel's weeks, check on what was staged that it holds every cell in every week
    (rows = cells x weeks) with the declared columns, and only then publish them (with the
    staged area outlines, whose rows are checked too): a panel that fails a check is never
    visible (PublishRefused names the report). Returns the rows."""
    staged = stage(
        panel,
        lake.gold(FEATURES),
        partition_cols=["week"],
        owned=[{"week": w} for w in weeks],
        owner="build_features",
        run_id=run_id,
    )
    checks = [
        rows_equal(f"panel rows = {n_cells} cells x {len(weeks)} weeks", staged.count, n_cells * len(weeks)),
        Check("panel schema", lambda: schema_difference(staged.read(spark), spec, ordered=False)),
    ]
    tables = [staged]
    if outlines is not None:
        areas, n_areas = outlines
        tables.append(areas)
        checks.append(rows_equal(f"gold.areas rows = {n_areas} areas", areas.count, n_areas))
    publish(tables, checks=checks, report=lake.reports("features") / f"{run_id}-publish.json")
    return staged.count()


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
    builds = sorted(read_json_dir(panel_builds(lake)), key=lambda b: b["built_at"])
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
