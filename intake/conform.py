"""Pure transforms from bronze rows to canonical rows plus row-level quarantine rules.

Each `route_*` function returns one frame with every bronze row exactly once: the canonical
columns (null for quarantined rows), `quarantine_rule` and `quarantine_reason` (null for rows
to publish), `change` and `replaces_batch` (below) and the lineage columns. Splitting it into
silver and quarantine is the job's business; keeping them in one frame makes "nothing lost" a
property of the code. Rules are applied in a fixed order and the first that fails names the
row's reason.

A row that passes every rule is compared with the feed's current silver row of the same key
(event id, date or area code), given as `current` (key, row_hash, batch_id), and with the
versions that row replaced, given as `replaced` (key, row_hash): `change` is `new` (no current
row), `unchanged` (the current content again: nothing to publish), `outdated` (the content of
a version already replaced, e.g. an old export sent again: nothing to publish either) or
`correction` (content never seen for this key: it replaces the current row, which lives in
batch `replaces_batch`). A caller that knows the batch's row count passes it as `batch_rows`:
a small batch then reads of `current` and `replaced` only the rows of its own keys
(`only_batch_keys`), so that its cost does not grow with the feed's history by a shuffle of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from intake.localtime import LocalTime, local_to_utc
from intake.pseudonym import pseudonymise
from riskradar import crs
from riskradar.catalog import QUARANTINE_REASON, QUARANTINE_RULE, ROW_LINEAGE
from riskradar.config import Contract, Measure, Settings

RULE, REASON, DELIVERED = QUARANTINE_RULE, QUARANTINE_REASON, "delivered"
CHANGE, REPLACES = "change", "replaces_batch"
# What the time zone made of a published event's wall time, where it was not plain (a DST gap
# or overlap resolved by the contract's policy): counted and reported, not published.
TIME_NOTE = "time_note"
NEW, UNCHANGED, OUTDATED, CORRECTION = "new", "unchanged", "outdated", "correction"
LINEAGE = ["batch_id", *ROW_LINEAGE]


@dataclass(frozen=True)
class Rule:
    name: str | Column  # a column when the rule name comes from the data (ingest issues)
    failed: Column
    reason: Column


def _q(name: str) -> str:
    return f"`{name}`"


def _blank(c: Column) -> Column:
    return c.isNull() | (F.trim(c) == "")


def _shown(c: Column) -> Column:
    """A raw value quoted for a reason text."""
    return F.concat(F.lit("'"), F.coalesce(c, F.lit("")), F.lit("'"))


def _format_rule(name: str, raw: Column, parsed: Column, column: str, fmt: str) -> Rule:
    """A value that is present but does not parse with the contract's format."""
    return Rule(
        name,
        parsed.isNull(),
        F.concat(F.lit(f"{column} "), _shown(raw), F.lit(f" does not match the format '{fmt}'")),
    )


def _apply(
    df: DataFrame, rules: list[Rule], canonical: dict[str, Column], *, note: Column | None = None
) -> DataFrame:
    """First failing rule wins; canonical columns are nulled for quarantined rows. `note` says,
    for a published row, what was made of a value that was not plain (see TIME_NOTE)."""
    delivered = [c for c in df.columns if c not in LINEAGE and not c.startswith("__")]
    # Canonical values and the rule are computed once as columns (under private names, so a
    # delivered `date` never clashes with the canonical `date`) and then referenced by name.
    df = df.withColumns({f"__c_{name}": expr for name, expr in canonical.items()})
    rule: Column = F.lit(None).cast("string")
    reason: Column = F.lit(None).cast("string")
    for r in reversed(rules):
        name = F.lit(r.name) if isinstance(r.name, str) else r.name
        rule = F.when(r.failed, name).otherwise(rule)
        reason = F.when(r.failed, r.reason).otherwise(reason)
    df = df.withColumns({"__rule": rule, "__reason": reason})
    keep = F.col("__rule").isNull()
    current = F.col("__cur_batch")
    change = (
        F.when(~keep, F.lit(None).cast("string"))
        .when(current.isNull(), F.lit(NEW))
        .when(F.col("__cur_hash") == F.col("row_hash"), F.lit(UNCHANGED))
        .when(F.col("__seen_before"), F.lit(OUTDATED))
        .otherwise(F.lit(CORRECTION))
    )
    return df.select(
        *[F.when(keep, F.col(f"__c_{name}")).alias(name) for name in canonical],
        F.col("__rule").alias(RULE),
        F.col("__reason").alias(REASON),
        change.alias(CHANGE),
        F.when(change == CORRECTION, current).alias(REPLACES),
        F.when(keep, note if note is not None else F.lit(None)).cast("string").alias(TIME_NOTE),
        *LINEAGE,
        # The delivered values, kept as one struct that quarantine unpacks for review.
        F.struct(*[F.col(_q(c)) for c in delivered]).alias(DELIVERED),
    )


