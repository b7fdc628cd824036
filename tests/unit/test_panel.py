"""The panel on tiny inline data, against values computed by hand."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
from pyspark.sql import functions as F

from features.grid import Grid, assign_cells, cells_in_areas
from features.panel import (
    PanelSpec,
    build_panel,
    check_schema,
    event_counts,
    feature_columns,
    holiday_dates,
    index_of,
    kernel_taps,
    label_columns,
    panel_features,
    panel_schema,
    target_features,
    weekly_series,
)
from riskradar.config import (
    CalendarConfig,
    KdeConfig,
    LastYearConfig,
    NearRepeatConfig,
    TargetConfig,
    WeeklyMeasure,
)

W0 = date(2014, 1, 6)  # a Monday
I0 = index_of(W0)
SPEC = PanelSpec(
    timezone="UTC",
    grid=Grid(150.0, "EPSG:26916"),
    crime_feeds=["police"],
    groups={"burglary": ["burglary"], "all": ["burglary", "theft"]},
    windows=[1, 2],
    half_lives=[1.0],
    spatial_windows=[1],
    horizons=[1],
    targets={"burglary": TargetConfig(categories=["burglary"])},
    signals={"sr": ["sanitation_complaint"]},
    weather={
        "temp_max_c": WeeklyMeasure(measure="t_max", aggregate="mean"),
        "precip_mm": WeeklyMeasure(measure="rain_mm_h", aggregate="sum", scale=24),
    },
)
# SPEC with every long-run and near-repeat family on, at scales a 12-week test can see: the
# "same weeks last year" are weeks t-4 .. t-2, the weeks since the last event stop at 5.
LONG = PanelSpec(
    **{
        **SPEC.__dict__,
        "windows": [1, 2, 4],
        "all_history": True,
        "last_year": LastYearConfig(lag_weeks=3, half_width_weeks=1),
        "near_repeat": NearRepeatConfig(max_weeks=5, half_lives_weeks=[2.0], groups=["all"]),
        "kde": KdeConfig(bandwidths_m=[150.0, 300.0], truncate_sigmas=2.0, groups=["all"], windows_weeks=[2]),
    }
)
EVENTS = (
    "partner string, category string, occurred_at timestamp, x double, y double, "
    "origin string, domestic boolean"
)


def _at(week: int, day: int = 1, hour: int = 12) -> datetime:
    return datetime.combine(W0 + timedelta(weeks=week, days=day), datetime.min.time()) + timedelta(hours=hour)


def _events(spark, rows):
    return spark.createDataFrame(rows, EVENTS)


def _cells(spark, cells):
    return spark.createDataFrame([(ix, iy, None) for ix, iy in cells], "ix int, iy int, area_code string")


def _one_cell(spark, events, spec: PanelSpec, *, last: int, data_end: int, **extra):
    """The panel of cell (0, 0) for weeks 0..last, with labels up to week `data_end`."""
    return build_panel(
        events,
        _cells(spark, [(0, 0)]),
        spec,
        first_week=I0,
        last_week=I0 + last,
        data_end_week=I0 + data_end,
        history_start_week=I0,
        **extra,
    )


def test_cell_ids_are_reproducible_from_coordinates(spark):
    df = spark.createDataFrame([(0.0, 0.0), (149.99, 150.0), (-0.01, 300.0)], "x double, y double")
    got = [
        tuple(r) for r in assign_cells(df, Grid(150.0, "EPSG:26916")).select("ix", "iy", "cell_id").collect()
    ]
    assert got == [(0, 0, "0_0"), (0, 1, "0_1"), (-1, 2, "-1_2")]


@pytest.fixture(scope="module")
def panel(spark):
    events = _events(
        spark,
        [
            ("police", "burglary", _at(0), 10.0, 10.0, "reported", False),  # A, week 0
            ("police", "theft", _at(1), 20.0, 20.0, "reported", False),  # A, week 1
            ("police", "burglary", _at(1), 160.0, 10.0, "reported", False),  # B (east of A), week 1
            ("police", "burglary", _at(0, 6, 23), 310.0, 10.0, "reported", False),  # D (2 east), Sun wk 0
            ("sr", "sanitation_complaint", _at(0), 30.0, 30.0, "reported", None),  # A, week 0
        ],
    )
    cells = _cells(spark, [(0, 0), (1, 0), (2, 0), (5, 5)])
    built = build_panel(
        events, cells, SPEC, first_week=I0, last_week=I0 + 2, data_end_week=I0 + 1, history_start_week=I0
    )
    return {(r["cell_id"], r["week_idx"] - I0): r.asDict() for r in built.collect()}, built


def test_every_cell_every_week_zero_rows_included(panel):
    rows, built = panel
    assert sorted(rows) == sorted((c, w) for c in ("0_0", "1_0", "2_0", "5_5") for w in range(3))
    check_schema(built, SPEC)


COLUMNS = [
    "history_weeks",
    "n_burglary_w1",
    "n_burglary_w2",
    "n_all_w1",
    "n_all_w2",
    "d_burglary_hl1",
    "n3_burglary_w1",
    "n5_burglary_w1",
    "s_sr_w1",
    "s_sr_w2",
    "label_burglary_h1",
    "hist_burglary_w2",
    "histd_burglary_hl1",
]


@pytest.mark.parametrize(
    ("cell", "week", "expected"),
    [
        # first week of history: nothing before it; the label counts the week itself
        ("0_0", 0, [0, 0, 0, 0, 0, 0.0, 0, 0, 0, 0, 1, 0, 0.0]),
        # week 1 sees week 0: own burglary, decayed by one half-life; D is 2 cells away (5x5
        # only); A is at the study area's west edge, where the missing neighbours add nothing
        ("0_0", 1, [1, 1, 1, 1, 1, 0.5, 1, 2, 1, 1, 0, 1, 0.5]),
        # week 2: the burglary is two weeks back; B's week-1 burglary is a 3x3 neighbour; no label
        ("0_0", 2, [2, 0, 1, 1, 2, 0.25, 1, 1, 0, 1, None, 1, 0.25]),
        # B: A and D are its 3x3 neighbours in week 0
        ("1_0", 1, [1, 0, 0, 0, 0, 0.0, 2, 2, 0, 0, 1, 0, 0.0]),
        # a quiet cell: zeros, not nulls, and labels until the data end
        ("5_5", 1, [1, 0, 0, 0, 0, 0.0, 0, 0, 0, 0, 0, 0, 0.0]),
        ("5_5", 2, [2, 0, 0, 0, 0, 0.0, 0, 0, 0, 0, None, 0, 0.0]),
    ],
)
def test_feature_values_by_hand(panel, cell, week, expected):
    rows, _ = panel
    assert [rows[(cell, week)][c] for c in COLUMNS] == expected


LONG_COLUMNS = [
    "n_burglary_all",
    "n_all_all",
    "hist_burglary_all",
    "histr_burglary_all",
    "ly_all",
    "histly_burglary",
    "wsl_burglary",
    "wsl3_burglary",
    "wsl_all",
    "wsl3_all",
    "d3_burglary_hl1",
]


@pytest.fixture(scope="module")
def long_panel(spark):
    """A (0, 0) burglary in week 0 and theft in week 1; B (1, 0) burglary in week 2; Q quiet.
    Weeks 0..6, last year = weeks t-4 .. t-2, weeks since the last event capped at 3."""
    spec = PanelSpec(
        **{
            **LONG.__dict__,
            "near_repeat": NearRepeatConfig(max_weeks=3, half_lives_weeks=[1.0], groups=["all"]),
        }
    )
    events = _events(
        spark,
        [
            ("police", "burglary", _at(0), 10.0, 10.0, "reported", False),
            ("police", "theft", _at(1), 20.0, 20.0, "reported", False),
            ("police", "burglary", _at(2), 160.0, 10.0, "reported", False),
        ],
    )
    return _rows_by_cell_week(spark, events, [(0, 0), (1, 0), (5, 5)], spec, last=6)


def _rows_by_cell_week(spark, events, cells, spec: PanelSpec, *, last: int) -> dict:
    """(cell id, week) -> the row, of the panel of `cells` for weeks 0..last with data to the end."""
    built = build_panel(
        events,
        _cells(spark, cells),
        spec,
        first_week=I0,
        last_week=I0 + last,
        data_end_week=I0 + last,
        history_start_week=I0,
    )
    check_schema(built, spec)
    return {(r["cell_id"], r["week_idx"] - I0): r.asDict() for r in built.collect()}


@pytest.mark.parametrize(
    ("cell", "week", "expected"),
    [
        # nothing before the first week: zeros, a rate of 0 (not 0/0), one week "since" (H + 1)
        ("0_0", 0, [0, 0, 0, 0.0, 0, 0, 1, 1, 1, 1, 0.0]),
        # A's week-0 burglary one week back; d3 decays it by one half-life
        ("0_0", 1, [1, 1, 1, 1.0, 0, 0, 1, 1, 1, 1, 0.5]),
        # last year (weeks -2..0) holds week 0; the theft of week 1 is the last event of `all`
        ("0_0", 2, [1, 2, 1, 0.5, 1, 1, 2, 2, 1, 1, 0.25]),
        # weeks -1..1 hold both of A's events; B's week-2 burglary is in A's 3x3 cells
        ("0_0", 3, [1, 2, 1, 1 / 3, 2, 1, 3, 1, 2, 1, 0.125 + 0.5]),
        # weeks 1..3 hold the theft only; every "since" reaches the cap of 3
        ("0_0", 5, [1, 2, 1, 0.2, 1, 0, 3, 3, 3, 3, 2**-5 + 2**-3]),
        # weeks 2..4: nothing in A (B's burglary is a neighbour's, not A's)
        ("0_0", 6, [1, 2, 1, 1 / 6, 0, 0, 3, 3, 3, 3, 2**-6 + 2**-4]),
        # B has no event of its own before week 2, but A's week-0 burglary is around it
        ("1_0", 1, [0, 0, 0, 0.0, 0, 0, 2, 1, 2, 1, 0.5]),
        ("1_0", 3, [1, 1, 1, 1 / 3, 0, 0, 1, 1, 1, 1, 0.125 + 0.5]),
        # a quiet cell: H + 1 weeks "since", then the cap
        ("5_5", 1, [0, 0, 0, 0.0, 0, 0, 2, 2, 2, 2, 0.0]),
        ("5_5", 4, [0, 0, 0, 0.0, 0, 0, 3, 3, 3, 3, 0.0]),
    ],
)
def test_long_run_and_near_repeat_values_by_hand(long_panel, cell, week, expected):
    assert [long_panel[(cell, week)][c] for c in LONG_COLUMNS] == pytest.approx(expected, abs=1e-12)


def _gauss(sigma: float, radius: int) -> dict[int, float]:
    """The reference 1-D kernel on 150 m cells: normalised Gaussian weights up to `radius` cells."""
    raw = {d: math.exp(-((d * 150.0) ** 2) / (2 * sigma**2)) for d in range(-radius, radius + 1)}
    return {d: v / sum(raw.values()) for d, v in raw.items()}


def test_windows_equal_plain_sums_over_the_weeks_before_on_random_data(spark):
    """Every window family of LONG against a reference computed here in Python from the events."""
    rnd = random.Random(11)
    weeks, n = 10, 6
    raw = [
        (rnd.choice(["burglary", "theft"]), rnd.randrange(weeks), rnd.randrange(n), rnd.randrange(n))
        for _ in range(120)
    ]
    rows = [("police", c, _at(w, 2), x * 150.0 + 5, y * 150.0 + 5, "reported", False) for c, w, x, y in raw]
    built = build_panel(
        _events(spark, rows),
        _cells(spark, [(ix, iy) for ix in range(n) for iy in range(n)]),
        LONG,
        first_week=I0,
        last_week=I0 + weeks - 1,
        data_end_week=I0 + weeks - 1,
        history_start_week=I0,
    )
    plan = built._jdf.queryExecution().executedPlan().toString()
    assert "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan
    got = {(r["ix"], r["iy"], r["week_idx"] - I0): r.asDict() for r in built.collect()}
    b, everything = {"burglary"}, {"burglary", "theft"}
    g150, g300 = _gauss(150.0, 2), _gauss(300.0, 4)

    def hits(cats, ix, iy, around):
        """(week, dx, dy) of the events of `cats` within `around` cells of (ix, iy)."""
        near = [(w, x - ix, y - iy) for c, w, x, y in raw if c in cats]
        return [(w, dx, dy) for w, dx, dy in near if abs(dx) <= around and abs(dy) <= around]

    def count(cats, ix, iy, lo, hi, around=0):
        return float(sum(lo <= w <= hi for w, _, _ in hits(cats, ix, iy, around)))

    def since(cats, ix, iy, t, around):
        last = [w for w, _, _ in hits(cats, ix, iy, around) if w < t]
        return float(min(t - max(last) if last else t + 1, 5))

    def smoothed(cats, ix, iy, lo, t, g):
        mass = sum(g[dx] * g[dy] for w, dx, dy in hits(cats, ix, iy, max(g)) if lo <= w < t)
        return mass / max(min(t - lo, t), 1)

    for (ix, iy, t), row in got.items():
        want = {
            "n_all_w4": count(everything, ix, iy, t - 4, t - 1),
            "n3_all_w1": count(everything, ix, iy, t - 1, t - 1, around=1),
            "n5_burglary_w1": count(b, ix, iy, t - 1, t - 1, around=2),
            "hist_burglary_w2": count(b, ix, iy, t - 2, t - 1),
            "n_all_all": count(everything, ix, iy, 0, t - 1),
            "hist_burglary_all": count(b, ix, iy, 0, t - 1),
            "histr_burglary_all": count(b, ix, iy, 0, t - 1) / max(t, 1),
            "ly_all": count(everything, ix, iy, t - 4, t - 2),
            "histly_burglary": count(b, ix, iy, t - 4, t - 2),
            "wsl_burglary": since(b, ix, iy, t, 0),
            "wsl3_burglary": since(b, ix, iy, t, 1),
            "wsl_all": since(everything, ix, iy, t, 0),
            "wsl3_all": since(everything, ix, iy, t, 1),
            "d3_burglary_hl2": sum(2 ** (-(t - w) / 2) for w, _, _ in hits(b, ix, iy, 1) if w < t),
            "k_all_b150_w2": smoothed(everything, ix, iy, t - 2, t, g150),
            "k_all_b300_all": smoothed(everything, ix, iy, 0, t, g300),
            "khist_burglary_b300_w2": smoothed(b, ix, iy, t - 2, t, g300),
            "khist_burglary_b150_all": smoothed(b, ix, iy, 0, t, g150),
        }
        assert {k: row[k] for k in want} == pytest.approx(want, abs=1e-9), (ix, iy, t)


def test_the_panel_from_the_counts_of_expired_events_is_the_panel_from_the_events(spark):
    """Retention replaces the events before its limit (mid-week here) by their `event_counts`:
    the panel of the events left and those counts equals the panel of every event, to the bit,
    with the long-run and near-repeat families, discovered events down-weighted and a target
    without its domestic events. (The kernel-smoothed family reads the same weekly counts, but
    its sums of Gaussian weights may differ in their last bit when Spark adds them up in another
    order: tests/jobs/test_retention.py compares it to 1e-12.)"""
    rng = random.Random(29)
    categories = ["burglary", "theft", "sanitation_complaint"]
    rows = [
        (
            "sr" if category == "sanitation_complaint" else "police",
            category,
            _at(rng.randrange(12), rng.randrange(7), rng.randrange(24)),
            rng.uniform(0, 600),
            rng.uniform(0, 600),
            rng.choice(["reported", "discovered"]),
            rng.choice([True, False, None]),
        )
        for category in (rng.choice(categories) for _ in range(200))
    ]
    events = _events(spark, rows)
    spec = PanelSpec(
        **{
            **LONG.__dict__,
            "kde": None,
            "discovered_weight": 0.5,
            "targets": {"burglary": TargetConfig(categories=["burglary"], exclude_domestic=True)},
        }
    )
    cells = _cells(spark, [(ix, iy) for ix in range(4) for iy in range(4)])
    weeks = {"first_week": I0, "last_week": I0 + 11, "data_end_week": I0 + 10, "history_start_week": I0}
    limit = F.lit(_at(5, 2, 7))
    expired = event_counts(events.where(F.col("occurred_at") < limit), spec.grid, spec.timezone)
    assert expired.agg(F.max("n_events")).first()[0] > 1  # counts, not events one by one
    left = build_panel(events.where(F.col("occurred_at") >= limit), cells, spec, expired=expired, **weeks)
    every = build_panel(events, cells, spec, **weeks)
    got, want = (p.toPandas().sort_values(["cell_id", "week"]).reset_index(drop=True) for p in (left, every))
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_kernel_taps_are_normalised_gaussians_cut_at_each_bandwidths_radius():
    taps = kernel_taps(150.0, KdeConfig(bandwidths_m=[300.0, 150.0], truncate_sigmas=2.0))
    e1, e2 = math.exp(-0.5), math.exp(-2.0)  # a Gaussian at 1 and 2 sigmas
    z150 = 1 + 2 * e1 + 2 * e2
    assert [t[0] for t in taps] == list(range(-4, 5))  # the widest radius: 2 sigmas of 300 m
    assert [t[1] for t in taps] == pytest.approx(
        [0, 0, e2 / z150, e1 / z150, 1 / z150, e1 / z150, e2 / z150, 0, 0]
    )
    g300 = [math.exp(-(d**2) / 8) for d in range(-4, 5)]  # 300 m = 2 cells
    assert [t[2] for t in taps] == pytest.approx([v / sum(g300) for v in g300])
    # the centre's 2-D weight, w(0)^2: 0.162 at 150 m, 0.042 at 300 m
    assert (round(taps[4][1] ** 2, 3), round(taps[4][2] ** 2, 3)) == (0.162, 0.042)


def test_kernel_smoothed_values_by_hand(spark):
    """A burglary in A (0, 0) in week 0 and a theft just west of the study area (-1, 0) in
    week 1; 150 m kernel (taps w0, w1, w2 at 0, 1, 2 cells), rates over 2 weeks and all history."""
    w0, w1, w2 = (
        v / (1 + 2 * math.exp(-0.5) + 2 * math.exp(-2.0)) for v in (1, math.exp(-0.5), math.exp(-2.0))
    )
    spec = PanelSpec(
        **{**LONG.__dict__, "kde": KdeConfig(bandwidths_m=[150.0], groups=["all"], windows_weeks=[2])}
    )
    events = _events(
        spark,
        [
            ("police", "burglary", _at(0), 10.0, 10.0, "reported", False),
            ("police", "theft", _at(1), -10.0, 10.0, "reported", False),
        ],
    )
    rows = _rows_by_cell_week(spark, events, [(0, 0), (1, 0), (3, 0)], spec, last=3)
    columns = ["k_all_b150_w2", "k_all_b150_all", "khist_burglary_b150_w2", "khist_burglary_b150_all"]
    got = {key: [row[c] for c in columns] for key, row in rows.items()}
    a, east = w0 * w0, w1 * w0  # the burglary's mass in A and in the cell east of it
    west = w1 * w0  # the theft's mass in A, one cell east of it
    expected = {
        ("0_0", 0): [0, 0, 0, 0],
        ("0_0", 1): [a, a, a, a],  # one week of history: the rates are over one week
        ("0_0", 2): [(a + west) / 2, (a + west) / 2, a / 2, a / 2],
        ("0_0", 3): [west / 2, (a + west) / 3, 0, a / 3],
        ("1_0", 2): [(east + w2 * w0) / 2, (east + w2 * w0) / 2, east / 2, east / 2],
        ("3_0", 3): [0, 0, 0, 0],  # 3 and 4 cells away: beyond 2 sigmas
    }
    flat = [(k, i, v) for k, vs in expected.items() for i, v in enumerate(vs)]
    assert {(k, i): got[k][i] for k, i, _ in flat} == pytest.approx(
        {(k, i): v for k, i, v in flat}, abs=1e-12
    )


def test_sunday_night_local_time_belongs_to_the_local_week(spark):
    """23:30 on Sunday in Chicago is Monday 05:30 UTC: the event belongs to the local week
    (week 0), not to the UTC week (week 1)."""
    spec = PanelSpec(**{**SPEC.__dict__, "timezone": "America/Chicago"})
    sunday_night_utc = datetime(2014, 1, 13, 5, 30)  # Sunday 2014-01-12 23:30 CST
    events = _events(
        spark,
        [
            ("police", "burglary", sunday_night_utc, 10.0, 10.0, "reported", False),
            ("police", "theft", _at(2), 10.0, 10.0, "reported", False),
        ],
    )
    built = _one_cell(spark, events, spec, last=2, data_end=2)
    labels = {r["week_idx"] - I0: r["label_burglary_h1"] for r in built.collect()}
    assert labels == {0: 1.0, 1: 0.0, 2: 0.0}


def test_discovered_events_are_down_weighted_in_features_not_in_labels(spark):
    spec = PanelSpec(**{**SPEC.__dict__, "discovered_weight": 0.0})
    events = _events(spark, [("police", "burglary", _at(0), 10.0, 10.0, "discovered", False)])
    built = _one_cell(spark, events, spec, last=1, data_end=1)
    rows = {r["week_idx"] - I0: (r["n_burglary_w1"], r["label_burglary_h1"]) for r in built.collect()}
    assert rows == {0: (0.0, 1.0), 1: (0.0, 0.0)}


def test_domestic_events_are_left_out_of_a_target_that_says_so(spark):
    spec = PanelSpec(
        **{
            **SPEC.__dict__,
            "targets": {"robbery": TargetConfig(categories=["burglary"], exclude_domestic=True)},
        }
    )
    events = _events(
        spark,
        [
            ("police", "burglary", _at(0), 10.0, 10.0, "reported", True),
            ("police", "burglary", _at(0), 10.0, 10.0, "reported", False),
        ],
    )
    built = _one_cell(spark, events, spec, last=0, data_end=0)
    assert built.first()["label_robbery_h1"] == 1.0


def test_weather_is_last_weeks_and_only_for_full_weeks(spark):
    days = [(W0 + timedelta(days=d), 10.0 + d, 0.5) for d in range(7)]  # week 0 complete
    days += [(W0 + timedelta(days=7 + d), 0.0, 1.0) for d in range(3)]  # week 1: 3 days only
    weather = spark.createDataFrame(days, "date date, t_max double, rain_mm_h double")
    events = _events(spark, [("police", "burglary", _at(0), 10.0, 10.0, "reported", False)])
    built = _one_cell(spark, events, SPEC, last=2, data_end=2, weather=weather)
    got = {
        r["week_idx"] - I0: (r["weather_prev_temp_max_c"], r["weather_prev_precip_mm"])
        for r in built.collect()
    }
    assert got == {0: (None, None), 1: (13.0, 7 * 0.5 * 24), 2: (None, None)}


def test_weekly_series_aggregates_each_measure_as_configured(spark):
    """min and max as well as mean and sum; a measure's scale applies to each day first."""
    days = spark.createDataFrame(
        [(W0 + timedelta(days=d), float(d), 2.0 * d) for d in range(7)], "date date, a double, b double"
    )
    measures = {
        "lo": WeeklyMeasure(measure="a", aggregate="min"),
        "hi": WeeklyMeasure(measure="b", aggregate="max", scale=0.5),
        "avg": WeeklyMeasure(measure="a", aggregate="mean", scale=10),
    }
    assert [tuple(r) for r in weekly_series(days, measures).collect()] == [(I0, 0.0, 6.0, 30.0)]


