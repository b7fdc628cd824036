"""Where the intake tables live and how to read their published state.

Silver tables hold one current row per key of each feed: `silver.events` (key `event_id`),
one table per daily series such as `silver.weather` (key `date`), `silver.areas` and
`silver.boundaries` (key `area_code`). The versions a later delivery replaced are in
`silver.<table>_history`, partitioned by the batch that replaced them. Validated quarantine is
`quarantine.<feed>` (`step=validate`), next to the rows ingest quarantined (`step=ingest`).

Every reader here goes through the feeds' commit records (`lake.FeedState`), so it sees what
was committed and nothing a running or crashed job wrote. Read the intake tables only here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from riskradar.config import Contract, Settings
from riskradar.errors import NothingToDo
from riskradar.lake import FeedState, Lake, has_parquet, partition_values, read_json_dir

if TYPE_CHECKING:
    import pandas as pd

# kind of feed -> (silver table, or None for a table named after the feed; its key column)
_SILVER = {
    "events": ("events", "event_id"),
    "series": (None, "date"),
    "area_attributes": ("areas", "area_code"),
    "area_boundaries": ("boundaries", "area_code"),
}
SUPERSEDED_BY = "superseded_by"
SUPERSEDED_AT = "superseded_at"
# Retention's rewrite of the rows of a batch's files that ingest rejected (quarantine step=ingest,
# a partition ingest publishes): named by the feed's commit record under this key, {batch: folder
# under quarantine/<feed>/_retained/, or "" when none is left}, in the place of the partition.
INGEST_QUARANTINE = "ingest_quarantine"
# silver.expired_counts: per events feed (`partner=`) and year of the week (`year=`), the events
# retention removed from silver, counted per week, cell, category, origin and domestic flag
# (features.panel.event_counts): what the panel reads for the weeks whose events expired.
EXPIRED_COUNTS = "expired_counts"

# Column layouts of the intake tables, after each row's own values:
# bronze.<feed> (partition batch_id): the contract's kept columns, then BRONZE_LINEAGE;
# silver tables: the canonical columns, then ROW_LINEAGE (feed and batch are folder names);
# quarantine.<feed> (partitions batch_id, step): QUARANTINE_RULE, QUARANTINE_REASON, the
# delivered values, then the lineage (step=ingest: bronze's without INGEST_COLUMNS; step=validate:
# ROW_LINEAGE).
INGEST_COLUMNS = ["ingest_rule", "ingest_reason"]  # how a delivered row was read
BRONZE_LINEAGE = [*INGEST_COLUMNS, "row_hash", "source_file", "source_sha256", "source_row", "ingested_at"]
ROW_LINEAGE = ["source_file", "source_sha256", "source_row", "row_hash", "ingested_at"]
QUARANTINE_RULE, QUARANTINE_REASON = "quarantine_rule", "quarantine_reason"
# Names a contract's columns may not take: the pipeline adds them to bronze, silver, quarantine.
RESERVED_COLUMNS = {
    *BRONZE_LINEAGE,
    "batch_id",
    "step",
    "partner",
    QUARANTINE_RULE,
    QUARANTINE_REASON,
    "delivered",
}


# Names of labels, history features and registered models: built here only, never parsed back.
def model_name(target: str) -> str:
    """The registered model of a target (its versions, aliases `champion` / `challenger`)."""
    return f"riskradar-{target}"


def experiment_name(target: str) -> str:
    """The MLflow experiment that holds a target's trainings."""
    return f"riskradar-{target}"


def label_column(target: str, horizon: int) -> str:
    """The panel's label: target events in the `horizon` weeks from the week's start."""
    return f"label_{target}_h{horizon}"


def history_column(target: str, weeks: int) -> str:
    """The panel's count of target events in the `weeks` weeks before the week."""
    return f"hist_{target}_w{weeks}"


def decayed_history_column(target: str, half_life: float) -> str:
    """The panel's exponentially decayed count of past target events (half-life in weeks)."""
    return f"histd_{target}_hl{half_life:g}".replace(".", "p")


def history_rate_column(target: str) -> str:
    """The panel's target events in the cell per week of history, over all history to date."""
    return f"histr_{target}_all"


