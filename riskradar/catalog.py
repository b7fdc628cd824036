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

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from riskradar.config import Contract, Settings
from riskradar.lake import FeedState, Lake, has_parquet, partition_values, read_json_dir

# kind of feed -> (silver table, or None for a table named after the feed; its key column)
_SILVER = {
    "events": ("events", "event_id"),
    "series": (None, "date"),
    "area_attributes": ("areas", "area_code"),
    "area_boundaries": ("boundaries", "area_code"),
}
SUPERSEDED_BY = "superseded_by"
SUPERSEDED_AT = "superseded_at"


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
    }


def vacuum_roots(lake: Lake, contract: Contract) -> list[Path]:
    """What `lake.vacuum` may clean for a feed: its silver and history folders, and the
    validate step of its quarantine (the ingest step belongs to ingest)."""
    roots = intake_roots(lake, contract)
    quarantine = [p / "step=validate" for p in sorted(roots["quarantine"].glob("batch_id=*"))]
    return [roots["silver"], roots["history"], *quarantine]


def _read_folders(spark: SparkSession, base: Path, folders: list[Path]) -> DataFrame | None:
    folders = [f for f in folders if has_parquet(f)]
    if not folders:
        return None
    return spark.read.option("basePath", str(base)).parquet(*[str(f) for f in folders])


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


def read_history(
    spark: SparkSession, settings: Settings, lake: Lake, table: str, *, feeds: list[str] | None = None
) -> DataFrame | None:
    """Versions of a silver table's rows that later deliveries replaced, with `superseded_by`
    (the replacing batch) and `superseded_at`."""
    contracts = [c for c in _feeds_of(settings, table) if feeds is None or c.name in feeds]
    folders = [f for c in contracts for f in FeedState.read(lake, c.name).folders(lake, "history")]
    return _read_folders(spark, lake.silver(f"{table}_history"), folders)


def read_quarantine(spark: SparkSession, lake: Lake, feed: str) -> DataFrame | None:
    """Every quarantined row of a feed: those validation set aside (committed batches) and
    those of files ingest rejected (committed batches)."""
    state = FeedState.read(lake, feed)
    committed = {m["batch_id"] for m in read_json_dir(lake.batch_markers(feed))}
    root = lake.quarantine(feed)
    ingest_parts = [
        root / quarantine_partition(b, "ingest") for b in partition_values(root, "batch_id") if b in committed
    ]
    return _read_folders(spark, root, [*ingest_parts, *state.folders(lake, "quarantine")])


def published_batches(lake: Lake, settings: Settings) -> list[str]:
    """Every batch whose rows are published, over all enabled feeds."""
    return sorted(
        b
        for feed in settings.contracts
        for b, rec in FeedState.read(lake, feed).batches.items()
        if rec["status"] == "published"
    )


def _table_base(lake: Lake, contract: Contract, table: str) -> Path:
    if table == "silver":
        return lake.silver(silver_table(contract))
    if table == "history":
        return lake.silver(history_table(contract))
    return lake.quarantine(contract.name)


def read_feed_table(
    spark: SparkSession, lake: Lake, contract: Contract, state: FeedState, table: str
) -> DataFrame | None:
    """One feed's part of a logical table ("silver", "history" or "quarantine") as `state`
    names it (which need not be committed yet: a run reads its own work in progress)."""
    return _read_folders(spark, _table_base(lake, contract, table), state.folders(lake, table))