def test_without_a_weather_role_the_panel_has_no_weather_columns(spark):
    spec = PanelSpec(**{**SPEC.__dict__, "weather": {}})
    events = _events(spark, [("police", "burglary", _at(0), 10.0, 10.0, "reported", False)])
    built = _one_cell(spark, events, spec, last=1, data_end=1)
    assert not [c for c in built.columns if c.startswith("weather")]
    check_schema(built, spec)


def test_holiday_weeks_and_week_of_year(spark):
    spec = PanelSpec(**{**SPEC.__dict__, "calendar": CalendarConfig(country="US")})  # MLK day, week 2
    events = _events(spark, [("police", "burglary", _at(0), 10.0, 10.0, "reported", False)])
    built = _one_cell(spark, events, spec, last=2, data_end=0)
    got = {r["week_idx"] - I0: (r["holiday_week"], r["week_of_year"]) for r in built.collect()}
    assert got == {0: (False, 2), 1: (False, 3), 2: (True, 4)}
    no_calendar = _one_cell(spark, events, SPEC, last=2, data_end=0)
    assert {r["holiday_week"] for r in no_calendar.collect()} == {False}


def test_holiday_weeks_after_2015_come_from_the_calendar(spark):
    """The weeks of Thanksgiving (Nov 24) and Christmas 2016 are holiday weeks; the weeks
    between are not. A subdivision adds its own days, and extra dates are holidays too."""
    thanksgiving = date(2016, 11, 21)  # the Monday of its week
    first = index_of(thanksgiving)
    events = _events(
        spark, [("police", "burglary", datetime(2016, 11, 22, 12), 10.0, 10.0, "reported", False)]
    )

    def weeks(calendar: CalendarConfig) -> dict[date, bool]:
        spec = PanelSpec(**{**SPEC.__dict__, "calendar": calendar})
        built = build_panel(
            events,
            _cells(spark, [(0, 0)]),
            spec,
            first_week=first,
            last_week=first + 5,
            data_end_week=first,
            history_start_week=first,
        )
        return {r["week"]: r["holiday_week"] for r in built.collect()}

    monday = [thanksgiving + timedelta(weeks=k) for k in range(6)]
    assert weeks(CalendarConfig(country="US")) == dict(
        zip(monday, [True, False, False, False, True, True], strict=True)
    )
    # 2016-12-26 is Christmas observed, 2017-01-02 New Year observed
    local = CalendarConfig(country="US", extra_dates=[date(2016, 12, 7)])
    assert weeks(local)[monday[2]] is True
    assert holiday_dates(
        CalendarConfig(country="US", subdivision="IL"), date(2016, 2, 8), date(2016, 3, 13)
    ) == [
        date(2016, 2, 12),  # Lincoln's Birthday (Illinois)
        date(2016, 2, 15),  # Washington's Birthday (federal)
        date(2016, 3, 7),  # Casimir Pulaski Day (Illinois)
    ]
    assert date(2016, 4, 27) in holiday_dates(
        CalendarConfig(country="NL"), date(2016, 1, 1), date(2016, 12, 31)
    )


