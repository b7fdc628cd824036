"""Typed, layered configuration: conf/riskradar.yaml plus one data contract per feed.

Committed defaults live in conf/; the environment may override the lake root
(`RISKRADAR_LAKE`); secrets come only from the environment. Every wrong value fails with a
`ConfigError` naming the file, the key, the value and what is allowed. A key written twice in
one mapping is an error (plain YAML keeps the last value silently), roots are local folders
(object stores are refused until the lake supports them), and contract and suite paths stay
inside their roots.
"""

from __future__ import annotations

import math
import os
import re
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from riskradar.errors import ConfigError, UnsafeName

DEFAULT_CONFIG = Path("conf/riskradar.yaml")
LAKE_ENV = "RISKRADAR_LAKE"

# Feed names become folder names in the lake: keep them to a safe alphabet.
SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
Name = Annotated[str, Field(pattern=SAFE_NAME.pattern)]


def _regex(value: str) -> str:
    """A field validator's check that `value` is a regular expression."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from exc
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_name(value: str, what: str, known: list[str] | None = None) -> str:
    """Refuse names that could leave their folder (`..`, `/`, `\\`) or are not safe identifiers."""
    if ".." in value or "/" in value or "\\" in value or "\x00" in value:
        raise UnsafeName(
            f"{what} {value!r} is not allowed: it contains '..' or a path separator"
            + (f" (known: {', '.join(known)})" if known else "")
        )
    if not SAFE_NAME.match(value):
        raise UnsafeName(
            f"{what} {value!r} is not allowed: use lower-case letters, digits and '_'"
            + (f" (known: {', '.join(known)})" if known else "")
        )
    return value


# --------------------------------------------------------------------------- contracts


class ReaderOptions(_Model):
    """How to read the delivered files."""

    format: Literal["csv", "csv.gz", "jsonl", "parquet", "geojson", "xlsx", "gpkg", "shapefile"]
    encoding: str = "UTF-8"
    delimiter: str = Field(",", min_length=1, max_length=1)
    header: bool = True
    quote: str = Field('"', min_length=1, max_length=1)
    decimal: Literal[".", ","] = Field(
        ".", description="decimal separator of numbers delivered as text (',' in Dutch exports: 1,5)"
    )
    sheet: str | int = Field(0, description="xlsx: the sheet's name, or its 0-based position")
    layer: str | int | None = Field(
        None, description="gpkg / shapefile: the layer's name or 0-based position (default: the first)"
    )
    crs: str | None = Field(
        None,
        description="gpkg / shapefile: the coordinate system when the delivery does not carry one "
        "(a shapefile without its .prj), e.g. EPSG:28992",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r} (e.g. UTF-8, ISO-8859-1, cp1252)") from exc
        return value


class Landing(_Model):
    """Where the partner drops files, relative to the configured landing root."""

    path: str
    pattern: str = "*"


class SourceColumn(_Model):
    """A column the partner delivers. `personal` columns never leave landing in clear."""

    name: str = Field(min_length=1)
    required: bool = True
    personal: Literal["pseudonymise", "drop"] | None = None


class TimestampSpec(_Model):
    """How to read an event's time: a wall-clock time in the partner's zone, turned into UTC."""

    column: str
    format: str = Field(description="Spark datetime pattern, e.g. MM/dd/yyyy hh:mm:ss a")
    timezone: str
    nonexistent: Literal["shift_forward", "quarantine"] = Field(
        "shift_forward",
        description="a wall time skipped when the clocks go forward (03/09/2014 02:30 AM in "
        "America/Chicago): shift_forward (default) moves it forward by the length of the gap "
        "(02:30 -> 03:30 CDT), as java.time and Spark's to_utc_timestamp do; quarantine sets the row aside",
    )
    ambiguous: Literal["earlier", "later", "quarantine"] = Field(
        "earlier",
        description="a wall time that occurs twice when the clocks go back (11/02/2014 01:30 AM in "
        "America/Chicago): earlier (default) takes the first, daylight-saving occurrence, as java.time "
        "and Spark's to_utc_timestamp do; later takes the second; quarantine sets the row aside",
    )
    earliest: date = Field(
        date(1970, 1, 1),
        description="a time before this date (in the feed's zone) is implausible, e.g. 1900 from a "
        "default value in the partner's system; default 1970-01-01",
    )
    stray_after_days: int | None = Field(
        62,
        ge=1,
        description="a time more than this many days after both the newest event the feed had "
        "published and the end of its own delivery's bulk (its days split at gaps of more than this "
        "many days; the part with the most rows) is a stray (a mistyped year), quarantined as "
        "stray_timestamp; null: no such rule",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)


class CoordinateSpec(_Model):
    crs: str
    x: str
    y: str

    @field_validator("crs")
    @classmethod
    def _known_crs(cls, value: str) -> str:
        from riskradar import crs

        crs.get_crs(value)
        return value


class CategorySpec(_Model):
    column: str
    subcategory_column: str | None = None
    map: dict[str, str] = Field(min_length=1, description="partner code -> canonical category")


class OriginSpec(_Model):
    """Whether events are citizen-reported or found by officers' own activity."""

    default: Literal["reported", "discovered"]
    discovered_categories: list[str] = []
    reported_categories: list[str] = []


class ExcludeRule(_Model):
    """Rows the partner itself marks as not separate events (e.g. duplicates of a request)."""

    column: str
    values: list[str] = Field(min_length=1)
    reason: str = Field(min_length=1)


class EventMapping(_Model):
    id_column: str
    timestamp: TimestampSpec
    coordinates: CoordinateSpec
    category: CategorySpec
    origin: OriginSpec
    domestic_column: str | None = None
    exclude: list[ExcludeRule] = []


class DateSpec(_Model):
    column: str
    format: str = "yyyy-MM-dd"


class Measure(_Model):
    name: Name
    column: str
    convert: Literal["none", "fahrenheit_to_celsius", "inch_to_mm", "mph_to_mps", "percent_to_fraction"] = (
        "none"
    )
    min: float | None = None
    max: float | None = None


