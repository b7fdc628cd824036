"""Silver holds one current version of each event, day and area: corrections replace, the same
content changes nothing, replaced versions are kept in the history, across batches and files."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest
from builders import SAMPLE, write_config
from pyspark.sql import functions as F

from jobs import build_features, ingest, validate
from riskradar.catalog import read_history, read_quarantine, read_silver
from riskradar.config import load_settings
from riskradar.errors import KeyMismatch
from riskradar.lake import Lake

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


def test_a_month_then_corrections_then_the_month_again_keeps_one_current_row_per_event(spark, month_lake):
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
    events = build_features.load_inputs(spark, settings, lake)["events"]
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
