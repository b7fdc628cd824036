"""Each bad delivery in tests/data/bad_deliveries gets its expected clear error or quarantine reason."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from builders import ROOT, landing_with, write_config
from data.bad_deliveries.make_corpus import police, police_row
from pyspark.sql import functions as F

from intake import delivery, ingestion, validation
from intake.validation import list_batches
from jobs import batches, ingest, validate
from riskradar.audit import read_audit
from riskradar.catalog import read_quarantine, read_silver
from riskradar.config import load_settings
from riskradar.errors import (
    ConfigError,
    DeliveryRejected,
    PublishRefused,
    RiskradarError,
    UnsafeName,
    ValidationGateFailed,
)
from riskradar.lake import Lake, read_json_dir

CORPUS = ROOT / "tests" / "data" / "bad_deliveries"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text())
FOLDER = {
    "police_crimes": "police_crimes",
    "sanitation_311": "sanitation_311",
    "weather": "weather",
    "census_areas": "census",
}


def _quarantine_by_rule(spark, lake: Lake, feed: str) -> dict[str, int]:
    quarantine = read_quarantine(spark, lake, feed)
    if quarantine is None:
        return {}
    return {r["quarantine_rule"]: r["count"] for r in quarantine.groupBy("quarantine_rule").count().collect()}


def _published(spark, lake: Lake, feed: str) -> int:
    from riskradar.lake import FeedState

    folders = FeedState.read(lake, feed).folders(lake, "silver")
    return sum(spark.read.parquet(str(f)).count() for f in folders)


def _case_id(case: dict) -> str:
    extra = case.get("deliver_as") or case.get("setup") or ",".join(case.get("contract", {}).values())
    return f"{case['file']}" + (f"[{extra}]" if extra else "")


# Personal values of the corpus: raw ids, case numbers and blocks of the police rows, request
# numbers and addresses of the 311 rows. Any of them standing on its own anywhere is a leak.
PERSONAL = [r"9\d{7}", r"ZZ\d{6}", r"000XX W TEST,? ST \d+", r"13-9\d{7}", r"\d+ W MADEUP AVE"]


def _personal_values(raw: bytes) -> set[str]:
    text = raw.decode("utf-8", errors="replace")
    return {m.strip() for p in PERSONAL for m in re.findall(p, text)}


def _lake_text(spark, lake: Lake) -> str:
    """Every value the lake holds in text: JSON, Markdown, HTML and CSV files, and every Parquet
    folder's rows."""
    texts = [
        p.read_text(encoding="utf-8", errors="replace")
        for p in lake.root.rglob("*")
        if p.is_file() and p.suffix in (".json", ".md", ".html", ".csv", ".txt", ".yaml")
    ]
    for folder in {p.parent for p in lake.root.rglob("*.parquet")}:
        df = spark.read.parquet(str(folder))
        texts += [r[0] for r in df.select(F.to_json(F.struct("*"))).collect()]
    return "\n".join(texts)


def _leaked(secrets: set[str], blob: str) -> list[str]:
    return sorted(
        s for s in secrets if s in blob and re.search(rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])", blob)
    )


def _landing(case: dict, tmp_path: Path) -> tuple[Path, str, set[str]]:
    """The landing root of a case, the delivered name, and the personal values it holds."""
    source = CORPUS / case["file"]
    raw = source.read_bytes()
    if case.get("setup") == "long_line":
        raw = raw.rstrip(b"\n") + b"\n9" + b"x" * (17 * 1024 * 1024) + b"\n"
    # The police and 311 contracts expect gzipped CSV: a corpus file is delivered as such (an
    # empty file stays a 0-byte file, as a failed export would leave it).
    content = raw if case.get("plain") or not raw else gzip.compress(raw, mtime=0)
    delivered = case.get("deliver_as", source.name if case.get("plain") else f"{source.name}.gz")
    folder = tmp_path / "landing" / FOLDER[case["feed"]]
    folder.mkdir(parents=True)
    secrets = _personal_values(raw[:1_000_000])
    setup = case.get("setup")
    if setup in ("symlink_outside", "symlink_passwd"):
        outside = tmp_path / "elsewhere" / delivered
        outside.parent.mkdir()
        outside.write_bytes(content)
        target = outside if setup == "symlink_outside" else Path("/etc/passwd")
        (folder / delivered).symlink_to(target)
        if setup == "symlink_passwd":
            secrets.add(Path("/etc/passwd").read_text().splitlines()[0])
    elif setup == "fifo":
        os.mkfifo(folder / delivered)
    else:
        (folder / delivered).write_bytes(content)
    if setup == "neighbour":
        (folder / "good_delivery.csv.gz").write_bytes(
            (CORPUS / "police" / "good_delivery.csv.gz").read_bytes()
        )
    return tmp_path / "landing", delivered, secrets


