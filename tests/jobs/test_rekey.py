"""riskradar rekey: a lake moved to a new key equals the old one in everything but its pseudonyms,
which are all new; a refused rekey leaves the lake as it was, and a failed or interrupted one is
rolled back to the old lake and key record exactly."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from builders import ROOT, RUN_TIMES, SAMPLE, TEST_KEY, csv_gz, intake_tables, write_config
from pyspark.sql import functions as F

from intake import ingestion, validation
from intake.pseudonym import key_fingerprint, key_record_path, pseudonymise
from intake.rekey import RekeyFailed, RekeyRefused, content_differences, verify_feed
from jobs import batches, ingest, rekey, validate
from riskradar.audit import read_audit
from riskradar.catalog import read_history, read_quarantine, read_silver
from riskradar.config import load_settings
from riskradar.errors import DeliveryRejected, KeyMismatch, LakeLocked, RiskradarError, ValidationGateFailed
from riskradar.lake import FeedState, Lake, lock, read_json_dir

FEED = "police_crimes"
OLD_ENV = "RISKRADAR_OLD_PSEUDONYM_KEY"
NEW_KEY = "rekey-test-new-key-fedcba9876543210"
MONTH = SAMPLE / FEED / "chicago_crimes_2014-06.csv.gz"
REKEY = ["--old-key-env", OLD_ENV]
DISCARD_REASON = "every date unreadable: a broken export"


def _sample(n: int) -> tuple[list[str], list[dict[str, str]]]:
    with gzip.open(MONTH, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), [row for _, row in zip(range(n), reader, strict=False)]


def _settings(root: Path):
    return load_settings(write_config(root, landing=root / "landing", enabled=[FEED]))


def _markers(lake: Lake) -> list[dict]:
    return sorted(read_json_dir(lake.batch_markers(FEED)), key=lambda m: m["ingested_at"])


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """A lake of three police_crimes batches built with the test key: 200 rows of a month; 15 of
    its published events corrected (homicide); and a delivery the operator discarded before
    validating it (10 rows whose dates are all unreadable, and a file without `Primary Type`,
    whose rows ingest quarantined)."""
    root = tmp_path_factory.mktemp("rekey")
    header, rows = _sample(215)
    folder = root / "landing" / FEED
    folder.mkdir(parents=True)
    settings = _settings(root)
    lake = Lake(settings.lake_root)

    (folder / "crimes_2014-06.csv.gz").write_bytes(csv_gz(header, rows[:200]))
    ingest.main(["--partner", FEED], settings=settings, spark=spark)
    validate.main(["--partner", FEED], settings=settings, spark=spark)

    published = sorted(r["source_row"] for r in read_silver(spark, settings, lake, "events").collect())
    corrected = [dict(rows[i - 1], **{"Primary Type": "HOMICIDE"}) for i in published[:15]]
    (folder / "crimes_2014-06_corrections.csv.gz").write_bytes(csv_gz(header, corrected))
    ingest.main(["--partner", FEED], settings=settings, spark=spark)
    validate.main(["--partner", FEED], settings=settings, spark=spark)

    broken = [dict(r, Date="not a date") for r in rows[200:210]]
    (folder / "crimes_broken.csv.gz").write_bytes(csv_gz(header, broken))
    no_type = [h for h in header if h != "Primary Type"]
    (folder / "crimes_no_type.csv.gz").write_bytes(csv_gz(no_type, rows[210:215]))
    with pytest.raises(DeliveryRejected):
        ingest.main(["--partner", FEED], settings=settings, spark=spark)
    third = _markers(lake)[-1]["batch_id"]
    batches.main(
        ["--partner", FEED, "--discard", third, "--reason", DISCARD_REASON], settings=settings, spark=spark
    )
    return root


@pytest.fixture()
def lake_copy(built, tmp_path, monkeypatch):
    """This test's own copy of the built lake and its landing, and the rekey's two keys."""
    for name in ("lake", "landing"):
        shutil.copytree(built / name, tmp_path / name, symlinks=True)
    monkeypatch.setenv(OLD_ENV, TEST_KEY)
    monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", NEW_KEY)
    settings = _settings(tmp_path)
    return settings, Lake(settings.lake_root)


def _files(root: Path) -> dict[str, str]:
    """Every file of the lake but the audit log (which records each run), with its sha256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "audit"
    }


