"""Pure transforms from bronze rows to canonical rows plus row-level quarantine rules.

Each `route_*` function returns one frame with every bronze row exactly once: the canonical
columns (null for quarantined rows), `quarantine_rule` and `quarantine_reason` (null for rows
to publish) and the lineage columns. Splitting it into silver and quarantine is the job's
business; keeping them in one frame makes "nothing lost" a property of the code.
Rules are applied in a fixed order and the first that fails names the row's reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from riskradar import crs
from riskradar.config import Contract, Measure, Settings
from riskradar.pseudonym import hmac_sha256

RULE, REASON, DELIVERED = "quarantine_rule", "quarantine_reason", "delivered"
LINEAGE = ["batch_id", "source_file", "source_sha256", "source_row", "row_hash", "ingested_at"]
# Bronze columns that describe a row's reading, not its content.
INGEST = ["ingest_rule", "ingest_reason"]

EVENT_COLUMNS = [
    "event_id",
    "partner",
    "category",
    "subcategory",
    "occurred_at",
    "x",
    "y",
    "origin",
    "domestic",
]


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


def _apply(df: DataFrame, rules: list[Rule], canonical: dict[str, Column]) -> DataFrame:
    """First failing rule wins; canonical columns are nulled for quarantined rows."""
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
    return df.select(
        *[F.when(keep, F.col(f"__c_{name}")).alias(name) for name in canonical],
        F.col("__rule").alias(RULE),
        F.col("__reason").alias(REASON),
        *LINEAGE,
        # The delivered values, kept as one struct that quarantine unpacks for review.
        F.struct(*[F.col(_q(c)) for c in delivered]).alias(DELIVERED),
    )


def canonical_columns(routed: DataFrame) -> list[str]:
    """The canonical columns of a routed frame, in order."""
    return [c for c in routed.columns if c not in {RULE, REASON, DELIVERED, *LINEAGE}]


def _ingest_rule() -> Rule:
    return Rule(F.col("ingest_rule"), F.col("ingest_rule").isNotNull(), F.col("ingest_reason"))


# Ranking rows needs a shuffle by key. It runs on a narrow projection, and only the rows that
# are not the first of their key (few, in a normal delivery) are joined back to the wide rows:
# shuffling whole delivered rows twice held most of validate's time at 10M rows (measured).
_RANK_ORDER = ("source_file", "source_row")
# Up to this many flagged rows are broadcast to the wide rows; more are joined by a shuffle.
BROADCAST_FLAGGED_ROWS = 1_000_000


def _rank_flags(
    df: DataFrame, keys: dict[str, Column], published_hashes: DataFrame | None
) -> tuple[DataFrame, dict[str, Column]]:
    """Exact duplicates and repeated keys of a batch, found on a narrow projection.

    Returns `df` with, for flagged rows only (null elsewhere): `__dup_rank`, `__first_file`,
    `__first_row` (the first occurrence of the row's content), `__pub_batch` (the published
    batch holding the same content) and `__<key>_rank` per key; and per key the condition
    "not the first row with this key". Rows are ordered by file and row number.
    """
    narrow = df.select(*_RANK_ORDER, "row_hash", *[expr.alias(f"__k_{name}") for name, expr in keys.items()])
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
    if published_hashes is not None:
        known = published_hashes.select(
            F.col("row_hash").alias("__pub_hash"), F.col("batch_id").alias("__pub_batch")
        ).dropDuplicates(["__pub_hash"])
        narrow = narrow.join(known, narrow["row_hash"] == known["__pub_hash"], "left").drop("__pub_hash")
        flagged = flagged | F.col("__pub_batch").isNotNull()
    else:
        narrow = narrow.withColumn("__pub_batch", F.lit(None).cast("string"))
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


def _duplicate_rules() -> list[Rule]:
    """Exact duplicates: within the batch (all but the first occurrence) and of published rows
    (columns from `_rank_flags`)."""
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
        Rule(
            "duplicate_row",
            F.col("__pub_batch").isNotNull(),
            F.concat(F.lit("exact duplicate of a row already published in batch "), F.col("__pub_batch")),
        ),
    ]


def route_events(
    bronze: DataFrame,
    contract: Contract,
    settings: Settings,
    *,
    key: bytes,
    published_hashes: DataFrame | None = None,
) -> DataFrame:
    """Bronze rows of an events feed -> canonical events + quarantine rules.

    Canonical columns: event_id (HMAC), partner, category, subcategory, occurred_at (UTC
    timestamp), x, y (project CRS metres), origin (reported|discovered), domestic (bool).
    """
    m = contract.events
    assert m is not None
    ts_raw = F.col(_q(m.timestamp.column))
    x_raw, y_raw = F.col(_q(m.coordinates.x)), F.col(_q(m.coordinates.y))
    cat_key = F.trim(F.col(_q(m.category.column)))
    mapping = F.create_map(*[F.lit(v) for kv in m.category.map.items() for v in kv])
    # Derived values are computed once, as columns, and the rules refer to them by name:
    # inlining the projection maths into every rule would make the plan explode.
    bronze = bronze.withColumns(
        {
            "__local": F.try_to_timestamp(F.trim(ts_raw), F.lit(m.timestamp.format)),
            "__x": F.trim(x_raw).try_cast("double"),
            "__y": F.trim(y_raw).try_cast("double"),
            "__category": F.try_element_at(mapping, cat_key),
        }
    )
    lon_expr, lat_expr = crs.to_lonlat(F.col("__x"), F.col("__y"), m.coordinates.crs)
    bronze = bronze.withColumns(
        {
            "__occurred": F.to_utc_timestamp(F.col("__local"), m.timestamp.timezone),
            "__lon": lon_expr,
            "__lat": lat_expr,
        }
    )
    px_expr, py_expr = crs.from_lonlat(F.col("__lon"), F.col("__lat"), settings.project_crs)
    bronze = bronze.withColumns({"__px": px_expr, "__py": py_expr})
    local, occurred, category = F.col("__local"), F.col("__occurred"), F.col("__category")
    x_num, y_num, lon, lat = F.col("__x"), F.col("__y"), F.col("__lon"), F.col("__lat")
    px, py = F.col("__px"), F.col("__py")
    lon0, lat0, lon1, lat1 = settings.study_area.bbox_wgs84
    inside = lon.between(lon0, lon1) & lat.between(lat0, lat1)
    geographic = isinstance(crs.get_crs(m.coordinates.crs), crs.Geographic)
    swapped_inside = y_num.between(lon0, lon1) & x_num.between(lat0, lat1) if geographic else F.lit(False)

    discovered = F.lit(m.origin.default == "discovered")
    if m.origin.discovered_categories:
        discovered = discovered | category.isin(m.origin.discovered_categories)
    if m.origin.reported_categories:
        discovered = discovered & ~category.isin(m.origin.reported_categories)

    # The raw id ranks rows exactly as its HMAC would, without hashing every row twice.
    df, repeated = _rank_flags(bronze, {"id": F.col(_q(m.id_column))}, published_hashes)
    dup_rules = _duplicate_rules()
    df = df.withColumn("__event_id", hmac_sha256(F.col(_q(m.id_column)), key, domain=contract.name))

    exclude_rules = [
        Rule(
            "excluded_by_contract",
            F.trim(F.col(_q(r.column))).isin(r.values),
            F.concat(F.lit(f"{r.column} "), _shown(F.col(_q(r.column))), F.lit(f": {r.reason}")),
        )
        for r in m.exclude
    ]
    fmt = m.timestamp.format
    rules = [
        _ingest_rule(),
        *exclude_rules,
        Rule("missing_id", _blank(F.col(_q(m.id_column))), F.lit(f"{m.id_column} is empty")),
        Rule("missing_timestamp", _blank(ts_raw), F.lit(f"{m.timestamp.column} is empty")),
        _format_rule("unparseable_timestamp", ts_raw, local, m.timestamp.column, fmt),
        Rule(
            "future_timestamp",
            occurred > F.col("ingested_at"),
            F.concat(
                F.lit(f"{m.timestamp.column} "),
                _shown(ts_raw),
                F.lit(" is later than the delivery was received ("),
                F.date_format("ingested_at", "yyyy-MM-dd HH:mm:ss 'UTC'"),
                F.lit(")"),
            ),
        ),
        Rule(
            "missing_coordinates",
            _blank(x_raw) | _blank(y_raw),
            F.lit(f"{m.coordinates.x} or {m.coordinates.y} is empty"),
        ),
        Rule(
            "invalid_coordinates",
            x_num.isNull() | y_num.isNull(),
            F.concat(
                F.lit(f"{m.coordinates.x}, {m.coordinates.y} = "),
                _shown(x_raw),
                F.lit(", "),
                _shown(y_raw),
                F.lit(" are not numbers"),
            ),
        ),
        Rule(
            "swapped_coordinates",
            ~inside & swapped_inside,
            F.concat(
                F.lit(f"{m.coordinates.x}, {m.coordinates.y} = "),
                x_raw,
                F.lit(", "),
                y_raw,
                F.lit(" lie in the study area only when swapped: latitude and longitude look exchanged"),
            ),
        ),
        Rule(
            "out_of_area",
            ~F.coalesce(inside, F.lit(False)),
            F.concat(
                F.lit(f"{m.coordinates.x}, {m.coordinates.y} = "),
                x_raw,
                F.lit(", "),
                y_raw,
                F.lit(
                    f" ({m.coordinates.crs}) lie outside the study area "
                    f"(lon {lon0}..{lon1}, lat {lat0}..{lat1})"
                ),
            ),
        ),
        Rule(
            "missing_category", _blank(F.col(_q(m.category.column))), F.lit(f"{m.category.column} is empty")
        ),
        Rule(
            "unknown_category",
            category.isNull(),
            F.concat(
                F.lit(f"{m.category.column} "),
                _shown(cat_key),
                F.lit(f" is not in the contract's category map ({len(m.category.map)} known codes)"),
            ),
        ),
        *dup_rules,
        Rule(
            "conflicting_id",
            repeated["id"],
            F.lit(f"another row of this delivery has the same {m.id_column} with different content"),
        ),
    ]
    sub = F.trim(F.col(_q(m.category.subcategory_column))) if m.category.subcategory_column else F.lit(None)
    domestic = (
        F.lower(F.trim(F.col(_q(m.domestic_column)))).isin("true", "y", "yes", "1")
        if m.domestic_column
        else F.lit(None).cast("boolean")
    )
    canonical = {
        "event_id": F.col("__event_id"),
        "partner": F.lit(contract.name),
        "category": category,
        "subcategory": F.nullif(sub.cast("string"), F.lit("")),
        "occurred_at": occurred,
        "x": px,
        "y": py,
        "origin": F.when(discovered, F.lit("discovered")).otherwise(F.lit("reported")),
        "domestic": domestic.cast("boolean"),
    }
    return _apply(df, rules, canonical)


_CONVERT = {
    "none": lambda c: c,
    "fahrenheit_to_celsius": lambda c: (c - 32.0) * 5.0 / 9.0,
    "inch_to_mm": lambda c: c * 25.4,
    "mph_to_mps": lambda c: c * 0.44704,
    "percent_to_fraction": lambda c: c / 100.0,
}


def _measure_rules(measures: list[Measure]) -> tuple[list[Rule], dict[str, Column]]:
    rules: list[Rule] = []
    values: dict[str, Column] = {}
    for m in measures:
        raw = F.col(_q(m.column))
        number = F.trim(raw).try_cast("double")
        value = _CONVERT[m.convert](number)
        values[m.name] = value
        rules.append(Rule("missing_value", _blank(raw), F.lit(f"{m.column} is empty")))
        rules.append(
            Rule(
                "invalid_number",
                number.isNull(),
                F.concat(F.lit(f"{m.column} "), _shown(raw), F.lit(" is not a number")),
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


def route_series(bronze: DataFrame, contract: Contract) -> DataFrame:
    """Bronze rows of a daily series -> date + converted measures + quarantine rules."""
    s = contract.series
    assert s is not None
    raw = F.col(_q(s.date.column))
    day = F.try_to_date(F.trim(raw), s.date.format)
    measure_rules, values = _measure_rules(s.measures)
    df, repeated_by = _rank_flags(bronze, {"date": day}, None)
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


def route_areas(bronze: DataFrame, contract: Contract) -> DataFrame:
    """Bronze rows of area attributes or boundaries -> area_code, area_name, indicators or
    geometry (GeoJSON, WGS84) + quarantine rules."""
    a = contract.areas
    assert a is not None
    code_raw = F.col(_q(a.code_column))
    code = F.trim(code_raw).try_cast("int")
    measure_rules, values = _measure_rules(a.indicators)
    df, repeated_by = _rank_flags(bronze, {"code": code}, None)
    dup_rules, repeated = _duplicate_rules(), repeated_by["code"]
    not_area = [
        Rule("not_an_area", code == F.lit(int(k)), F.lit(f"{a.code_column} {k}: {why}"))
        for k, why in a.not_areas.items()
    ]
    rules = [
        _ingest_rule(),
        Rule("missing_code", _blank(code_raw), F.lit(f"{a.code_column} is empty")),
        Rule(
            "invalid_code",
            code.isNull(),
            F.concat(F.lit(f"{a.code_column} "), _shown(code_raw), F.lit(" is not an integer")),
        ),
        *not_area,
        Rule("missing_name", _blank(F.col(_q(a.name_column))), F.lit(f"{a.name_column} is empty")),
        *measure_rules,
    ]
    canonical: dict[str, Column] = {
        "area_code": code,
        "area_name": F.initcap(F.trim(F.col(_q(a.name_column)))),
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