class SeriesMapping(_Model):
    """A city-wide series with one row per day (e.g. weather)."""

    date: DateSpec
    measures: list[Measure] = Field(min_length=1)


class AreaMapping(_Model):
    """Area attributes (one row per area) or area boundaries (one feature per area)."""

    code_column: str
    name_column: str
    geometry_column: str | None = None
    indicators: list[Measure] = []
    not_areas: dict[str, str] = Field(
        {}, description="codes that are aggregates, not areas, with the reason (e.g. '0': city total)"
    )
    code_pattern: str = Field(
        r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="what an area code looks like (a regex); codes are kept as text, so CBS codes "
        "(BU03440101) and codes with leading zeros (FIPS 17031) keep their form",
    )

    _valid_regex = field_validator("code_pattern")(classmethod(lambda cls, value: _regex(value)))


class Contract(_Model):
    """A partner feed's data contract (conf/partners/<name>.yaml)."""

    name: Name
    partner: str
    description: str = ""
    kind: Literal["events", "series", "area_attributes", "area_boundaries"]
    legal_basis: str
    retention_days: int = Field(gt=0)
    landing: Landing
    reader: ReaderOptions
    columns: list[SourceColumn] = Field(min_length=1)
    events: EventMapping | None = None
    series: SeriesMapping | None = None
    areas: AreaMapping | None = None
    expectation_suite: str = Field(description="file under expectations/; it holds the batch gate")
    privacy_law: Literal["avg", "wpg"] = Field(
        "avg",
        description="the law its personal data are processed under, as the register of processing "
        "states it: avg (the GDPR, art. 30) or wpg (police data under the Wet politiegegevens, "
        "Directive (EU) 2016/680)",
    )
    id_normalisation: Literal["nfkc", "trim"] = Field(
        "nfkc",
        description="how ids and other pseudonymised values are read before they are compared and "
        "pseudonymised: nfkc (Unicode NFKC, all surrounding whitespace removed: what people see) "
        "or trim (surrounding spaces only, for a partner whose ids differ by such characters)",
    )

    @model_validator(mode="after")
    def _mapping_matches_kind(self) -> Contract:
        wanted = {
            "events": "events",
            "series": "series",
            "area_attributes": "areas",
            "area_boundaries": "areas",
        }
        section = wanted[self.kind]
        if getattr(self, section) is None:
            raise ValueError(f"kind {self.kind!r} needs a '{section}' section")
        names = [c.name for c in self.columns]
        from riskradar.catalog import RESERVED_COLUMNS  # the catalog reads contracts: import late

        clash = sorted(set(names) & RESERVED_COLUMNS)
        if clash:
            raise ValueError(f"columns {clash} clash with the lineage columns the pipeline adds")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"columns listed twice: {dupes}")
        missing = sorted(set(self.mapped_columns()) - set(names))
        if missing:
            raise ValueError(f"mapping uses columns not declared under 'columns': {missing}")
        dropped = sorted(
            c.name for c in self.columns if c.personal == "drop" and c.name in self.mapped_columns()
        )
        if dropped:
            raise ValueError(f"columns marked 'personal: drop' cannot be mapped: {dropped}")
        return self

    def mapped_columns(self) -> list[str]:
        """Source columns the canonical mapping reads."""
        out: list[str] = []
        if self.events:
            e = self.events
            out += [e.id_column, e.timestamp.column, e.coordinates.x, e.coordinates.y, e.category.column]
            out += [c for c in (e.category.subcategory_column, e.domestic_column) if c]
            out += [r.column for r in e.exclude]
        if self.series:
            out += [self.series.date.column] + [m.column for m in self.series.measures]
        if self.areas:
            a = self.areas
            out += [a.code_column, a.name_column] + [m.column for m in a.indicators]
            out += [a.geometry_column] if a.geometry_column else []
        return out

    @property
    def kept_columns(self) -> list[str]:
        """Delivered columns that enter bronze (pseudonymised where personal)."""
        return [c.name for c in self.columns if c.personal != "drop"]

    @property
    def pseudonymised_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.personal == "pseudonymise"]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


# --------------------------------------------------------------------------- pipeline


class LakeConfig(_Model):
    root: str


class GridConfig(_Model):
    cell_size_m: float = Field(150.0, gt=0, le=10_000)


