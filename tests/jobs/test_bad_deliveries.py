"""Each bad delivery in tests/data/bad_deliveries gets its expected clear error or quarantine reason."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
import yaml
from builders import ROOT, landing_with, write_config
from data.bad_deliveries.make_corpus import police, police_row
from pyspark.sql import functions as F

from jobs import ingest, validate
from riskradar.catalog import read_quarantine, read_silver
from riskradar.config import load_settings
from riskradar.errors import DeliveryRejected, UnsafeName, ValidationGateFailed
from riskradar.lake import Lake, read_json_dir

CORPUS = ROOT / "tests" / "data" / "bad_deliveries"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text())
FOLDER = {"police_crimes": "police_crimes", "sanitation_311": "sanitation_311"}


def _quarantine_by_rule(spark, lake: Lake, feed: str) -> dict[str, int]:
    quarantine = read_quarantine(spark, lake, feed)
    if quarantine is None:
        return {}
    return {r["quarantine_rule"]: r["count"] for r in quarantine.groupBy("quarantine_rule").count().collect()}


def _published(spark, lake: Lake, feed: str) -> int:
    from riskradar.lake import FeedState

    folders = FeedState.read(lake, feed).folders(lake, "silver")
    return sum(spark.read.parquet(str(f)).count() for f in folders)


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_bad_delivery(case, spark, tmp_path: Path):
    source = CORPUS / case["file"]
    feed = case["feed"]
    # Both feeds' contracts expect gzipped CSV: deliver the corpus file as such (an empty
    # file stays a 0-byte file, as a failed export would leave it).
    raw = source.read_bytes()
    delivered = f"{source.name}.gz"
    landing = landing_with(tmp_path, FOLDER[feed], {delivered: gzip.compress(raw, mtime=0) if raw else b""})
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=[feed]))
    lake = Lake(settings.lake_root)

    if "ingest_error" in case:
        with pytest.raises(DeliveryRejected) as err:
            ingest.main(["--partner", feed], settings=settings, spark=spark)
        assert case["ingest_error"] in str(err.value)
        assert feed in str(err.value) and delivered in str(err.value)
    else:
        ingest.main(["--partner", feed], settings=settings, spark=spark)

    if "gate_error" in case:
        with pytest.raises(ValidationGateFailed) as err:
            validate.main(["--partner", feed], settings=settings, spark=spark)
        assert case["gate_error"] in str(err.value)
        assert _published(spark, lake, feed) == 0
        assert _quarantine_by_rule(spark, lake, feed) == {}  # a failed gate publishes nothing
        assert list(lake.reports("validation", feed).glob("*.md")), "the failed gate leaves a report"
        return

    validate.main(["--partner", feed], settings=settings, spark=spark)
    assert _published(spark, lake, feed) == case["published"]
    assert _quarantine_by_rule(spark, lake, feed) == case["quarantine"]
    if "reason" in case:
        reasons = [r[0] for r in read_quarantine(spark, lake, feed).select("quarantine_reason").collect()]
        assert any(case["reason"] in r for r in reasons), reasons
    if "extra_columns" in case:
        (marker,) = read_json_dir(lake.batch_markers(feed))
        assert marker["files"][0]["extra_columns"] == case["extra_columns"]
        assert marker["files"][0]["file"] == delivered
        assert "Extra Notes" not in spark.read.parquet(str(lake.bronze(feed))).columns


def test_same_file_delivered_twice_is_skipped(spark, tmp_path: Path, capsys):
    content = (CORPUS / "police" / "good_delivery.csv.gz").read_bytes()
    landing = landing_with(tmp_path, "police_crimes", {"crimes_a.csv.gz": content})
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    first = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    assert first["police_crimes"]["rows"] == 5
    (landing / "police_crimes" / "crimes_b.csv.gz").write_bytes(content)  # same bytes, new name
    second = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    assert second["police_crimes"]["rows"] == 0
    assert second["police_crimes"]["skipped"] == [
        {
            "file": "crimes_a.csv.gz",
            "reason": f"already ingested in batch {first['police_crimes']['batch_id']}",
        },
        {
            "file": "crimes_b.csv.gz",
            "reason": f"already ingested in batch {first['police_crimes']['batch_id']}",
        },
    ]
    assert "skipped crimes_b.csv.gz: already ingested" in capsys.readouterr().out
    # The same name with new content is a new delivery.
    renewed = gzip.compress((CORPUS / "police" / "extra_column.csv").read_bytes())
    (landing / "police_crimes" / "crimes_a.csv.gz").write_bytes(renewed)
    third = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    assert third["police_crimes"]["rows"] == 4
    assert third["police_crimes"]["batch_id"] != first["police_crimes"]["batch_id"]


def test_redelivered_rows_are_unchanged_and_conflicting_ids_are_quarantined_with_their_first_row(
    spark, tmp_path: Path
):
    # Batch 1 publishes 40 events. Batch 2 delivers 5 of them again (the same content: nothing
    # to publish), 150 new ones and, after new event 40, a row with the same ID and other content.
    first_rows = [police_row(i) for i in range(40)]
    new_rows = [police_row(i) for i in range(40, 190)]
    conflicting = police_row(40, date="03/0{d}/2013 11:45:00 PM")
    landing = landing_with(tmp_path, "police_crimes", {"crimes_1.csv.gz": gzip.compress(police(first_rows))})
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    lake = Lake(settings.lake_root)
    ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    second_rows = [*first_rows[:5], new_rows[0], conflicting, *new_rows[1:]]
    (landing / "police_crimes" / "crimes_2.csv.gz").write_bytes(gzip.compress(police(second_rows)))
    ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    (second,) = validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)["police_crimes"]

    assert (second["rows_in"], second["new"], second["corrections"], second["unchanged"]) == (156, 150, 0, 5)
    assert second["quarantined_by_rule"] == {"conflicting_id": 1}
    quarantined = (
        read_quarantine(spark, lake, "police_crimes")
        .where(F.col("batch_id") == second["batch_id"])
        .select("source_row", "quarantine_rule", "quarantine_reason", "Date")
        .collect()
    )
    assert [(r["source_row"], r["quarantine_rule"]) for r in quarantined] == [(7, "conflicting_id")]
    assert quarantined[0]["quarantine_reason"] == (
        "another row of this delivery has the same ID with different content"
    )
    assert quarantined[0]["Date"] == "03/05/2013 11:45:00 PM"
    assert _published(spark, lake, "police_crimes") == 190
    events = read_silver(spark, settings, lake, "events")
    assert events.select("event_id").distinct().count() == 190  # one current row per event


ODD_NAMES = [
    "..crimes.csv.gz",
    "crimes..2013.csv.gz",
    "crimes_[2013].csv.gz",
    "crimes_{a,b}.csv.gz",
    "crimes_2013:01.csv.gz",
    "_crimes.csv.gz",
    ".crimes.csv.gz",
    "chicago_crimes_*.csv.gz",
    "crimes_?.csv.gz",
    "crimes with spaces.csv.gz",
]


def test_file_names_with_odd_characters_are_read_by_their_exact_path(spark, tmp_path: Path):
    """Names are never globbed or parsed as Hadoop paths: each file gives exactly its own rows,
    under its own name and hash, whatever characters it holds."""
    files = {
        name: gzip.compress(police([police_row(100 * i + r) for r in range(i + 1)]), mtime=0)
        for i, name in enumerate(ODD_NAMES)
    }
    landing = landing_with(tmp_path, "police_crimes", files)
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    lake = Lake(settings.lake_root)
    result = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)["police_crimes"]
    assert result["rejected"] == []
    bronze = spark.read.parquet(str(lake.bronze("police_crimes")))
    got = {
        (r["source_file"], r["source_sha256"], r["count"])
        for r in bronze.groupBy("source_file", "source_sha256").count().collect()
    }
    assert got == {
        (name, hashlib.sha256(content).hexdigest(), i + 1) for i, (name, content) in enumerate(files.items())
    }
    validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    assert _published(spark, lake, "police_crimes") == sum(range(1, len(ODD_NAMES) + 1))


@pytest.mark.parametrize("partner", ["../police_crimes", "police/crimes", "..", "a\\b"])
def test_partner_name_with_path_is_refused(spark, tmp_path: Path, partner: str):
    landing = landing_with(tmp_path, "police_crimes", {})
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    with pytest.raises(
        UnsafeName, match=r"partner .* is not allowed: it contains '\.\.' or a path separator"
    ):
        ingest.main(["--partner", partner], settings=settings, spark=spark)
    assert not (tmp_path / "lake").exists()
