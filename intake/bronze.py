"""Read one delivered file with Spark into bronze rows: contract columns as strings, personal
columns pseudonymised or dropped, every row kept (malformed ones marked), plus lineage.

Bronze columns: the contract's kept columns (strings), then riskradar.catalog.BRONZE_LINEAGE.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from intake.delivery import FileInspection
from intake.pseudonym import pseudonymise
from riskradar.catalog import BRONZE_LINEAGE
from riskradar.config import Contract

_CORRUPT = "__corrupt_record"
_REPLACEMENT_CHAR = "\ufffd"


def read_delivery(
    spark: SparkSession,
    inspection: FileInspection,
    contract: Contract,
    *,
    key: bytes,
    ingested_at: datetime,
    file_issue: tuple[str, str] | None = None,
) -> DataFrame:
    """Bronze rows of one file, read from its staged copy. `file_issue` (rule, reason) marks
    every row, e.g. a missing column.

    A row that does not split into the header's fields keeps none of its values: they may
    have shifted into other columns (a missing field moved an address into `Date`), so no
    column can be trusted to hold what its name says, personal or not. The raw line is never
    kept either; the row keeps its lineage and the reason.
    """
    raw, present = _read_raw(spark, inspection, contract)
    raw = _with_row_numbers(raw).withColumns(
        {"__file": F.lit(inspection.name), "__sha256": F.lit(inspection.sha256)}
    )
    return _bronze_rows(raw, present, contract, key=key, ingested_at=ingested_at, file_issue=file_issue)


def read_deliveries(
    spark: SparkSession,
    inspections: list[FileInspection],
    contract: Contract,
    *,
    key: bytes,
    ingested_at: datetime,
) -> DataFrame:
    """Bronze rows of several CSV files staged with one header and dialect (`same_csv_dialect`),
    read by one Spark read: a delivery of thousands of small files is one plan, not thousands.
    Each row's file is the staged copy it came from (named by its sha256); its record number
    counts the rows before it in that file, in file order."""
    first = inspections[0]
    header = _unique(first.header if contract.reader.header else [c.name for c in contract.columns])
    paths = [str(i.staged) for i in inspections]
    raw = _csv_reader(spark, first, contract, header).csv(paths)
    names = spark.createDataFrame([(i.sha256, i.name) for i in inspections], "__sha256 string, __file string")
    raw = raw.withColumns(
        {
            "__sha256": F.regexp_extract(F.input_file_name(), r"([0-9a-f]{64})[^/]*$", 1),
            "__mid": F.monotonically_increasing_id(),
        }
    )
    order = Window.partitionBy("__sha256").orderBy("__mid")
    raw = raw.withColumn("__row", F.row_number().over(order)).join(F.broadcast(names), "__sha256")
    return _bronze_rows(raw, set(header), contract, key=key, ingested_at=ingested_at, file_issue=None)


def same_csv_dialect(inspection: FileInspection, contract: Contract) -> tuple | None:
    """What files read together by `read_deliveries` must share (their staged header and
    dialect), or None for a file read alone (not a staged CSV)."""
    if (inspection.staged_format or contract.reader.format) not in ("csv", "csv.gz"):
        return None
    return (tuple(inspection.header), inspection.staged_delimiter, inspection.staged_format)


def _bronze_rows(
    raw: DataFrame,
    present: set[str],
    contract: Contract,
    *,
    key: bytes,
    ingested_at: datetime,
    file_issue: tuple[str, str] | None,
) -> DataFrame:
    """The bronze layout of raw rows that carry `__file`, `__sha256` and `__row` (see
    read_delivery)."""
    rule, reason = _row_issue(raw, contract, present, file_issue)
    # (With no contract column in the file, every row's values are null anyway, and Spark
    # refuses a query that reads only the corrupt-record column.)
    malformed = F.col(_CORRUPT).isNotNull() if present & set(contract.kept_columns) else F.lit(False)
    kept = [
        F.when(~malformed, F.col(_q(name))).alias(name)
        if name in present
        else F.lit(None).cast("string").alias(name)
        for name in contract.kept_columns
    ]
    out = raw.select(
        *kept,
        malformed.alias("__malformed"),
        rule.alias("ingest_rule"),
        reason.alias("ingest_reason"),
        F.col("__file").alias("source_file"),
        F.col("__sha256").alias("source_sha256"),
        F.col("__row").cast("long").alias("source_row"),
        F.lit(ingested_at).cast("timestamp").alias("ingested_at"),
    )
    out = pseudonymise(
        out,
        {n: F.col(_q(n)) for n in contract.pseudonymised_columns},
        key,
        domain=contract.name,
        normalise=contract.id_normalisation == "nfkc",
    )
    # Hash of the delivered content (after pseudonymisation) to find exact duplicates and
    # unchanged re-deliveries; a malformed row kept no content, so its position stands in.
    content = F.to_json(F.struct(*[F.col(_q(n)) for n in contract.kept_columns]))
    position = F.concat_ws(":", F.lit("malformed"), F.col("source_sha256"), F.col("source_row"))
    row_hash = F.sha2(F.when(F.col("__malformed"), position).otherwise(content), 256)
    out = out.withColumn("row_hash", row_hash)
    return out.select(*[F.col(_q(n)) for n in contract.kept_columns], *BRONZE_LINEAGE)


def _q(name: str) -> str:
    return f"`{name}`"


def _read_raw(
    spark: SparkSession, inspection: FileInspection, contract: Contract
) -> tuple[DataFrame, set[str]]:
    reader = contract.reader
    assert inspection.staged is not None, "read_delivery reads the staged copy of a file"
    path = str(inspection.staged)
    staged = inspection.staged_format or reader.format
    if staged in ("csv", "csv.gz"):
        # Without a header line the contract's column order is the file's.
        header = _unique(inspection.header if reader.header else [c.name for c in contract.columns])
        return _csv_reader(spark, inspection, contract, header).csv(path), set(header)
    if staged == "jsonl":
        df = (
            spark.read.option("primitivesAsString", True)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", _CORRUPT)
            .json(path)
        )
        if _CORRUPT not in df.columns:
            df = df.withColumn(_CORRUPT, F.lit(None).cast("string"))
        return _all_strings(df), set(df.columns) - {_CORRUPT}
    if staged == "parquet":
        df = spark.read.parquet(path).withColumn(_CORRUPT, F.lit(None).cast("string"))
        return _all_strings(df), set(df.columns) - {_CORRUPT}
    if staged == "geojson":
        doc = spark.read.option("multiLine", True).json(path)
        if "features" not in doc.columns:
            return _empty_raw(spark), set()
        feats = doc.select(F.explode("features").alias("f"))
        prop_fields = feats.schema["f"].dataType["properties"].dataType.fieldNames()
        df = feats.select(
            *[F.col("f.properties").getField(p).cast("string").alias(p) for p in prop_fields],
            F.to_json(F.col("f.geometry")).alias("geometry"),
            F.lit(None).cast("string").alias(_CORRUPT),
        )
        return df, set(prop_fields) | {"geometry"}
    raise ValueError(f"unsupported format {staged!r}")


def _csv_reader(spark: SparkSession, inspection: FileInspection, contract: Contract, header: list[str]):
    """Spark's reader of a staged CSV copy with `header`, every value a string."""
    reader = contract.reader
    # A workbook was staged as CSV with ',' and '"'; a delivered CSV keeps its own dialect.
    quote = reader.quote if reader.format in ("csv", "csv.gz") else '"'
    schema = T.StructType(
        [T.StructField(h, T.StringType()) for h in header] + [T.StructField(_CORRUPT, T.StringType())]
    )
    return (
        spark.read.schema(schema)
        .option("header", reader.header)
        .option("enforceSchema", True)
        .option("sep", inspection.staged_delimiter or reader.delimiter)
        .option("quote", quote)
        .option("escape", quote)
        # The staged copy is UTF-8 with '\n' line ends, whatever was delivered; a quoted
        # field may span lines, as the record count of the staging pass allows.
        .option("multiLine", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", _CORRUPT)
    )


def _empty_raw(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], T.StructType([T.StructField(_CORRUPT, T.StringType())]))


