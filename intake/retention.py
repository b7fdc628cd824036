"""Retention: remove every row a feed's contract no longer allows (`riskradar retention`, see
jobs/retention.py).

A row's age is its event time (an event: when it happened; a day of a daily series: that day)
or, for a feed without one (area tables) and for a row whose time cannot be read, its delivery
time (`ingested_at`). A row goes when that time is before the feed's limit: midnight UTC of the
run's day (`as_of`) less the contract's `retention_days`. Per feed it goes from bronze, silver,
the history table, quarantine (the rows ingest and validation set aside), and the lake's copy of
a delivered file (`_delivered/<feed>/<sha256>`) goes with the last of its file's rows. Batch
markers and the feed's batch records stay (names, hashes and counts: no row content): ingest
still knows the old files, and the record keeps, per batch, how many of its bronze rows
retention removed, so that a later validation (`validate --reprocess`, `batches --retry`)
expects the rest.

The events removed from silver live on as counts per local week, cell, feed, category, origin
and domestic flag (`silver.expired_counts`, made by the `Counting` the job passes in:
features.panel.event_counts; no id, no time or place finer than a week and a cell), from which
the panel counts the weeks whose events are gone exactly as it counted them before. Those
counts have their own retention (`retention.counts_days`, at least the events'): a week that
ended before as_of less counts_days goes.

Atomic, as every intake writer: a run holds the feed's `bronze.<feed>` and `intake.<feed>`
locks. It writes each part it changes anew, where no reader looks: silver, history, quarantine
(the ingest step's under `quarantine/<feed>/_retained/`) and the counts into new run folders,
read only once the feed's commit record names them; bronze partitions into a staging folder.
Their rows are counted back and checked (riskradar.publish) before the feed's record is
committed once: naming the new folders, and listing as `retention.pending` the renames of the
staged bronze partitions, the copies and the replaced ingest partitions to remove; these are
done next, and the record committed again without the list. A run killed before the commit
leaves the old lake; after it, every reader of the committed tables (riskradar.catalog) sees
the new one. Bronze and the copies are read only by runs holding the feed's locks (ingest,
validate, batches, rekey), which refuse while a list is pending (`refuse_unfinished`): the
next retention run of the feed finishes it first.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from intake import conform
from riskradar import catalog
from riskradar.catalog import EXPIRED_COUNTS, INGEST_QUARANTINE
from riskradar.config import Contract, Settings
from riskradar.errors import ConfigError, RiskradarError
from riskradar.lake import FeedState, Lake, has_parquet, lock, read_json_dir, run_folder, vacuum
from riskradar.publish import Check, publish

BRONZE, QUARANTINE, SILVER, HISTORY = "bronze", "quarantine", "silver", "history"
TABLES = (BRONZE, QUARANTINE, SILVER, HISTORY)
OWNER = "retention"  # of the staging folders of bronze and quarantine
N_EVENTS = "n_events"  # the count column of silver.expired_counts (features.panel.N_EVENTS)


class RetentionUnfinished(RiskradarError):
    """A retention run was interrupted after its commit: bronze and the copies of delivered files
    are not yet what the feed's record says, and nothing reads them until it is finished."""


@dataclass(frozen=True)
class Counting:
    """How the events retention removes are counted (features.panel.event_counts: silver.events
    columns -> week, ix, iy, partner, category, origin, domestic, n_events), and on what basis
    (cell size, CRS, time zone): counts of another basis cannot be added to them."""

    count: Callable[[DataFrame], DataFrame]
    basis: dict[str, Any]


@dataclass(frozen=True)
class Limits:
    as_of: date
    rows: datetime  # a row whose time is before this instant (midnight UTC) goes
    counts: date  # a week of expired counts that ended before this day goes

    @classmethod
    def of(cls, contract: Contract, settings: Settings, as_of: date) -> Limits:
        rows = datetime.combine(as_of - timedelta(days=contract.retention_days), time())
        return cls(as_of, rows, as_of - timedelta(days=settings.retention.counts_days))