def _rows(rows, drop: set[str]) -> list[tuple]:
    """Rows without the fields `drop`, sorted, as comparable tuples."""
    return sorted(tuple(sorted((k, str(v)) for k, v in r.asDict().items() if k not in drop)) for r in rows)


def _by_rule(quarantine) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in quarantine:
        out[r["quarantine_rule"]] = out.get(r["quarantine_rule"], 0) + 1
    return out


def _snapshot(spark, settings, lake: Lake) -> dict:
    """The feed's tables as rows (read now: a rekey moves the folders), its batches and statuses."""
    state = FeedState.read(lake, FEED)
    bronze = spark.read.parquet(str(lake.bronze(FEED)))
    return {
        "silver": read_silver(spark, settings, lake, "events").collect(),
        "history": read_history(spark, settings, lake, "events").collect(),
        "quarantine": read_quarantine(spark, lake, FEED).collect(),
        "bronze_ids": {r["ID"] for r in bronze.select("ID").collect() if r["ID"]},
        "bronze_rows": {r["batch_id"]: r["count"] for r in bronze.groupBy("batch_id").count().collect()},
        "statuses": {b: rec["status"] for b, rec in state.batches.items()},
        "files": {
            m["batch_id"]: {f["file"]: (f["sha256"], f["status"]) for f in m["files"]} for m in _markers(lake)
        },
        "batches": state.batches,
    }


def _raw_ids(landing: Path) -> dict[tuple[str, int], str]:
    """(file, row) -> the partner's raw ID, read from landing."""
    out = {}
    for path in sorted((landing / FEED).iterdir()):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=1):
                out[(path.name, i)] = row["ID"]
    return out


def _event_ids(spark, raw: list[str], key: str) -> dict[str, str]:
    """raw ID -> event_id as intake derives it with `key` (bronze pseudonymises the ID, routing
    pseudonymises that again)."""
    df = spark.createDataFrame([(r,) for r in raw], "raw string")
    once = pseudonymise(df, {"bronze_id": F.col("raw")}, key.encode(), domain=FEED)
    twice = pseudonymise(once, {"event_id": F.col("bronze_id")}, key.encode(), domain=FEED)
    return {r["raw"]: r["event_id"] for r in twice.collect()}