def silver_table(contract: Contract) -> str:
    table, _ = _SILVER[contract.kind]
    return table or contract.name


def history_table(contract: Contract) -> str:
    return f"{silver_table(contract)}_history"


def silver_key(contract: Contract) -> str:
    """The column that identifies a row of the feed's silver table: one current row per key."""
    return _SILVER[contract.kind][1]


def shares_table(contract: Contract) -> bool:
    """Whether the feed's silver table holds other feeds too (then it has a `partner` column)."""
    return _SILVER[contract.kind][0] is not None


def _feed_prefix(contract: Contract) -> str:
    return f"partner={contract.name}/" if shares_table(contract) else ""


def silver_partition(contract: Contract, batch_id: str) -> str:
    return f"{_feed_prefix(contract)}batch_id={batch_id}"


def history_partition(contract: Contract, batch_id: str) -> str:
    return f"{_feed_prefix(contract)}{SUPERSEDED_BY}={batch_id}"


def quarantine_partition(batch_id: str, step: str) -> str:
    return f"batch_id={batch_id}/step={step}"


def intake_roots(lake: Lake, contract: Contract) -> dict[str, Path]:
    """The folders under which the feed's validated tables keep their run folders."""
    prefix = _feed_prefix(contract).rstrip("/")
    silver = lake.silver(silver_table(contract))
    history = lake.silver(history_table(contract))
    return {
        "silver": silver / prefix if prefix else silver,
        "history": history / prefix if prefix else history,
        "quarantine": lake.quarantine(contract.name),
        INGEST_QUARANTINE: retained_ingest_quarantine(lake, contract.name),
        EXPIRED_COUNTS: lake.silver(EXPIRED_COUNTS) / f"partner={contract.name}",
    }


def retained_ingest_quarantine(lake: Lake, feed: str) -> Path:
    """Where retention writes what it leaves of a batch's ingest quarantine: batch_id=<batch>/
    step=ingest/r-<run>/ (hidden from a plain read of the quarantine folder, named by the record)."""
    return lake.quarantine(feed) / "_retained"


def vacuum_roots(lake: Lake, contract: Contract) -> list[Path]:
    """What `lake.vacuum` may clean for a feed: its silver, history and expired-count folders,
    the validate step of its quarantine and retention's rewrites of the ingest step (the ingest
    step's own partitions belong to ingest)."""
    roots = intake_roots(lake, contract)
    quarantine = [p / "step=validate" for p in sorted(roots["quarantine"].glob("batch_id=*"))]
    return [roots["silver"], roots["history"], roots[EXPIRED_COUNTS], roots[INGEST_QUARANTINE], *quarantine]


def _read_folders(spark: SparkSession, base: Path, folders: list[Path]) -> DataFrame | None:
    folders = [f for f in folders if has_parquet(f)]
    if not folders:
        return None
    return spark.read.option("basePath", str(base)).parquet(*[str(f) for f in folders])


def _read_partition(spark: SparkSession, base: Path, folder: Path, where: Column) -> DataFrame:
    """One partition of the table at `base`, read from its own `folder` (the table's other
    partitions are not even listed), or, when that folder holds no data, the whole table
    filtered by `where`: no rows, with the table's columns."""
    one = _read_folders(spark, base, [folder])
    return one if one is not None else spark.read.parquet(str(base)).where(where)


def _feeds_of(settings: Settings, table: str) -> list[Contract]:
    return [c for c in settings.contracts.values() if silver_table(c) == table]


def read_silver(
    spark: SparkSession, settings: Settings, lake: Lake, table: str, *, feeds: list[str] | None = None
) -> DataFrame | None:
    """The current rows of a silver table (every enabled feed that publishes to it, or
    `feeds`), or None when nothing is published yet."""
    contracts = [c for c in _feeds_of(settings, table) if feeds is None or c.name in feeds]
    folders = [f for c in contracts for f in FeedState.read(lake, c.name).folders(lake, "silver")]
    return _read_folders(spark, lake.silver(table), folders)


def read_bronze_batch(spark: SparkSession, lake: Lake, feed: str, batch_id: str) -> DataFrame:
    """One batch of bronze.<feed>, with its `batch_id` column, read from the batch's own folder:
    the feed's other batches (one more each week) are not listed. A batch with no folder reads
    as the whole table filtered to it: no rows."""
    root = lake.bronze(feed)
    return _read_partition(spark, root, root / f"batch_id={batch_id}", F.col("batch_id") == batch_id)


