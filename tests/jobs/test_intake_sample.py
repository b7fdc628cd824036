"""Ingest + validate on slices of the real Chicago exports: counts reconcile, reruns change
nothing, a crash between writing and publishing leaves nothing half-visible, and no
identifier or address from the inputs is anywhere in clear."""

from __future__ import annotations

import csv
import gzip
import io
import re
import shutil
from pathlib import Path

import pytest
from builders import SAMPLE, write_config
from pyspark.sql import functions as F

from jobs import ingest, validate
from riskradar.audit import read_audit
from riskradar.config import load_settings
from riskradar.lake import Lake

FEEDS = ["police_crimes", "sanitation_311", "weather", "census_indicators", "census_areas"]
POLICE_ROWS = 400
SR_ROWS = 300


def _slice_gz(source: Path, target: Path, rows: int) -> list[dict[str, str]]:
    """The header and the first `rows` records of a gzipped CSV, written gzipped."""
    with gzip.open(source, "rt", encoding="utf-8", newline="") as fh:
        lines = [next(fh) for _ in range(rows + 1)]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress("".join(lines).encode(), mtime=0))
    return list(csv.DictReader(io.StringIO("".join(lines))))


def _landing(root: Path) -> dict[str, list[dict[str, str]]]:
    delivered = {
        "police": _slice_gz(
            SAMPLE / "police_crimes" / "chicago_crimes_2014-06.csv.gz",
            root / "police_crimes" / "chicago_crimes_2014-06.csv.gz",
            POLICE_ROWS,
        ),
        "sr": _slice_gz(
            SAMPLE / "sanitation_311" / "sanitation_code_complaints_2011_2014.csv.gz",
            root / "sanitation_311" / "sanitation_code_complaints_2011_2014.csv.gz",
            SR_ROWS,
        ),
    }
    shutil.copytree(SAMPLE / "weather", root / "weather")
    shutil.copytree(SAMPLE / "census", root / "census")
    return delivered


def _run(settings, spark):
    ingested = ingest.main(["--all"], settings=settings, spark=spark)
    validated = validate.main(["--all"], settings=settings, spark=spark)
    return ingested, validated


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("intake")
    delivered = _landing(tmp / "landing")
    settings = load_settings(write_config(tmp, landing=tmp / "landing", enabled=FEEDS))
    ingested, validated = _run(settings, spark)
    return {
        "settings": settings,
        "lake": Lake(settings.lake_root),
        "delivered": delivered,
        "ingested": ingested,
        "validated": validated,
        "tmp": tmp,
    }


def test_every_delivered_row_is_published_or_quarantined(pipeline, spark):
    lake = pipeline["lake"]
    events = spark.read.parquet(str(lake.silver("events")))
    for feed, delivered in (("police_crimes", POLICE_ROWS), ("sanitation_311", SR_ROWS)):
        (summary,) = pipeline["validated"][feed]
        published = events.where(F.col("partner") == feed).count()
        quarantined = (
            spark.read.parquet(str(lake.quarantine(feed))).count() if lake.quarantine(feed).exists() else 0
        )
        assert summary["rows_in"] == delivered
        assert published + quarantined == delivered
        assert (summary["published"], summary["quarantined"]) == (published, quarantined)
    # the routed batches staged for the checks are gone: the lake holds only what was published
    assert not list((lake.root / "_scratch").rglob("*.parquet"))
    # 311 marks some requests as duplicates of others; they are quarantined with that reason.
    assert (
        pipeline["validated"]["sanitation_311"][0]["quarantined_by_rule"].get("excluded_by_contract", 0) > 0
    )
    weather = spark.read.parquet(str(lake.silver("weather")))
    assert weather.count() == 1310
    areas = spark.read.parquet(str(lake.silver("areas")))
    assert areas.count() == 77  # the city-total row is quarantined as not an area
    assert spark.read.parquet(str(lake.silver("boundaries"))).count() == 77


def test_silver_events_have_the_canonical_schema(pipeline, spark):
    events = spark.read.parquet(str(pipeline["lake"].silver("events")))
    assert [(f.name, f.dataType.simpleString()) for f in events.schema.fields] == [
        ("event_id", "string"),
        ("category", "string"),
        ("subcategory", "string"),
        ("occurred_at", "timestamp"),
        ("x", "double"),
        ("y", "double"),
        ("origin", "string"),
        ("domestic", "boolean"),
        ("source_file", "string"),
        ("source_sha256", "string"),
        ("source_row", "bigint"),
        ("row_hash", "string"),
        ("ingested_at", "timestamp"),
        ("partner", "string"),
        ("batch_id", "string"),
    ]