def test_a_rekeyed_lake_equals_the_old_one_but_for_its_pseudonyms(spark, lake_copy, monkeypatch, tmp_path):
    settings, lake = lake_copy
    before = _snapshot(spark, settings, lake)
    old_batches = sorted(before["statuses"])
    assert sorted(before["statuses"].values()) == ["discarded", "published", "published"]

    result = rekey.main(REKEY, settings=settings, spark=spark)

    after = _snapshot(spark, settings, lake)
    assert result["old_fingerprint"] == key_fingerprint(TEST_KEY.encode())
    assert result["new_fingerprint"] == key_fingerprint(NEW_KEY.encode())
    # Every file is still in landing: each batch comes back under its own id, files and statuses.
    assert result["feeds"][FEED]["batches"] == {b: b for b in old_batches}
    assert after["statuses"] == before["statuses"] and after["files"] == before["files"]
    assert after["bronze_rows"] == before["bronze_rows"]
    # Silver and history: the same rows in every column but the pseudonyms (and the hash over them,
    # and when a version was replaced); the correction still wins over the first version.
    pseudonymous = {"event_id", "row_hash"}
    assert _rows(after["silver"], pseudonymous) == _rows(before["silver"], pseudonymous)
    assert _rows(after["history"], pseudonymous | {"superseded_at"}) == _rows(
        before["history"], pseudonymous | {"superseded_at"}
    )
    corrected = [
        r["category"] for r in after["silver"] if r["source_file"] == "crimes_2014-06_corrections.csv.gz"
    ]
    assert corrected == ["homicide"] * 15 and len(after["history"]) == 15
    # The quarantine: the same rows per rule; the discarded batch's rows carry the operator's reason.
    assert _by_rule(after["quarantine"]) == _by_rule(before["quarantine"])
    assert _by_rule(after["quarantine"])["discarded_batch"] == 10
    (reason,) = {
        r["quarantine_reason"] for r in after["quarantine"] if r["quarantine_rule"] == "discarded_batch"
    }
    assert DISCARD_REASON in reason and f"carried over by rekey run {result['run_id']}" in reason
    (discarded,) = [b for b, s in after["statuses"].items() if s == "discarded"]
    assert before["batches"][discarded]["acknowledged"]["reason"] == DISCARD_REASON
    assert DISCARD_REASON in after["batches"][discarded]["acknowledged"]["reason"]

    # Every pseudonym is new: none of the old lake's, and each is the new key's HMAC of the raw id.
    old_events = {r["event_id"] for r in before["silver"] + before["history"]}
    new_events = {r["event_id"] for r in after["silver"] + after["history"]}
    assert len(new_events) == len(old_events) and not new_events & old_events
    assert (
        len(after["bronze_ids"]) == len(before["bronze_ids"])
        and not after["bronze_ids"] & before["bronze_ids"]
    )
    raw = _raw_ids(tmp_path / "landing")
    silver = after["silver"]
    expected = _event_ids(spark, [raw[(r["source_file"], r["source_row"])] for r in silver], NEW_KEY)
    assert [r["event_id"] for r in silver] == [
        expected[raw[(r["source_file"], r["source_row"])]] for r in silver
    ]

    # The run is audited with what it replayed and verified.
    (audited,) = [r for r in read_audit(lake) if r["job"] == "rekey"]
    assert (audited["status"], audited["arguments"]["old_key_env"]) == ("succeeded", OLD_ENV)
    assert audited["counts"]["feeds"] == {FEED: {b: b for b in old_batches}}
    assert audited["counts"]["verified"][FEED]["silver_rows"] == len(before["silver"])
    assert {(o["step"], o["batch_id"]) for o in audited["outputs"]} >= {("ingest", b) for b in old_batches}

    # The lake records the new key; the old copy is gone; no form of either key is in a file.
    assert key_record_path(lake.root).read_text().count(key_fingerprint(NEW_KEY.encode())) == 1
    assert not (lake.root / "_rekey").exists() and not list((lake.root / "_locks").iterdir())
    for path in lake.root.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert TEST_KEY.encode() not in content and NEW_KEY.encode() not in content, path

    # A later delivery is refused with the old key and taken with the new one (the operator's
    # acknowledgement of the file without `Primary Type` was carried over: ingest does not fail).
    header, rows = _sample(220)
    (tmp_path / "landing" / FEED / "crimes_later.csv.gz").write_bytes(csv_gz(header, rows[215:220]))
    with monkeypatch.context() as m:
        m.setenv("RISKRADAR_PSEUDONYM_KEY", TEST_KEY)
        with pytest.raises(KeyMismatch, match="riskradar rekey"):
            ingest.main(["--partner", FEED], settings=settings, spark=spark)
    later = ingest.main(["--partner", FEED], settings=settings, spark=spark)[FEED]
    assert (len(later["files"]), later["rows"], later["rejected"]) == (1, 5, [])


def test_a_wrong_old_key_the_same_new_key_or_a_running_job_is_refused_and_nothing_moves(
    spark, lake_copy, monkeypatch
):
    settings, lake = lake_copy
    files = _files(lake.root)
    with lock(lake, f"intake.{FEED}", run_id="validating", job="validate"):
        with pytest.raises(LakeLocked, match=f"intake.{FEED} is locked by run validating"):
            rekey.main(REKEY, settings=settings, spark=spark)
    monkeypatch.setenv(OLD_ENV, "not-the-lake's-key-0123456789abcdef")
    with pytest.raises(KeyMismatch) as err:
        rekey.main(REKEY, settings=settings, spark=spark)
    assert OLD_ENV in str(err.value) and key_fingerprint(TEST_KEY.encode()) in str(err.value)
    monkeypatch.setenv(OLD_ENV, TEST_KEY)
    monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", TEST_KEY)
    with pytest.raises(RekeyRefused, match="holds the lake's own key"):
        rekey.main(REKEY, settings=settings, spark=spark)
    assert _files(lake.root) == files