def read_history(
    spark: SparkSession, settings: Settings, lake: Lake, table: str, *, feeds: list[str] | None = None
) -> DataFrame | None:
    """Versions of a silver table's rows that later deliveries replaced, with `superseded_by`
    (the replacing batch) and `superseded_at`."""
    contracts = [c for c in _feeds_of(settings, table) if feeds is None or c.name in feeds]
    folders = [f for c in contracts for f in FeedState.read(lake, c.name).folders(lake, "history")]
    return _read_folders(spark, lake.silver(f"{table}_history"), folders)


def read_events_and_expired(
    spark: SparkSession, settings: Settings, lake: Lake
) -> tuple[DataFrame | None, DataFrame | None, dict[str, dict]]:
    """silver.events (every enabled feed's current rows), silver.expired_counts (the counts of
    the events retention removed, with `partner`) and, per feed with such counts, its record of
    retention (`FeedState.retention`: what they were counted on, the newest event removed), all
    from one read of each feed's commit record: a retention committing meanwhile neither counts
    an event twice nor loses one."""
    states = {c.name: FeedState.read(lake, c.name) for c in _feeds_of(settings, "events")}
    events = [f for s in states.values() for f in s.folders(lake, "silver")]
    expired = [f for s in states.values() for f in s.folders(lake, EXPIRED_COUNTS)]
    retained = {f: s.retention for f, s in states.items() if s.tables.get(EXPIRED_COUNTS)}
    return (
        _read_folders(spark, lake.silver("events"), events),
        _read_folders(spark, lake.silver(EXPIRED_COUNTS), expired),
        retained,
    )


def read_quarantine(spark: SparkSession, lake: Lake, feed: str) -> DataFrame | None:
    """Every quarantined row of a feed: those validation set aside (committed batches) and
    those of files ingest rejected (committed batches; where retention removed some, what it
    left)."""
    state = FeedState.read(lake, feed)
    committed = {m["batch_id"] for m in read_json_dir(lake.batch_markers(feed))}
    root = lake.quarantine(feed)
    retained = state.tables.get(INGEST_QUARANTINE, {})
    ingest_parts = [
        root / quarantine_partition(b, "ingest")
        for b in partition_values(root, "batch_id")
        if b in committed and b not in retained
    ]
    found = _read_folders(spark, root, [*ingest_parts, *state.folders(lake, "quarantine")])
    rewritten = _read_folders(
        spark, retained_ingest_quarantine(lake, feed), state.folders(lake, INGEST_QUARANTINE)
    )
    if found is None or rewritten is None:
        return found if rewritten is None else rewritten
    return found.unionByName(rewritten, allowMissingColumns=True)


def published_batches(lake: Lake, settings: Settings) -> list[str]:
    """Every batch whose rows are published, over all enabled feeds."""
    return sorted(
        b
        for feed in settings.contracts
        for b, rec in FeedState.read(lake, feed).batches.items()
        if rec["status"] == "published"
    )


def feed_freshness(spark: SparkSession, settings: Settings, lake: Lake) -> dict[str, str]:
    """Each enabled feed -> the local date of its newest data (events and series), or the date
    its newest delivery was ingested (area tables, which have no time of their own)."""
    out: dict[str, str] = {}
    events = read_silver(spark, settings, lake, "events")
    if events is not None:
        local = F.to_date(F.from_utc_timestamp(F.max("occurred_at"), settings.timezone))
        for row in events.groupBy("partner").agg(local.alias("d")).collect():
            out[row["partner"]] = f"{row['d']} (newest event)"
    for name, contract in settings.contracts.items():
        if contract.series is not None:
            series = read_silver(spark, settings, lake, silver_table(contract), feeds=[name])
            if series is not None:
                out[name] = f"{series.agg(F.max('date')).first()[0]} (newest day)"
    for table in ("areas", "boundaries"):
        rows = read_silver(spark, settings, lake, table)
        if rows is not None:
            for row in rows.groupBy("partner").agg(F.max("ingested_at").alias("d")).collect():
                out[row["partner"]] = f"{str(row['d'])[:10]} (delivered)"
    for name in settings.contracts:
        out.setdefault(name, "no data published yet")
    return out