def canonical_columns(routed: DataFrame) -> list[str]:
    """The canonical columns of a routed frame, in order."""
    internal = {RULE, REASON, CHANGE, REPLACES, TIME_NOTE, DELIVERED, *LINEAGE}
    return [c for c in routed.columns if c not in internal]


def _ingest_rule() -> Rule:
    return Rule(F.col("ingest_rule"), F.col("ingest_rule").isNotNull(), F.col("ingest_reason"))


# Ranking rows needs a shuffle by key. It runs on a narrow projection, and only the rows that
# are not the first of their key (few, in a normal delivery) are joined back to the wide rows:
# shuffling whole delivered rows twice held most of validate's time at 10M rows (measured).
_RANK_ORDER = ("source_file", "source_row")
# Up to this many flagged rows are broadcast to the wide rows; more are joined by a shuffle.
BROADCAST_FLAGGED_ROWS = 1_000_000
# A batch of up to this many rows sends its keys to the scan of the feed's published rows, so
# that only the rows of those keys are shuffled into the comparison: a weekly batch then costs
# one scan of the feed's history, not a shuffle of all of it (larger batches shuffle both).
BROADCAST_BATCH_KEYS = 1_000_000


def _rank_flags(
    df: DataFrame,
    keys: dict[str, Column],
    current: DataFrame | None,
    replaced: DataFrame | None = None,
    *,
    key: str,
    batch_rows: int | None = None,
) -> tuple[DataFrame, dict[str, Column]]:
    """Exact duplicates and repeated keys of a batch, and rows whose key is current, found on a
    narrow projection.

    Returns `df` with, for flagged rows only (null elsewhere): `__dup_rank`, `__first_file`,
    `__first_row` (the first occurrence of the row's content), `__<name>_rank` per key,
    `__cur_hash`, `__cur_batch` (the content hash and batch of the current row with the same
    `keys[key]`, from `current`: columns `key`, `row_hash`, `batch_id`) and `__seen_before`
    (the row's content is a version of the key that was replaced, from `replaced`: `key`,
    `row_hash`); and per key the condition "not the first row with this key". Rows are ordered
    by file and row number. With `batch_rows` (the batch's rows, when known) up to
    BROADCAST_BATCH_KEYS, `current` and `replaced` are first cut to the batch's keys
    (`only_batch_keys`): the same flags, without shuffling the feed's history.
    """
    narrow = df.select(*_RANK_ORDER, "row_hash", *[expr.alias(f"__k_{name}") for name, expr in keys.items()])
    if batch_rows is not None and batch_rows <= BROADCAST_BATCH_KEYS:
        current, replaced = only_batch_keys(narrow.select(f"__k_{key}"), current, replaced)
    by_hash = Window.partitionBy("row_hash").orderBy(*_RANK_ORDER)
    narrow = narrow.withColumns(
        {
            "__dup_rank": F.row_number().over(by_hash),
            "__first_file": F.first("source_file").over(by_hash),
            "__first_row": F.first("source_row").over(by_hash),
        }
    )
    for name in keys:
        by_key = Window.partitionBy(f"__k_{name}").orderBy(*_RANK_ORDER)
        narrow = narrow.withColumn(f"__{name}_rank", F.row_number().over(by_key))
    flagged = F.col("__dup_rank") > 1
    for name in keys:
        flagged = flagged | (F.col(f"__{name}_rank") > 1)
    if current is not None:
        known = current.select(
            F.col("key").alias("__cur_key"),
            F.col("row_hash").alias("__cur_hash"),
            F.col("batch_id").alias("__cur_batch"),
        )
        narrow = narrow.join(known, narrow[f"__k_{key}"] == known["__cur_key"], "left").drop("__cur_key")
        flagged = flagged | F.col("__cur_batch").isNotNull()
    else:
        narrow = narrow.withColumns(
            {"__cur_hash": F.lit(None).cast("string"), "__cur_batch": F.lit(None).cast("string")}
        )
    if replaced is not None:
        versions = replaced.select(
            F.col("key").alias("__old_key"),
            F.col("row_hash").alias("__old_hash"),
            F.lit(True).alias("__seen"),
        ).dropDuplicates(["__old_key", "__old_hash"])
        on = (narrow[f"__k_{key}"] == versions["__old_key"]) & (narrow["row_hash"] == versions["__old_hash"])
        narrow = narrow.join(versions, on, "left").drop("__old_key", "__old_hash")
        narrow = narrow.withColumn("__seen_before", F.coalesce(F.col("__seen"), F.lit(False))).drop("__seen")
    else:
        narrow = narrow.withColumn("__seen_before", F.lit(False))
    flags = narrow.where(flagged).drop("row_hash", *[f"__k_{name}" for name in keys])
    flags = flags.withColumnsRenamed({c: f"__flag_{c}" for c in _RANK_ORDER})
    # Computed once: the count below and the join then read the checkpoint, which Spark drops
    # when the frame is no longer referenced.
    flags = flags.localCheckpoint(eager=True)
    if flags.count() <= BROADCAST_FLAGGED_ROWS:
        flags = F.broadcast(flags)
    on = [df[c] == flags[f"__flag_{c}"] for c in _RANK_ORDER]
    df = df.join(flags, on, "left").drop(*[f"__flag_{c}" for c in _RANK_ORDER])
    return df, {name: F.col(f"__{name}_rank") > 1 for name in keys}


