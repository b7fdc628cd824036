"""Local wall times -> UTC at DST changes: each policy, checked against Python's zoneinfo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, StructField, StructType, TimestampType
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from intake.localtime import local_to_utc

SHOWN = "yyyy-MM-dd HH:mm:ss.SSSSSS"  # Spark's rendering of a UTC instant (session zone UTC)

# zone, wall time as the partner wrote it, what the zone makes of it, and the UTC instants of
# its first and second occurrence (the same for a normal time; for a nonexistent time the
# "first" is the one moved forward by the gap), written out by hand.
CASES = [
    (1, "America/Chicago", "2014-06-15 12:00", "normal", "2014-06-15 17:00", None),
    (2, "America/Chicago", "2014-03-09 02:30", "nonexistent", "2014-03-09 08:30", None),
    (3, "America/Chicago", "2014-11-02 01:30", "ambiguous", "2014-11-02 06:30", "2014-11-02 07:30"),
    (4, "America/Chicago", "2014-03-09 01:59:59.999999", "normal", "2014-03-09 07:59:59.999999", None),
    (5, "America/Chicago", "2014-03-09 03:00", "normal", "2014-03-09 08:00", None),
    (6, "America/Chicago", "2014-11-02 00:59:59", "normal", "2014-11-02 05:59:59", None),
    (7, "America/Chicago", "2014-11-02 02:00", "normal", "2014-11-02 08:00", None),
    (8, "America/Chicago", None, "null", None, None),
    # Europe changes at 01:00 UTC on the last Sundays of March and October
    (9, "Europe/Amsterdam", "2014-03-30 02:30", "nonexistent", "2014-03-30 01:30", None),
    (10, "Europe/Amsterdam", "2014-10-26 02:30", "ambiguous", "2014-10-26 00:30", "2014-10-26 01:30"),
    (11, "Europe/Amsterdam", "2014-01-15 08:00:00.25", "normal", "2014-01-15 07:00:00.25", None),
    # Lord Howe Island moves its clocks by 30 minutes: +10:30 <-> +11:00
    (12, "Australia/Lord_Howe", "2014-10-05 02:15", "nonexistent", "2014-10-04 15:45", None),
    (13, "Australia/Lord_Howe", "2014-04-06 01:45", "ambiguous", "2014-04-05 14:45", "2014-04-05 15:15"),
    (14, "Australia/Lord_Howe", "2014-10-05 02:30", "normal", "2014-10-04 15:30", None),
    # Brazil changed at midnight: a date-only timestamp (00:00) did not exist
    (15, "America/Sao_Paulo", "2014-10-19 00:00", "nonexistent", "2014-10-19 03:00", None),
    (16, "Etc/UTC", "2014-03-09 02:30", "normal", "2014-03-09 02:30", None),
]
POLICIES = [
    ("shift_forward", "earlier"),
    ("shift_forward", "later"),
    ("shift_forward", "quarantine"),
    ("quarantine", "earlier"),
    ("quarantine", "later"),
    ("quarantine", "quarantine"),
]


def zoneinfo_view(wall: str | None, zone: str) -> tuple[str, datetime | None, datetime | None]:
    """What Python's zoneinfo makes of a wall time: its kind and its fold=0 / fold=1 instants.

    PEP 495: in a gap fold=0 applies the offset before the change (the time moved forward by
    the gap), fold=1 the offset after; in an overlap fold=0 is the first occurrence.
    """
    if wall is None:
        return "null", None, None
    naive = datetime.fromisoformat(wall)
    fold0, fold1 = (naive.replace(tzinfo=ZoneInfo(zone), fold=f).astimezone(UTC) for f in (0, 1))
    exists = [u.astimezone(ZoneInfo(zone)).replace(tzinfo=None) == naive for u in (fold0, fold1)]
    if not any(exists):
        return "nonexistent", fold0, fold1
    if fold0 != fold1:
        return "ambiguous", fold0, fold1
    return "normal", fold0, fold1


def expected_utc(kind: str, fold0: datetime | None, fold1: datetime | None, policy: tuple[str, str]):
    nonexistent, ambiguous = policy
    if kind == "nonexistent":
        return fold0 if nonexistent == "shift_forward" else None
    if kind == "ambiguous":
        return {"earlier": fold0, "later": fold1, "quarantine": None}[ambiguous]
    return fold0


def _shown(instant: datetime | None) -> str | None:
    return None if instant is None else instant.strftime("%Y-%m-%d %H:%M:%S.%f")


def _utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[1]} {c[2]}")
def test_the_hand_written_cases_agree_with_zoneinfo(case):
    _, zone, wall, kind, first, second = case
    seen_kind, fold0, fold1 = zoneinfo_view(wall, zone)
    assert seen_kind == kind
    assert fold0 == _utc(first)
    if kind == "ambiguous":
        assert fold1 == _utc(second)
        assert fold1 - fold0 == (timedelta(minutes=30) if "Lord_Howe" in zone else timedelta(hours=1))


def _per_zone(spark, rows: list[tuple[int, str, str | None]], select):
    """One frame of (id, wall) per zone, passed through `select(df, wall, zone)`, then unioned."""
    frames = []
    for zone in sorted({z for _, z, _ in rows}):
        df = spark.createDataFrame([(i, w) for i, z, w in rows if z == zone], "id int, wall string")
        frames.append(select(df, F.to_timestamp("wall"), zone))
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _resolved(spark, rows: list[tuple[int, str, str | None]], policy: tuple[str, str]):
    """Resolve each (id, zone, wall time) with local_to_utc; the UTC instant shown as text."""

    def select(df, local, zone):
        lt = local_to_utc(local, zone, nonexistent=policy[0], ambiguous=policy[1])
        return df.select(
            "id",
            F.date_format(lt.utc, SHOWN).alias("utc"),
            lt.nonexistent.alias("nonexistent"),
            lt.ambiguous.alias("ambiguous"),
        )

    return _per_zone(spark, rows, select)


def _expected(spark, rows: list[tuple[int, str, str | None]], policy: tuple[str, str]):
    data = []
    for i, zone, wall in rows:
        kind, fold0, fold1 = zoneinfo_view(wall, zone)
        data.append(
            (i, _shown(expected_utc(kind, fold0, fold1, policy)), kind == "nonexistent", kind == "ambiguous")
        )
    return spark.createDataFrame(data, "id int, utc string, nonexistent boolean, ambiguous boolean")


@pytest.mark.parametrize("policy", POLICIES, ids="/".join)
def test_each_policy_resolves_normal_skipped_and_repeated_times(spark, policy):
    rows = [(i, zone, wall) for i, zone, wall, *_ in CASES]
    assertDataFrameEqual(_resolved(spark, rows, policy), _expected(spark, rows, policy))


def test_the_defaults_are_what_to_utc_timestamp_does(spark):
    """shift_forward + earlier change nothing for data Spark already converted."""
    rows = [(i, zone, wall) for i, zone, wall, *_ in CASES]
    resolved = _resolved(spark, rows, ("shift_forward", "earlier")).select("id", "utc")
    plain = _per_zone(
        spark,
        rows,
        lambda df, local, zone: df.select(
            "id", F.date_format(F.to_utc_timestamp(local, zone), SHOWN).alias("utc")
        ),
    )
    assertDataFrameEqual(resolved, plain)


@pytest.mark.parametrize(
    ("zone", "days"),
    [
        ("America/Chicago", ["2014-03-09", "2014-11-02"]),
        ("Europe/Amsterdam", ["2014-03-30", "2014-10-26"]),
        ("Australia/Lord_Howe", ["2014-04-06", "2014-10-05"]),
        ("America/Sao_Paulo", ["2014-02-15", "2014-10-18", "2014-10-19"]),
    ],
)
@pytest.mark.parametrize("policy", [("shift_forward", "later"), ("quarantine", "quarantine")], ids="/".join)
def test_every_quarter_hour_of_the_change_days_matches_zoneinfo(spark, zone, days, policy):
    """Around each change the boundaries are exact, whatever the length of the gap or overlap."""
    walls = [f"{day} {h:02d}:{m:02d}:00" for day in days for h in range(24) for m in (0, 15, 29, 30, 45, 59)]
    rows = [(i, zone, wall) for i, wall in enumerate(walls)]
    kinds = {zoneinfo_view(w, zone)[0] for w in walls}
    assert kinds == {"normal", "nonexistent", "ambiguous"}  # the sweep does cross both changes
    assertDataFrameEqual(_resolved(spark, rows, policy), _expected(spark, rows, policy))


def test_columns_are_a_timestamp_and_two_flags_that_are_never_null(spark):
    df = spark.createDataFrame([("2014-03-09 02:30:00",), (None,)], "wall string")
    lt = local_to_utc(F.to_timestamp("wall"), "America/Chicago")
    out = df.select(lt.utc.alias("utc"), lt.nonexistent.alias("nonexistent"), lt.ambiguous.alias("ambiguous"))
    assertSchemaEqual(
        out.schema,
        StructType(
            [
                StructField("utc", TimestampType(), True),
                StructField("nonexistent", BooleanType(), False),
                StructField("ambiguous", BooleanType(), False),
            ]
        ),
    )
    assert [
        tuple(r) for r in out.select(F.date_format("utc", SHOWN), "nonexistent", "ambiguous").collect()
    ] == [
        ("2014-03-09 08:30:00.000000", True, False),
        (None, False, False),
    ]


def test_a_timestamp_without_time_zone_is_read_the_same_way(spark):
    df = spark.createDataFrame([("2014-11-02 01:30:00",)], "wall string")
    lt = local_to_utc(F.to_timestamp_ntz(F.col("wall")), "America/Chicago", ambiguous="later")
    out = df.select(F.date_format(lt.utc, SHOWN).alias("utc"), lt.ambiguous.alias("ambiguous"))
    assertDataFrameEqual(
        out, spark.createDataFrame([("2014-11-02 07:30:00.000000", True)], "utc string, ambiguous boolean")
    )


def test_the_plan_uses_no_python_udf(spark):
    df = spark.createDataFrame([("2014-11-02 01:30:00",)], "wall string")
    lt = local_to_utc(F.to_timestamp("wall"), "America/Chicago", nonexistent="quarantine", ambiguous="later")
    plan = df.select(lt.utc, lt.nonexistent, lt.ambiguous)._jdf.queryExecution().executedPlan().toString()
    assert "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan
    assert "from_utc_timestamp" in plan


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nonexistent": "skip"}, "nonexistent = 'skip': allowed: shift_forward, quarantine"),
        ({"ambiguous": "first"}, "ambiguous = 'first': allowed: earlier, later, quarantine"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_an_unknown_policy_or_zone_is_refused(spark, kwargs, message):
    with pytest.raises(ValueError, match=message):
        local_to_utc(F.col("wall"), **{"timezone": "America/Chicago", **kwargs})