def _table_base(lake: Lake, contract: Contract, table: str) -> Path:
    if table == "silver":
        return lake.silver(silver_table(contract))
    if table == "history":
        return lake.silver(history_table(contract))
    if table == EXPIRED_COUNTS:
        return lake.silver(EXPIRED_COUNTS)
    return lake.quarantine(contract.name)


def read_feed_table(
    spark: SparkSession, lake: Lake, contract: Contract, state: FeedState, table: str
) -> DataFrame | None:
    """One feed's part of a logical table ("silver", "history", "quarantine" or
    EXPIRED_COUNTS) as `state` names it (which need not be committed yet: a run reads its own
    work in progress)."""
    return _read_folders(spark, _table_base(lake, contract, table), state.folders(lake, table))


# --------------------------------------------------------------------------- gold tables
# gold.features: the cell x week panel, partitioned by `week`; gold.scores and
# gold.scores_by_area: one (target, week) partition per scored week.
FEATURES = "features"
# gold.areas: the areas of the boundaries feed the panel's cells belong to (code, name, outline
# as GeoJSON in WGS84), partitioned by `feed`; written with the panel.
AREAS = "areas"
SCORES = "scores"
SCORES_BY_AREA = "scores_by_area"
SCORE_PARTITIONS = ["target", "week"]
# What every published score row says of its forecast.
MODEL_COLUMNS = [
    "model_name",
    "model_version",
    "model_run_id",
    "model_recipe",
    "features_version",
    "scored_at",
]


def score_columns(drivers: int) -> list[str]:
    """The columns of gold.scores, in order (target and week are its partitions)."""
    cols = ["cell_id", "lon", "lat", "polygon_wkt", "area_code", "area_name", "expected_count"]
    cols += ["rank", "percentile", "hotspot"]
    for i in range(1, drivers + 1):
        cols += [f"driver_{i}", f"driver_{i}_detail"]
    return [*cols, *MODEL_COLUMNS, *SCORE_PARTITIONS]


def area_columns() -> list[str]:
    """The columns of gold.scores_by_area, in order (target and week are its partitions)."""
    cols = ["area_code", "area_name", "cells", "expected_count", "expected_count_shown", "hotspot_cells"]
    return [*cols, "share_of_hotspots", *MODEL_COLUMNS, *SCORE_PARTITIONS]


# --------------------------------------------------------------------------- names
# Every feature of the panel is built here with what it means (labels, history and model
# names above): nothing parses a name back.


@dataclass(frozen=True)
class Feature:
    """A column of the panel that models read: its name, how analysts read it, and whether it
    counts events (then small counts are suppressed where it is shown)."""

    name: str
    description: str
    counts_events: bool = False


WEATHER_PREFIX = "weather_prev_"  # + the name of a weekly measure of the weather role
CALENDAR_FEATURES = (
    Feature("history_weeks", "weeks of history"),
    Feature("week_of_year", "week of the year"),
    Feature("holiday_week", "holiday week"),
)


def _words(name: str) -> str:
    return name.replace("_", " ")


def event_count(group: str, weeks: int, *, around: int = 1) -> Feature:
    """Events of a category group in the `weeks` before the week starts, in the cell
    (`around` 1) or summed over the around x around cells centred on it."""
    if around == 1:
        return Feature(
            f"n_{group}_w{weeks}", f"{_words(group)} incidents in the cell, past {weeks} weeks", True
        )
    where = f"the {around}x{around} cells around"
    return Feature(
        f"n{around}_{group}_w{weeks}", f"{_words(group)} incidents in {where}, past {weeks} weeks", True
    )


def _recent_weighted(column: str, name: str, half_life: float) -> Feature:
    return Feature(
        column,
        f"{_words(name)} incidents in the cell, recent-weighted (half-life {half_life:g} weeks)",
        True,
    )


def decayed_count(group: str, half_life: float) -> Feature:
    """A category group's events before the week, decayed with `half_life` weeks."""
    tag = f"{half_life:g}".replace(".", "p")
    return _recent_weighted(f"d_{group}_hl{tag}", group, half_life)