def only_batch_keys(batch_keys: DataFrame, *tables: DataFrame | None) -> tuple[DataFrame | None, ...]:
    """Each table (a frame with a `key` column, or None) cut to the rows whose key is one of
    `batch_keys` (a one-column frame; a null key matches nothing, as in an equi-join), joined
    by a broadcast of the distinct keys: each table is scanned once and never shuffled."""
    name = batch_keys.columns[0]
    keys = F.broadcast(batch_keys.where(F.col(name).isNotNull()).distinct())
    return tuple(None if t is None else t.join(keys, t["key"] == keys[name], "left_semi") for t in tables)


def _duplicate_rules() -> list[Rule]:
    """Exact duplicates within the batch: all but the first occurrence (columns from
    `_rank_flags`). A row equal to the current published one is not a defect: it is
    `unchanged`."""
    return [
        Rule(
            "duplicate_row",
            F.col("__dup_rank") > 1,
            F.concat(
                F.lit("exact duplicate of row "),
                F.col("__first_row").cast("string"),
                F.lit(" of file '"),
                F.col("__first_file"),
                F.lit("' in this delivery"),
            ),
        ),
    ]


def _dst_rules(raw: Column, column: str, zone: str, nonexistent: str, ambiguous: str) -> list[Rule]:
    """Wall times a daylight-saving change makes doubtful, where the contract quarantines them
    (columns `__nonexistent`, `__ambiguous` from `local_to_utc`)."""
    rules = []
    if nonexistent == "quarantine":
        rules.append(
            Rule(
                "nonexistent_timestamp",
                F.col("__nonexistent"),
                F.concat(
                    F.lit(f"{column} "),
                    _shown(raw),
                    F.lit(f" does not exist in {zone}: the clocks were set forward over it"),
                ),
            )
        )
    if ambiguous == "quarantine":
        rules.append(
            Rule(
                "ambiguous_timestamp",
                F.col("__ambiguous"),
                F.concat(
                    F.lit(f"{column} "),
                    _shown(raw),
                    F.lit(f" occurs twice in {zone}: the clocks were set back over it"),
                ),
            )
        )
    return rules