def test_no_leakage_features_equal_on_data_truncated_at_week_start(spark):
    """For several t, features of week t from the full data equal those from data cut at t's start."""
    rnd = random.Random(7)
    rows = []
    for _ in range(300):
        week, day, hour = rnd.randrange(12), rnd.randrange(7), rnd.randrange(24)
        x, y = rnd.uniform(0, 900), rnd.uniform(0, 900)
        partner, category = rnd.choice(
            [("police", "burglary"), ("police", "theft"), ("sr", "sanitation_complaint")]
        )
        rows.append(
            (partner, category, _at(week, day, hour), x, y, rnd.choice(["reported", "discovered"]), False)
        )
    events = _events(spark, rows)
    cells = _cells(spark, [(ix, iy) for ix in range(6) for iy in range(6)])
    features = [
        "cell_id",
        *[c for c in feature_columns(LONG) if c not in ("weather_prev_temp_max_c", "weather_prev_precip_mm")],
    ]
    # every family is checked: SPEC's columns and each long-run and near-repeat one
    assert set(feature_columns(SPEC)) < set(features + ["weather_prev_temp_max_c", "weather_prev_precip_mm"])
    families = ("n_all_all", "hist_burglary_all", "histr_burglary_all", "ly_all", "histly_burglary")
    families += ("wsl_burglary", "wsl3_burglary", "wsl_all", "wsl3_all", "d3_burglary_hl2", "n_all_w4")
    families += ("k_all_b150_w2", "k_all_b300_all", "khist_burglary_b150_w2", "khist_burglary_b300_all")
    assert set(families) < set(features)
    from pyspark.testing import assertDataFrameEqual

    def panel(data, first: int, last: int):
        return build_panel(
            data,
            cells,
            LONG,
            first_week=I0 + first,
            last_week=I0 + last,
            data_end_week=I0 + 11,
            history_start_week=I0,
        ).select("week", *features)

    every_week = panel(events, 1, 11).cache()  # from the full data, all four weeks in one build
    try:
        for t in (1, 4, 7, 11):
            start = datetime.combine(W0 + timedelta(weeks=t), datetime.min.time())
            full = every_week.where(F.col("week") == F.lit(W0 + timedelta(weeks=t)))
            cut = panel(events.where(F.col("occurred_at") < F.lit(start)), t, t)
            assertDataFrameEqual(full, cut)
            assert full.where(F.col("n_all_w1") > 0).count() > 0  # the week really has history
    finally:
        every_week.unpersist()