def signal_count(feed: str, weeks: int) -> Feature:
    """Another partner's signal (e.g. 311 complaints) in the cell, in the `weeks` before."""
    return Feature(f"s_{feed}_w{weeks}", f"{_words(feed)} reports in the cell, past {weeks} weeks", True)


def target_history(target: str, weeks: int) -> Feature:
    """The target's own events in the cell in the `weeks` before (what baselines predict from)."""
    return Feature(
        history_column(target, weeks), f"{_words(target)} incidents in the cell, past {weeks} weeks", True
    )


def decayed_target_history(target: str, half_life: float) -> Feature:
    return _recent_weighted(decayed_history_column(target, half_life), target, half_life)


def all_history_count(group: str) -> Feature:
    """A category group's events in the cell over all history before the week."""
    return Feature(f"n_{group}_all", f"{_words(group)} incidents in the cell, all history to date", True)


def target_history_all(target: str) -> Feature:
    """The target's own events in the cell over all history before the week."""
    return Feature(f"hist_{target}_all", f"{_words(target)} incidents in the cell, all history to date", True)


def target_history_rate(target: str) -> Feature:
    """The target's own events in the cell per week of history: unlike the count, its scale
    does not grow with the length of the history, which a tree cannot extrapolate."""
    return Feature(
        history_rate_column(target),
        f"{_words(target)} incidents in the cell per week, over all history to date",
        True,
    )


def _last_year(name: str, lag: int, half_width: int) -> str:
    weeks = f"weeks {lag - half_width} to {lag + half_width} before" if half_width else f"week {lag} before"
    return f"{_words(name)} incidents in the cell, {weeks} (the same weeks last year)"


def last_year_count(group: str, lag: int, half_width: int) -> Feature:
    """A category group's events in weeks t-lag-half_width .. t-lag+half_width."""
    return Feature(f"ly_{group}", _last_year(group, lag, half_width), True)


def last_year_target_history(target: str, lag: int, half_width: int) -> Feature:
    return Feature(f"histly_{target}", _last_year(target, lag, half_width), True)


def weeks_since_last(name: str, cap: int, *, around: int = 1) -> Feature:
    """Weeks since the last event of a group or target in the cell (`around` 1) or in the
    3x3 cells centred on it (`around` 3), at most `cap`. A 1 discloses an event last week as
    much as a count does, so it counts events."""
    where = "in the cell" if around == 1 else f"in the {around}x{around} cells around"
    column = "wsl" if around == 1 else f"wsl{around}"
    return Feature(
        f"{column}_{name}", f"weeks since the last {_words(name)} incident {where} (at most {cap})", True
    )


def decayed_target_around(target: str, half_life: float) -> Feature:
    """The target's events in the 3x3 cells around, decayed with `half_life` weeks."""
    tag = f"{half_life:g}".replace(".", "p")
    where = f"{_words(target)} incidents in the 3x3 cells around"
    return Feature(f"d3_{target}_hl{tag}", f"{where}, recent-weighted (half-life {half_life:g} weeks)", True)


def _smoothed(prefix: str, name: str, bandwidth_m: float, weeks: int | None) -> Feature:
    over = "all history to date" if weeks is None else f"the past {weeks} weeks"
    return Feature(
        f"{prefix}_{name}_b{bandwidth_m:g}_{'all' if weeks is None else f'w{weeks}'}".replace(".", "p"),
        f"{_words(name)} incidents around the cell ({bandwidth_m:g} m kernel), weekly rate over {over}",
        True,
    )


def smoothed_count(group: str, bandwidth_m: float, weeks: int | None) -> Feature:
    """A category group's events spread with a Gaussian kernel of sigma `bandwidth_m`, per week
    over the `weeks` before the week (None: all history). At a narrow bandwidth it discloses a
    single event as much as a count does, so it counts events."""
    return _smoothed("k", group, bandwidth_m, weeks)


def smoothed_target_history(target: str, bandwidth_m: float, weeks: int | None) -> Feature:
    """The same for the target's own events."""
    return _smoothed("khist", target, bandwidth_m, weeks)


def area_indicator(name: str) -> Feature:
    """An indicator of the area holding the cell (role `area_indicators`)."""
    return Feature(name, f"{_words(name)} (area)")