def route_events(
    bronze: DataFrame,
    contract: Contract,
    settings: Settings,
    *,
    key: bytes,
    current: DataFrame | None = None,
    replaced: DataFrame | None = None,
    batch_rows: int | None = None,
) -> DataFrame:
    """Bronze rows of an events feed -> canonical events + quarantine rules.

    Canonical columns: event_id (HMAC), partner, category, subcategory, occurred_at (UTC
    timestamp), x, y (project CRS metres), origin (reported|discovered), domestic (bool).
    """
    m = contract.events
    assert m is not None
    bronze = _event_values(bronze, contract, settings)
    # The event id is computed before the ranking: it is the key of the current silver rows.
    bronze = pseudonymise(
        bronze,
        {"__event_id": F.col(_q(m.id_column))},
        key,
        domain=contract.name,
        normalise=contract.id_normalisation == "nfkc",
    )
    df, repeated = _rank_flags(
        bronze, {"id": F.col("__event_id")}, current, replaced, key="id", batch_rows=batch_rows
    )
    df = _with_stray_bound(df, contract, current)
    rules = [
        _ingest_rule(),
        *[
            Rule(
                "excluded_by_contract",
                F.trim(F.col(_q(r.column))).isin(r.values),
                F.concat(F.lit(f"{r.column} "), _shown(F.col(_q(r.column))), F.lit(f": {r.reason}")),
            )
            for r in m.exclude
        ],
        Rule("missing_id", _blank(F.col(_q(m.id_column))), F.lit(f"{m.id_column} is empty")),
        *_event_time_rules(contract),
        *_event_place_rules(contract, settings),
        *_event_category_rules(contract),
        *_duplicate_rules(),
        Rule(
            "conflicting_id",
            repeated["id"],
            F.lit(f"another row of this delivery has the same {m.id_column} with different content"),
        ),
    ]
    ts = m.timestamp
    note = F.when(
        F.col("__nonexistent"), F.lit(f"nonexistent local time, {ts.nonexistent.replace('_', ' ')}")
    ).when(F.col("__ambiguous"), F.lit(f"ambiguous local time, {ts.ambiguous} offset taken"))
    return _apply(df, rules, _event_canonical(contract), note=note)


def _event_values(bronze: DataFrame, contract: Contract, settings: Settings) -> DataFrame:
    """The values the event rules and columns refer to, each computed once as a column:
    `__local` (wall time), `__x`, `__y` (delivered numbers), `__category`, `__lon`, `__lat`,
    `__px`, `__py` (WGS84 and project CRS), `__occurred` (UTC), `__nonexistent`, `__ambiguous`.
    (Inlining the projection maths into every rule would make the plan explode.)"""
    m = contract.events
    assert m is not None
    mapping = F.create_map(*[F.lit(v) for kv in m.category.map.items() for v in kv])
    bronze = bronze.withColumns(
        {
            "__local": event_wall_time(contract),
            "__x": number(F.col(_q(m.coordinates.x)), contract.reader.decimal),
            "__y": number(F.col(_q(m.coordinates.y)), contract.reader.decimal),
            "__category": F.try_element_at(mapping, F.trim(F.col(_q(m.category.column)))),
        }
    )
    # Lon/lat (the study area's box) and project x/y from one Python round trip per batch.
    bronze = crs.transform_columns_to(
        bronze,
        "__x",
        "__y",
        m.coordinates.crs,
        [crs.Target(crs.WGS84, "__lon", "__lat"), crs.Target(settings.project_crs, "__px", "__py")],
    )
    when = event_instant(contract, F.col("__local"))
    return bronze.withColumns(
        {"__occurred": when.utc, "__nonexistent": when.nonexistent, "__ambiguous": when.ambiguous}
    )