def test_schema_check_names_missing_and_unexpected_columns(spark, panel):
    _, built = panel
    with pytest.raises(
        ValueError, match=r"missing \[\('n_all_w1', 'double'\)\], unexpected \[\('extra', 'int'\)\]"
    ):
        check_schema(built.drop("n_all_w1").withColumn("extra", F.lit(1)), SPEC)
    assert [f.name for f in panel_schema(SPEC).fields][:6] == [
        "cell_id",
        "ix",
        "iy",
        "area_code",
        "week",
        "week_idx",
    ]


def test_cells_inside_polygons_include_quiet_cells_and_respect_holes():
    # a 1 km square around a point in Chicago with a hole in the middle, in lon/lat
    import json

    from riskradar.crs import transform_array

    x0, y0 = 447000.0, 4637000.0

    def ring(a, b, c, d):
        xs = [a, c, c, a, a]
        ys = [b, b, d, d, b]
        lon, lat = transform_array(xs, ys, "EPSG:26916", "EPSG:4326")
        return [[float(o), float(t)] for o, t in zip(lon, lat, strict=True)]

    square = {
        "type": "Polygon",
        "coordinates": [ring(x0, y0, x0 + 1500, y0 + 1500), ring(x0 + 600, y0 + 600, x0 + 900, y0 + 900)],
    }
    cells = cells_in_areas([(7, json.dumps(square))], Grid(150.0, "EPSG:26916"))
    assert len(cells) == 100 - 4  # 10 x 10 cells of 150 m, minus the 2 x 2 cells of the hole
    assert {c[2] for c in cells} == {7}
    assert (int(x0 // 150) + 4, int(y0 // 150) + 4, 7) not in cells


def test_cell_centroid_and_polygon_are_derivable(spark):
    from pyproj import Transformer

    from features.grid import with_geometry

    cells = spark.createDataFrame([(2980, 30913)], "ix int, iy int")
    row = with_geometry(cells, Grid(150.0, "EPSG:26916")).first()
    lon, lat = Transformer.from_crs("EPSG:26916", "EPSG:4326", always_xy=True).transform(
        2980.5 * 150, 30913.5 * 150
    )
    assert row["lon"] == pytest.approx(lon, abs=1e-9) and row["lat"] == pytest.approx(lat, abs=1e-9)
    corners = row["polygon_wkt"].removeprefix("POLYGON((").removesuffix("))").split(", ")
    assert len(corners) == 5 and corners[0] == corners[-1]
    x0, y0 = Transformer.from_crs("EPSG:26916", "EPSG:4326", always_xy=True).transform(
        2980 * 150, 30913 * 150
    )
    assert corners[0] == f"{x0:.7f} {y0:.7f}"


def test_panel_plan_has_no_python_udf(panel):
    _, built = panel
    plan = built._jdf.queryExecution().executedPlan().toString()
    assert "Window" in plan  # the plan is the real one
    assert "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan


def test_every_feature_is_named_together_with_how_analysts_read_it():
    features = panel_features(SPEC)
    assert [f.name for f in features] == feature_columns(SPEC)
    described = {f.name: (f.description, f.counts_events) for f in features}
    assert described == {
        "history_weeks": ("weeks of history", False),
        "week_of_year": ("week of the year", False),
        "holiday_week": ("holiday week", False),
        "n_burglary_w1": ("burglary incidents in the cell, past 1 weeks", True),
        "n_burglary_w2": ("burglary incidents in the cell, past 2 weeks", True),
        "d_burglary_hl1": ("burglary incidents in the cell, recent-weighted (half-life 1 weeks)", True),
        "n3_burglary_w1": ("burglary incidents in the 3x3 cells around, past 1 weeks", True),
        "n5_burglary_w1": ("burglary incidents in the 5x5 cells around, past 1 weeks", True),
        "n_all_w1": ("all incidents in the cell, past 1 weeks", True),
        "n_all_w2": ("all incidents in the cell, past 2 weeks", True),
        "d_all_hl1": ("all incidents in the cell, recent-weighted (half-life 1 weeks)", True),
        "n3_all_w1": ("all incidents in the 3x3 cells around, past 1 weeks", True),
        "n5_all_w1": ("all incidents in the 5x5 cells around, past 1 weeks", True),
        "s_sr_w1": ("sr reports in the cell, past 1 weeks", True),
        "s_sr_w2": ("sr reports in the cell, past 2 weeks", True),
        "hist_burglary_w1": ("burglary incidents in the cell, past 1 weeks", True),
        "hist_burglary_w2": ("burglary incidents in the cell, past 2 weeks", True),
        "histd_burglary_hl1": ("burglary incidents in the cell, recent-weighted (half-life 1 weeks)", True),
        "weather_prev_temp_max_c": ("last week's mean of the daily t max", False),
        "weather_prev_precip_mm": ("last week's sum of the daily rain mm h", False),
    }
    assert label_columns(SPEC) == ["label_burglary_h1"]


def test_long_run_and_near_repeat_features_are_named_with_how_analysts_read_them():
    old = {f.name for f in panel_features(SPEC)} | {
        "n_burglary_w4",
        "n_all_w4",
        "hist_burglary_w4",
        "s_sr_w4",
    }
    new = {f.name: (f.description, f.counts_events) for f in panel_features(LONG) if f.name not in old}
    assert new == {
        "n_burglary_all": ("burglary incidents in the cell, all history to date", True),
        "ly_burglary": (
            "burglary incidents in the cell, weeks 2 to 4 before (the same weeks last year)",
            True,
        ),
        "n_all_all": ("all incidents in the cell, all history to date", True),
        "ly_all": ("all incidents in the cell, weeks 2 to 4 before (the same weeks last year)", True),
        "wsl_all": ("weeks since the last all incident in the cell (at most 5)", True),
        "wsl3_all": ("weeks since the last all incident in the 3x3 cells around (at most 5)", True),
        "hist_burglary_all": ("burglary incidents in the cell, all history to date", True),
        "histr_burglary_all": ("burglary incidents in the cell per week, over all history to date", True),
        "histly_burglary": (
            "burglary incidents in the cell, weeks 2 to 4 before (the same weeks last year)",
            True,
        ),
        "wsl_burglary": ("weeks since the last burglary incident in the cell (at most 5)", True),
        "wsl3_burglary": ("weeks since the last burglary incident in the 3x3 cells around (at most 5)", True),
        "d3_burglary_hl2": (
            "burglary incidents in the 3x3 cells around, recent-weighted (half-life 2 weeks)",
            True,
        ),
        **{
            f"{prefix}_{name}_b{sigma}_{span}": (
                f"{name} incidents around the cell ({sigma} m kernel), weekly rate over {over}",
                True,
            )
            for prefix, name in (("k", "all"), ("khist", "burglary"))
            for sigma in (150, 300)
            for span, over in (("w2", "the past 2 weeks"), ("all", "all history to date"))
        },
    }
    # each group's and each target's columns stay together, the new ones after the old
    assert feature_columns(LONG)[:12] == [
        "history_weeks",
        "week_of_year",
        "holiday_week",
        "n_burglary_w1",
        "n_burglary_w2",
        "n_burglary_w4",
        "d_burglary_hl1",
        "n3_burglary_w1",
        "n5_burglary_w1",
        "n_burglary_all",
        "ly_burglary",
        "n_all_w1",
    ]
    one_week = PanelSpec(**{**LONG.__dict__, "last_year": LastYearConfig(lag_weeks=52, half_width_weeks=0)})
    assert {f.name: f.description for f in panel_features(one_week)}["ly_all"] == (
        "all incidents in the cell, week 52 before (the same weeks last year)"
    )


def test_each_target_learns_from_the_shared_features_and_only_its_own_history():
    two = PanelSpec(
        **{
            **LONG.__dict__,
            "windows": [1, 104],
            "half_lives": [1.0, 13.0],
            "weather": {},
            "targets": {
                "burglary": TargetConfig(categories=["burglary"]),
                "theft": TargetConfig(categories=["theft"]),
            },
        }
    )
    everything = feature_columns(two)
    burglary = target_features(two, "burglary")
    assert set(burglary) == {c for c in everything if "theft" not in c}
    assert burglary == [c for c in everything if c in set(burglary)]  # in panel order
    assert "hist_theft_w1" in target_features(two, "theft") and "hist_burglary_w1" not in target_features(
        two, "theft"
    )


@pytest.mark.parametrize(
    ("family", "dropped"),
    [
        (
            "long_run",
            {
                "n_burglary_w104",
                "d_burglary_hl13",
                "n_burglary_all",
                "ly_burglary",
                "n_all_w104",
                "d_all_hl13",
                "n_all_all",
                "ly_all",
                "s_sr_w104",
                "hist_burglary_w104",
                "histd_burglary_hl13",
                "hist_burglary_all",
                "histr_burglary_all",
                "histly_burglary",
                "k_all_b150_all",
                "k_all_b300_all",
                "khist_burglary_b150_all",
                "khist_burglary_b300_all",
            },
        ),
        (
            "smoothing",
            {f"{p}_b{s}_{w}" for p in ("k_all", "khist_burglary") for s in (150, 300) for w in ("w2", "all")},
        ),
        ("near_repeat", {"wsl_all", "wsl3_all", "wsl_burglary", "wsl3_burglary", "d3_burglary_hl2"}),
    ],
)
def test_an_ablation_leaves_out_exactly_one_family(family, dropped):
    spec = PanelSpec(**{**LONG.__dict__, "windows": [1, 104], "half_lives": [1.0, 13.0], "weather": {}})
    full = target_features(spec, "burglary")
    assert set(full) - set(target_features(spec, "burglary", (family,))) == dropped


def test_without_pooling_a_target_keeps_only_its_own_history_calendar_and_covariates():
    spec = PanelSpec(**{**LONG.__dict__, "weather": {}, "indicators": ["poverty_rate"]})
    kept = target_features(spec, "burglary", ("pooling",))
    assert all(c.startswith(("hist", "khist_burglary", "wsl", "d3_burglary")) for c in kept[3:-1])
    assert kept[:3] == ["history_weeks", "week_of_year", "holiday_week"] and kept[-1] == "poverty_rate"
    assert not any(
        c.startswith(("n_", "n3_", "n5_", "d_", "s_", "ly_", "k_"))
        or c.endswith("_all")
        and c.startswith("wsl")
        for c in kept
    )
    with pytest.raises(ValueError, match="unknown feature families"):
        target_features(spec, "burglary", ("kde",))