def weather_feature(name: str, description: str) -> Feature:
    """Last week's value of a weekly weather measure; `description` says what the measure is."""
    return Feature(WEATHER_PREFIX + name, f"last week's {description}")


# --------------------------------------------------------------------------- gold readers


def latest(df: DataFrame, key: str) -> DataFrame:
    """One row per key from the most recently ingested batch (a re-delivery supersedes)."""
    order = Window.partitionBy(key).orderBy(F.col("ingested_at").desc(), F.col("batch_id").desc())
    return df.withColumn("__n", F.row_number().over(order)).where("__n = 1").drop("__n")


def panel_builds(lake: Lake) -> Path:
    """Where build-features records each build (run id, weeks written, batches it had seen)."""
    return lake.gold(FEATURES) / "_builds"


def read_panel(spark: SparkSession, lake: Lake, week: date | None = None) -> DataFrame:
    """gold.features, every published week; with `week`, that week's rows alone, read from its
    own folder (the other weeks are not even listed: a weekly run's cost does not grow with the
    panel's history). A week that is not published gives the empty rows of the whole table."""
    path = lake.gold(FEATURES)
    if not has_parquet(path):
        raise NothingToDo(f"no feature panel under {path}: run `riskradar build-features` first")
    if week is None:
        return spark.read.parquet(str(path))
    return _read_partition(spark, path, path / f"week={week}", F.col("week") == F.lit(week))


def panel_weeks(lake: Lake) -> list[date]:
    """The published weeks of gold.features, oldest first."""
    return [date.fromisoformat(v) for v in partition_values(lake.gold(FEATURES), "week")]


def scored_weeks(lake: Lake, target: str) -> list[date]:
    """The weeks of gold.scores published for a target, oldest first."""
    return [date.fromisoformat(v) for v in partition_values(lake.gold(SCORES) / f"target={target}", "week")]


def newest_scored_week(lake: Lake, target: str) -> date:
    weeks = scored_weeks(lake, target)
    if not weeks:
        raise NothingToDo(f"no scores for {target!r} under {lake.gold(SCORES)}: run `riskradar score` first")
    return weeks[-1]


def scores_partition(lake: Lake, target: str, week: date, table: str = SCORES) -> Path:
    """The folder of one (target, week) of gold.scores (or gold.scores_by_area)."""
    return lake.gold(table) / f"target={target}" / f"week={week}"


def read_scores(spark: SparkSession, lake: Lake, target: str, week: date) -> pd.DataFrame:
    """One (target, week) partition of gold.scores as pandas: one row per study cell."""
    if week not in scored_weeks(lake, target):
        known = ", ".join(str(w) for w in scored_weeks(lake, target)) or "none"
        raise NothingToDo(
            f"no scores for {target!r} in the week of {week} (scored weeks: {known}): run `riskradar score`"
        )
    # The partition's folder alone: the other targets and weeks are not even listed.
    where = (F.col("target") == target) & (F.col("week") == F.lit(week))
    return _read_partition(spark, lake.gold(SCORES), scores_partition(lake, target, week), where).toPandas()


def read_scores_by_area(spark: SparkSession, lake: Lake, target: str, week: date) -> pd.DataFrame | None:
    """One (target, week) partition of gold.scores_by_area as pandas, or None if it has none."""
    folder = scores_partition(lake, target, week, SCORES_BY_AREA)
    if not has_parquet(folder):
        return None
    return spark.read.parquet(str(folder)).toPandas().assign(target=target, week=week)


def read_area_outlines(lake: Lake, feed: str) -> pd.DataFrame | None:
    """gold.areas of one boundaries feed as pandas (area_code, area_name, geometry_geojson), or None."""
    import pandas as pd

    folder = lake.gold(AREAS) / f"feed={feed}"
    if not has_parquet(folder):
        return None
    return pd.read_parquet(folder, columns=["area_code", "area_name", "geometry_geojson"])


def build_record(lake: Lake, run_id: str) -> dict | None:
    """The record build-features wrote for its run `run_id` (a scores row's features_version)."""
    path = panel_builds(lake) / f"{run_id}.json"
    if not path.exists():
        return None
    import json

    return json.loads(path.read_text(encoding="utf-8"))