def event_wall_time(contract: Contract) -> Column:
    """A delivered event's time as the wall clock showed it (its contract's timestamp column
    and format), null where it does not parse."""
    ts = contract.events.timestamp
    return F.try_to_timestamp(F.trim(F.col(_q(ts.column))), F.lit(ts.format))


def event_instant(contract: Contract, wall: Column) -> LocalTime:
    """The UTC instant of a wall time in the feed's zone, by the contract's DST policy."""
    ts = contract.events.timestamp
    return local_to_utc(wall, ts.timezone, nonexistent=ts.nonexistent, ambiguous=ts.ambiguous)


def series_day(contract: Contract) -> Column:
    """A delivered row's day of a daily series (its contract's date column and format), null
    where it does not parse."""
    d = contract.series.date
    return F.try_to_date(F.trim(F.col(_q(d.column))), d.format)


def _with_stray_bound(df: DataFrame, contract: Contract, current: DataFrame | None) -> DataFrame:
    """`__stray_after`: the time after which an event of this delivery is a stray, that is
    `stray_after_days` after the later of the feed's newest published event and the end of the
    delivery's bulk (its days split where no event falls for more than `stray_after_days`; the
    bulk is the part with the most rows); null without the rule. Both are small aggregates,
    computed here so that the rule compares each row with a literal."""
    days = contract.events.timestamp.stray_after_days
    if days is None:
        return df.withColumn("__stray_after", F.lit(None).cast("timestamp"))
    daily = df.where(F.col("__occurred").isNotNull()).groupBy(F.to_date("__occurred").alias("d"))
    counts = sorted((r["d"], r["n"]) for r in daily.agg(F.count(F.lit(1)).alias("n")).collect())
    newest = current.agg(F.max("occurred_at").alias("t")).first()["t"] if current is not None else None
    ends = [bulk_end(counts, days)] if counts else []
    ends += [newest.date()] if newest is not None else []
    if not ends:
        return df.withColumn("__stray_after", F.lit(None).cast("timestamp"))
    bound = datetime.combine(max(ends) + timedelta(days=days + 1), time())  # the day after, 00:00 UTC
    return df.withColumn("__stray_after", F.lit(bound).cast("timestamp"))


def bulk_end(day_counts: list[tuple[date, int]], gap_days: int) -> date:
    """The last day of the bulk of a delivery: its days (with their row counts, in order) split
    where more than `gap_days` pass without an event; the part with the most rows is the bulk."""
    parts: list[list[tuple[date, int]]] = [[day_counts[0]]]
    for day, n in day_counts[1:]:
        if (day - parts[-1][-1][0]).days > gap_days:
            parts.append([])
        parts[-1].append((day, n))
    bulk = max(reversed(parts), key=lambda part: sum(n for _, n in part))  # a tie: the later part
    return bulk[-1][0]