def test_timestamps_are_utc_and_coordinates_in_metres(pipeline, spark):
    """The first police row: 06/01/2014 local Chicago time (CDT, UTC-5) and its State Plane feet."""
    first = pipeline["delivered"]["police"][0]
    events = spark.read.parquet(str(pipeline["lake"].silver("events"))).where(
        (F.col("partner") == "police_crimes") & (F.col("source_row") == 1)
    )
    row = events.first()
    from datetime import datetime, timedelta

    local = datetime.strptime(first["Date"], "%m/%d/%Y %I:%M:%S %p")
    assert row["occurred_at"] == local + timedelta(hours=5)
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:3435", "EPSG:26916", always_xy=True).transform(
        float(first["X Coordinate"]), float(first["Y Coordinate"])
    )
    assert row["x"] == pytest.approx(x, abs=0.01) and row["y"] == pytest.approx(y, abs=0.01)


def test_no_identifier_or_address_in_clear_anywhere(pipeline, spark):
    police, sr = pipeline["delivered"]["police"], pipeline["delivered"]["sr"]
    secrets = {r["Case Number"] for r in police} | {r["Block"] for r in police} | {r["ID"] for r in police}
    secrets |= {r["Service_Request_Number"] for r in sr} | {
        r["Street_Address"] for r in sr if r["Street_Address"]
    }
    secrets.discard("")
    lake = pipeline["lake"]
    texts = []
    for path in lake.root.rglob("*"):
        if path.suffix in (".json", ".md", ".html", ".csv"):
            texts.append(path.read_text(encoding="utf-8"))
    for folder in {p.parent for p in lake.root.rglob("*.parquet")}:  # every Parquet folder, every value
        df = spark.read.parquet(str(folder))
        texts.append("\n".join(r[0] for r in df.select(F.to_json(F.struct("*"))).collect()))
    blob = "\n".join(texts)
    assert len(blob) > 100_000  # the scan really read the lake
    # A value counts as leaked when it stands on its own, not as digits inside a coordinate.
    # (`s in blob` first: a plain substring search is fast; the regex runs only where it matches)
    leaked = sorted(
        s for s in secrets if s in blob and re.search(rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])", blob)
    )
    assert leaked == []
    # Sanity: the scan would have found them had they been there.
    assert police[0]["Primary Type"] in blob


def test_rerun_changes_nothing(pipeline, spark):
    lake = pipeline["lake"]
    before = sorted(str(p.relative_to(lake.root)) for p in lake.root.rglob("*.parquet"))
    ingested, validated = _run(pipeline["settings"], spark)
    after = sorted(str(p.relative_to(lake.root)) for p in lake.root.rglob("*.parquet"))
    assert before == after
    assert all(s["rows"] == 0 and len(s["skipped"]) >= 1 for s in ingested.values())
    assert validated == {feed: [] for feed in FEEDS}
    runs = read_audit(lake)
    assert [r["job"] for r in runs[-2 * len(FEEDS) :]] == ["ingest"] * len(FEEDS) + ["validate"] * len(FEEDS)


def test_audit_records_counts_and_hashes(pipeline):
    runs = [r for r in read_audit(pipeline["lake"]) if r["status"] == "succeeded"]
    ingest_police = next(
        r for r in runs if r["job"] == "ingest" and r["arguments"]["partner"] == "police_crimes"
    )
    assert ingest_police["counts"]["rows_in"] == POLICE_ROWS
    assert ingest_police["inputs"][0]["file"] == "chicago_crimes_2014-06.csv.gz"
    assert len(ingest_police["inputs"][0]["sha256"]) == 64
    validate_police = next(
        r for r in runs if r["job"] == "validate" and r["arguments"]["partner"] == "police_crimes"
    )
    counts = validate_police["counts"]
    assert counts["rows_in"] == counts["published"] + counts["quarantined"] == POLICE_ROWS
    assert sum(counts["quarantined_by_rule"].values()) == counts["quarantined"]


def test_a_count_mismatch_refuses_to_publish(tmp_path):
    """The reconciliation check itself: 5 rows in, 5 routed as new, nothing written: must raise,
    naming what was expected and what was written."""
    from intake.validation import reconcile_batch
    from riskradar.errors import ReconciliationError

    contract = load_settings(write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"])).contract(
        "police_crimes"
    )
    tally = [
        {"source_file": "a.csv.gz", "quarantine_rule": None, "change": "new", "time_note": None, "count": 5}
    ]
    with pytest.raises(ReconciliationError, match=r"silver of batch b1: 5 rows expected, 0 written"):
        reconcile_batch(
            contract, "b1", {"a.csv.gz": 5}, tally, {"silver": {}, "history": {}, "quarantine": {}}
        )
    with pytest.raises(ReconciliationError, match=r"file 'a.csv.gz': 6 rows in bronze, 5 routed"):
        reconcile_batch(
            contract, "b1", {"a.csv.gz": 6}, tally, {"silver": {}, "history": {}, "quarantine": {}}
        )