def _all_strings(df: DataFrame) -> DataFrame:
    """Every column as a string, as bronze keeps them; nested values as JSON text."""
    nested = (T.StructType, T.ArrayType, T.MapType)
    return df.select(
        *[
            (
                F.to_json(F.col(_q(f.name)))
                if isinstance(f.dataType, nested)
                else F.col(_q(f.name)).cast("string")
            ).alias(f.name)
            for f in df.schema.fields
        ]
    )


def _unique(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in header:
        seen[h] = seen.get(h, 0) + 1
        out.append(h if seen[h] == 1 else f"{h}__{seen[h]}")
    return out


def _with_row_numbers(df: DataFrame) -> DataFrame:
    """Add `__row`, the 1-based record number in the file (header excluded), in file order.

    Spark reads a file's splits in order, and a gzip file in one partition, so the row
    number is the running id within a partition plus the rows of the partitions before it.
    """
    df = df.withColumn("__pid", F.spark_partition_id()).withColumn("__mid", F.monotonically_increasing_id())
    if df.rdd.getNumPartitions() <= 1:
        return df.withColumn("__row", F.col("__mid") + 1)
    counts = dict(df.groupBy("__pid").count().collect())
    offsets, running = {}, 0
    for pid in sorted(counts):
        offsets[pid] = running
        running += counts[pid]
    offset = F.create_map(*[x for pid, off in offsets.items() for x in (F.lit(pid), F.lit(off))])
    local = F.col("__mid") - F.shiftleft(F.col("__pid").cast("long"), 33)
    return df.withColumn("__row", F.element_at(offset, F.col("__pid")) + local + 1)


def _row_issue(
    df: DataFrame, contract: Contract, present: set[str], file_issue: tuple[str, str] | None
) -> tuple[Column, Column]:
    """(rule, reason) for rows that cannot be read as the contract says; nulls otherwise."""
    width = len([c for c in df.columns if not c.startswith("__")])
    malformed = F.col(_CORRUPT).isNotNull()
    kept_present = [n for n in contract.kept_columns if n in present]
    bad_bytes = F.lit(False)
    first_bad = F.lit(None).cast("string")
    for name in reversed(kept_present):
        has = F.coalesce(F.instr(F.col(_q(name)), _REPLACEMENT_CHAR) > 0, F.lit(False))
        bad_bytes = bad_bytes | has
        first_bad = F.when(has, F.lit(name)).otherwise(first_bad)
    rule = F.lit(None).cast("string")
    reason = F.lit(None).cast("string")
    rule = F.when(bad_bytes, F.lit("invalid_encoding")).otherwise(rule)
    reason = F.when(
        bad_bytes,
        F.concat(
            F.lit("column '"),
            first_bad,
            F.lit(f"' holds bytes that are not valid {contract.reader.encoding} (the contract's encoding)"),
        ),
    ).otherwise(reason)
    rule = F.when(malformed, F.lit("malformed_row")).otherwise(rule)
    reason = F.when(
        malformed,
        F.lit(
            f"the row does not split into the header's {width} fields with delimiter "
            f"{contract.reader.delimiter!r} (a truncated line, an unbalanced quote or a stray delimiter)"
        ),
    ).otherwise(reason)
    if file_issue is not None:
        rule, reason = F.lit(file_issue[0]), F.lit(file_issue[1])
    return rule, reason