def _event_time_rules(contract: Contract) -> list[Rule]:
    """An event's time: present, in the contract's format, plausible, unambiguous, not later
    than its delivery."""
    m = contract.events
    assert m is not None
    ts = m.timestamp
    ts_raw, local = F.col(_q(ts.column)), F.col("__local")
    return [
        Rule("missing_timestamp", _blank(ts_raw), F.lit(f"{ts.column} is empty")),
        _format_rule("unparseable_timestamp", ts_raw, local, ts.column, ts.format),
        Rule(
            "implausible_timestamp",
            local < F.lit(ts.earliest).cast("timestamp"),
            F.concat(
                F.lit(f"{ts.column} "),
                _shown(ts_raw),
                F.lit(f" is before {ts.earliest}, the earliest plausible time of the contract"),
            ),
        ),
        *_dst_rules(ts_raw, ts.column, ts.timezone, ts.nonexistent, ts.ambiguous),
        Rule(
            "future_timestamp",
            F.col("__occurred") > F.col("ingested_at"),
            F.concat(
                F.lit(f"{ts.column} "),
                _shown(ts_raw),
                F.lit(" is later than the delivery was received ("),
                F.date_format("ingested_at", "yyyy-MM-dd HH:mm:ss 'UTC'"),
                F.lit(")"),
            ),
        ),
        Rule(
            "stray_timestamp",
            F.col("__occurred") > F.col("__stray_after"),
            F.concat(
                F.lit(f"{ts.column} "),
                _shown(ts_raw),
                F.lit(f" is more than {ts.stray_after_days} days after "),
                F.date_format(
                    F.date_sub(F.to_date("__stray_after"), (ts.stray_after_days or 0) + 1), "yyyy-MM-dd"
                ),
                F.lit(
                    ", the later of the feed's newest published event and the end of this delivery's bulk: a "
                    "stray, e.g. a mistyped year (contract key events.timestamp.stray_after_days)"
                ),
            ),
        ),
    ]


def _event_place_rules(contract: Contract, settings: Settings) -> list[Rule]:
    """An event's coordinates: present, numbers, inside the study area (and not only when
    swapped)."""
    m = contract.events
    assert m is not None
    c = m.coordinates
    x_raw, y_raw = F.col(_q(c.x)), F.col(_q(c.y))
    x_num, y_num, lon, lat = F.col("__x"), F.col("__y"), F.col("__lon"), F.col("__lat")
    lon0, lat0, lon1, lat1 = settings.study_area.bbox_wgs84
    # lon/lat are null where PROJ cannot place a point (e.g. a swapped longitude of -122 read
    # as a latitude): outside, so that the swapped-coordinates rule still sees it.
    inside = F.coalesce(lon.between(lon0, lon1) & lat.between(lat0, lat1), F.lit(False))
    geographic = crs.is_geographic(c.crs)
    swapped_inside = y_num.between(lon0, lon1) & x_num.between(lat0, lat1) if geographic else F.lit(False)
    values = [F.lit(f"{c.x}, {c.y} = "), x_raw, F.lit(", "), y_raw]
    return [
        Rule("missing_coordinates", _blank(x_raw) | _blank(y_raw), F.lit(f"{c.x} or {c.y} is empty")),
        Rule(
            "invalid_coordinates",
            x_num.isNull() | y_num.isNull(),
            F.concat(
                F.lit(f"{c.x}, {c.y} = "),
                _shown(x_raw),
                F.lit(", "),
                _shown(y_raw),
                F.lit(f" are not numbers{_decimal_hint(contract.reader.decimal)}"),
            ),
        ),
        Rule(
            "swapped_coordinates",
            ~inside & swapped_inside,
            F.concat(
                *values,
                F.lit(" lie in the study area only when swapped: latitude and longitude look exchanged"),
            ),
        ),
        Rule(
            "out_of_area",
            ~F.coalesce(inside, F.lit(False)),
            F.concat(
                *values,
                F.lit(f" ({c.crs}) lie outside the study area (lon {lon0}..{lon1}, lat {lat0}..{lat1})"),
            ),
        ),
    ]


def _event_category_rules(contract: Contract) -> list[Rule]:
    """An event's category: present and in the contract's map."""
    m = contract.events
    assert m is not None
    cat = m.category
    return [
        Rule("missing_category", _blank(F.col(_q(cat.column))), F.lit(f"{cat.column} is empty")),
        Rule(
            "unknown_category",
            F.col("__category").isNull(),
            F.concat(
                F.lit(f"{cat.column} "),
                _shown(F.trim(F.col(_q(cat.column)))),
                F.lit(f" is not in the contract's category map ({len(cat.map)} known codes)"),
            ),
        ),
    ]