def test_a_missing_or_changed_landing_file_is_refused_naming_it_and_its_batch(spark, lake_copy, tmp_path):
    settings, lake = lake_copy
    # The lake keeps no intact copy of the two files (the month's was altered, the corrections'
    # is gone; a lake ingested before copies were kept has none): the rekey needs landing.
    month, corrections = (f["sha256"] for m in _markers(lake)[:2] for f in m["files"])
    (lake.delivered(FEED) / corrections).unlink()
    (lake.delivered(FEED) / month).chmod(0o600)
    with (lake.delivered(FEED) / month).open("ab") as fh:
        fh.write(b"\0")
    files = _files(lake.root)
    first, second = (m["batch_id"] for m in _markers(lake)[:2])
    landing = tmp_path / "landing" / FEED
    (landing / "crimes_2014-06_corrections.csv.gz").unlink()
    with (landing / "crimes_2014-06.csv.gz").open("ab") as fh:
        fh.write(gzip.compress(b"", mtime=0))  # the same rows, other bytes
    with pytest.raises(RekeyRefused) as err:
        rekey.main(REKEY, settings=settings, spark=spark)
    message = str(err.value)
    assert "2 file(s) are not in landing as they were ingested" in message
    assert f"{FEED} batch {first}: 'crimes_2014-06.csv.gz' has changed since it was ingested" in message
    assert f"{FEED} batch {second}: 'crimes_2014-06_corrections.csv.gz' is not in landing" in message
    assert "), and the lake's copy of it has changed since it was ingested (sha256 " in message
    assert (
        "), and the lake keeps no copy of it (ingested before the lake kept copies, or rejected)" in message
    )
    assert _files(lake.root) == files


def test_a_failed_replay_puts_the_old_lake_and_key_record_back(spark, lake_copy, monkeypatch):
    settings, lake = lake_copy
    files = _files(lake.root)
    real, calls = validation.validate_feed, []

    def validate_then_fail(*args, **kwargs):
        calls.append(real(*args, **kwargs))
        raise RuntimeError("simulated failure after validating the first batch")

    monkeypatch.setattr(validation, "validate_feed", validate_then_fail)
    with pytest.raises(RekeyFailed) as err:
        rekey.main(REKEY, settings=settings, spark=spark)
    assert "simulated failure" in str(err.value) and "back as they were" in str(err.value)
    assert len(calls) == 1
    assert _files(lake.root) == files  # key record, state, bronze, silver, quarantine, reports
    monkeypatch.setattr(validation, "validate_feed", real)
    monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", TEST_KEY)
    assert validate.main(["--partner", FEED], settings=settings, spark=spark) == {FEED: []}


def test_an_interrupted_rekey_blocks_every_job_until_the_next_rekey_rolls_it_back(
    spark, lake_copy, monkeypatch
):
    settings, lake = lake_copy
    files = _files(lake.root)

    def killed(*args, **kwargs):
        raise RuntimeError("simulated kill")

    with monkeypatch.context() as m:  # the process dies: nothing is put back
        m.setattr(ingestion, "ingest_feed", killed)
        m.setattr("intake.rekey._Moves.restore", lambda self: None)
        with pytest.raises(RekeyFailed):
            rekey.main(REKEY, settings=settings, spark=spark)
    assert (lake.root / "_rekey").is_dir()
    for key in (TEST_KEY, NEW_KEY):
        monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", key)
        with pytest.raises(KeyMismatch, match="rekey-in-progress"):
            ingest.main(["--partner", FEED], settings=settings, spark=spark)
    monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", NEW_KEY)
    monkeypatch.setenv(OLD_ENV, "not-the-lake's-key-0123456789abcdef")
    with pytest.raises(KeyMismatch):  # refused, after rolling the interrupted run back
        rekey.main(REKEY, settings=settings, spark=spark)
    assert _files(lake.root) == files
    assert not (lake.root / "_rekey").exists()


def test_the_verification_refuses_a_lake_that_keeps_a_pseudonym_of_the_old_one(spark, lake_copy):
    settings, lake = lake_copy
    same = {m["batch_id"]: m["batch_id"] for m in _markers(lake)}
    with pytest.raises(RiskradarError) as err:
        verify_feed(spark, lake, lake, settings.contract(FEED), same)
    assert str(err.value).startswith(
        f"the rekeyed {FEED} differs from the old lake: pseudonyms of the old key are in the new lake."
    )


