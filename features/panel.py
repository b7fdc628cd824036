"""The cell x week panel: features and labels, point-in-time correct, native Spark only.

Contract. Input `events` has the silver.events columns (partner, category, occurred_at UTC,
x, y in the project CRS, origin, domestic). Output has one row per study cell and per week
in [first_week, last_week] (weeks start Monday 00:00 in the city's time zone), zero weeks
included, with the columns of `panel_schema(spec)`:

- `n_<group>_w<k>`: events of a category group in the k weeks before the week starts;
- `d_<group>_hl<h>`: the same counts decayed with half-life h weeks over all earlier weeks;
- `n3_<group>_w<k>`, `n5_<group>_w<k>`: those counts summed over the 3x3 / 5x5 cells around;
- `s_<feed>_w<k>`: other partners' signals (e.g. 311 complaints), same windows;
- `hist_<target>_w<k>`, `histd_<target>_hl<h>`: the target's own past counts (what the
  naive baselines predict from);
- long run (switched on in the config): `n_<group>_all`, `hist_<target>_all` (all history to
  date), `histr_<target>_all` (that count per week of history); `ly_<group>`,
  `histly_<target>` (the same weeks last year: t-lag-w .. t-lag+w);
- smoothing (`kde`): `k_<group>_b<sigma>_w<k>` / `_all`, `khist_<target>_b<sigma>_w<k>` /
  `_all`: the weekly counts spread over the cells around with a Gaussian kernel (sigma in
  metres, weights summing to 1), as weekly rates over the k weeks before (or all history);
- near repeat (`near_repeat`): `wsl_<target>`, `wsl3_<target>` (weeks since the last event
  in the cell / its 3x3 cells, capped; also for the listed groups), `d3_<target>_hl<h>` (the
  target's 3x3 counts decayed);
- area covariates: the indicators of the area holding the cell (role `area_indicators`);
- `weather_prev_<name>`: last week's value of each weekly measure of the series with the role
  `weather` (weeks the series covers fully only);
- calendar: week of the year, and whether the week holds a public holiday of the configured
  country (and subdivision), from the `holidays` package;
- `label_<target>_h<h>`: target events in the h weeks from the week's start (null where the
  data end before the horizon does).

A feature of week t only uses events that occurred before week t starts: every window ends
one week before t; only labels look at week t and later. Windowed counts come from one running
sum per series over the weeks before t, cum(t) = sum_{s<t} c(s): the count of the k weeks
before t is cum(t) - cum(t-k), cum(t-k) being the row k places back. That needs every cell to
have one row per week from the history's start, which `_dense_counts` builds (the cells x the
consecutive weeks); a row lag is then a week lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.grid import Grid, cell_id
from riskradar.catalog import (
    CALENDAR_FEATURES,
    WEATHER_PREFIX,
    Feature,
    all_history_count,
    area_indicator,
    decayed_count,
    decayed_target_around,
    decayed_target_history,
    event_count,
    label_column,
    last_year_count,
    last_year_target_history,
    signal_count,
    smoothed_count,
    smoothed_target_history,
    target_history,
    target_history_all,
    target_history_rate,
    weather_feature,
    weeks_since_last,
)
from riskradar.config import (
    CalendarConfig,
    KdeConfig,
    LastYearConfig,
    NearRepeatConfig,
    Settings,
    TargetConfig,
    WeeklyMeasure,
    kernel_radius,
)

EPOCH_MONDAY = date(1970, 1, 5)
NEIGHBOURHOODS = (3, 5)  # the spatial lags: counts over the 3x3 and 5x5 cells around
_AGGREGATES = {"mean": F.avg, "sum": F.sum, "min": F.min, "max": F.max}
_MAX_DECAY_SPAN = 900  # weeks / half-life: 2**900 still fits a double


@dataclass(frozen=True)
class PanelSpec:
    timezone: str
    grid: Grid
    crime_feeds: list[str]
    groups: dict[str, list[str]]
    windows: list[int]
    half_lives: list[float]
    spatial_windows: list[int]
    horizons: list[int]
    targets: dict[str, TargetConfig]
    signals: dict[str, list[str]] = field(default_factory=dict)
    discovered_weight: float = 1.0
    calendar: CalendarConfig | None = None
    indicators: list[str] = field(default_factory=list)
    # feature name (after WEATHER_PREFIX) -> the daily measure and how a week aggregates it
    weather: dict[str, WeeklyMeasure] = field(default_factory=dict)
    all_history: bool = False
    last_year: LastYearConfig | None = None
    near_repeat: NearRepeatConfig | None = None
    kde: KdeConfig | None = None

    @classmethod
    def from_settings(cls, settings: Settings, indicators: list[str]) -> PanelSpec:
        """The panel the config describes; `indicators`: the area covariates there is data for."""
        f = settings.features
        assert f is not None
        weather = settings.roles.weather
        return cls(
            timezone=settings.timezone,
            grid=Grid(settings.grid.cell_size_m, settings.project_crs),
            crime_feeds=f.crime_feeds,
            groups=f.category_groups,
            windows=f.windows_weeks,
            half_lives=f.decay_half_lives_weeks,
            spatial_windows=f.spatial_lag_windows_weeks,
            horizons=f.horizons_weeks,
            targets=settings.targets,
            signals=f.signals,
            discovered_weight=f.discovered_weight,
            calendar=f.calendar,
            indicators=indicators,
            weather=dict(weather.weekly) if weather else {},
            all_history=f.all_history,
            last_year=f.last_year,
            near_repeat=f.near_repeat,
            kde=f.kde,
        )


def role_indicators(settings: Settings) -> list[str]:
    """The indicators of the `area_indicators` role that become features, in order (none
    without the role)."""
    role = settings.roles.area_indicators
    if role is None:
        return []
    areas = settings.contract(role.feed).areas
    assert areas is not None  # the config checked the feed's kind
    return list(role.indicators) if role.indicators is not None else [m.name for m in areas.indicators]


def week_start(ts_utc: Column, timezone: str) -> Column:
    """The local Monday (a date) of the week holding a UTC timestamp."""
    return F.to_date(F.date_trunc("week", F.from_utc_timestamp(ts_utc, timezone)))


def week_index(week: Column) -> Column:
    """Weeks since Monday 1970-01-05: consecutive integers for consecutive weeks."""
    return F.floor(F.datediff(week, F.lit(EPOCH_MONDAY)) / 7).cast("int")


def week_of(index: int) -> date:
    return EPOCH_MONDAY + timedelta(weeks=index)


def index_of(week: date) -> int:
    return (week - EPOCH_MONDAY).days // 7


def _weather_description(m: WeeklyMeasure) -> str:
    return m.description or f"{m.aggregate} of the daily {m.measure.replace('_', ' ')}"


# The feature families an ablation leaves out, one at a time. A feature may be in several
# (the all-crime count over 104 weeks is long-run and pooled) or in none (the recent counts of
# the target itself, calendar, covariates).
LONG_RUN, SMOOTHING, POOLING, NEAR_REPEAT = "long_run", "smoothing", "pooling", "near_repeat"
FAMILIES = (LONG_RUN, SMOOTHING, POOLING, NEAR_REPEAT)
LONG_RUN_WEEKS = 52  # a window longer than this, or a half-life at least LONG_RUN_HALF_LIFE
LONG_RUN_HALF_LIFE = 13


@dataclass(frozen=True)
class PanelFeature:
    """A feature of the panel, the target whose own history it is (None: every target's
    input) and the families it belongs to."""

    feature: Feature
    target: str | None = None
    families: frozenset[str] = frozenset()


def _tagged(features: list[Feature], target: str | None, *families: str) -> list[PanelFeature]:
    return [PanelFeature(f, target, frozenset(families)) for f in features]


def _long(window: int | None = None, half_life: float | None = None) -> tuple[str, ...]:
    if window is not None:
        return (LONG_RUN,) if window > LONG_RUN_WEEKS else ()
    assert half_life is not None
    return (LONG_RUN,) if half_life >= LONG_RUN_HALF_LIFE else ()


def tagged_features(spec: PanelSpec) -> list[PanelFeature]:
    """The panel's features in column order, each with its owner and families."""
    out = _tagged(list(CALENDAR_FEATURES), None)
    ly, near = spec.last_year, spec.near_repeat
    for g in spec.groups:
        out += [x for k in spec.windows for x in _tagged([event_count(g, k)], None, POOLING, *_long(k))]
        out += [
            x for h in spec.half_lives for x in _tagged([decayed_count(g, h)], None, POOLING, *_long(None, h))
        ]
        around = [event_count(g, k, around=r) for r in NEIGHBOURHOODS for k in spec.spatial_windows]
        out += _tagged(around, None, POOLING)
        out += _tagged([all_history_count(g)] if spec.all_history else [], None, POOLING, LONG_RUN)
        out += _tagged(
            [last_year_count(g, ly.lag_weeks, ly.half_width_weeks)] if ly else [], None, POOLING, LONG_RUN
        )
        if near and g in near.groups:
            out += _tagged(
                [weeks_since_last(g, near.max_weeks, around=r) for r in (1, 3)], None, POOLING, NEAR_REPEAT
            )
    for s in spec.signals:
        out += [x for k in spec.windows for x in _tagged([signal_count(s, k)], None, POOLING, *_long(k))]
    for t in spec.targets:  # each target's own history: what the baselines predict from
        out += [x for k in spec.windows for x in _tagged([target_history(t, k)], t, *_long(k))]
        out += [
            x for h in spec.half_lives for x in _tagged([decayed_target_history(t, h)], t, *_long(None, h))
        ]
        out += _tagged(
            [target_history_all(t), target_history_rate(t)] if spec.all_history else [], t, LONG_RUN
        )
        out += _tagged(
            [last_year_target_history(t, ly.lag_weeks, ly.half_width_weeks)] if ly else [], t, LONG_RUN
        )
        if near:
            out += _tagged([weeks_since_last(t, near.max_weeks, around=r) for r in (1, 3)], t, NEAR_REPEAT)
            out += _tagged([decayed_target_around(t, h) for h in near.half_lives_weeks], t, NEAR_REPEAT)
    out += _smoothed_features(spec)
    out += _tagged([area_indicator(name) for name in spec.indicators], None)
    out += _tagged([weather_feature(name, _weather_description(m)) for name, m in spec.weather.items()], None)
    return out