@dataclass
class Part:
    """One part of a feed's table (a batch's, or a replacing batch's for history) and what
    retention does to it: `removed` rows go, `kept` stay (the oldest at `oldest`)."""

    table: str
    step: str | None  # quarantine: "ingest" (a bronze-like partition) or "validate" (a run folder)
    key: str
    folder: Path
    removed: int = 0
    kept: int = 0
    oldest: datetime | None = None


@dataclass
class FeedPlan:
    """What a run removes of one feed, computed before anything is written (a dry run stops here)."""

    contract: Contract
    limits: Limits
    parts: list[Part]
    copies: list[str]  # sha256 of the kept copies of delivered files that go
    counts: DataFrame | None = None  # event counts of the silver rows that go
    newest: date | None = None  # the local day of the newest event that goes
    counted: dict[str, Any] = field(default_factory=dict)  # silver.expired_counts: its figures and parts

    @property
    def changes(self) -> bool:
        return any(p.removed for p in self.parts) or bool(self.copies or self.counted.get("removed"))


def row_time(contract: Contract, columns: list[str], *, delivered: bool) -> Column:
    """The time that ages a row: its event time (an event's UTC instant; a series' day, as
    midnight UTC), read from the delivered values (`delivered`: bronze and quarantine rows) or
    from the canonical columns (silver and history); its delivery time, `ingested_at`, where it
    has none (area tables) or it cannot be read (a row quarantined for it)."""
    when: Column | None = None
    if contract.kind == "events":
        ts = contract.events.timestamp.column
        if not delivered:
            when = F.col("occurred_at")
        elif ts in columns:
            when = conform.event_instant(contract, conform.event_wall_time(contract)).utc
    elif contract.kind == "series":
        if not delivered:
            when = F.col("date").cast("timestamp")
        elif contract.series.date.column in columns:
            when = conform.series_day(contract).cast("timestamp")
    return F.col("ingested_at") if when is None else F.coalesce(when, F.col("ingested_at"))


def rows_left(marker: dict[str, Any], state: FeedState) -> int:
    """The bronze rows of a batch (its marker) that retention has not removed."""
    removed = state.retention.get("bronze_removed", {}).get(marker["batch_id"], 0)
    return marker["rows"] - removed


def refuse_unfinished(lake: Lake, feed: str) -> None:
    """Raise RetentionUnfinished while a retention of the feed is committed but not finished."""
    pending = FeedState.read(lake, feed).retention.get("pending")
    if pending:
        raise RetentionUnfinished(
            f"{feed}: retention run {pending['run_id']} was interrupted after its commit, before it "
            f"had moved the feed's bronze and removed the copies of its delivered files as its "
            f"commit record says; nothing reads them until it is finished: run `riskradar "
            f"retention --partner {feed}` (it finishes the interrupted run first)"
        )


