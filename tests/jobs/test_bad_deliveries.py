"""Each bad delivery in tests/data/bad_deliveries gets its expected clear error or quarantine reason."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import yaml
from builders import ROOT, landing_with, write_config
from data.bad_deliveries.make_corpus import police, police_row
from pyspark.sql import functions as F

from jobs import ingest, validate
from riskradar.config import load_settings
from riskradar.errors import DeliveryRejected, UnsafeName, ValidationGateFailed
from riskradar.lake import Lake, read_json_dir

CORPUS = ROOT / "tests" / "data" / "bad_deliveries"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text())
FOLDER = {"police_crimes": "police_crimes", "sanitation_311": "sanitation_311"}


def _quarantine_by_rule(spark, lake: Lake, feed: str) -> dict[str, int]:
    path = lake.quarantine(feed)
    if not path.exists() or not any(path.rglob("*.parquet")):
        return {}
    rows = spark.read.parquet(str(path)).groupBy("quarantine_rule").count().collect()
    return {r["quarantine_rule"]: r["count"] for r in rows}


def _published(spark, lake: Lake, feed: str) -> int:
    path = lake.silver("events") / f"partner={feed}"
    if not path.exists():
        return 0
    return spark.read.parquet(str(lake.silver("events"))).where(F.col("partner") == feed).count()


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
        reasons = [
            r[0] for r in spark.read.parquet(str(lake.quarantine(feed))).select("quarantine_reason").collect()
        ]
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


def test_redelivered_rows_and_conflicting_ids_are_quarantined_with_their_first_row(spark, tmp_path: Path):
    # Batch 1 publishes 40 events. Batch 2 delivers 5 of them again, 150 new ones and, after
    # new event 40, a row with the same ID and other content.
    first_rows = [police_row(i) for i in range(40)]
    new_rows = [police_row(i) for i in range(40, 190)]
    conflicting = police_row(40, date="03/0{d}/2013 11:45:00 PM")
    landing = landing_with(tmp_path, "police_crimes", {"crimes_1.csv.gz": gzip.compress(police(first_rows))})
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    lake = Lake(settings.lake_root)
    ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    (first,) = validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)["police_crimes"]
    second_rows = [*first_rows[:5], new_rows[0], conflicting, *new_rows[1:]]
    (landing / "police_crimes" / "crimes_2.csv.gz").write_bytes(gzip.compress(police(second_rows)))
    ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    (second,) = validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)["police_crimes"]

    assert (second["rows_in"], second["published"]) == (156, 150)
    assert second["quarantined_by_rule"] == {"conflicting_id": 1, "duplicate_row": 5}
    quarantined = (
        spark.read.parquet(str(lake.quarantine("police_crimes")))
        .where(F.col("batch_id") == second["batch_id"])
        .select("source_row", "quarantine_rule", "quarantine_reason", "Date")
        .orderBy("source_row")
        .collect()
    )
    assert [(r["source_row"], r["quarantine_rule"]) for r in quarantined] == [
        *[(row, "duplicate_row") for row in range(1, 6)],
        (7, "conflicting_id"),
    ]
    assert {r["quarantine_reason"] for r in quarantined[:5]} == {
        f"exact duplicate of a row already published in batch {first['batch_id']}"
    }
    assert quarantined[5]["quarantine_reason"] == (
        "another row of this delivery has the same ID with different content"
    )
    assert quarantined[5]["Date"] == "03/05/2013 11:45:00 PM"
    assert _published(spark, lake, "police_crimes") == 190


@pytest.mark.parametrize("name", ["..crimes.csv.gz", "crimes..2013.csv.gz"])
def test_file_name_with_dots_is_refused(spark, tmp_path: Path, name: str):
    content = (CORPUS / "police" / "good_delivery.csv.gz").read_bytes()
    landing = landing_with(tmp_path, "police_crimes", {name: content})
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    with pytest.raises(UnsafeName, match=r"delivered file name .* contains '\.\.' or a path separator"):
        ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)


@pytest.mark.parametrize("partner", ["../police_crimes", "police/crimes", "..", "a\\b"])
def test_partner_name_with_path_is_refused(spark, tmp_path: Path, partner: str):
    landing = landing_with(tmp_path, "police_crimes", {})
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    with pytest.raises(
        UnsafeName, match=r"partner .* is not allowed: it contains '\.\.' or a path separator"
    ):
        ingest.main(["--partner", partner], settings=settings, spark=spark)
    assert not (tmp_path / "lake").exists()