def panel_features(spec: PanelSpec) -> list[Feature]:
    """The panel's features in column order, each named (riskradar.catalog) together with how
    analysts read it and whether it counts events."""
    return [x.feature for x in tagged_features(spec)]


def target_features(spec: PanelSpec, target: str, without: tuple[str, ...] = ()) -> list[str]:
    """The columns a model of `target` learns from: every shared feature and the target's own
    history, not the other targets' (they hold nothing a pooled group count does not, and
    would only add columns); without the features of the families in `without` (ablation)."""
    unknown = sorted(set(without) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown feature families {unknown}; known: {list(FAMILIES)}")
    return [
        x.feature.name
        for x in tagged_features(spec)
        if x.target in (None, target) and not (x.families & set(without))
    ]


def _smoothed_features(spec: PanelSpec) -> list[PanelFeature]:
    """The kernel-smoothed surfaces: each smoothed group's, then each target's own."""
    kde = spec.kde
    if kde is None:
        return []
    weeks = [*kde.windows_weeks, None]
    out = [
        PanelFeature(smoothed_count(g, b, k), None, frozenset({SMOOTHING, POOLING, *_long(k or 10**6)}))
        for g in kde.groups
        for b in kde.bandwidths_m
        for k in weeks
    ]
    return out + [
        PanelFeature(smoothed_target_history(t, b, k), t, frozenset({SMOOTHING, *_long(k or 10**6)}))
        for t in spec.targets
        for b in kde.bandwidths_m
        for k in weeks
    ]


def feature_columns(spec: PanelSpec) -> list[str]:
    return [f.name for f in panel_features(spec)]


def label_columns(spec: PanelSpec) -> list[str]:
    return [label_column(t, h) for t in spec.targets for h in spec.horizons]


def panel_schema(spec: PanelSpec) -> T.StructType:
    """The declared output schema; the job checks the built panel against it."""
    fields = [
        T.StructField("cell_id", T.StringType(), False),
        T.StructField("ix", T.IntegerType(), False),
        T.StructField("iy", T.IntegerType(), False),
        T.StructField("area_code", T.StringType(), True),
        T.StructField("week", T.DateType(), False),
        T.StructField("week_idx", T.IntegerType(), False),
    ]
    int_features = {"history_weeks", "week_of_year"}
    for name in feature_columns(spec):
        if name in int_features:
            fields.append(T.StructField(name, T.IntegerType(), False))
        elif name == "holiday_week":
            fields.append(T.StructField(name, T.BooleanType(), False))
        else:
            fields.append(T.StructField(name, T.DoubleType(), True))
    fields += [T.StructField(c, T.DoubleType(), True) for c in label_columns(spec)]
    return T.StructType(fields)


# What the panel reads of an event: its week, cell, feed, category, origin and domestic flag.
EVENT_KEYS = ["partner", "category", "origin", "domestic"]
N_EVENTS = "n_events"


def event_counts(events: DataFrame, grid: Grid, timezone: str) -> DataFrame:
    """(week, ix, iy, partner, category, origin, domestic, n_events): events per local week
    (its Monday), cell, feed, category, origin and domestic flag. All that the panel reads of
    events, and nothing that points at one event: what retention keeps of the events it removes
    (silver.expired_counts), given to `build_panel` as `expired`. Input: silver.events columns."""
    return events.groupBy(
        week_start(F.col("occurred_at"), timezone).alias("week"),
        grid.ix(F.col("x")).alias("ix"),
        grid.iy(F.col("y")).alias("iy"),
        *EVENT_KEYS,
    ).agg(F.count(F.lit(1)).alias(N_EVENTS))


def count_basis(grid: Grid, timezone: str) -> dict[str, object]:
    """What `event_counts` depend on besides the events: the cells (size, CRS) and the zone
    whose Mondays start the weeks. Counts made on another basis cannot be read as this one's."""
    return {"cell_size_m": grid.cell_size_m, "project_crs": grid.crs, "timezone": timezone}


def weekly_counts(events: DataFrame, spec: PanelSpec, expired: DataFrame | None = None) -> DataFrame:
    """(ix, iy, week_idx, c_<group>, c_sig_<feed>, y_<target>) for cell-weeks with events, of
    `events` and of the counts `expired` (`event_counts` of events no longer in `events`).

    Crime counts weigh officer-initiated events by `discovered_weight` (feedback-loop
    control); target counts (labels) count every event of the target.
    """
    ev = events.select(
        spec.grid.ix(F.col("x")).alias("ix"),
        spec.grid.iy(F.col("y")).alias("iy"),
        week_index(week_start(F.col("occurred_at"), spec.timezone)).alias("week_idx"),
        *EVENT_KEYS,
        F.lit(1).cast("long").alias(N_EVENTS),
    )
    if expired is not None:
        ev = ev.unionByName(
            expired.select("ix", "iy", week_index(F.col("week")).alias("week_idx"), *EVENT_KEYS, N_EVENTS)
        )
    n = F.col(N_EVENTS)
    crime = F.col("partner").isin(spec.crime_feeds)
    weight = F.when(F.col("origin") == "discovered", F.lit(spec.discovered_weight)).otherwise(F.lit(1.0))
    aggs = [
        F.sum(F.when(crime & F.col("category").isin(cats), weight * n).otherwise(0.0)).alias(f"c_{g}")
        for g, cats in spec.groups.items()
    ]
    aggs += [
        F.sum(F.when((F.col("partner") == s) & F.col("category").isin(cats), 1.0 * n).otherwise(0.0)).alias(
            f"c_sig_{s}"
        )
        for s, cats in spec.signals.items()
    ]
    for t, target in spec.targets.items():
        hit = crime & F.col("category").isin(target.categories)
        if target.exclude_domestic:
            hit = hit & ~F.coalesce(F.col("domestic"), F.lit(False))
        aggs.append(F.sum(F.when(hit, 1.0 * n).otherwise(0.0)).alias(f"y_{t}"))
    return ev.groupBy("ix", "iy", "week_idx").agg(*aggs)


def spatial_counts(weekly: DataFrame, spec: PanelSpec) -> DataFrame:
    """(ix, iy, week_idx, c3_<group>, c5_<group>[, b3_<target>]): weekly counts summed over the
    3x3 and 5x5 neighbourhoods (the targets' over the 3x3, with `near_repeat` on). Each
    cell-week with events is spread to its 25 neighbours, so the cost follows the number of
    non-empty cell-weeks, not the size of the panel."""
    spark = weekly.sparkSession
    offsets = spark.createDataFrame(
        [(dx, dy, 1.0 if max(abs(dx), abs(dy)) <= 1 else 0.0) for dx in range(-2, 3) for dy in range(-2, 3)],
        "dx int, dy int, in3 double",
    )
    spread = weekly.crossJoin(F.broadcast(offsets)).select(
        (F.col("ix") + F.col("dx")).alias("ix"),
        (F.col("iy") + F.col("dy")).alias("iy"),
        "week_idx",
        *[(F.col(f"c_{g}") * F.col("in3")).alias(f"c3_{g}") for g in spec.groups],
        *[F.col(f"c_{g}").alias(f"c5_{g}") for g in spec.groups],
        *[(F.col(f"y_{t}") * F.col("in3")).alias(f"b3_{t}") for t in _box_targets(spec)],
    )
    sums = [F.sum(f"c{r}_{g}").alias(f"c{r}_{g}") for r in NEIGHBOURHOODS for g in spec.groups]
    sums += [F.sum(f"b3_{t}").alias(f"b3_{t}") for t in _box_targets(spec)]
    return spread.groupBy("ix", "iy", "week_idx").agg(*sums)


def kernel_taps(cell_size_m: float, kde: KdeConfig) -> list[tuple[int, ...]]:
    """(d, w_1(d), .., w_B(d)) for d in [-R, R], R the widest bandwidth's radius in cells: the
    1-D Gaussian weights of each bandwidth, exp(-(d a)^2 / (2 sigma^2)), cut at that bandwidth's
    own radius and normalised to sum to 1, so w(dx) * w(dy) sums to 1 over the 2-D kernel and a
    smoothed count is in events per cell."""
    radii = [kernel_radius(b, cell_size_m, kde.truncate_sigmas) for b in kde.bandwidths_m]
    weights = []
    for b, r in zip(kde.bandwidths_m, radii, strict=True):
        raw = {d: math.exp(-((d * cell_size_m) ** 2) / (2 * b * b)) for d in range(-r, r + 1)}
        total = sum(raw.values())
        weights.append({d: v / total for d, v in raw.items()})
    top = max(radii)
    return [(d, *[w.get(d, 0.0) for w in weights]) for d in range(-top, top + 1)]


def _smoothed_series(spec: PanelSpec) -> list[str]:
    """The weekly count series the kernel smooths: the configured groups' and the targets'."""
    if spec.kde is None:
        return []
    return [f"c_{g}" for g in spec.kde.groups] + [f"y_{t}" for t in spec.targets]


def _kde(series: str, band: int) -> str:
    return f"kde{band}_{series}"


def smoothed_counts(weekly: DataFrame, cells: DataFrame, spec: PanelSpec) -> DataFrame:
    """(ix, iy, week_idx, kde<b>_<series>) for the study cells: each weekly series of
    `_smoothed_series` convolved with each bandwidth's 2-D Gaussian (bandwidth b, 0-based).

    The kernel is separable, so it runs as two 1-D spreads (along x, then along y), each a
    join with a broadcast table of 2R + 1 offsets and a sum: the cost follows the non-zero
    cell-weeks times 2R + 1, twice, instead of (2R + 1)^2. Sources outside the study cells
    spread into it; only the second pass's output is restricted to the study cells.
    """
    assert spec.kde is not None
    series, bands = _smoothed_series(spec), range(len(spec.kde.bandwidths_m))
    taps = kernel_taps(spec.grid.cell_size_m, spec.kde)
    offsets = F.broadcast(
        weekly.sparkSession.createDataFrame(taps, ", ".join(["d int", *[f"w{b} double" for b in bands]]))
    )
    along_x = (
        weekly.select("ix", "iy", "week_idx", *series)
        .repartition("iy", "week_idx")
        .crossJoin(offsets)
        .select(
            (F.col("ix") + F.col("d")).alias("ix"),
            "iy",
            "week_idx",
            *[(F.col(s) * F.col(f"w{b}")).alias(_kde(s, b)) for s in series for b in bands],
        )
        .groupBy("ix", "iy", "week_idx")
        .agg(*[F.sum(_kde(s, b)).alias(_kde(s, b)) for s in series for b in bands])
    )
    return (
        along_x.repartition("ix", "week_idx")
        .crossJoin(offsets)
        .select(
            "ix",
            (F.col("iy") + F.col("d")).alias("iy"),
            "week_idx",
            *[(F.col(_kde(s, b)) * F.col(f"w{b}")).alias(_kde(s, b)) for s in series for b in bands],
        )
        .join(F.broadcast(cells.select("ix", "iy")), ["ix", "iy"], "left_semi")
        .groupBy("ix", "iy", "week_idx")
        .agg(*[F.sum(_kde(s, b)).alias(_kde(s, b)) for s in series for b in bands])
    )


def _box_targets(spec: PanelSpec) -> list[str]:
    """The targets whose counts are also summed over the 3x3 cells (for the near-repeat family)."""
    return list(spec.targets) if spec.near_repeat else []


def weekly_series(series: DataFrame, measures: dict[str, WeeklyMeasure]) -> DataFrame:
    """(week_idx, <name> for each of `measures`) for the weeks a daily series covers fully (7
    days; other weeks get nulls). Input: the series' silver columns, `date` (a local calendar
    day) and its measures. Each day's value is multiplied by the measure's `scale`, then the
    week's days are aggregated (mean, sum, min or max)."""
    w = series.select(
        week_index(F.to_date(F.date_trunc("week", F.col("date")))).alias("week_idx"),
        *[
            (F.col(m.measure) if m.scale == 1.0 else F.col(m.measure) * m.scale).alias(name)
            for name, m in measures.items()
        ],
    )
    agg = w.groupBy("week_idx").agg(
        F.count("*").alias("__days"),
        *[_AGGREGATES[m.aggregate](name).alias(name) for name, m in measures.items()],
    )
    full = F.col("__days") == 7
    return agg.select("week_idx", *[F.when(full, F.col(name)).alias(name) for name in measures])


def holiday_dates(calendar: CalendarConfig | None, first_day: date, last_day: date) -> list[date]:
    """The public holidays of the calendar (observed days included) and its extra dates, from
    `first_day` to `last_day`, sorted."""
    if calendar is None:
        return []
    import holidays

    days = holidays.country_holidays(
        calendar.country, subdiv=calendar.subdivision, years=range(first_day.year, last_day.year + 1)
    )
    return sorted({d for d in [*days, *calendar.extra_dates] if first_day <= d <= last_day})


def build_panel(
    events: DataFrame,
    cells: DataFrame,
    spec: PanelSpec,
    *,
    first_week: int,
    last_week: int,
    data_end_week: int,
    history_start_week: int,
    weather: DataFrame | None = None,
    areas: DataFrame | None = None,
    expired: DataFrame | None = None,
) -> DataFrame:
    """The panel for weeks [first_week, last_week] (week indexes), all rows of `cells`.

    `cells`: (ix, iy, area_code) of the study area. `history_start_week`: the first week with
    data (history before it is treated as empty). `data_end_week`: the last week with data;
    labels whose horizon passes it are null. `weather`: the daily series of the weather role
    (date, <measures>), or None (its features are then null). `areas`: (area_code, <indicators>).
    `expired`: `event_counts` of the events retention removed, counted as if they were in
    `events` (None: there are none).
    """
    half_lives = [*spec.half_lives, *(spec.near_repeat.half_lives_weeks if spec.near_repeat else [])]
    if (last_week - history_start_week) / min(half_lives or [1.0]) > _MAX_DECAY_SPAN:
        raise ValueError("the panel spans too many half-lives for exact decayed counts; raise the half-lives")
    end_week = max(last_week, data_end_week)
    dense = _dense_counts(events, cells, spec, history_start_week, end_week, expired)
    features, labels = _window_columns(spec, history_start_week, data_end_week)
    dense = dense.withColumns(_running_sums(spec))
    panel = dense.withColumns({**features, **labels}).where(F.col("week_idx").between(first_week, last_week))
    # Empty windows sum to null in Spark: no events is a count of zero.
    panel = panel.na.fill(0.0, subset=list(features))
    panel = _with_calendar(panel, spec, first_week, last_week, history_start_week)
    panel = _with_weather(panel, spec, weather)
    if spec.indicators:
        if areas is None:
            raise ValueError("indicators are configured but no area table was given")
        panel = panel.join(F.broadcast(areas.select("area_code", *spec.indicators)), "area_code", "left")
    schema = panel_schema(spec)
    return panel.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def _dense_counts(
    events: DataFrame,
    cells: DataFrame,
    spec: PanelSpec,
    history_start_week: int,
    end_week: int,
    expired: DataFrame | None = None,
) -> DataFrame:
    """Every cell x every week from the history's start to `end_week` plus the longest
    horizon, with its weekly and neighbourhood counts (0 for a week without events)."""
    weekly = weekly_counts(events, spec, expired)
    spatial = spatial_counts(weekly, spec)
    weeks = events.sparkSession.range(history_start_week, end_week + max(spec.horizons) + 1).select(
        F.col("id").cast("int").alias("week_idx")
    )
    base = cells.select("ix", "iy", "area_code").crossJoin(weeks)
    dense = base.join(weekly, ["ix", "iy", "week_idx"], "left").join(
        spatial, ["ix", "iy", "week_idx"], "left"
    )
    if spec.kde is not None:
        dense = dense.join(smoothed_counts(weekly, cells, spec), ["ix", "iy", "week_idx"], "left")
    counts = [c for c in dense.columns if c.startswith(("c_", "c3_", "c5_", "b3_", "y_", "kde"))]
    return dense.na.fill(0.0, subset=sorted(set(counts)))


def _windowed_series(spec: PanelSpec) -> list[str]:
    """The weekly count series that have windows over them, each with one running sum."""
    out = [f"c_{g}" for g in spec.groups]
    out += [f"c{r}_{g}" for r in NEIGHBOURHOODS for g in spec.groups] if spec.spatial_windows else []
    out += [f"c_sig_{s}" for s in spec.signals]
    out += (
        [_kde(s, b) for s in _smoothed_series(spec) for b in range(len(spec.kde.bandwidths_m))]
        if spec.kde
        else []
    )
    return out + [f"y_{t}" for t in spec.targets]


def _cum(count: str) -> str:
    return f"__cum_{count}"


def _running_sums(spec: PanelSpec) -> dict[str, Column]:
    """cum(t) = sum_{s<t} c(s) for every windowed series: one pass over each cell's weeks."""
    before = Window.partitionBy("ix", "iy").orderBy("week_idx").rowsBetween(Window.unboundedPreceding, -1)
    return {_cum(c): F.coalesce(F.sum(c).over(before), F.lit(0.0)) for c in _windowed_series(spec)}


class _Windows:
    """The window expressions over one cell's dense weeks, on the running sums of
    `_running_sums` (present as columns when these are evaluated)."""

    def __init__(self, history_start_week: int) -> None:
        self.cell = Window.partitionBy("ix", "iy").orderBy("week_idx")
        self.before = self.cell.rowsBetween(Window.unboundedPreceding, -1)
        self.weeks = F.col("week_idx") - F.lit(history_start_week)  # H(t): weeks of history

    def lagged(self, count: str, k: int) -> Column:
        """cum(t - k): the events before week t - k (none before the history's start)."""
        cum = F.col(_cum(count))
        return cum if k == 0 else F.lag(cum, k, 0.0).over(self.cell)

    def past(self, count: str, k: int) -> Column:
        """Events in weeks t-k .. t-1."""
        return F.col(_cum(count)) - self.lagged(count, k)

    def all_history(self, count: str) -> Column:
        return F.col(_cum(count))

    def rate(self, count: str) -> Column:
        """Events before week t per week of history (0 in the first week)."""
        return F.col(_cum(count)) / F.greatest(self.weeks, F.lit(1)).cast("double")

    def past_rate(self, count: str, k: int) -> Column:
        """Events in weeks t-k .. t-1 per week of history they cover: min(k, H(t)), at least 1."""
        covered = F.greatest(F.least(self.weeks, F.lit(k)), F.lit(1)).cast("double")
        return self.past(count, k) / covered

    def last_year(self, count: str, ly: LastYearConfig) -> Column:
        """Events in weeks t-lag-w .. t-lag+w: cum(t-lag+w+1) - cum(t-lag-w)."""
        lag, w = ly.lag_weeks, ly.half_width_weeks
        return self.lagged(count, lag - w - 1) - self.lagged(count, lag + w)

    def decayed(self, count: str, h: float) -> Column:
        """sum_{s<t} c_s 2^(-(t-s)/h) = 2^(-t/h) * sum_{s<t} c_s 2^(s/h), t and s from the start."""
        rel = self.weeks.cast("double")
        earlier = F.sum(F.col(count) * F.pow(F.lit(2.0), rel / h)).over(self.before)
        return earlier * F.pow(F.lit(2.0), -rel / h)

    def weeks_since(self, count: str, cap: int) -> Column:
        """t - (the last week before t with events), or H(t) + 1 if none; at most `cap`."""
        last = F.max(F.when(F.col(count) > 0, F.col("week_idx"))).over(self.before)
        since = F.coalesce(F.col("week_idx") - last, self.weeks + 1)
        return F.least(since, F.lit(cap)).cast("double")


def _window_columns(
    spec: PanelSpec, history_start_week: int, data_end_week: int
) -> tuple[dict[str, Column], dict[str, Column]]:
    """(features, labels): the window expressions over each cell's weeks of the dense counts."""
    w = _Windows(history_start_week)
    cols: dict[str, Column] = {}
    for g in spec.groups:
        cols |= _group_columns(spec, g, w)
    for s in spec.signals:
        cols |= {signal_count(s, k).name: w.past(f"c_sig_{s}", k) for k in spec.windows}
    for t in spec.targets:
        cols |= _target_columns(spec, t, w)
    cols |= _smoothed_columns(spec, w)
    labels: dict[str, Column] = {}
    for t in spec.targets:
        for h in spec.horizons:
            ahead = F.sum(f"y_{t}").over(w.cell.rangeBetween(0, h - 1))
            labels[label_column(t, h)] = F.when(F.col("week_idx") + h - 1 <= data_end_week, ahead)
    return cols, labels


def _group_columns(spec: PanelSpec, g: str, w: _Windows) -> dict[str, Column]:
    """A category group's counts: recent, decayed, around the cell, long-run and near-repeat."""
    c, ly, near = f"c_{g}", spec.last_year, spec.near_repeat
    cols = {event_count(g, k).name: w.past(c, k) for k in spec.windows}
    cols |= {decayed_count(g, h).name: w.decayed(c, h) for h in spec.half_lives}
    for r in NEIGHBOURHOODS:
        cols |= {event_count(g, k, around=r).name: w.past(f"c{r}_{g}", k) for k in spec.spatial_windows}
    if spec.all_history:
        cols[all_history_count(g).name] = w.all_history(c)
    if ly:
        cols[last_year_count(g, ly.lag_weeks, ly.half_width_weeks).name] = w.last_year(c, ly)
    if near and g in near.groups:
        for r, series in ((1, c), (3, f"c3_{g}")):
            cols[weeks_since_last(g, near.max_weeks, around=r).name] = w.weeks_since(series, near.max_weeks)
    return cols


def _smoothed_columns(spec: PanelSpec, w: _Windows) -> dict[str, Column]:
    """The kernel-smoothed surfaces as weekly rates over each window and over all history."""
    if spec.kde is None:
        return {}
    named = [(smoothed_count, g, f"c_{g}") for g in spec.kde.groups]
    named += [(smoothed_target_history, t, f"y_{t}") for t in spec.targets]
    cols: dict[str, Column] = {}
    for feature, name, series in named:
        for b, bandwidth in enumerate(spec.kde.bandwidths_m):
            s = _kde(series, b)
            cols |= {feature(name, bandwidth, k).name: w.past_rate(s, k) for k in spec.kde.windows_weeks}
            cols[feature(name, bandwidth, None).name] = w.rate(s)
    return cols


def _target_columns(spec: PanelSpec, t: str, w: _Windows) -> dict[str, Column]:
    """A target's own history: what the baselines predict from, and its long-run and
    near-repeat families."""
    y, ly, near = f"y_{t}", spec.last_year, spec.near_repeat
    cols = {target_history(t, k).name: w.past(y, k) for k in spec.windows}
    cols |= {decayed_target_history(t, h).name: w.decayed(y, h) for h in spec.half_lives}
    if spec.all_history:
        cols |= {target_history_all(t).name: w.all_history(y), target_history_rate(t).name: w.rate(y)}
    if ly:
        cols[last_year_target_history(t, ly.lag_weeks, ly.half_width_weeks).name] = w.last_year(y, ly)
    if near:
        for r, series in ((1, y), (3, f"b3_{t}")):
            cols[weeks_since_last(t, near.max_weeks, around=r).name] = w.weeks_since(series, near.max_weeks)
        cols |= {decayed_target_around(t, h).name: w.decayed(f"b3_{t}", h) for h in near.half_lives_weeks}
    return cols


def _with_calendar(
    panel: DataFrame, spec: PanelSpec, first_week: int, last_week: int, history_start_week: int
) -> DataFrame:
    """The cell id, the week's Monday and the calendar features."""
    week = F.date_add(F.lit(EPOCH_MONDAY), F.col("week_idx") * 7)
    days = holiday_dates(spec.calendar, week_of(first_week), week_of(last_week) + timedelta(days=6))
    holidays = [F.lit(d) for d in days]
    in_week = F.lit(False)
    if holidays:
        in_week = F.exists(F.array(*holidays), lambda d: (d >= week) & (d < F.date_add(week, 7)))
    return panel.withColumns(
        {
            "cell_id": cell_id(F.col("ix"), F.col("iy")),
            "week": week,
            "history_weeks": (F.col("week_idx") - F.lit(history_start_week)).cast("int"),
            "week_of_year": F.weekofyear(week),
            "holiday_week": in_week,
        }
    )


def _with_weather(panel: DataFrame, spec: PanelSpec, weather: DataFrame | None) -> DataFrame:
    """Last week's value of each weekly weather measure (null without the series)."""
    if not (spec.weather and weather is not None):
        return panel.withColumns({WEATHER_PREFIX + name: F.lit(None).cast("double") for name in spec.weather})
    prev = weekly_series(weather, spec.weather).select(
        (F.col("week_idx") + 1).alias("week_idx"),  # last week's values, known when t starts
        *[F.col(name).alias(WEATHER_PREFIX + name) for name in spec.weather],
    )
    return panel.join(F.broadcast(prev), "week_idx", "left")


def schema_difference(panel: DataFrame, spec: PanelSpec, *, ordered: bool = True) -> str | None:
    """How the panel's columns or types differ from the declared schema (None: they do not).
    `ordered=False` compares them as a set (a panel read back has its partition column last)."""
    want = [(f.name, f.dataType.simpleString()) for f in panel_schema(spec).fields]
    got = [(f.name, f.dataType.simpleString()) for f in panel.schema.fields]
    if (want if ordered else sorted(want)) == (got if ordered else sorted(got)):
        return None
    missing = [w for w in want if w not in got]
    extra = [g for g in got if g not in want]
    return f"panel schema differs from the declared one: missing {missing}, unexpected {extra}"


def check_schema(panel: DataFrame, spec: PanelSpec) -> None:
    """Raise when the built panel's columns or types differ from the declared schema."""
    problem = schema_difference(panel, spec)
    if problem:
        raise ValueError(problem)
