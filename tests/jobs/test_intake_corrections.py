"""Silver holds one current version of each event, day and area: corrections replace, the same
content changes nothing, replaced versions are kept in the history, across batches and files."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

import pytest
from builders import ROOT, RUN_TIMES, SAMPLE, intake_tables, write_config
from pyspark.sql import functions as F

from intake import conform
from intake.validation import list_batches
from jobs import batches, build_features, ingest, validate
from riskradar.catalog import read_history, read_quarantine, read_silver
from riskradar.config import load_settings
from riskradar.errors import KeyMismatch, ValidationGateFailed
from riskradar.lake import FeedState, Lake

MONTH = SAMPLE / "police_crimes" / "chicago_crimes_2014-06.csv.gz"
ROWS = 300


def _month() -> tuple[list[str], list[dict[str, str]]]:
    with gzip.open(MONTH, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [next(reader) for _ in range(ROWS)]
    return list(reader.fieldnames or []), rows


def _csv_gz(header: list[str], rows: list[dict[str, str]], *, line_end: str = "\n") -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator=line_end)
    writer.writeheader()
    writer.writerows(rows)
    return gzip.compress(out.getvalue().encode(), mtime=0)


def _deliver(landing: Path, name: str, content: bytes) -> None:
    (landing / "police_crimes").mkdir(parents=True, exist_ok=True)
    (landing / "police_crimes" / name).write_bytes(content)


def _run(settings, spark) -> dict:
    ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    (summary,) = validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)[
        "police_crimes"
    ]
    return summary


def _current(spark, settings) -> dict[str, tuple[str, str]]:
    """event id -> (category, batch) of the current rows; fails on a second row of an event."""
    rows = read_silver(spark, settings, Lake(settings.lake_root), "events").select(
        "event_id", "category", "batch_id"
    )
    out = {}
    for r in rows.collect():
        assert r["event_id"] not in out, f"event {r['event_id']} has two current rows"
        out[r["event_id"]] = (r["category"], r["batch_id"])
    return out


@pytest.fixture()
def month_lake(spark, tmp_path):
    header, rows = _month()
    landing = tmp_path / "landing"
    _deliver(landing, "crimes_2014-06.csv.gz", _csv_gz(header, rows))
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=["police_crimes"]))
    first = _run(settings, spark)
    return settings, landing, header, rows, first


@pytest.mark.parametrize("shuffled", [False, True], ids=["batch keys broadcast", "history shuffled"])
def test_a_month_then_corrections_then_the_month_again_keeps_one_current_row_per_event(
    spark, month_lake, monkeypatch, shuffled
):
    # Both plans of the comparison with the published rows: the small batch's keys cut the
    # history before the join (the default), or the whole history joined by a shuffle (a batch
    # above conform.BROADCAST_BATCH_KEYS rows).
    if shuffled:
        monkeypatch.setattr(conform, "BROADCAST_BATCH_KEYS", 0)
    settings, landing, header, rows, first = month_lake
    lake = Lake(settings.lake_root)
    before = _current(spark, settings)
    assert len(before) == first["new"] == first["published"]
    # 20 published events corrected: battery becomes homicide (a victim died), the others theft.
    published_ids = {r["source_row"] for r in read_silver(spark, settings, lake, "events").collect()}
    corrected = [dict(rows[i - 1]) for i in sorted(published_ids)[:20]]
    for row in corrected:
        row["Primary Type"] = "HOMICIDE" if row["Primary Type"] == "BATTERY" else "THEFT"
        row["Updated On"] = "07/01/2014 09:00:00 AM"
    _deliver(landing, "crimes_2014-06_corrections.csv.gz", _csv_gz(header, corrected))
    second = _run(settings, spark)
    assert (second["rows_in"], second["new"], second["corrections"], second["unchanged"]) == (20, 0, 20, 0)
    after = _current(spark, settings)
    assert set(after) == set(before)  # the same events, one row each
    changed = {e for e in after if after[e] != before[e]}
    assert len(changed) == 20
    assert {after[e][1] for e in changed} == {second["batch_id"]}
    expected = {"homicide" if r["Primary Type"] == "HOMICIDE" else "theft" for r in corrected}
    assert {after[e][0] for e in changed} == expected
    history = read_history(spark, settings, lake, "events")
    old = {r["event_id"]: (r["category"], r["batch_id"], r["superseded_by"]) for r in history.collect()}
    assert old == {e: (before[e][0], first["batch_id"], second["batch_id"]) for e in changed}

    # The month again, exported anew (CRLF line ends: other bytes, the same rows): nothing changes,
    # the 20 old versions are recognised as replaced ones and do not come back.
    third = _run_again(settings, spark, landing, header, rows)
    assert third["new"] == third["corrections"] == 0
    assert third["outdated"] == 20 and third["unchanged"] == first["published"]
    assert _current(spark, settings) == after
    assert read_history(spark, settings, lake, "events").count() == 20
    # What the panel reads are the current rows only.
    events = build_features.load_inputs(spark, settings, lake)[0]["events"]
    assert events.count() == len(after) and events.where(F.col("category") == "homicide").count() == sum(
        1 for e in after.values() if e[0] == "homicide"
    )


def _run_again(settings, spark, landing, header, rows) -> dict:
    _deliver(landing, "crimes_2014-06_again.csv.gz", _csv_gz(header, rows, line_end="\r\n"))
    return _run(settings, spark)


def test_the_same_file_name_redelivered_with_ten_rows_changed_applies_the_ten(spark, month_lake):
    settings, landing, header, rows, first = month_lake
    changed = [dict(r) for r in rows]
    published_rows = sorted(
        r["source_row"] for r in read_silver(spark, settings, Lake(settings.lake_root), "events").collect()
    )
    for i in published_rows[:10]:
        changed[i - 1]["Description"] = "CORRECTED DESCRIPTION"
    _deliver(landing, "crimes_2014-06.csv.gz", _csv_gz(header, changed))
    second = _run(settings, spark)
    assert second["gate"] == "passed"
    assert (second["new"], second["corrections"]) == (0, 10)
    assert second["unchanged"] == first["published"] - 10
    assert second["quarantined"] == first["quarantined"]  # the same rows fail the same rules
    assert (
        second["rows_in"]
        == second["new"] + second["corrections"] + second["unchanged"] + second["quarantined"]
    )
    current = read_silver(spark, settings, Lake(settings.lake_root), "events")
    assert current.count() == first["published"]
    assert current.where(F.col("subcategory") == "CORRECTED DESCRIPTION").count() == 10


def test_an_id_with_surrounding_spaces_is_the_same_event(spark, month_lake):
    settings, landing, header, rows, first = month_lake
    source_row = sorted(
        r["source_row"] for r in read_silver(spark, settings, Lake(settings.lake_root), "events").collect()
    )[0]
    row = dict(rows[source_row - 1])
    row["ID"] = f"  {row['ID']} "
    row["Primary Type"] = "ARSON"
    _deliver(landing, "crimes_spaced_id.csv.gz", _csv_gz(header, [row]))
    second = _run(settings, spark)
    assert (second["new"], second["corrections"]) == (0, 1)
    current = _current(spark, settings)
    assert len(current) == first["published"]
    assert sum(1 for c, _ in current.values() if c == "arson") == 1 + sum(
        1 for r in rows if r["Primary Type"] == "ARSON"
    )


def test_a_lake_refuses_another_key(spark, month_lake, monkeypatch):
    settings, landing, header, rows, first = month_lake
    monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", "another-key-0123456789abcdef-not-the-lake's")
    _deliver(landing, "crimes_later.csv.gz", _csv_gz(header, rows[:5]))
    with pytest.raises(KeyMismatch, match="riskradar rekey"):
        ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    with pytest.raises(KeyMismatch):
        validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    assert _current(spark, settings)  # nothing was touched


WEATHER_HEADER = "precipIntensity,temperatureMax,windSpeed,humidity,date"


def test_a_weather_day_delivered_again_with_a_new_value_replaces_it(spark, tmp_path):
    landing = tmp_path / "landing" / "weather"
    landing.mkdir(parents=True)
    days = [f"0.0{d},{70 + d},5.0,0.5,2014-06-0{d}" for d in range(1, 8)]
    (landing / "weather_1.csv").write_text("\n".join([WEATHER_HEADER, *days]) + "\n")
    settings = load_settings(write_config(tmp_path, landing=tmp_path / "landing", enabled=["weather"]))
    ingest.main(["--partner", "weather"], settings=settings, spark=spark)
    validate.main(["--partner", "weather"], settings=settings, spark=spark)
    (landing / "weather_2.csv").write_text(
        "\n".join([WEATHER_HEADER, "0.01,90,5.0,0.5,2014-06-01", days[1]]) + "\n"
    )
    ingest.main(["--partner", "weather"], settings=settings, spark=spark)
    (second,) = validate.main(["--partner", "weather"], settings=settings, spark=spark)["weather"]
    assert (second["new"], second["corrections"], second["unchanged"]) == (0, 1, 1)
    lake = Lake(settings.lake_root)
    weather = read_silver(spark, settings, lake, "weather")
    assert weather.count() == 7
    day1 = weather.where(F.col("date") == "2014-06-01").first()
    assert day1["temperature_max_c"] == pytest.approx((90 - 32) * 5 / 9)
    (old,) = read_history(spark, settings, lake, "weather").collect()
    assert old["temperature_max_c"] == pytest.approx((71 - 32) * 5 / 9)
    assert old["superseded_by"] == second["batch_id"]
    assert read_quarantine(spark, lake, "weather") is None


# --------------------------------------------------------------------------- replays (issue 27, item 3)

FEED = "police_crimes"
NAME = "crimes_2014-06.csv.gz"


def _late(header: list[str]) -> bytes:
    """A later delivery of 26 new events of the month, 12 of them with unreadable dates: more
    bad rows than the committed suite lets a small delivery hold (at most 10), fewer than half."""
    with gzip.open(MONTH, "rt", encoding="utf-8", newline="") as fh:
        later = [row for i, row in enumerate(csv.DictReader(fh)) if ROWS <= i < ROWS + 26]
    return _csv_gz(header, [dict(r, Date="not a date") if i < 12 else r for i, r in enumerate(later)])


def _corrected(spark, settings, header: list[str], rows: list[dict[str, str]]) -> bytes:
    """The month again under its own name, 10 of its published events corrected: the README's
    way for a partner to correct rows."""
    published = sorted(
        r["source_row"] for r in read_silver(spark, settings, Lake(settings.lake_root), "events").collect()
    )
    changed = [dict(r) for r in rows]
    for i in published[:10]:
        changed[i - 1]["Description"] = "CORRECTED DESCRIPTION"
    return _csv_gz(header, changed)


def _validate(settings, spark, *args: str) -> list[dict]:
    """validate (or `batches` with `args`), tolerating the failure a rejected batch causes."""
    try:
        if args:
            return batches.main(["--partner", FEED, *args], settings=settings, spark=spark)
        return validate.main(["--partner", FEED], settings=settings, spark=spark)[FEED]
    except ValidationGateFailed:
        return []


def _tables(spark, settings, *, drop: frozenset[str] = frozenset({"superseded_at"})) -> dict:
    return intake_tables(spark, settings, FEED, "events", drop=drop)


def _fresh_build(spark, tmp_path: Path, deliveries: list[tuple[str, bytes]], **config) -> object:
    """A new lake from `deliveries` ((name, bytes), in order): each is ingested as it arrives,
    and one validate run takes all its batches at the end."""
    landing = tmp_path / "landing"
    settings = load_settings(write_config(tmp_path, landing=landing, enabled=[FEED], **config))
    for name, content in deliveries:
        _deliver(landing, name, content)
        ingest.main(["--partner", FEED], settings=settings, spark=spark)
    _validate(settings, spark)
    return settings


def _stray_run_folders(settings) -> set[Path]:
    """Run folders of the feed on disk that its commit record does not name."""
    lake = Lake(settings.lake_root)
    on_disk = {p.resolve() for p in lake.root.glob("silver/*/partner=*/*/r-*")}
    on_disk |= {p.resolve() for p in lake.root.glob(f"quarantine/{FEED}/*/step=validate/r-*")}
    return on_disk - FeedState.read(lake, FEED).referenced(lake)


def test_reprocess_replays_a_feed_corrected_under_the_same_name_as_a_fresh_build_gives_it(
    spark, month_lake, tmp_path
):
    settings, landing, header, rows, first = month_lake
    corrected = _corrected(spark, settings, header, rows)
    _deliver(landing, NAME, corrected)
    second = _run(settings, spark)
    assert (second["new"], second["corrections"]) == (0, 10)
    before = _tables(spark, settings)

    replayed = validate.main(["--partner", FEED, "--reprocess"], settings=settings, spark=spark)[FEED]

    def outcome(s: dict) -> tuple:
        return (s["batch_id"], s["new"], s["corrections"], s["unchanged"], s["quarantined"], s["gate"])

    assert [outcome(s) for s in replayed] == [outcome(first), outcome(second)]
    assert _tables(spark, settings) == before
    assert _stray_run_folders(settings) == set()
    # Both deliveries ingested, then validated in one run: the same lake.
    fresh = _fresh_build(spark, tmp_path / "fresh", [(NAME, _csv_gz(header, rows)), (NAME, corrected)])
    assert _tables(spark, fresh, drop=RUN_TIMES) == _tables(spark, settings, drop=RUN_TIMES)


def test_a_retried_batch_is_replayed_before_a_later_correction_under_the_same_name(spark, tmp_path):
    header, rows = _month()
    suite = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", suite)
    landing = tmp_path / "landing"
    settings = load_settings(
        write_config(tmp_path, landing=landing, enabled=[FEED], expectations_dir=str(suite))
    )
    _deliver(landing, NAME, _csv_gz(header, rows))
    _run(settings, spark)
    _deliver(landing, "crimes_late.csv.gz", _late(header))
    ingest.main(["--partner", FEED], settings=settings, spark=spark)
    assert _validate(settings, spark) == []  # the gate fails: set aside
    corrected = _corrected(spark, settings, header, rows)
    _deliver(landing, NAME, corrected)
    ingest.main(["--partner", FEED], settings=settings, spark=spark)
    _validate(settings, spark)
    first, late, correction = (
        m["batch_id"] for m in list_batches(Lake(settings.lake_root), settings.contract(FEED))
    )
    assert _tables(spark, settings)["statuses"] == {
        first: "published",
        late: "rejected",
        correction: "published",
    }
    # The suite is mended (a small delivery may hold 20 bad rows), and the set-aside batch retried:
    # the feed is replayed in ingest order, so that the correction still wins.
    spec = json.loads((suite / "police_crimes.json").read_text())
    for expectation in spec["expectations"]:
        if "small_deliveries" in expectation:
            expectation["small_deliveries"]["max_unexpected_rows"] = 20
    (suite / "police_crimes.json").write_text(json.dumps(spec))

    replayed = batches.main(["--partner", FEED, "--retry", late], settings=settings, spark=spark)

    assert [(s["batch_id"], s["gate"]) for s in replayed] == [
        (first, "passed"),
        (late, "passed"),
        (correction, "passed"),
    ]
    assert [(s["new"], s["corrections"], s["quarantined"]) for s in replayed[1:]] == [
        (14, 0, 12),
        (0, 10, 10),
    ]
    assert _stray_run_folders(settings) == set()
    fresh = _fresh_build(
        spark,
        tmp_path / "fresh",
        [(NAME, _csv_gz(header, rows)), ("crimes_late.csv.gz", _late(header)), (NAME, corrected)],
        expectations_dir=str(suite),
    )
    after = _tables(spark, settings, drop=RUN_TIMES)
    assert after["statuses"] == {first: "published", late: "published", correction: "published"}
    assert after == _tables(spark, fresh, drop=RUN_TIMES)


def test_reprocess_after_a_discard_keeps_the_discarded_rows_and_the_correction(spark, month_lake):
    settings, landing, header, rows, first = month_lake
    _deliver(landing, "crimes_late.csv.gz", _late(header))
    ingest.main(["--partner", FEED], settings=settings, spark=spark)
    assert _validate(settings, spark) == []
    (late,) = [
        b
        for b in list_batches(Lake(settings.lake_root), settings.contract(FEED))
        if b["status"] == "rejected"
    ]
    _validate(settings, spark, "--discard", late["batch_id"], "--reason", "dates unreadable")
    _deliver(landing, NAME, _corrected(spark, settings, header, rows))
    second = _run(settings, spark)
    assert (second["new"], second["corrections"]) == (0, 10)
    before = _tables(spark, settings)
    assert before["statuses"] == {
        first["batch_id"]: "published",
        late["batch_id"]: "discarded",
        second["batch_id"]: "published",
    }
    assert sum(1 for r in before["quarantine"] if ("quarantine_rule", "discarded_batch") in r) == 26

    replayed = validate.main(["--partner", FEED, "--reprocess"], settings=settings, spark=spark)[FEED]

    assert [s["batch_id"] for s in replayed] == [first["batch_id"], second["batch_id"]]
    assert _tables(spark, settings) == before
    assert _stray_run_folders(settings) == set()