class StudyArea(_Model):
    """The city's extent: rows outside it are quarantined as out of area."""

    bbox_wgs84: tuple[float, float, float, float] = Field(description="min lon, min lat, max lon, max lat")

    @field_validator("bbox_wgs84")
    @classmethod
    def _ordered(cls, v: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        lon0, lat0, lon1, lat1 = v
        problems = [
            f"{name} {value:g} is outside [-{limit}, {limit}]"
            for name, value, limit in (
                ("min lon", lon0, 180),
                ("min lat", lat0, 90),
                ("max lon", lon1, 180),
                ("max lat", lat1, 90),
            )
            if not -limit <= value <= limit
        ]
        if not problems and lat0 >= lat1:
            problems.append(f"min lat {lat0:g} is not below max lat {lat1:g}")
        if not problems and lon0 > lon1:
            problems.append(
                f"min lon {lon0:g} is east of max lon {lon1:g}: a box across the antimeridian (180 degrees) "
                "is not supported; a city there needs a box on one side of it"
            )
        if not problems and lon0 == lon1:
            problems.append(f"min lon equals max lon ({lon0:g}): the box is empty")
        if problems:
            raise ValueError(
                "expected [min lon, min lat, max lon, max lat] in degrees: " + "; ".join(problems)
            )
        return v


class PartnersConfig(_Model):
    contracts_dir: str = "partners"
    landing_root: str
    enabled: list[Name] = Field(min_length=1)


class PseudonymConfig(_Model):
    key_env: str = "RISKRADAR_PSEUDONYM_KEY"


class RetentionConfig(_Model):
    """What `riskradar retention` keeps beyond the contracts' `retention_days`."""

    counts_days: int = Field(
        7300,
        gt=0,
        description="how long the counts per week, cell and category of the events retention removed "
        "(silver.expired_counts, no personal data) are kept, in days: at least the longest "
        "retention_days of an events feed, so that the panel's long-run features outlive the events",
    )


class TargetConfig(_Model):
    categories: list[str] = Field(min_length=1)
    exclude_domestic: bool = False


@lru_cache(maxsize=1)
def _holiday_calendars() -> dict[str, list[str]]:
    """Country code -> its subdivision codes, as the `holidays` package knows them."""
    import holidays

    return holidays.list_supported_countries()


class CalendarConfig(_Model):
    """Public holidays of a country, and optionally of one of its subdivisions (a state,
    province or region), from the `holidays` package: any year, observed days included."""

    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. US, NL")
    subdivision: str | None = Field(None, description="e.g. IL (Illinois) for US; null: the country's own")
    extra_dates: list[date] = Field(
        [], description="local days the calendar lacks that the city keeps as holidays (ISO dates)"
    )

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        known = _holiday_calendars()
        if value not in known:
            codes = sorted(c for c in known if len(c) == 2)
            raise ValueError(
                f"not a country of the holidays package; allowed: one of its {len(codes)} ISO 3166-1 "
                f"alpha-2 codes: {', '.join(codes)}"
            )
        return value

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if value is None or country is None:  # an unknown country has its own error
            return value
        allowed = _holiday_calendars()[country]
        if value not in allowed:
            raise ValueError(
                f"not a subdivision of {country} in the holidays package; allowed: "
                + (", ".join(allowed) if allowed else f"none ({country} has no subdivisions): leave it out")
            )
        return value


class LastYearConfig(_Model):
    """The same weeks one year back: weeks t-lag-half_width .. t-lag+half_width before week t."""

    lag_weeks: int = Field(52, ge=1, description="how far back the window is centred, in weeks")
    half_width_weeks: int = Field(2, ge=0, description="weeks on each side of the centre")

    @field_validator("half_width_weeks")
    @classmethod
    def _inside_the_past(cls, value: int, info: ValidationInfo) -> int:
        lag = info.data.get("lag_weeks")
        if lag is not None and value >= lag:
            # the window would reach week t itself or later: a feature may only see earlier weeks
            raise ValueError(f"must be less than lag_weeks ({lag}): the window must end before week t")
        return value


class NearRepeatConfig(_Model):
    """Weeks since the last event in the cell and in its 3x3 neighbourhood, and the target's
    counts over the 3x3 cells decayed (a discrete self-exciting trigger term)."""

    max_weeks: int = Field(52, ge=1, description="the cap of the weeks since the last event")
    half_lives_weeks: list[float] = Field([1.0], description="half-lives of the 3x3 decayed target counts")
    groups: list[Name] = Field(
        [], description="category groups that get the weeks since their last event too (targets always do)"
    )

    @field_validator("half_lives_weeks")
    @classmethod
    def _positive_half_lives(cls, v: list[float]) -> list[float]:
        return _positive_half_lives(v)


class KdeConfig(_Model):
    """Kernel-smoothed surfaces: each weekly count spread over the cells around with a Gaussian
    kernel (sigma = the bandwidth), then summed over the long windows as weekly rates."""

    bandwidths_m: list[float] = Field(
        [150.0, 300.0, 600.0], min_length=1, description="Gaussian sigmas, metres"
    )
    truncate_sigmas: float = Field(
        2.0, gt=0.0, le=4.0, description="the kernel stops at ceil(truncate_sigmas * sigma / cell size) cells"
    )
    groups: list[Name] = Field([], description="category groups smoothed; every target's own counts are too")
    windows_weeks: list[int] = Field([52], description="windows of the surfaces; all history is always one")

    @field_validator("bandwidths_m")
    @classmethod
    def _positive_bandwidths(cls, v: list[float]) -> list[float]:
        if any(b <= 0 for b in v):
            raise ValueError("bandwidths must be > 0 metres")
        return sorted(set(v))

    @field_validator("windows_weeks")
    @classmethod
    def _positive_windows(cls, v: list[int]) -> list[int]:
        return _positive_weeks(v)


# The widest kernel, in cells from the centre: the spread writes 2 * 16 + 1 rows per input row
# and pass, which keeps it a few times the cost of the 5x5 neighbourhood counts.
MAX_KERNEL_RADIUS_CELLS = 16


def kernel_radius(bandwidth_m: float, cell_size_m: float, truncate_sigmas: float) -> int:
    """How many cells from the centre a Gaussian of sigma `bandwidth_m` reaches."""
    return math.ceil(truncate_sigmas * bandwidth_m / cell_size_m - 1e-9)


def _positive_weeks(v: list[int]) -> list[int]:
    if any(w < 1 for w in v):
        raise ValueError("weeks must be >= 1")
    return sorted(set(v))


def _positive_half_lives(v: list[float]) -> list[float]:
    if any(h <= 0 for h in v):
        raise ValueError("half-lives must be > 0 weeks")
    return v


class FeatureConfig(_Model):
    """The cell x week panel: which feature groups, windows and switches."""

    crime_feeds: list[Name] = Field(
        min_length=1, description="the events feeds whose counts are crime features"
    )
    category_groups: dict[Name, list[Name]] = Field(min_length=1)
    signals: dict[Name, list[Name]] = Field({}, description="other partners' feeds -> their categories")
    windows_weeks: list[int] = Field([1, 2, 4, 8, 13, 26, 52], min_length=1)
    decay_half_lives_weeks: list[float] = [1.0, 4.0]
    spatial_lag_windows_weeks: list[int] = [4, 13]
    horizons_weeks: list[int] = Field([1], min_length=1)
    all_history: bool = Field(
        False, description="counts over all history to date (and the target's weekly rate over it)"
    )
    last_year: LastYearConfig | None = Field(None, description="the same weeks last year; null: off")
    kde: KdeConfig | None = Field(None, description="kernel-smoothed long-run surfaces; null: off")
    near_repeat: NearRepeatConfig | None = Field(
        None, description="weeks since the last event, 3x3 decayed target counts; null: off"
    )
    discovered_weight: float = Field(
        1.0, ge=0.0, le=1.0, description="weight of officer-initiated events in crime features (0 = excluded)"
    )
    calendar: CalendarConfig | None = Field(
        None, description="public holidays by country and region; null: no week is a holiday week"
    )
    max_gap_weeks: int = Field(
        4,
        ge=1,
        description="the crime feeds' data end before a run of more empty weeks than this: events "
        "after such a gap (a stray date) do not stretch the panel until the data catch up",
    )
    max_new_weeks: int = Field(
        13,
        ge=1,
        description="a build that would add more weeks than this after the newest published week is "
        "refused (`build-features --allow-growth` accepts it)",
    )

    @field_validator("windows_weeks", "spatial_lag_windows_weeks", "horizons_weeks")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        return _positive_weeks(v)

    @field_validator("decay_half_lives_weeks")
    @classmethod
    def _positive_half_lives(cls, v: list[float]) -> list[float]:
        return _positive_half_lives(v)


class TuningConfig(_Model):
    """Choices made inside each backtest fit, on a time split of that fit's own past: the last
    `validation_weeks` labelled weeks before the origin are predicted by a fit on the weeks
    before them. Never on the weeks the fit is scored on."""

    validation_weeks: int = Field(
        8, ge=2, description="labelled weeks before the origin that judge the choices"
    )
    every_weeks: int = Field(
        12, ge=1, description="weeks a choice is kept; the first fit at least this much later tunes again"
    )
    grid: list[dict[str, Any]] = Field(
        default_factory=lambda: [{}],
        min_length=1,
        description="hyperparameters tried over the candidate's own ({}: the candidate's as configured)",
    )
    blend_weights: list[float] | None = Field(
        None,
        description="weights w tried for a '<candidate>_blend' candidate: w x the candidate + (1 - w) x "
        "the baseline that blends best with it on the split; null: no blend candidates",
    )

    @field_validator("blend_weights")
    @classmethod
    def _weights(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not 0.0 <= w <= 1.0 for w in v)):
            raise ValueError(f"blend weights must be in [0, 1], at least one: {v}")
        return v