def _contracts(case: dict, tmp_path: Path) -> dict:
    """Config overrides that point the feed at a copy of its contract with the case's changes."""
    if "contract" not in case:
        return {}
    folder = tmp_path / "contracts"
    folder.mkdir()
    for path in (ROOT / "conf" / "partners").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if path.stem == case["feed"]:
            for dotted, value in case["contract"].items():
                node = data
                *parents, leaf = dotted.split(".")
                for part in parents:
                    node = node[part]
                node[leaf] = value
        (folder / path.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return {"partners.contracts_dir": str(folder)}


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_delivery(case, spark, tmp_path: Path, capfd):
    feed = case["feed"]
    landing, delivered, secrets = _landing(case, tmp_path)
    settings = load_settings(
        write_config(tmp_path, landing=landing, enabled=[feed], **_contracts(case, tmp_path))
    )
    lake = Lake(settings.lake_root)
    errors: list[str] = []

    if "ingest_error" in case:
        with pytest.raises(DeliveryRejected) as err:
            ingest.main(["--partner", feed], settings=settings, spark=spark)
        assert case["ingest_error"] in str(err.value)
        assert feed in str(err.value) and repr(delivered) in str(err.value)
        errors.append(str(err.value))
    else:
        ingest.main(["--partner", feed], settings=settings, spark=spark)
    # Every file Spark read gave as many rows as its records counted while it was staged.
    for marker in read_json_dir(lake.batch_markers(feed)):
        for report in marker["files"]:
            if report["status"] != "rejected":
                assert report["rows"] == report["records"], report

    if "gate_error" in case:
        with pytest.raises(ValidationGateFailed) as err:
            validate.main(["--partner", feed], settings=settings, spark=spark)
        assert case["gate_error"] in str(err.value)
        errors.append(str(err.value))
        assert _published(spark, lake, feed) == 0
        assert _quarantine_by_rule(spark, lake, feed) == {}  # a failed gate publishes nothing
        assert list(lake.reports("validation", feed).glob("*.md")), "the failed gate leaves a report"
        (batch,) = [b for b in list_batches(lake, settings.contract(feed)) if b["status"] == "rejected"]
        if "next" in case:  # the set-aside batch does not hold the next delivery back
            following = CORPUS / case["next"]["file"]
            shutil.copy(following, landing / FOLDER[feed] / following.name)
            ingest.main(["--partner", feed], settings=settings, spark=spark)
            with pytest.raises(ValidationGateFailed, match=f"batch {batch['batch_id']}"):
                validate.main(["--partner", feed], settings=settings, spark=spark)  # still says so
            assert _published(spark, lake, feed) == case["next"]["published"]
    else:
        summaries = validate.main(["--partner", feed], settings=settings, spark=spark)[feed]
        assert _published(spark, lake, feed) == case["published"]
        assert _quarantine_by_rule(spark, lake, feed) == case["quarantine"]
        if "reason" in case:
            reasons = [r[0] for r in read_quarantine(spark, lake, feed).select("quarantine_reason").collect()]
            assert any(case["reason"] in r for r in reasons), reasons
        if "time_notes" in case:
            assert summaries[0]["time_notes"] == case["time_notes"]
        for rule in case.get("no_values_for", []):
            values = [c for c in settings.contract(feed).kept_columns]
            rows = read_quarantine(spark, lake, feed).where(F.col("quarantine_rule") == rule)
            assert rows.count() > 0
            assert rows.select(*[F.col(f"`{c}`") for c in values]).dropna(how="all").count() == 0
        if "extra_columns" in case:
            (marker,) = read_json_dir(lake.batch_markers(feed))
            assert marker["files"][0]["extra_columns"] == case["extra_columns"]
            assert marker["files"][0]["file"] == delivered
            assert "Extra Notes" not in spark.read.parquet(str(lake.bronze(feed))).columns
    # No personal value of the delivery, in clear, anywhere: lake, reports, audit, output.
    out, err_text = capfd.readouterr()
    blob = "\n".join([_lake_text(spark, lake), out, err_text, *errors])
    assert _leaked(secrets, blob) == []
    if settings.contract(feed).pseudonymised_columns and case.get("published", 0) + sum(
        case.get("quarantine", {}).values()
    ):
        assert secrets, "the case's personal values were found, so the scan could find them"


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


def test_a_rejected_file_keeps_ingest_failing_until_it_is_acknowledged(spark, tmp_path: Path):
    header_only = gzip.compress((CORPUS / "police" / "header_only.csv").read_bytes(), mtime=0)
    good = (CORPUS / "police" / "good_delivery.csv.gz").read_bytes()
    landing = landing_with(
        tmp_path, "police_crimes", {"a_header_only.csv.gz": header_only, "b_good.csv.gz": good}
    )
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    lake = Lake(settings.lake_root)
    with pytest.raises(DeliveryRejected, match="has a header but no data rows"):
        ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    # The good file of the same delivery is in bronze and is validated all the same.
    validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    assert _published(spark, lake, "police_crimes") == 5
    # A retry does not turn green while the file stays rejected...
    with pytest.raises(DeliveryRejected, match=r"'a_header_only.csv.gz' \(batch \w+\).*\(rejected earlier\)"):
        ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    (batch,) = list_batches(lake, settings.contract("police_crimes"))
    assert batch["rejected_files"] == ["a_header_only.csv.gz"] and batch["status"] == "published"
    # ...until an operator acknowledges it, which the audit log keeps.
    batches.main(
        ["--partner", "police_crimes", "--discard", batch["batch_id"], "--reason", "partner re-sends it"],
        settings=settings,
        spark=spark,
    )
    result = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    assert result["police_crimes"]["still_rejected"] == []
    audit = [r for r in read_audit(lake) if r["job"] == "batches"]
    assert audit[-1]["arguments"]["reason"] == "partner re-sends it" and audit[-1]["status"] == "succeeded"


def test_a_failed_gate_keeps_validate_failing_until_the_batch_is_discarded(spark, tmp_path: Path):
    bad = gzip.compress((CORPUS / "police" / "too_many_bad_rows.csv").read_bytes(), mtime=0)
    landing = landing_with(tmp_path, "police_crimes", {"bad.csv.gz": bad})
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    lake = Lake(settings.lake_root)
    ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    for _ in range(2):  # the run, and its retry: both fail while the batch is set aside
        with pytest.raises(ValidationGateFailed, match="stays set aside until it is discarded or retried"):
            validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    (batch,) = list_batches(lake, settings.contract("police_crimes"))
    assert batch["status"] == "rejected" and batch["failed"]
    with pytest.raises(RiskradarError, match="only a rejected batch can be retried"):
        batches.main(
            ["--partner", "police_crimes", "--retry", "0000000000000000"], settings=settings, spark=spark
        )
    # A retry runs the gate again (the suite is unchanged: it fails again, and says so).
    with pytest.raises(ValidationGateFailed):
        batches.main(
            ["--partner", "police_crimes", "--retry", batch["batch_id"]], settings=settings, spark=spark
        )
    batches.main(
        ["--partner", "police_crimes", "--discard", batch["batch_id"], "--reason", "dates unreadable"],
        settings=settings,
        spark=spark,
    )
    validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)  # green again
    # Every delivered row is accounted for: all 60 are in quarantine, saying who set them aside.
    quarantine = read_quarantine(spark, lake, "police_crimes")
    assert _quarantine_by_rule(spark, lake, "police_crimes") == {"discarded_batch": 60}
    reason = quarantine.select("quarantine_reason").first()[0]
    assert reason.startswith("batch discarded by ") and reason.endswith(": dates unreadable")
    assert _published(spark, lake, "police_crimes") == 0