# Control characters (NUL, line ends a field should not hold as such) and format characters
# (the right-to-left override U+202E and the other bidi controls, zero-width characters) of a
# partner's text: they change what a reader sees, not what it says.
_INVISIBLE = r"[\p{Cc}\p{Cf}&&[^\n]]"


def clean_text(raw: Column) -> Column:
    """A partner's free text as silver keeps it: control and format characters removed (a line
    end inside a quoted field stays), surrounding whitespace trimmed."""
    return F.trim(F.regexp_replace(raw, _INVISIBLE, ""))


def _event_canonical(contract: Contract) -> dict[str, Column]:
    """The canonical event columns, from the values of `_event_values`."""
    m = contract.events
    assert m is not None
    category = F.col("__category")
    discovered = F.lit(m.origin.default == "discovered")
    if m.origin.discovered_categories:
        discovered = discovered | category.isin(m.origin.discovered_categories)
    if m.origin.reported_categories:
        discovered = discovered & ~category.isin(m.origin.reported_categories)
    sub = (
        clean_text(F.col(_q(m.category.subcategory_column))) if m.category.subcategory_column else F.lit(None)
    )
    domestic = (
        F.lower(F.trim(F.col(_q(m.domestic_column)))).isin("true", "y", "yes", "1")
        if m.domestic_column
        else F.lit(None).cast("boolean")
    )
    return {
        "event_id": F.col("__event_id"),
        "partner": F.lit(contract.name),
        "category": category,
        "subcategory": F.nullif(sub.cast("string"), F.lit("")),
        "occurred_at": F.col("__occurred"),
        "x": F.col("__px"),
        "y": F.col("__py"),
        "origin": F.when(discovered, F.lit("discovered")).otherwise(F.lit("reported")),
        "domestic": domestic.cast("boolean"),
    }


_CONVERT = {
    "none": lambda c: c,
    "fahrenheit_to_celsius": lambda c: (c - 32.0) * 5.0 / 9.0,
    "inch_to_mm": lambda c: c * 25.4,
    "mph_to_mps": lambda c: c * 0.44704,
    "percent_to_fraction": lambda c: c / 100.0,
}


def number(raw: Column, decimal: str = ".") -> Column:
    """A number delivered as text, as a double (null when it is not one). With `decimal` ','
    (Dutch exports: 1,5), a '.' may only group thousands (1.234,5); any other '.' makes the
    value not a number rather than a number a thousand times off."""
    text = F.trim(raw)
    if decimal == ",":
        grouped = text.rlike(r"^[+-]?\d{1,3}(\.\d{3})+(,\d*)?$")
        text = F.when(grouped, F.regexp_replace(text, r"\.", "")).otherwise(text)
        text = F.when(text.contains("."), F.lit(None).cast("string")).otherwise(
            F.regexp_replace(text, ",", ".")
        )
    return text.try_cast("double")


def _decimal_hint(decimal: str) -> str:
    return " (the contract's decimal separator is ',')" if decimal == "," else ""


def _measure_rules(measures: list[Measure], decimal: str) -> tuple[list[Rule], dict[str, Column]]:
    rules: list[Rule] = []
    values: dict[str, Column] = {}
    for m in measures:
        raw = F.col(_q(m.column))
        parsed = number(raw, decimal)
        value = _CONVERT[m.convert](parsed)
        values[m.name] = value
        rules.append(Rule("missing_value", _blank(raw), F.lit(f"{m.column} is empty")))
        rules.append(
            Rule(
                "invalid_number",
                parsed.isNull(),
                F.concat(
                    F.lit(f"{m.column} "), _shown(raw), F.lit(f" is not a number{_decimal_hint(decimal)}")
                ),
            )
        )
        low = value < m.min if m.min is not None else F.lit(False)
        high = value > m.max if m.max is not None else F.lit(False)
        rules.append(
            Rule(
                "out_of_range",
                low | high,
                F.concat(
                    F.lit(f"{m.column} "),
                    _shown(raw),
                    F.lit(f" ({m.name} ="),
                    F.format_number(value, 2),
                    F.lit(f") is outside [{m.min}, {m.max}]"),
                ),
            )
        )
    return rules, values