class StudyConfig(_Model):
    """The ablation and learning curve of `riskradar train --study`: the best candidate's recipe
    refitted without each feature family and with its fits capped at each number of weeks. A
    setting that differs from the training's (e.g. a slower refit cadence, to keep the study's
    time in bounds) applies to every row, the study's own all-features row included."""

    learning_curve_weeks: list[int] = Field(default_factory=lambda: [26, 52, 78], min_length=1)
    refit_every_weeks: int | None = Field(None, ge=1, description="null: training.refit_every_weeks")
    tuned: bool = Field(True, description="false: every fit as configured, no tuning and no blend")


class NonInferiorityConfig(_Model):
    """What the gate asks beside the promotion metric: at each of `metrics`, the lower end of
    the candidate's paired gain over the best baseline must not lie below -tolerance."""

    metrics: list[str] = Field(
        default_factory=lambda: ["pai_1", "pai_5"],
        min_length=1,
        description="metrics where higher is better, judged beside the promotion metric",
    )
    tolerance: float = Field(
        0.1, ge=0.0, description="how far below 0 the lower end of each paired gain may reach"
    )


class TrainingConfig(_Model):
    """Rolling-origin backtest, candidates and the promotion gate."""

    backtest_weeks: int = Field(26, ge=1)
    refit_every_weeks: int = Field(4, ge=1)
    zero_row_fraction: float = Field(0.1, gt=0.0, le=1.0)
    max_train_rows: int = Field(
        1_000_000, gt=0, description="bounds the driver's memory: a bigger sample is thinned to it"
    )
    max_evaluate_rows: int = Field(
        3_000_000,
        gt=0,
        description="bounds the evaluation rows the driver reads at once: the largest of "
        "refit_every_weeks, tuning.validation_weeks (and with --study, study.refit_every_weeks) x "
        "study cells; the backtest reads its rows from the run's scratch a block of weeks at a time",
    )
    seed: int = 42
    promotion_metric: str = "pai_3"
    promotion_margin: float = Field(0.0, ge=0.0, description="absolute margin on the promotion metric")
    promotion_lower_end: float | None = Field(
        None,
        ge=0.0,
        allow_inf_nan=False,
        description="the best baseline is beaten when the lower end of the paired gain over it on the "
        "promotion metric lies above this (instead of the mean by promotion_margin, which still "
        "applies against the champion); null: the mean and the margin",
    )
    non_inferiority: NonInferiorityConfig | None = Field(
        None, description="no loss at other coverages either (the gate); null: the promotion metric alone"
    )
    paired_block_weeks: int | None = Field(
        None,
        ge=1,
        description="weeks per block of the bootstrap of the paired gain over the best baseline; "
        "null: refit_every_weeks (the weeks one fit predicts share its errors)",
    )
    candidates: dict[str, dict[str, Any]] = Field(min_length=1)
    max_history_weeks: int | None = Field(
        None,
        ge=1,
        description="each fit learns from the labelled weeks of at most this many weeks before its "
        "origin; null: every labelled week",
    )
    study: StudyConfig = Field(
        default_factory=lambda: StudyConfig(), description="what `riskradar train --study` refits"
    )
    tuning: TuningConfig | None = Field(
        None, description="choices on a time split inside each fit; null: none"
    )


class CoarserLevel(_Model):
    """A level of whole areas of the boundaries feed, named by rewriting an area's code (CBS: the
    buurt BU03440101 lies in the wijk WK034401). Such a level has codes, not names."""

    code: str = Field(description="a regex an area code matches, e.g. ^BU([0-9]{6})[0-9]{2}$")
    to: str = Field(description="the coarser area's code, with the regex's groups, e.g. WK\\1")
    code_pattern: str = Field(description="what a code of this level looks like, e.g. ^WK[0-9]{6}$")

    _valid_regex = field_validator("code", "code_pattern")(classmethod(lambda cls, value: _regex(value)))