def test_the_content_check_counts_each_copy_of_a_row_and_ignores_only_the_pseudonyms(spark, lake_copy):
    settings, _ = lake_copy
    contract = settings.contract(FEED)

    def frame(*rows):
        return spark.createDataFrame(
            list(rows), "event_id string, row_hash string, category string, source_row int"
        )

    before = frame(("a", "h1", "theft", 1), ("b", "h2", "arson", 2), ("b", "h2", "arson", 2))
    rekeyed = [("x", "h7", "theft", 1), ("y", "h8", "arson", 2), ("z", "h9", "arson", 2)]
    assert content_differences(contract, "silver", before, frame(*rekeyed)) == []
    assert content_differences(contract, "silver", before, frame(*rekeyed[:2], ("z", "h9", "theft", 3))) == [
        "silver: 1 row(s) of the old lake are not in the new one, 1 are new"
    ]
    assert content_differences(contract, "silver", before, frame(*rekeyed[:2])) == [
        "silver: 1 row(s) of the old lake are not in the new one, 0 are new"
    ]


# --------------------------------------------------------------------------- a lake corrected in place
# (issue 27, items 3 and 4)

MONTH_NAME = "crimes_2014-06.csv.gz"
LATE_NAME = "crimes_late.csv.gz"
# Raw ids standing on their own (not digits inside a coordinate or a hash).
_STANDALONE = r"(?<![0-9A-Za-z]){}(?![0-9A-Za-z])"


def _suite_settings(root: Path, landing: Path | None = None):
    """The police feed with the lake, landing and expectations of `root` (its suite may be mended)."""
    return load_settings(
        write_config(
            root,
            landing=landing or root / "landing",
            enabled=[FEED],
            expectations_dir=str(root / "expectations"),
        )
    )


def _deliver_and_run(spark, settings, name: str, content: bytes) -> None:
    """Deliver one file, ingest and validate it; a batch that fails its gate stays set aside."""
    folder = settings.landing_dir(settings.contract(FEED))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    ingest.main(["--partner", FEED], settings=settings, spark=spark)
    try:
        validate.main(["--partner", FEED], settings=settings, spark=spark)
    except ValidationGateFailed:
        pass


@pytest.fixture(scope="module")
def corrected(spark, tmp_path_factory):
    """A lake whose month was corrected under its own name, the README's way: crimes_2014-06.csv.gz
    with 200 rows; crimes_late.csv.gz, 26 new events of which 12 have unreadable dates (its gate
    fails: set aside); crimes_2014-06.csv.gz again, 10 published events corrected. Landing holds
    only the newest version of the month. Returns the root and the deliveries, in order."""
    root = tmp_path_factory.mktemp("corrected")
    shutil.copytree(ROOT / "expectations", root / "expectations")
    settings = _suite_settings(root)
    header, rows = _sample(226)
    deliveries = [
        (MONTH_NAME, csv_gz(header, rows[:200])),
        (
            LATE_NAME,
            csv_gz(header, [dict(r, Date="not a date") if i < 12 else r for i, r in enumerate(rows[200:])]),
        ),
    ]
    for name, content in deliveries:
        _deliver_and_run(spark, settings, name, content)
    lake = Lake(settings.lake_root)
    published = sorted(r["source_row"] for r in read_silver(spark, settings, lake, "events").collect())
    changed = [dict(r) for r in rows[:200]]
    for i in [i for i in published if i <= 200][:10]:
        changed[i - 1]["Description"] = "CORRECTED DESCRIPTION"
    deliveries.append((MONTH_NAME, csv_gz(header, changed)))
    _deliver_and_run(spark, settings, *deliveries[-1])
    return root, deliveries


def _mend_suite(root: Path) -> None:
    """An operator's fix of the police suite: a small delivery may hold 20 bad rows."""
    path = root / "expectations" / "police_crimes.json"
    spec = json.loads(path.read_text())
    for expectation in spec["expectations"]:
        if "small_deliveries" in expectation:
            expectation["small_deliveries"]["max_unexpected_rows"] = 20
    path.write_text(json.dumps(spec))


def _in_clear(spark, lake: Lake, raw: set[str]) -> list[str]:
    """The raw ids found standing on their own in the lake's tables, records and reports (every
    Parquet value, every JSON and Markdown file), the copies of the delivered files left out."""
    copies = lake.root / "_delivered"
    texts = [
        p.read_text(encoding="utf-8", errors="replace")
        for p in lake.root.rglob("*")
        if p.is_file() and p.suffix in (".json", ".md") and copies not in p.parents
    ]
    for folder in {p.parent for p in lake.root.rglob("*.parquet") if copies not in p.parents}:
        texts += [r[0] for r in spark.read.parquet(str(folder)).select(F.to_json(F.struct("*"))).collect()]
    blob = "\n".join(texts)
    return sorted(s for s in raw if s in blob and re.search(_STANDALONE.format(re.escape(s)), blob))