def test_a_file_that_changes_while_it_is_read_is_left_for_the_next_run(spark, tmp_path: Path, monkeypatch):
    first = gzip.compress(police([police_row(i) for i in range(5)]), mtime=0)
    second = gzip.compress(police([police_row(i) for i in range(5, 12)]), mtime=0)
    landing = landing_with(tmp_path, "police_crimes", {"crimes.csv.gz": second})
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    # The run hashed the file while it held version 1; by the time it is staged it holds version 2.
    monkeypatch.setattr(delivery, "sha256_of", lambda path: hashlib.sha256(first).hexdigest())
    result = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)["police_crimes"]
    assert result["batch_id"] is None and result["files"] == []
    assert result["deferred"] == [
        {
            "file": "crimes.csv.gz",
            "reason": "'crimes.csv.gz' no longer has the content hashed when the run listed it; "
            "it is read on the next run",
        }
    ]
    monkeypatch.undo()
    result = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)["police_crimes"]
    assert result["rows"] == 7
    assert {f["sha256"] for f in result["files"]} == {hashlib.sha256(second).hexdigest()}


def test_rows_spark_reads_differently_from_the_staged_count_reject_the_file(
    spark, tmp_path: Path, monkeypatch
):
    files = {
        "a.csv.gz": gzip.compress(police([police_row(i) for i in range(5)]), mtime=0),
        "b.csv.gz": gzip.compress(police([police_row(i) for i in range(5, 9)]), mtime=0),
    }
    landing = landing_with(tmp_path, "police_crimes", files)
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    real = delivery.stage_file

    def miscounted(path, *args, **kwargs):
        inspection = real(path, *args, **kwargs)
        if path.name == "a.csv.gz":
            inspection.records += 1  # as if Spark had lost a record of this file
        return inspection

    monkeypatch.setattr(delivery, "stage_file", miscounted)
    with pytest.raises(
        DeliveryRejected,
        match=r"'a.csv.gz': the file holds 6 record\(s\) \(header excluded\) as a CSV parser counts them, "
        r"but Spark read 5 row\(s\) from it: it is not ingested",
    ):
        ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    bronze = spark.read.parquet(str(Lake(settings.lake_root).bronze("police_crimes")))
    assert {r["source_file"]: r["count"] for r in bronze.groupBy("source_file").count().collect()} == {
        "b.csv.gz": 4
    }