class BoundariesRole(_Model):
    """The feed whose polygons are the city's areas (e.g. community areas, wijken or buurten):
    each study cell belongs to the area holding it, and scores are rolled up by area."""

    kind: ClassVar[str] = "area_boundaries"  # of the feed that can play it
    feed: Name
    level: Name = Field("area", description="what the feed's areas are called (buurt, community_area)")
    coarser: dict[Name, CoarserLevel] = Field(
        {}, description="levels made of whole areas, by name (wijk: {code, to, code_pattern})"
    )

    @model_validator(mode="after")
    def _distinct_levels(self) -> BoundariesRole:
        if self.level in self.coarser:
            raise ValueError(
                f"the level {self.level!r} is the feed's own; a coarser level needs another name"
            )
        return self

    @property
    def levels(self) -> list[str]:
        return [self.level, *self.coarser]


class IndicatorsRole(_Model):
    """The feed of statistics per area: the panel's area covariates and the exposure strata."""

    kind: ClassVar[str] = "area_attributes"
    feed: Name
    indicators: list[Name] | None = Field(
        None, description="the indicators that become features, in this order; null: all of the contract's"
    )
    exposure_strata: Name | None = Field(
        None,
        description="the indicator whose quintiles of areas are the strata of the exposure table "
        "(share of flagged cells per stratum); null: no strata",
    )


class WeeklyMeasure(_Model):
    """How one daily measure of a series becomes a weekly feature."""

    measure: Name = Field(description="a measure of the series feed's contract")
    aggregate: Literal["mean", "sum", "min", "max"]
    scale: float = Field(
        1.0,
        gt=0,
        description="a factor applied to each day first (24 turns a mean rate per hour into a day's amount)",
    )
    description: str | None = Field(None, description="how analysts read it, e.g. 'precipitation (mm)'")


class WeatherRole(_Model):
    """The city-wide daily series whose last complete week is a feature (e.g. weather)."""

    kind: ClassVar[str] = "series"
    feed: Name
    weekly: dict[Name, WeeklyMeasure] = Field(
        min_length=1, description="feature <name> (column weather_prev_<name>) -> its measure and aggregate"
    )


class Roles(_Model):
    """Which enabled feed plays which role. Code never names a feed: a city without such a
    feed leaves the role out, and every step runs without it."""

    area_boundaries: BoundariesRole | None = None
    area_indicators: IndicatorsRole | None = None
    weather: WeatherRole | None = None


class ScoringConfig(_Model):
    """Scoring and what analysts see: hotspots, drivers, suppression of small counts."""

    hotspot_coverage: float = Field(0.03, gt=0.0, le=0.5, description="share of study cells flagged")
    drivers: int = Field(3, ge=1, le=10, description="features named as a cell's drivers")
    min_count_shown: int = Field(
        5, ge=1, description="k: a count below k is shown as '<k' in published outputs"
    )
    report_top_n: int = Field(20, ge=1)


class ShareDatabase(_Model):
    """A PostgreSQL + PostGIS database the shared packages are also served from: one schema and
    one login role per recipient. The connection (with its password) comes from the environment."""

    dsn_env: str = Field(
        "RISKRADAR_SHARE_DSN",
        description="the environment variable holding the connection string (libpq: "
        "postgresql://user:password@host:port/db) of an owner of the database",
    )
    role_prefix: Name = Field("riskradar_", description="a recipient's role and schema: <prefix><recipient>")


class SharingConfig(_Model):
    """The exchange of results with partners (riskradar share): agreements and where packages go."""

    agreements_dir: str = Field("sharing", description="one agreement per recipient: <recipient>.yaml")
    database: ShareDatabase | None = Field(None, description="null: the outbox's files only")


class Bilingual(_Model):
    """A text the registers publish, in Dutch (`nl`) and English (`en`)."""

    nl: str = Field(min_length=1)
    en: str = Field(min_length=1)


class LinkedDocument(_Model):
    """A document the Algoritmeregister entry links to: a law, an impact assessment."""

    title: str = Field(min_length=1, max_length=100)
    link: str = Field(pattern=r"^https://\S+$", max_length=500)


# The Algoritmeregister's publication categories (publication standard 1.0.0, `publication_category`).
PUBLICATION_CATEGORIES = ("Hoog-risico AI-systeem", "Impactvolle algoritmes", "Overige algoritmes")
CONTACT = r"^(https://\S+|[^@\s]+@[^@\s]+\.[^@\s]+)$"


class GovernanceConfig(_Model):
    """Who answers for the processing and the models, as the register of processing and the
    Algoritmeregister entry state it (`riskradar register`)."""

    organisation: str = Field(
        min_length=1, max_length=100, description="the controller: the organisation that runs riskradar"
    )
    contact: str = Field(
        pattern=CONTACT, max_length=500, description="an e-mail address or https:// page for questions"
    )
    privacy_officer: str = Field(
        pattern=CONTACT, max_length=500, description="how to reach the data protection officer"
    )
    reviewer_role: str = Field(
        min_length=1,
        description="who reviews and promotes model versions and may switch scoring off (a role, not a name)",
    )
    purpose: Bilingual = Field(description="why the partners' data are processed")
    target_names: dict[Name, Bilingual] = Field(
        {}, description="how the registers name each target; a target left out is named by its key"
    )
    legal_basis: Bilingual = Field(description="the legal basis of the process the models serve")
    legal_basis_links: list[LinkedDocument] = []
    publication_category: Literal[PUBLICATION_CATEGORIES] = Field(
        description="the Algoritmeregister's category: " + ", ".join(PUBLICATION_CATEGORIES)
    )
    impact_assessments: list[LinkedDocument] = Field(
        [], description="published impact assessments (DPIA, IAMA)"
    )
    third_country_transfers: str = Field(
        min_length=1, description="transfers of personal data outside the EEA, or 'none'"
    )
    in_use_since: str | None = Field(
        None, pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM; null: the first version's month"
    )
    website: str | None = Field(None, pattern=r"^https://\S+$", max_length=500)
    source_code: str | None = Field(None, pattern=r"^https://\S+$", max_length=500)


class SparkConfig(_Model):
    master: str = "local[*]"
    conf: dict[str, str] = {}


class MlflowConfig(_Model):
    tracking_uri: str | None = None