def enforce_feed(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    *,
    as_of: date,
    counting: Counting,
    run_id: str,
    dry_run: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Remove what the feed's contract no longer allows as of `as_of`, under the feed's locks
    (finishing first what an interrupted run left); with `dry_run` only say what would go,
    writing nothing (no lock either: it only reads). Returns the feed's figures and notes."""
    feed = contract.name
    if dry_run:
        state = FeedState.read(lake, feed)
        notes = [f"{feed}: an interrupted retention run is unfinished; a run finishes it first"]
        plan = plan_feed(spark, settings, lake, contract, state, as_of=as_of, counting=counting)
        return figures(plan, settings), notes if state.retention.get("pending") else []
    with (
        lock(lake, f"bronze.{feed}", run_id=run_id, job="retention") as bronze_notes,
        lock(lake, f"intake.{feed}", run_id=run_id, job="retention") as intake_notes,
    ):
        state = FeedState.read(lake, feed)
        notes = bronze_notes + intake_notes + finish_pending(lake, state, run_id=run_id)
        for folder in _staging(lake, contract, run_id):  # what a run killed before its commit left
            shutil.rmtree(folder.parent, ignore_errors=True)
        plan = plan_feed(spark, settings, lake, contract, state, as_of=as_of, counting=counting)
        if plan.changes:
            apply_plan(spark, settings, lake, plan, state, run_id=run_id, basis=counting.basis)
        vacuum(lake, FeedState.read(lake, feed), catalog.vacuum_roots(lake, contract))
    return figures(plan, settings), notes


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class _Source:
    table: str
    step: str | None
    base: Path  # the table's root, for partition discovery
    folders: dict[str, Path]  # part key -> its folder
    key: str  # the partition column that holds the part key
    delivered: bool  # rows hold delivered values (bronze, quarantine), not canonical ones


def _sources(lake: Lake, contract: Contract, state: FeedState) -> list[_Source]:
    feed = contract.name
    committed = sorted(m["batch_id"] for m in read_json_dir(lake.batch_markers(feed)))
    named = (*TABLES, INGEST_QUARANTINE)
    in_state = {t: {k: lake.root / rel for k, rel in state.tables.get(t, {}).items() if rel} for t in named}
    rewritten = state.tables.get(INGEST_QUARANTINE, {})
    roots = catalog.intake_roots(lake, contract)
    return [
        _Source(
            BRONZE,
            None,
            lake.bronze(feed),
            {b: lake.bronze(feed) / f"batch_id={b}" for b in committed},
            "batch_id",
            True,
        ),
        _Source(
            QUARANTINE,
            "ingest",
            roots["quarantine"],
            {
                b: roots["quarantine"] / catalog.quarantine_partition(b, "ingest")
                for b in committed
                if b not in rewritten
            },
            "batch_id",
            True,
        ),
        _Source(
            QUARANTINE, "ingest", roots[INGEST_QUARANTINE], in_state[INGEST_QUARANTINE], "batch_id", True
        ),
        _Source(QUARANTINE, "validate", roots["quarantine"], in_state[QUARANTINE], "batch_id", True),
        _Source(
            SILVER, None, lake.silver(catalog.silver_table(contract)), in_state[SILVER], "batch_id", False
        ),
        _Source(
            HISTORY,
            None,
            lake.silver(catalog.history_table(contract)),
            in_state[HISTORY],
            catalog.SUPERSEDED_BY,
            False,
        ),
    ]


def _survey(
    spark: SparkSession, source: _Source, contract: Contract, limits: Limits, by_file: dict[str, list[int]]
) -> list[Part]:
    """The parts of one source with their rows that go and stay, in one pass; rows that go and
    stay per delivered file are added to `by_file` (sha256 -> [removed, kept]) for bronze and
    ingest quarantine, whose rows are those of the kept copies."""
    folders = {k: f for k, f in source.folders.items() if has_parquet(f)}
    if not folders:
        return []
    df = (
        spark.read.option("basePath", str(source.base))
        .option("mergeSchema", "true")
        .parquet(*[str(f) for f in folders.values()])
    )
    when = row_time(contract, df.columns, delivered=source.delivered)
    old = when < F.lit(limits.rows)
    files = source.table == BRONZE or source.step == "ingest"
    keys = [F.col(source.key).cast("string").alias("k")]
    keys += [F.col("source_sha256").alias("f")] if files else []
    rows = (
        df.groupBy(*keys)
        .agg(
            F.sum(F.when(old, 1).otherwise(0)).alias("removed"),
            F.sum(F.when(old, 0).otherwise(1)).alias("kept"),
            F.min(F.when(~old, when)).alias("oldest"),
        )
        .collect()
    )
    parts = {k: Part(source.table, source.step, k, f) for k, f in folders.items()}
    for r in rows:
        part = parts[r["k"]]
        part.removed += r["removed"]
        part.kept += r["kept"]
        if r["oldest"] is not None and (part.oldest is None or r["oldest"] < part.oldest):
            part.oldest = r["oldest"]
        if files:
            tally = by_file.setdefault(r["f"], [0, 0])
            tally[0] += r["removed"]
            tally[1] += r["kept"]
    return list(parts.values())


def plan_feed(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    contract: Contract,
    state: FeedState,
    *,
    as_of: date,
    counting: Counting,
) -> FeedPlan:
    """What retention removes of a feed as of `as_of`, and the counts it keeps of the events."""
    limits = Limits.of(contract, settings, as_of)
    by_file: dict[str, list[int]] = {}
    parts = [p for s in _sources(lake, contract, state) for p in _survey(spark, s, contract, limits, by_file)]
    copies = lake.delivered(contract.name)
    kept_copies = sorted(p.name for p in copies.iterdir()) if copies.is_dir() else []
    gone = [sha for sha in kept_copies if sha in by_file and by_file[sha][0] and not by_file[sha][1]]
    plan = FeedPlan(contract, limits, parts, gone)
    if contract.kind == "events":
        _plan_counts(spark, settings, lake, plan, state, counting)
    return plan


def _plan_counts(
    spark: SparkSession, settings: Settings, lake: Lake, plan: FeedPlan, state: FeedState, counting: Counting
) -> None:
    """The counts of the events that go, and what the counts kept so far lose to their own
    retention: silver.expired_counts' figures and the years (its parts) to write again."""
    then = state.retention.get("counted_on")
    if state.tables.get(EXPIRED_COUNTS) and then != counting.basis:
        raise ConfigError(
            f"{settings.config_file}: the expired events of {plan.contract.name} were counted per week and "
            f"cell on {then}, and the config now says {counting.basis}: counts of both cannot be added "
            f"up. Put 'grid.cell_size_m', 'project_crs' and 'timezone' back as they were"
        )
    going = [p.folder for p in plan.parts if p.table == SILVER and p.removed]
    new = None
    if going:
        base = lake.silver(catalog.silver_table(plan.contract))
        rows = spark.read.option("basePath", str(base)).parquet(*[str(f) for f in going])
        rows = rows.where(row_time(plan.contract, rows.columns, delivered=False) < F.lit(plan.limits.rows))
        local = F.to_date(F.from_utc_timestamp(F.col("occurred_at"), settings.timezone))
        plan.newest = rows.agg(F.max(local)).first()[0]
        new = counting.count(rows).withColumn("year", F.year("week").cast("string"))
    plan.counts = new
    kept = state.tables.get(EXPIRED_COUNTS, {})
    old = None
    if kept:
        base = lake.silver(EXPIRED_COUNTS)
        old = spark.read.option("basePath", str(base)).parquet(*[str(lake.root / r) for r in kept.values()])
        old = old.withColumn("year", F.col("year").cast("string"))
    plan.counted = _count_figures(plan, old, new)


def _count_figures(plan: FeedPlan, old: DataFrame | None, new: DataFrame | None) -> dict[str, Any]:
    """silver.expired_counts' figures: events counted in, rows (week, cell, ...) that go, the
    oldest week kept; and per year (a part) the events it must hold once written again."""
    ended = F.date_add(F.col("week"), 6) < F.lit(plan.limits.counts)
    sides = [
        df.select("year", "week", N_EVENTS, F.lit(i).alias("new"))
        for i, df in enumerate((old, new))
        if df is not None
    ]
    if not sides:
        return {}
    both = sides[0] if len(sides) == 1 else sides[0].unionByName(sides[1])
    rows = (
        both.groupBy("year", "new")
        .agg(
            F.sum(F.when(ended, 1).otherwise(0)).alias("removed"),
            F.sum(F.when(ended, 0).otherwise(F.col(N_EVENTS))).alias("events_kept"),
            F.sum(N_EVENTS).alias("events"),
            F.min(F.when(~ended, F.col("week"))).alias("oldest"),
        )
        .collect()
    )
    years: dict[str, int] = {}
    for r in rows:
        years[r["year"]] = years.get(r["year"], 0) + r["events_kept"]
    touched = {r["year"] for r in rows if r["new"] or r["removed"]}
    oldest = [r["oldest"] for r in rows if r["oldest"] is not None]
    return {
        "events_counted": sum(r["events"] for r in rows if r["new"]),
        "removed": sum(r["removed"] for r in rows if not r["new"]),
        "oldest_week_kept": min(oldest).isoformat() if oldest else None,
        "years": {y: years[y] for y in sorted(touched)},  # the parts to write again: their events
    }


def figures(plan: FeedPlan, settings: Settings) -> dict[str, Any]:
    """What the audit record and the dry run say of a feed: per table the rows that go and the
    oldest time kept, the copies of delivered files that go, and the expired counts."""
    contract = plan.contract
    names = {
        BRONZE: f"bronze.{contract.name}",
        QUARANTINE: f"quarantine.{contract.name}",
        SILVER: f"silver.{catalog.silver_table(contract)}",
        HISTORY: f"silver.{catalog.history_table(contract)}",
    }
    tables: dict[str, Any] = {}
    for table, name in names.items():
        parts = [p for p in plan.parts if p.table == table]
        oldest = [p.oldest for p in parts if p.oldest is not None]
        tables[table] = {
            "table": name,
            "removed": sum(p.removed for p in parts),
            "kept": sum(p.kept for p in parts),
            "oldest_kept": min(oldest).isoformat() if oldest else None,
        }
    out: dict[str, Any] = {
        "retention_days": contract.retention_days,
        "as_of": plan.limits.as_of.isoformat(),
        "removed_before": plan.limits.rows.isoformat() + "Z",
        "tables": tables,
        "delivered_copies": {"removed": len(plan.copies)},
    }
    if contract.kind == "events":
        counted = {k: v for k, v in plan.counted.items() if k != "years"}
        out[EXPIRED_COUNTS] = {
            "table": f"silver.{EXPIRED_COUNTS}",
            "events_counted": 0,
            "removed": 0,
            "oldest_week_kept": None,
            **counted,
            "retention_days": settings.retention.counts_days,
            "removed_weeks_ended_before": plan.limits.counts.isoformat(),
        }
    return out


# --------------------------------------------------------------------------- applying it


@dataclass
class _Written:
    """A part written anew by this run, where no reader looks yet, and its rows counted back."""

    table: str  # a logical table of the feed's record, or BRONZE (renamed into place)
    key: str
    folder: Path | None  # None: the part has no row left
    rows: int
    expected: int


@dataclass
class RetentionCommit:
    """A run's rewritten parts as staged output (riskradar.publish.Staged): `commit` names the
    new folders in the feed's record with the swaps and removals still to do (`pending`),
    commits it, and does them (`finish_pending`); `discard` removes what the run wrote."""

    name: str
    lake: Lake
    state: FeedState
    run_id: str
    written: list[_Written]
    pending: dict[str, Any]
    retained: dict[str, Any]  # the record's `retention` after this run

    def commit(self) -> None:
        for w in self.written:
            if w.table == BRONZE:
                continue  # renamed into place by the pending swaps
            parts = self.state.parts(w.table)
            if w.folder is not None and w.rows:
                parts[w.key] = str(w.folder.relative_to(self.lake.root))
            elif w.table == INGEST_QUARANTINE:
                parts[w.key] = ""  # none left: not the partition ingest wrote either
            else:
                parts.pop(w.key, None)
        self.state.retention = {**self.retained, "pending": self.pending}
        self.state.commit(self.lake, run_id=self.run_id)
        finish_pending(self.lake, self.state, run_id=self.run_id)

    def discard(self) -> None:
        for w in self.written:
            if w.folder is not None:
                shutil.rmtree(w.folder, ignore_errors=True)
        shutil.rmtree(self.lake.root / self.pending["staged"], ignore_errors=True)


def _staging(lake: Lake, contract: Contract, run_id: str) -> tuple[Path, Path]:
    """This run's staging and trash folders of bronze (its own: `_staging/retention/<run>`)."""
    root = lake.bronze(contract.name)
    return root / "_staging" / OWNER / run_id, root / "_trash" / OWNER / run_id


def _rewrite(
    spark: SparkSession, lake: Lake, plan: FeedPlan, run_id: str
) -> tuple[list[_Written], list[dict[str, str | None]], list[str]]:
    """Write every part that loses rows anew without them: silver, history and quarantine into
    a new run folder (the ingest step's under quarantine/<feed>/_retained/), bronze into this
    run's staging folder, with the swap that renames it into place. Counted back as written.
    Also the partitions of the ingest step that the record will no longer read, to remove."""
    roots = catalog.intake_roots(lake, plan.contract)
    staged_root, trash_root = _staging(lake, plan.contract, run_id)
    written, swaps, dropped = [], [], []
    for part in (p for p in plan.parts if p.removed):
        rel = f"batch_id={part.key}" if part.table != HISTORY else f"{catalog.SUPERSEDED_BY}={part.key}"
        table = INGEST_QUARANTINE if part.step == "ingest" else part.table
        if part.table == QUARANTINE:
            rel = catalog.quarantine_partition(part.key, part.step)
        if table == BRONZE:
            folder = staged_root / rel if part.kept else None
            swaps.append(
                {
                    "target": str((part.folder).relative_to(lake.root)),
                    "staged": str(folder.relative_to(lake.root)) if folder else None,
                    "trash": str((trash_root / rel).relative_to(lake.root)),
                }
            )
        else:
            folder = roots[table] / rel / run_folder(run_id) if part.kept else None
            if table == INGEST_QUARANTINE and roots[INGEST_QUARANTINE] not in part.folder.parents:
                dropped.append(str(part.folder.relative_to(lake.root)))  # the partition ingest wrote
        rows = 0
        if folder is not None:
            df = spark.read.parquet(str(part.folder))
            keep = row_time(plan.contract, df.columns, delivered=part.table in (BRONZE, QUARANTINE))
            df.where(keep >= F.lit(plan.limits.rows)).write.mode("overwrite").parquet(str(folder))
            rows = spark.read.parquet(str(folder)).count()
        written.append(_Written(table, part.key, folder, rows, part.kept))
    return written, swaps, dropped


def _rewrite_counts(
    spark: SparkSession, lake: Lake, plan: FeedPlan, state: FeedState, run_id: str
) -> list[_Written]:
    """Write each year of silver.expired_counts that gains counts or loses weeks anew: the
    counts it kept and the new ones, less the weeks past their retention, summed per key."""
    years = plan.counted.get("years", {})
    if not years:
        return []
    root = catalog.intake_roots(lake, plan.contract)[EXPIRED_COUNTS]
    keys = ["week", "ix", "iy", "category", "origin", "domestic"]
    kept = state.tables.get(EXPIRED_COUNTS, {})
    written = []
    for year, events in years.items():
        sides = [plan.counts.where(F.col("year") == year)] if plan.counts is not None else []
        if year in kept:
            sides.append(spark.read.parquet(str(lake.root / kept[year])))
        rows = sides[0].select(*keys, N_EVENTS)
        for side in sides[1:]:
            rows = rows.unionByName(side.select(*keys, N_EVENTS))
        rows = rows.where(F.date_add(F.col("week"), 6) >= F.lit(plan.limits.counts))
        folder = root / f"year={year}" / run_folder(run_id) if events else None
        counted = 0
        if folder is not None:
            rows.groupBy(*keys).agg(F.sum(N_EVENTS).alias(N_EVENTS)).write.mode("overwrite").parquet(
                str(folder)
            )
            counted = spark.read.parquet(str(folder)).agg(F.sum(N_EVENTS)).first()[0] or 0
        written.append(_Written(EXPIRED_COUNTS, year, folder, counted, events))
    return written


def apply_plan(
    spark: SparkSession,
    settings: Settings,
    lake: Lake,
    plan: FeedPlan,
    state: FeedState,
    *,
    run_id: str,
    basis: dict[str, Any],
) -> None:
    """Write what `plan` changes where no reader looks, check it, and commit it (see the module
    docstring); a failed check publishes nothing and raises PublishRefused."""
    feed = plan.contract.name
    written, swaps, dropped = _rewrite(spark, lake, plan, run_id)
    written += _rewrite_counts(spark, lake, plan, state, run_id)
    removed = dict(state.retention.get("bronze_removed", {}))
    for part in (p for p in plan.parts if p.table == BRONZE and p.removed):
        removed[part.key] = removed.get(part.key, 0) + part.removed
    retained = {
        **{k: v for k, v in state.retention.items() if k != "pending"},
        "run_id": run_id,
        "as_of": plan.limits.as_of.isoformat(),
        "removed_before": plan.limits.rows.isoformat() + "Z",
        "bronze_removed": removed,
    }
    if plan.counts is not None or state.tables.get(EXPIRED_COUNTS):
        retained["counted_on"] = basis
    if plan.newest is not None:
        retained["newest_expired"] = max(plan.newest.isoformat(), state.retention.get("newest_expired", ""))
    staged, trash = (str(p.relative_to(lake.root)) for p in _staging(lake, plan.contract, run_id))
    pending = {
        "run_id": run_id,
        "removed": {t: sum(p.removed for p in plan.parts if p.table == t) for t in TABLES},
        "swaps": swaps,
        "remove": [str((lake.delivered(feed) / sha).relative_to(lake.root)) for sha in plan.copies],
        "drop": dropped,
        "staged": staged,
        "trash": trash,
    }
    checks = [
        Check(
            f"{w.table} {w.key}",
            lambda w=w: None if w.rows == w.expected else f"{w.rows} written, {w.expected} expected",
        )
        for w in written
    ]
    removed_events = sum(p.removed for p in plan.parts if p.table == SILVER)
    if plan.contract.kind == "events":
        counted = plan.counted.get("events_counted", 0)
        checks.append(
            Check(
                "every event removed is counted",
                lambda: None if counted == removed_events else f"{removed_events} removed, {counted} counted",
            )
        )
    commit = RetentionCommit(f"retention of {feed}", lake, state, run_id, written, pending, retained)
    publish([commit], checks=checks, report=lake.reports("retention", feed) / f"{run_id}.publish.json")


def finish_pending(lake: Lake, state: FeedState, *, run_id: str) -> list[str]:
    """Do what a committed retention left to do (`state.retention["pending"]`: rename the staged
    bronze partitions into place, remove the copies of delivered files whose rows are gone and
    the ingest quarantine partitions the record no longer reads, clear its staging), then commit
    the record without it. Safe to repeat from any point: a run killed in it is finished by the
    next. Call under the feed's locks."""
    pending = state.retention.get("pending")
    if not pending:
        return []
    for swap in pending["swaps"]:
        swap_in(lake.root, swap)
    for rel in pending["remove"]:
        (lake.root / rel).unlink(missing_ok=True)
    for rel in pending["drop"]:
        shutil.rmtree(lake.root / rel, ignore_errors=True)
        batch = (lake.root / rel).parent
        if batch.is_dir() and not any(batch.iterdir()):
            batch.rmdir()
    for rel in (pending["staged"], pending["trash"]):
        shutil.rmtree((lake.root / rel).parent, ignore_errors=True)  # this owner's: no other run of it
    state.retention = {k: v for k, v in state.retention.items() if k != "pending"}
    state.commit(lake, run_id=run_id)
    removed = ", ".join(f"{t} {n}" for t, n in pending["removed"].items())
    return [
        f"finished retention run {pending['run_id']}, interrupted after its commit, which removed rows "
        f"({removed}) and {len(pending['remove'])} copies of delivered files"
    ]


def swap_in(root: Path, swap: dict[str, str | None]) -> None:
    """Put a staged partition in the place of the published one (`staged` None: remove that),
    the old one to the trash: repeatable, whichever rename a killed run did last."""
    target, trash = root / swap["target"], root / swap["trash"]
    staged = root / swap["staged"] if swap["staged"] else None
    if staged is not None and not staged.exists():
        return  # renamed into place already
    if target.exists():
        trash.parent.mkdir(parents=True, exist_ok=True)
        target.rename(trash)
    if staged is not None:
        staged.rename(target)