def test_a_lake_corrected_under_the_same_name_is_rekeyed_from_what_it_holds_and_replays_after(
    spark, corrected, tmp_path, monkeypatch
):
    built, deliveries = corrected
    for name in ("lake", "expectations", "landing"):  # landing as the partner left it
        shutil.copytree(built / name, tmp_path / name, symlinks=True)
    settings = _suite_settings(tmp_path)
    lake = Lake(settings.lake_root)
    monkeypatch.setenv(OLD_ENV, TEST_KEY)
    monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", NEW_KEY)
    first, late, correction = (m["batch_id"] for m in _markers(lake))

    result = rekey.main(REKEY, settings=settings, spark=spark)

    assert result["feeds"][FEED]["batches"] == {first: first, late: late, correction: correction}
    # Every version was read from the lake's own copy of it, none from landing.
    (audited,) = [r for r in read_audit(lake) if r["job"] == "rekey"]
    assert sorted((i["batch_id"], i["file"], i["read_from"]) for i in audited["inputs"]) == sorted(
        [
            (first, MONTH_NAME, "lake copy"),
            (late, LATE_NAME, "lake copy"),
            (correction, MONTH_NAME, "lake copy"),
        ]
    )
    # The same lake as the deliveries give when built afresh with the new key.
    fresh = _suite_settings(tmp_path / "fresh")
    shutil.copytree(tmp_path / "expectations", tmp_path / "fresh" / "expectations")
    for name, content in deliveries:
        _deliver_and_run(spark, fresh, name, content)
    rekeyed = intake_tables(spark, settings, FEED, "events", drop=RUN_TIMES)
    assert rekeyed["statuses"] == {first: "published", late: "rejected", correction: "published"}
    assert rekeyed == intake_tables(spark, fresh, FEED, "events", drop=RUN_TIMES)
    # The copies of the delivered files are the pipeline's own; nothing else holds a raw id.
    copies = lake.root / "_delivered" / FEED
    assert {oct(p.stat().st_mode & 0o777) for p in [copies, *copies.iterdir()]} == {"0o700", "0o400"}
    raw = {
        r["ID"]
        for _, content in deliveries
        for r in csv.DictReader(io.StringIO(gzip.decompress(content).decode()))
    }
    assert len(raw) == 226 and _in_clear(spark, lake, raw) == []

    # Replay after the rekey: the set-aside batch, retried once its suite is mended, is replayed
    # before the later correction; then the whole feed again. Both lakes the same.
    for root in (tmp_path, tmp_path / "fresh"):
        _mend_suite(root)
    for s in (settings, fresh):
        replayed = batches.main(["--partner", FEED, "--retry", late], settings=s, spark=spark)
        assert [(r["batch_id"], r["gate"]) for r in replayed] == [
            (first, "passed"),
            (late, "passed"),
            (correction, "passed"),
        ]
    retried = intake_tables(spark, settings, FEED, "events")
    assert set(retried["statuses"].values()) == {"published"}
    assert intake_tables(spark, settings, FEED, "events", drop=RUN_TIMES) == intake_tables(
        spark, fresh, FEED, "events", drop=RUN_TIMES
    )
    replayed = validate.main(["--partner", FEED, "--reprocess"], settings=settings, spark=spark)[FEED]
    assert [r["batch_id"] for r in replayed] == [first, late, correction]
    assert intake_tables(spark, settings, FEED, "events") == retried


def test_a_kept_copy_no_batch_lists_is_removed(tmp_path):
    """A copy kept by an ingest that died before its batch marker is raw data of nothing in the
    lake: the next ingest of the feed removes it, and no listed copy."""
    lake = Lake(tmp_path / "lake")
    lake.delivered(FEED).mkdir(parents=True)
    for name in ("a" * 64, "b" * 64):
        (lake.delivered(FEED) / name).write_bytes(b"ID,Date\n1,today\n")
    marker = {"batch_id": "b1", "files": [{"file": "crimes.csv.gz", "sha256": "a" * 64}]}
    assert ingestion.drop_unlisted_copies(lake, FEED, [marker]) == [lake.delivered(FEED) / ("b" * 64)]
    assert [p.name for p in lake.delivered(FEED).iterdir()] == ["a" * 64]