def _two_deliveries(tmp_path: Path) -> tuple:
    """A feed with a.csv.gz (5 rows) in its landing, and b.csv.gz (4 rows) to deliver later."""
    landing = landing_with(
        tmp_path,
        "police_crimes",
        {"a.csv.gz": gzip.compress(police([police_row(i) for i in range(5)]), mtime=0)},
    )
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    later = gzip.compress(police([police_row(i) for i in range(5, 9)]), mtime=0)
    return settings, Lake(settings.lake_root), landing / "police_crimes" / "b.csv.gz", later


def _rows(df) -> list[tuple]:
    return sorted(tuple(str(v) for v in r) for r in df.collect())


def test_a_failing_ingest_check_publishes_nothing_and_leaves_the_published_bronze(
    spark, tmp_path: Path, monkeypatch
):
    settings, lake, later, content = _two_deliveries(tmp_path)
    (first,) = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark).values()
    bronze_before = _rows(spark.read.parquet(str(lake.bronze("police_crimes"))))
    markers_before = read_json_dir(lake.batch_markers("police_crimes"))
    later.write_bytes(content)
    real = ingestion.reconcile_rows

    def one_row_too_many(records, bronze, quarantine):  # as if a staged file gained a row
        return real(records, {**bronze, "b.csv.gz": bronze["b.csv.gz"] + 1}, quarantine)

    monkeypatch.setattr(ingestion, "reconcile_rows", one_row_too_many)
    with pytest.raises(PublishRefused) as refused:
        ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    message = str(refused.value)
    assert re.fullmatch(
        r"nothing published to bronze.police_crimes, quarantine.police_crimes: rows per file: "
        r"file 'b.csv.gz': 4 record\(s\) read, 5 row\(s\) staged in bronze and 0 in quarantine "
        r"\(report (?P<report>\S+\.publish\.json)\)",
        message,
    ), message
    report = json.loads(Path(re.search(r"\(report (\S+)\)", message).group(1)).read_text())
    assert report["published"] is False
    assert report["checks"] == {
        "rows per file": "file 'b.csv.gz': 4 record(s) read, 5 row(s) staged in bronze and 0 in quarantine",
        "bronze + quarantine = rows read": "passed",
    }
    # The published bronze and its batch markers are as they were; nothing staged is left.
    assert _rows(spark.read.parquet(str(lake.bronze("police_crimes")))) == bronze_before
    assert read_json_dir(lake.batch_markers("police_crimes")) == markers_before
    assert [p.name for p in lake.bronze("police_crimes").glob("batch_id=*")] == [
        f"batch_id={first['batch_id']}"
    ]
    assert not list((lake.root / "bronze").rglob("_staging/**/*.parquet"))
    # With the check passing again, the next run ingests the file.
    monkeypatch.undo()
    (second,) = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark).values()
    assert (second["rows"], [f["file"] for f in second["files"]]) == (4, ["b.csv.gz"])