class Settings(_Model):
    """conf/riskradar.yaml, with paths resolved and the enabled contracts loaded."""

    city: str
    timezone: str
    project_crs: str
    grid: GridConfig = GridConfig()
    study_area: StudyArea
    lake: LakeConfig
    partners: PartnersConfig
    roles: Roles = Roles()
    expectations_dir: str = "../expectations"
    categories: list[Name] = Field(min_length=1, description="the canonical category vocabulary")
    targets: dict[Name, TargetConfig] = {}
    features: FeatureConfig | None = None
    training: TrainingConfig | None = None
    scoring: ScoringConfig = ScoringConfig()
    sharing: SharingConfig = SharingConfig()
    pseudonymisation: PseudonymConfig = PseudonymConfig()
    retention: RetentionConfig = RetentionConfig()
    spark: SparkConfig = SparkConfig()
    mlflow: MlflowConfig = MlflowConfig()
    governance: GovernanceConfig | None = Field(None, description="needed by `riskradar register`")
    # Filled by load_settings, not written in YAML.
    config_file: str = ""
    contracts: dict[str, Contract] = {}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("project_crs")
    @classmethod
    def _projected(cls, value: str) -> str:
        from riskradar import crs

        crs.require_projected(value)
        return value

    @property
    def lake_root(self) -> Path:
        return Path(self.lake.root)

    def contract(self, name: str) -> Contract:
        check_name(name, "partner", sorted(self.contracts))
        try:
            return self.contracts[name]
        except KeyError:
            raise ConfigError(
                f"{self.config_file}: partner {name!r} is not enabled under partners.enabled "
                f"(enabled: {', '.join(sorted(self.contracts))})"
            ) from None

    def contract_file(self, contract: Contract) -> Path:
        return Path(self.partners.contracts_dir) / f"{contract.name}.yaml"

    def landing_dir(self, contract: Contract) -> Path:
        """The feed's landing folder, resolved (symlinks followed).

        Raises ConfigError if it lies outside `partners.landing_root`: checked again on every
        call, since a folder may become a symlink after the config was loaded.
        """
        return _inside(
            self.partners.landing_root,
            contract.landing.path,
            where=f"{self.contract_file(contract)}: key 'landing.path' = {contract.landing.path!r}",
            root_key=f"partners.landing_root of {self.config_file}",
        )

    def suite_path(self, contract: Contract) -> Path:
        """The feed's expectation suite, resolved; ConfigError if it lies outside `expectations_dir`."""
        return _inside(
            self.expectations_dir,
            contract.expectation_suite,
            where=f"{self.contract_file(contract)}: key 'expectation_suite' = {contract.expectation_suite!r}",
            root_key=f"expectations_dir of {self.config_file}",
            is_file=True,
        )

    def suite_path_for(self, file_name: str) -> Path:
        """A suite the code names (e.g. the published tables'), resolved inside `expectations_dir`."""
        return _inside(
            self.expectations_dir,
            file_name,
            where=f"{self.config_file}: the suite {file_name!r}",
            root_key="expectations_dir",
            is_file=True,
        )


def _inside(root: str, relative: str, *, where: str, root_key: str, is_file: bool = False) -> Path:
    """`relative` under `root`, resolved with symlinks followed; ConfigError if it leaves `root`.

    An absolute path is refused even when it points inside: contract paths are relative to
    their root, so that moving the root moves every feed with it.
    """
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if Path(relative).is_absolute() or not target.is_relative_to(base) or (is_file and target == base):
        raise ConfigError(
            f"{where}: must name a {'file' if is_file else 'folder'} inside "
            f"{base} ({root_key}), but resolves to {target}"
        )
    return target


def check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as 'America/Chicago')") from exc
    return value


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, first_line: int, line: int) -> None:
        super().__init__(f"key {key!r} at line {line} repeats line {first_line}")
        self.key, self.first_line, self.line = key, first_line, line