def route_series(
    bronze: DataFrame,
    contract: Contract,
    *,
    current: DataFrame | None = None,
    replaced: DataFrame | None = None,
    batch_rows: int | None = None,
) -> DataFrame:
    """Bronze rows of a daily series -> date + converted measures + quarantine rules."""
    s = contract.series
    assert s is not None
    raw = F.col(_q(s.date.column))
    day = series_day(contract)
    measure_rules, values = _measure_rules(s.measures, contract.reader.decimal)
    df, repeated_by = _rank_flags(bronze, {"date": day}, current, replaced, key="date", batch_rows=batch_rows)
    dup_rules, repeated = _duplicate_rules(), repeated_by["date"]
    rules = [
        _ingest_rule(),
        Rule("missing_date", _blank(raw), F.lit(f"{s.date.column} is empty")),
        _format_rule("unparseable_date", raw, day, s.date.column, s.date.format),
        *measure_rules,
        *dup_rules,
        Rule(
            "duplicate_date",
            repeated,
            F.concat(F.lit("another row of this delivery has the date "), _shown(raw)),
        ),
    ]
    return _apply(df, rules, {"date": day, **values})


def route_areas(
    bronze: DataFrame,
    contract: Contract,
    *,
    current: DataFrame | None = None,
    replaced: DataFrame | None = None,
    batch_rows: int | None = None,
) -> DataFrame:
    """Bronze rows of area attributes or boundaries -> area_code, area_name, indicators or
    geometry (GeoJSON, WGS84) + quarantine rules."""
    a = contract.areas
    assert a is not None
    code_raw = F.col(_q(a.code_column))
    code = F.nullif(F.trim(code_raw), F.lit(""))  # codes are text: BU03440101, 17031, 35
    measure_rules, values = _measure_rules(a.indicators, contract.reader.decimal)
    df, repeated_by = _rank_flags(
        bronze, {"code": code}, current, replaced, key="code", batch_rows=batch_rows
    )
    dup_rules, repeated = _duplicate_rules(), repeated_by["code"]
    not_area = [
        Rule("not_an_area", code == F.lit(str(k)), F.lit(f"{a.code_column} {k}: {why}"))
        for k, why in a.not_areas.items()
    ]
    rules = [
        _ingest_rule(),
        Rule("missing_code", _blank(code_raw), F.lit(f"{a.code_column} is empty")),
        Rule(
            "invalid_code",
            ~code.rlike(a.code_pattern),
            F.concat(
                F.lit(f"{a.code_column} "),
                _shown(code_raw),
                F.lit(f" does not look like an area code of the contract ({a.code_pattern})"),
            ),
        ),
        *not_area,
        Rule("missing_name", _blank(F.col(_q(a.name_column))), F.lit(f"{a.name_column} is empty")),
        *measure_rules,
    ]
    canonical: dict[str, Column] = {
        "area_code": code,
        "area_name": F.initcap(clean_text(F.col(_q(a.name_column)))),
    }
    if a.geometry_column:
        geom = F.col(_q(a.geometry_column))
        gtype = F.get_json_object(geom, "$.type")
        rules.append(
            Rule(
                "invalid_geometry",
                ~F.coalesce(gtype.isin("Polygon", "MultiPolygon"), F.lit(False)),
                F.concat(
                    F.lit(f"{a.geometry_column} is not a GeoJSON Polygon or MultiPolygon (type "),
                    _shown(gtype),
                    F.lit(")"),
                ),
            )
        )
        canonical["geometry_geojson"] = geom
    canonical.update(values)
    rules += [
        *dup_rules,
        Rule(
            "duplicate_code", repeated, F.concat(F.lit(f"another row has {a.code_column} "), _shown(code_raw))
        ),
    ]
    return _apply(df, rules, canonical)