def test_a_failing_validation_check_publishes_nothing_and_leaves_the_published_silver(
    spark, tmp_path: Path, monkeypatch
):
    settings, lake, later, content = _two_deliveries(tmp_path)
    ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    silver_before = _rows(read_silver(spark, settings, lake, "events"))
    state_before = lake.state("police_crimes").read_text()
    later.write_bytes(content)
    (second,) = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark).values()
    real = validation.reconcile_batch

    def one_row_lost(contract, batch_id, by_file_in, tally, written):  # as if routing lost a row
        return real(
            contract, batch_id, {**by_file_in, "b.csv.gz": by_file_in["b.csv.gz"] + 1}, tally, written
        )

    monkeypatch.setattr(validation, "reconcile_batch", one_row_lost)
    with pytest.raises(PublishRefused) as refused:
        validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    batch = second["batch_id"]
    message = str(refused.value)
    problem = (
        f"police_crimes batch {batch}: what was written does not add up to what came in "
        f"(file 'b.csv.gz': 5 rows in bronze, 4 routed); nothing was published"
    )
    assert message == (
        f"nothing published to intake.police_crimes batch {batch}: reconciliation: {problem} "
        f"(report {lake.reports('validation', 'police_crimes') / f'{batch}.publish.json'})"
    )
    report = json.loads((lake.reports("validation", "police_crimes") / f"{batch}.publish.json").read_text())
    assert report["checks"] == {"expectation gate": "passed", "reconciliation": problem}
    # The commit record, and so silver, are as they were; the staged run folders are gone.
    assert lake.state("police_crimes").read_text() == state_before
    assert _rows(read_silver(spark, settings, lake, "events")) == silver_before
    assert not list(lake.root.glob(f"silver/events/partner=police_crimes/batch_id={batch}/r-*"))
    assert not list(lake.root.glob(f"quarantine/police_crimes/batch_id={batch}/step=validate/r-*"))
    # The batch is still to validate: with the check passing again, the next run publishes it.
    monkeypatch.undo()
    (summary,) = validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)[
        "police_crimes"
    ]
    assert (summary["batch_id"], summary["new"], summary["gate"]) == (batch, 4, "passed")


def test_a_suite_that_cannot_run_raises_its_own_error_and_publishes_nothing(
    spark, tmp_path: Path, monkeypatch
):
    settings, lake, _, _ = _two_deliveries(tmp_path)
    ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)

    def unreadable(*args, **kwargs):
        raise ConfigError("police_crimes.json: the suite cannot be loaded: broken")

    monkeypatch.setattr(validation, "run_suite", unreadable)
    with pytest.raises(ConfigError, match=r"^police_crimes.json: the suite cannot be loaded: broken$"):
        validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    assert not lake.state("police_crimes").exists()  # nothing committed, not even a rejection
    assert not list(lake.root.glob("silver/**/r-*"))