class StrictLoader(yaml.SafeLoader):
    """`yaml.safe_load`'s loader, except that a key given twice in one mapping is an error.

    Plain YAML loaders keep the last value: a contract with two `timezone:` lines would load
    with whichever came last, and nobody would notice. Keys merged in with `<<: *anchor` may
    still be overridden: only the keys written in the mapping itself are compared.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._mappings: dict[int, tuple[str, list[yaml.Node]]] = {}

    def construct_document(self, node: yaml.Node) -> Any:
        # Construction visits nested mappings out of order, so their dotted paths and their
        # own keys (before `<<` merges are flattened in) are noted first, from the node tree.
        self._mappings = {}
        _note_mappings(node, "", self._mappings)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        path, key_nodes = self._mappings.get(id(node), ("", [k for k, _ in node.value]))
        seen: dict[Any, yaml.Node] = {}
        for key_node in key_nodes:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if first is not key_node:
                raise _DuplicateKey(
                    _dotted(path, key_node), first.start_mark.line + 1, key_node.start_mark.line + 1
                )
        return super().construct_mapping(node, deep=deep)


def _dotted(path: str, key_node: yaml.Node) -> str:
    name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
    return f"{path}.{name}" if path else str(name)


def _note_mappings(node: yaml.Node, path: str, out: dict[int, tuple[str, list[yaml.Node]]]) -> None:
    if id(node) in out:  # an alias of a mapping already noted
        return
    if isinstance(node, yaml.MappingNode):
        out[id(node)] = (path, [k for k, _ in node.value])
        for key_node, value_node in node.value:
            _note_mappings(value_node, _dotted(path, key_node), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _note_mappings(item, f"{path}.{i}" if path else str(i), out)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        # StrictLoader is a SafeLoader: plain data only, never arbitrary Python objects.
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{path}: key '{exc.key}' is given twice, at line {exc.first_line} and again at line "
            f"{exc.line}; YAML would silently keep the last value: keep one"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def _explain(path: Path, exc: ValidationError) -> ConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"{path}: key '{key}'{shown}: {err['msg']}")
    return ConfigError("\n".join(lines))


# A URI scheme of two or more letters ('s3a://', 'gs://', 'file:/'); 'C:/' stays a path.
_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):/")
# Why each root must be a local folder (or a file system every node mounts, such as NFS).
_LOCAL_ONLY = {
    "lake.root": "publishing relies on atomic folder renames and a lock file, which object stores "
    "do not provide; an object store needs a table format with atomic commits (Delta Lake, "
    "Iceberg), which the lake does not support yet",
    "partners.landing_root": "every delivered file is checked to be a regular file inside the "
    "landing root, symlinks refused, and read by its exact local path; object stores have none of these",
    "partners.contracts_dir": "contracts are read from the local file system",
    "expectations_dir": "suites are read from the local file system",
    "sharing.agreements_dir": "agreements are read from the local file system",
}


def _local_path(base: Path, value: str, *, source: str, key: str) -> str:
    """A root from the config as an absolute local path; relative paths are relative to `base`.

    `file:///abs/path` is that path; any other URI (s3a://, gs://, abfss://, hdfs://, ...) is
    refused with the reason, rather than becoming a local folder named 's3a:'.
    """
    match = _URI.match(value)
    if match:
        uri = urlsplit(value)
        if uri.scheme.lower() != "file" or uri.netloc not in ("", "localhost"):
            raise ConfigError(
                f"{source}: key '{key}' = {value!r}: {match['scheme']}: URIs are not supported: "
                f"{_LOCAL_ONLY[key]}. Use a local folder, a file system every node mounts (NFS), "
                f"or file:///absolute/path"
            )
        value = unquote(uri.path)
    p = Path(value)
    return str(p if p.is_absolute() else (base / p).resolve())


def load_contract(path: Path, settings_categories: list[str] | None = None) -> Contract:
    data = _read_yaml(path)
    try:
        contract = Contract.model_validate(data)
    except ValidationError as exc:
        raise _explain(path, exc) from None
    if contract.name != path.stem:
        raise ConfigError(f"{path}: key 'name' = {contract.name!r}: must equal the file name {path.stem!r}")
    if settings_categories is not None and contract.events:
        unknown = sorted(set(contract.events.category.map.values()) - set(settings_categories))
        if unknown:
            raise ConfigError(
                f"{path}: key 'events.category.map' maps to unknown categories {unknown}; "
                f"allowed: the 'categories' of the pipeline config"
            )
        o = contract.events.origin
        bad = sorted(set(o.discovered_categories + o.reported_categories) - set(settings_categories))
        if bad:
            raise ConfigError(f"{path}: key 'events.origin' names unknown categories {bad}")
    return contract


# keys of earlier configs -> what replaced them
_REPLACED_KEYS = {
    ("study_area", "boundaries_feed"): "'roles.area_boundaries.feed' (the feed of kind area_boundaries)",
    ("features", "holidays"): "'features.calendar' ({country, subdivision, extra_dates}): holidays of any "
    "year from the holidays package",
}


def _refuse_replaced_keys(path: Path, data: dict[str, Any]) -> None:
    for (section, key), replacement in _REPLACED_KEYS.items():
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ConfigError(f"{path}: key '{section}.{key}' is no longer read: use {replacement}")


def _check_roles(path: Path, roles: Roles, contracts: dict[str, Contract], contracts_dir: Path) -> None:
    """Each role names an enabled feed of the right kind, and only measures and indicators its
    contract has."""
    for role in Roles.model_fields:
        spec = getattr(roles, role)
        if spec is None:
            continue
        key = f"{path}: key 'roles.{role}.feed' = {spec.feed!r}"
        if spec.feed not in contracts:
            raise ConfigError(
                f"{key}: not an enabled feed (enabled: {', '.join(contracts)}); enable it under "
                f"'partners.enabled' or leave the role out"
            )
        contract = contracts[spec.feed]
        if contract.kind != spec.kind:
            raise ConfigError(
                f"{key}: its contract {contracts_dir / (spec.feed + '.yaml')} is of kind {contract.kind!r}; "
                f"the role {role} needs a feed of kind {spec.kind!r}"
            )
    if roles.area_indicators is not None:
        r, areas = roles.area_indicators, contracts[roles.area_indicators.feed].areas
        assert areas is not None
        known = [m.name for m in areas.indicators]
        for i, name in enumerate(r.indicators or []):
            _must_be_in(path, f"roles.area_indicators.indicators.{i}", name, known, r.feed, "indicator")
        if r.exposure_strata is not None:
            chosen = known if r.indicators is None else r.indicators
            _must_be_in(
                path, "roles.area_indicators.exposure_strata", r.exposure_strata, chosen, r.feed, "indicator"
            )
    if roles.weather is not None:
        series = contracts[roles.weather.feed].series
        assert series is not None
        known = [m.name for m in series.measures]
        for name, weekly in roles.weather.weekly.items():
            _must_be_in(
                path,
                f"roles.weather.weekly.{name}.measure",
                weekly.measure,
                known,
                roles.weather.feed,
                "measure",
            )


def _must_be_in(path: Path, key: str, value: str, allowed: list[str], feed: str, what: str) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{path}: key '{key}' = {value!r}: not among the {what}s of the feed {feed!r} "
            f"(allowed: {', '.join(allowed) or 'none'})"
        )


def _check_features(path: Path, features: FeatureConfig, settings: Settings) -> None:
    """The feature groups name known categories and what refers to them names known groups."""
    for key, groups in (
        ("category_groups", features.category_groups),
        ("signals", features.signals),
    ):
        for gname, cats in groups.items():
            unknown = sorted(set(cats) - set(settings.categories))
            if unknown:
                raise ConfigError(f"{path}: key 'features.{key}.{gname}' has unknown categories {unknown}")
    near = features.near_repeat
    for i, gname in enumerate(near.groups if near else []):
        if gname not in features.category_groups:
            raise ConfigError(
                f"{path}: key 'features.near_repeat.groups.{i}' = {gname!r}: not a category group "
                f"(allowed: {', '.join(features.category_groups)})"
            )
        if gname in settings.targets:
            raise ConfigError(
                f"{path}: key 'features.near_repeat.groups.{i}' = {gname!r}: also a target, which gets "
                f"the weeks since its last event already (the columns would share a name): leave it out"
            )
    if features.kde:
        _check_kde(path, features.kde, features, settings.grid.cell_size_m)
    for spatial in features.spatial_lag_windows_weeks:
        if spatial not in features.windows_weeks:
            raise ConfigError(
                f"{path}: key 'features.spatial_lag_windows_weeks' = {spatial}: must be one of "
                f"'features.windows_weeks' {features.windows_weeks}"
            )


def _check_governance(path: Path, settings: Settings) -> None:
    named = settings.governance.target_names if settings.governance else {}
    unknown = sorted(set(named) - set(settings.targets))
    if unknown:
        raise ConfigError(
            f"{path}: key 'governance.target_names' names {unknown}, which are not under 'targets' "
            f"({', '.join(settings.targets)})"
        )


def _check_counts_retention(path: Path, retention: RetentionConfig, contracts: dict[str, Contract]) -> None:
    """The counts of expired events outlive the events: no shorter than any events feed's retention."""
    events = {name: c.retention_days for name, c in contracts.items() if c.kind == "events"}
    longest = max(events, key=lambda name: events[name], default=None)
    if longest is not None and retention.counts_days < events[longest]:
        raise ConfigError(
            f"{path}: key 'retention.counts_days' = {retention.counts_days}: shorter than the "
            f"retention_days of the events feed {longest!r} ({events[longest]}); the counts of its "
            f"expired events would go before the events do, and the panel's long-run features with them"
        )


def _check_kde(path: Path, kde: KdeConfig, features: FeatureConfig, cell_size_m: float) -> None:
    for i, gname in enumerate(kde.groups):
        if gname not in features.category_groups:
            raise ConfigError(
                f"{path}: key 'features.kde.groups.{i}' = {gname!r}: not a category group "
                f"(allowed: {', '.join(features.category_groups)})"
            )
    for b in kde.bandwidths_m:
        if b < cell_size_m / 2:
            raise ConfigError(
                f"{path}: key 'features.kde.bandwidths_m' = {b:g}: must be at least half a cell "
                f"({cell_size_m / 2:g} m with 'grid.cell_size_m' {cell_size_m:g}): a narrower kernel "
                f"is the cell itself"
            )
        radius = kernel_radius(b, cell_size_m, kde.truncate_sigmas)
        if radius > MAX_KERNEL_RADIUS_CELLS:
            raise ConfigError(
                f"{path}: key 'features.kde.bandwidths_m' = {b:g}: reaches {radius} cells of "
                f"{cell_size_m:g} m at 'features.kde.truncate_sigmas' {kde.truncate_sigmas:g}; at most "
                f"{MAX_KERNEL_RADIUS_CELLS}: lower the bandwidth or truncate_sigmas, or use larger cells"
            )


def demo_key_file(settings: Settings) -> Path:
    """Where `riskradar demo` keeps the local pseudonymisation key it may create (beside the
    config folder, never in the lake), and where `riskradar airflow` looks for it."""
    return Path(settings.config_file).parent.parent / ".riskradar" / "demo-pseudonym.key"


def load_settings(path: str | Path | None = None) -> Settings:
    """Load and validate the pipeline config and the contracts of its enabled feeds."""
    path = Path(path or DEFAULT_CONFIG).resolve()
    data = _read_yaml(path)
    lake_override = os.environ.get(LAKE_ENV)
    if lake_override:
        # An environment path is relative to where the command runs, not to the file.
        data.setdefault("lake", {})["root"] = _local_path(
            Path.cwd(),
            lake_override,
            source=f"environment variable {LAKE_ENV} (overrides {path})",
            key="lake.root",
        )
    _refuse_replaced_keys(path, data)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _explain(path, exc) from None
    base = path.parent
    lake = LakeConfig(root=_local_path(base, settings.lake.root, source=str(path), key="lake.root"))
    if Path(lake.root).exists() and not Path(lake.root).is_dir():
        source = f"environment variable {LAKE_ENV}" if lake_override else f"{path}: key 'lake.root'"
        raise ConfigError(f"{source} = {lake.root!r}: a file, not a folder: the lake root must be a folder")
    partners = settings.partners.model_copy(
        update={
            key: _local_path(base, getattr(settings.partners, key), source=str(path), key=f"partners.{key}")
            for key in ("contracts_dir", "landing_root")
        }
    )
    expectations_dir = _local_path(base, settings.expectations_dir, source=str(path), key="expectations_dir")
    sharing = settings.sharing.model_copy(
        update={
            "agreements_dir": _local_path(
                base, settings.sharing.agreements_dir, source=str(path), key="sharing.agreements_dir"
            )
        }
    )
    contracts: dict[str, Contract] = {}
    for name in settings.partners.enabled:
        cpath = Path(partners.contracts_dir) / f"{name}.yaml"
        if not cpath.exists():
            raise ConfigError(f"{path}: key 'partners.enabled' names {name!r} but {cpath} does not exist")
        contracts[name] = load_contract(cpath, settings.categories)
    produced = {
        c for contract in contracts.values() if contract.events for c in contract.events.category.map.values()
    }
    for tname, target in settings.targets.items():
        unknown = sorted(set(target.categories) - set(settings.categories))
        if unknown:
            raise ConfigError(f"{path}: key 'targets.{tname}.categories' has unknown categories {unknown}")
        unmapped = sorted(set(target.categories) - produced)
        if unmapped:
            raise ConfigError(
                f"{path}: key 'targets.{tname}.categories' names {unmapped}, which no enabled contract "
                f"maps (events.category.map of {', '.join(sorted(contracts))}): its label would be zero "
                f"for ever; enable a feed that delivers them, or leave them out"
            )
    if settings.features:
        _check_features(path, settings.features, settings)
    _check_governance(path, settings)
    _check_counts_retention(path, settings.retention, contracts)
    _check_roles(path, settings.roles, contracts, Path(partners.contracts_dir))
    settings = settings.model_copy(
        update={
            "config_file": str(path),
            "lake": lake,
            "partners": partners,
            "expectations_dir": expectations_dir,
            "sharing": sharing,
            "contracts": contracts,
        }
    )
    for contract in contracts.values():  # both raise ConfigError if the path leaves its root
        settings.landing_dir(contract)
        settings.suite_path(contract)
    return settings
