"""A synthetic city for scale tests: partner files in the formats of the Chicago feeds.

    riskradar synth --events 10000000 --out /tmp/synth10m [--seed 42] [--start 2013-01 --months 24]

Writes `<out>/landing/` (police crimes, one gzipped CSV a month; 311 sanitation complaints, one
gzipped CSV a year; daily weather; census indicators and area boundaries) and
`<out>/riskradar.yaml`, a config that reads that landing with the committed contracts and keeps
its lake in `<out>/lake`. The same seed and arguments give byte-identical files.

The city is a fixed rectangle (20 km x 28 km, about 25,000 cells of 150 m, 70 areas), so more
events mean a denser city, as when a region's partners share one grid. Its structure is what
place-based forecasting relies on:
- stable hotspots (a fixed set of small clusters, each with a property, violence or drugs mix);
- near-repeat bursts (a share of events are offspring of an earlier one: close in space, days
  later);
- weekly and seasonal cycles, and warm days a little busier;
- 311 complaints that precede crime: deteriorating places raise sanitation complaints two weeks
  before their crime rises;
- a share of bad rows (no location, unparseable date, unknown category, outside the city, and
  re-delivered duplicates), which the pipeline must quarantine.

Memory: events are generated and written month by month in chunks of `--chunk-rows`, so 10M+
events never sit in Python memory at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import yaml

from riskradar.crs import transform_array

ROOT = Path(__file__).resolve().parents[1]
PROJECT_CRS = "EPSG:26916"
FEET_CRS = "EPSG:3435"  # the police and 311 feeds' X and Y (US survey feet)
CENTRE_LONLAT = (-87.70, 41.84)
EXTENT_M = (20_000.0, 28_000.0)
AREAS = (7, 10)  # areas across x and y
SHARE_311 = 0.12  # of all events (about the Chicago sample's share)
URBAN_FLAT_SHARE = 0.15  # of the city's background events: uniform over the city
POLICE_FIRST_ID, COMPLAINT_FIRST_ID = 20_000_000, 1

# Police categories and their shares (close to the Chicago sample): (Primary Type, IUCR, FBI Code)
CRIME_TYPES = {
    "THEFT": (0.22, "0820", "06"),
    "BATTERY": (0.18, "0486", "08B"),
    "CRIMINAL DAMAGE": (0.10, "1320", "14"),
    "NARCOTICS": (0.10, "1811", "18"),
    "OTHER OFFENSE": (0.065, "2820", "26"),
    "ASSAULT": (0.065, "0560", "08A"),
    "BURGLARY": (0.055, "0610", "05"),
    "DECEPTIVE PRACTICE": (0.045, "1153", "11"),
    "MOTOR VEHICLE THEFT": (0.035, "0910", "07"),
    "ROBBERY": (0.035, "031A", "03"),
    "CRIMINAL TRESPASS": (0.025, "1330", "26"),
    "WEAPONS VIOLATION": (0.012, "143A", "15"),
    "PUBLIC PEACE VIOLATION": (0.010, "2820", "24"),
    "OFFENSE INVOLVING CHILDREN": (0.008, "1780", "20"),
    "PROSTITUTION": (0.005, "1512", "16"),
    "INTERFERENCE WITH PUBLIC OFFICER": (0.005, "3730", "24"),
    "SEX OFFENSE": (0.004, "1544", "17"),
    "CRIM SEXUAL ASSAULT": (0.004, "0261", "02"),
    "LIQUOR LAW VIOLATION": (0.002, "2230", "22"),
    "ARSON": (0.002, "1020", "09"),
    "HOMICIDE": (0.002, "0110", "01A"),
    "GAMBLING": (0.001, "1661", "19"),
    "KIDNAPPING": (0.001, "1753", "20"),
    "STALKING": (0.001, "0580", "26"),
    "INTIMIDATION": (0.001, "3960", "26"),
}
TYPE_NAMES = list(CRIME_TYPES)
# How each kind of place shifts the category mix (multipliers on the shares above).
MIX_BOOST = {
    "background": {},
    "property": {"THEFT": 2.5, "BURGLARY": 4.0, "MOTOR VEHICLE THEFT": 3.0, "CRIMINAL DAMAGE": 2.0},
    "violence": {"BATTERY": 2.5, "ASSAULT": 2.5, "ROBBERY": 4.0, "HOMICIDE": 4.0, "WEAPONS VIOLATION": 2.0},
    "drugs": {"NARCOTICS": 5.0, "WEAPONS VIOLATION": 3.0, "PROSTITUTION": 3.0, "CRIMINAL TRESPASS": 2.0},
}
MIXES = list(MIX_BOOST)
HOUR_PROFILE = np.array(
    [4, 3, 3, 2, 1.5, 1.2, 1.5, 2.5, 3.5, 4, 4.2, 4.5, 5.5, 5, 5, 5.2, 5.5, 5.8, 6, 6, 5.8, 5.5, 5, 4.5]
)
WEEKDAY_FACTOR = np.array([0.97, 0.96, 0.97, 0.98, 1.06, 1.07, 0.99])  # Mon..Sun
SANITATION_NATURE = ["Garbage in yard", "Overflowing carts", "Dumpster not being emptied", "Rats", ""]

# Shares of police events by how they arise
SHARE_HOTSPOT = 0.25
SHARE_EPISODE = 0.10
SHARE_REPEAT = 0.15  # the rest is background
EPISODE_LEAD_DAYS = 14


class Span(Protocol):
    """What the chunks and frames read of a generator's options (the city's and the country's)."""

    seed: int
    start: date
    months: int
    bad_share: float
    chunk_rows: int


@dataclass(frozen=True)
class Options:
    events: int
    out: Path
    seed: int = 42
    start: date = date(2013, 1, 1)
    months: int = 24
    bad_share: float = 0.005
    chunk_rows: int = 500_000


@dataclass(frozen=True)
class City:
    """The fixed structure every chunk draws from (small: a few thousand numbers). A country is
    a City too: a larger extent, more cores (its settlements) and a larger rural share."""

    origin: tuple[float, float]  # south-west corner, project CRS metres
    cores: np.ndarray  # (k, 4): x, y, sd, weight
    hotspots: np.ndarray  # (h, 4): x, y, sd, weight
    hotspot_mix: np.ndarray  # (h,) index into MIXES
    episodes: np.ndarray  # (e, 5): x, y, sd, start day, duration days (days since start)
    day_weight: np.ndarray  # crime intensity per day of the span (seasonal, weekly, weather)
    temperature_f: np.ndarray  # daily max temperature, F
    precip_in_h: np.ndarray
    extent: tuple[float, float] = EXTENT_M  # width, height in metres from the origin
    flat_share: float = URBAN_FLAT_SHARE  # of the background: uniform over the extent


def build_city(opts: Options) -> City:
    rng = np.random.default_rng([opts.seed, 0])
    cx, cy = transform_array(
        np.array([CENTRE_LONLAT[0]]), np.array([CENTRE_LONLAT[1]]), "EPSG:4326", PROJECT_CRS
    )
    origin = (float(np.round(cx[0] - EXTENT_M[0] / 2)), float(np.round(cy[0] - EXTENT_M[1] / 2)))
    k = 6
    cores = np.column_stack(
        [
            rng.uniform(0.15, 0.85, k) * EXTENT_M[0],
            rng.uniform(0.1, 0.9, k) * EXTENT_M[1],
            rng.uniform(1500, 4500, k),
            rng.uniform(0.5, 1.5, k),
        ]
    )
    layout = City(origin, cores, *(np.empty(0),) * 6)
    return populate(
        rng, layout, hotspots=600, episodes=30 * opts.months, start=opts.start, days=_span_days(opts)
    )


def populate(
    rng: np.random.Generator, layout: City, *, hotspots: int, episodes: int, start: date, days: int
) -> City:
    """`layout` (its origin, extent, cores and flat share) with hotspots, episodes and a daily
    calendar of `days` days from `start`, drawn from the cores."""
    extent, flat = layout.extent, layout.flat_share
    h = hotspots
    hx, hy = _from_cores(rng, layout.cores, h, extent, flat)
    spots = np.column_stack([hx, hy, rng.uniform(50, 150, h), rng.lognormal(0.0, 1.0, h)])
    hotspot_mix = rng.choice([1, 2, 3], size=h, p=[0.45, 0.35, 0.20])
    e = episodes
    ex, ey = _from_cores(rng, layout.cores, e, extent, flat)
    places = np.column_stack(
        [ex, ey, rng.uniform(80, 200, e), rng.uniform(-30, days, e), rng.uniform(14, 56, e)]
    )
    calendar = pd.date_range(start, periods=days, freq="D")
    season = np.cos(2 * np.pi * (calendar.dayofyear.to_numpy() - 200) / 365.25)
    temp_anomaly = rng.normal(0, 6, days)
    temperature = 58 + 26 * season + temp_anomaly
    precip = np.where(rng.random(days) < 0.3, rng.gamma(1.2, 0.01, days), 0.0)
    weight = np.exp(0.25 * season + 0.01 * temp_anomaly - 3.0 * precip) * WEEKDAY_FACTOR[calendar.dayofweek]
    return dataclasses.replace(
        layout,
        hotspots=spots,
        hotspot_mix=hotspot_mix,
        episodes=places,
        day_weight=weight,
        temperature_f=temperature,
        precip_in_h=precip,
    )


def _span_days(opts: Span) -> int:
    end = (pd.Timestamp(opts.start) + pd.DateOffset(months=opts.months)).date()
    return (end - opts.start).days


def _inside(x: np.ndarray, y: np.ndarray, extent: tuple[float, float]) -> np.ndarray:
    return (x >= 0) & (x < extent[0]) & (y >= 0) & (y < extent[1])


def _from_cores(
    rng: np.random.Generator, cores: np.ndarray, n: int, extent: tuple[float, float], flat_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """n points from the mixture of cores (plus `flat_share` uniform), all inside the extent."""
    x = np.empty(n)
    y = np.empty(n)
    todo = np.arange(n)
    p = cores[:, 3] / cores[:, 3].sum()
    while todo.size:
        m = todo.size
        which = rng.choice(len(cores), size=m, p=p)
        px = rng.normal(cores[which, 0], cores[which, 2])
        py = rng.normal(cores[which, 1], cores[which, 2])
        flat = rng.random(m) < flat_share
        px[flat] = rng.uniform(0, extent[0], flat.sum())
        py[flat] = rng.uniform(0, extent[1], flat.sum())
        ok = _inside(px, py, extent)
        x[todo[ok]] = px[ok]
        y[todo[ok]] = py[ok]
        todo = todo[~ok]
    return x, y


def _around(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, sd: np.ndarray, extent: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian jitter around centres, reflected back into the extent."""
    px = np.abs(rng.normal(x, sd))
    py = np.abs(rng.normal(y, sd))
    px = np.where(px >= extent[0], 2 * extent[0] - px - 1, px)
    py = np.where(py >= extent[1], 2 * extent[1] - py - 1, py)
    return px, py


def _mix_cdf() -> np.ndarray:
    base = np.array([CRIME_TYPES[t][0] for t in TYPE_NAMES])
    rows = []
    for mix in MIXES:
        w = base * np.array([MIX_BOOST[mix].get(t, 1.0) for t in TYPE_NAMES])
        rows.append(np.cumsum(w / w.sum()))
    return np.array(rows)


def _months(opts: Span) -> list[tuple[pd.Timestamp, int, int]]:
    """(month start, first day index, number of days) for each month of the span."""
    out = []
    start = pd.Timestamp(opts.start)
    for m in range(opts.months):
        first = start + pd.DateOffset(months=m)
        nxt = start + pd.DateOffset(months=m + 1)
        out.append((first, (first - start).days, (nxt - first).days))
    return out


def _split(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer counts proportional to weights that add up to total exactly."""
    raw = total * weights / weights.sum()
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(raw - counts)[::-1][: total - counts.sum()]] += 1
    return counts


@dataclass
class Chunk:
    """Events of one chunk: positions in metres from the city origin, seconds since the span start."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    mix: np.ndarray


def _crime_chunk(rng: np.random.Generator, city: City, n: int, first_day: int, n_days: int) -> Chunk:
    """n crime events inside one month: background, hotspots, episodes, then near-repeats."""
    parts = _split(
        n,
        np.array(
            [1 - SHARE_HOTSPOT - SHARE_EPISODE - SHARE_REPEAT, SHARE_HOTSPOT, SHARE_EPISODE, SHARE_REPEAT]
        ),
    )
    n_bg, n_hot, n_epi, n_rep = (int(v) for v in parts)
    days = city.day_weight[first_day : first_day + n_days]
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (x, y, t, mix)

    def times(m: int, day_p: np.ndarray) -> np.ndarray:
        day = rng.choice(n_days, size=m, p=day_p / day_p.sum()) + first_day
        hour = rng.choice(24, size=m, p=HOUR_PROFILE / HOUR_PROFILE.sum())
        return day * 86400 + hour * 3600 + rng.integers(0, 3600, m)

    bx, by = _from_cores(rng, city.cores, n_bg, city.extent, city.flat_share)
    pieces.append((bx, by, times(n_bg, days), np.zeros(n_bg, np.int8)))

    which = rng.choice(len(city.hotspots), size=n_hot, p=city.hotspots[:, 3] / city.hotspots[:, 3].sum())
    spot = city.hotspots[which]
    hx, hy = _around(rng, spot[:, 0], spot[:, 1], spot[:, 2], city.extent)
    pieces.append((hx, hy, times(n_hot, days), city.hotspot_mix[which].astype(np.int8)))

    # Episodes: crime rises EPISODE_LEAD_DAYS after the place's complaints start.
    ep = city.episodes
    active = _episode_days(ep, first_day, n_days, lead=EPISODE_LEAD_DAYS)
    if active.sum() > 0 and n_epi > 0:
        flat = rng.choice(active.size, size=n_epi, p=(active / active.sum()).ravel())
        e_idx, d_idx = np.divmod(flat, n_days)
        ex, ey = _around(rng, ep[e_idx, 0], ep[e_idx, 1], ep[e_idx, 2], city.extent)
        hour = rng.choice(24, size=n_epi, p=HOUR_PROFILE / HOUR_PROFILE.sum())
        et = (first_day + d_idx) * 86400 + hour * 3600 + rng.integers(0, 3600, n_epi)
        pieces.append((ex, ey, et, np.full(n_epi, 2, np.int8)))
    else:  # no episode active this month: background instead
        ex, ey = _from_cores(rng, city.cores, n_epi, city.extent, city.flat_share)
        pieces.append((ex, ey, times(n_epi, days), np.zeros(n_epi, np.int8)))

    x, y, t, mix = (np.concatenate(v) for v in zip(*pieces, strict=True))
    # Near-repeats: close to an earlier event of this month (about 100 m), days after it.
    parent = rng.integers(0, x.size, n_rep)
    rx, ry = _around(rng, x[parent], y[parent], np.full(n_rep, 100.0), city.extent)
    delay = rng.exponential(4 * 86400, n_rep).astype(np.int64)
    lo, hi = first_day * 86400, (first_day + n_days) * 86400 - 1
    rt = t[parent] + delay
    rt = np.where(rt > hi, t[parent] - delay, rt)
    rt = np.clip(rt, lo, hi)
    return Chunk(
        np.concatenate([x, rx]),
        np.concatenate([y, ry]),
        np.concatenate([t, rt]),
        np.concatenate([mix, mix[parent]]),
    )


def _episode_days(ep: np.ndarray, first_day: int, n_days: int, *, lead: int) -> np.ndarray:
    """(episodes, days) 0/1: whether each episode is active on each day of the month."""
    day = np.arange(first_day, first_day + n_days)[None, :]
    start = ep[:, 3:4] + lead
    return ((day >= start) & (day < start + ep[:, 4:5])).astype(float)


def _complaint_chunk(rng: np.random.Generator, city: City, n: int, first_day: int, n_days: int) -> Chunk:
    """311 complaints: 45% at deteriorating places (from the episode's start), the rest background."""
    active = _episode_days(city.episodes, first_day, n_days, lead=0)
    n_epi = int(round(n * 0.45)) if active.sum() > 0 else 0
    flat = rng.choice(active.size, size=n_epi, p=(active / max(active.sum(), 1)).ravel()) if n_epi else []
    e_idx, d_idx = np.divmod(np.asarray(flat, dtype=np.int64), n_days)
    ep = city.episodes[e_idx]
    ex, ey = _around(rng, ep[:, 0], ep[:, 1], ep[:, 2], city.extent)
    bx, by = _from_cores(rng, city.cores, n - n_epi, city.extent, city.flat_share)
    days = city.day_weight[first_day : first_day + n_days]
    bd = rng.choice(n_days, size=n - n_epi, p=days / days.sum())
    t = (first_day + np.concatenate([d_idx, bd])) * 86400 + rng.integers(7 * 3600, 19 * 3600, n)
    return Chunk(np.concatenate([ex, bx]), np.concatenate([ey, by]), t, np.zeros(n, np.int8))


class Geography:
    """Areas (a grid of rectangles over the extent: 7 x 10 for the city), their codes, and
    conversions to the feeds' CRSs."""

    def __init__(self, city: City, areas: tuple[int, int] = AREAS):
        self.origin = city.origin
        self.extent = city.extent
        self.areas = areas
        self.size = (city.extent[0] / areas[0], city.extent[1] / areas[1])

    @property
    def n_areas(self) -> int:
        return self.areas[0] * self.areas[1]

    def area_code(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        col = np.clip((x // self.size[0]).astype(np.int64), 0, self.areas[0] - 1)
        row = np.clip((y // self.size[1]).astype(np.int64), 0, self.areas[1] - 1)
        return row * self.areas[0] + col + 1

    def to(self, crs: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return transform_array(x + self.origin[0], y + self.origin[1], PROJECT_CRS, crs)

    def bbox_wgs84(self, margin_m: float = 2000.0) -> list[float]:
        width, height = self.extent
        xs = np.array([-margin_m, width + margin_m, -margin_m, width + margin_m])
        ys = np.array([-margin_m, -margin_m, height + margin_m, height + margin_m])
        lon, lat = self.to("EPSG:4326", xs, ys)
        return [
            round(float(lon.min()), 4),
            round(float(lat.min()), 4),
            round(float(lon.max()), 4),
            round(float(lat.max()), 4),
        ]


def _local_times(opts: Span, t: np.ndarray) -> pd.DatetimeIndex:
    return pd.Timestamp(opts.start) + pd.to_timedelta(t, unit="s")


def _police_frame(
    rng: np.random.Generator, geo: Geography, opts: Span, chunk: Chunk, first_id: int
) -> pd.DataFrame:
    n = chunk.x.size
    cdf = _mix_cdf()
    u = rng.random(n)
    type_idx = np.minimum(_types_vectorised(cdf, chunk.mix, u), len(TYPE_NAMES) - 1)
    names = np.array(TYPE_NAMES, dtype=object)[type_idx]
    iucr = np.array([CRIME_TYPES[t][1] for t in TYPE_NAMES], dtype=object)[type_idx]
    fbi = np.array([CRIME_TYPES[t][2] for t in TYPE_NAMES], dtype=object)[type_idx]
    violent = np.isin(names, ["BATTERY", "ASSAULT"])
    domestic = rng.random(n) < np.where(violent, 0.3, 0.04)
    area = geo.area_code(chunk.x, chunk.y)
    fx, fy = geo.to(FEET_CRS, chunk.x, chunk.y)
    lon, lat = geo.to("EPSG:4326", chunk.x, chunk.y)
    when = _local_times(opts, chunk.t)
    ids = first_id + np.arange(n)
    frame = pd.DataFrame(
        {
            "ID": ids,
            "Case Number": [f"SY{i % 10_000_000:07d}" for i in ids],
            "Date": when.strftime("%m/%d/%Y %I:%M:%S %p"),
            "Block": [f"{(i * 37) % 120:03d}XX S SYNTH {a} ST" for i, a in zip(ids, area, strict=True)],
            "IUCR": iucr,
            "Primary Type": names,
            "Description": "SYNTHETIC",
            "Location Description": np.where(rng.random(n) < 0.5, "STREET", "RESIDENCE"),
            "Arrest": np.where(rng.random(n) < 0.2, "true", "false"),
            "Domestic": np.where(domestic, "true", "false"),
            "Beat": [f"{a:02d}{b}" for a, b in zip(area, ids % 4 + 1, strict=True)],
            "District": [f"{(a - 1) // 4 + 1:03d}" for a in area],
            "Ward": (area - 1) // 2 + 1,
            "Community Area": area,
            "FBI Code": fbi,
            "X Coordinate": pd.array(np.round(fx).astype(np.int64), dtype="Int64"),
            "Y Coordinate": pd.array(np.round(fy).astype(np.int64), dtype="Int64"),
            "Updated On": "02/10/2018 03:50:01 PM",
            "Latitude": np.round(lat, 9),
            "Longitude": np.round(lon, 9),
        }
    )
    return _spoil_police(rng, frame, opts.bad_share)


def _types_vectorised(cdf: np.ndarray, mix: np.ndarray, u: np.ndarray) -> np.ndarray:
    out = np.empty(u.size, dtype=np.int64)
    for m in range(len(MIXES)):
        sel = mix == m
        out[sel] = np.searchsorted(cdf[m], u[sel], side="right")
    return out


def _spoil_police(rng: np.random.Generator, frame: pd.DataFrame, share: float) -> pd.DataFrame:
    """Damage a share of rows as real exports are damaged; append re-delivered duplicates."""
    n = len(frame)
    kind = np.where(rng.random(n) < share, rng.integers(0, 4, n), -1)
    no_location = kind == 0
    frame.loc[no_location, ["X Coordinate", "Y Coordinate"]] = pd.NA
    frame.loc[no_location, ["Latitude", "Longitude"]] = np.nan
    frame.loc[kind == 1, "Date"] = "13/45/2014 25:61:00 XM"
    frame.loc[kind == 2, "Primary Type"] = "UNCLASSIFIED SYNTHETIC"
    far = kind == 3  # about 300 km east of the city
    frame.loc[far, "X Coordinate"] = frame.loc[far, "X Coordinate"] + 1_000_000
    frame.loc[far, "Longitude"] = frame.loc[far, "Longitude"] + 3.6
    dup = rng.random(n) < share / 5
    return pd.concat([frame, frame[dup]], ignore_index=True) if dup.any() else frame


def _complaint_frame(
    rng: np.random.Generator, geo: Geography, opts: Span, chunk: Chunk, first_id: int
) -> pd.DataFrame:
    n = chunk.x.size
    area = geo.area_code(chunk.x, chunk.y)
    fx, fy = geo.to(FEET_CRS, chunk.x, chunk.y)
    lon, lat = geo.to("EPSG:4326", chunk.x, chunk.y)
    created = _local_times(opts, chunk.t)
    status = rng.choice(["Completed", "Open", "Completed - Dup"], size=n, p=[0.88, 0.07, 0.05])
    done = created + pd.to_timedelta(rng.integers(1, 40, n), unit="D")
    ids = first_id + np.arange(n)
    year = created.year % 100
    frame = pd.DataFrame(
        {
            "Creation_Date": created.strftime("%Y-%m-%d"),
            "Status": status,
            "Completion_Date": np.where(status == "Open", "", done.strftime("%Y-%m-%d")),
            "Service_Request_Number": [f"{y:02d}-{i:08d}" for y, i in zip(year, ids, strict=True)],
            "Type_of_Service_Request": "Sanitation Code Violation",
            "What_is_the_Nature_of_this_Code_Violation": rng.choice(SANITATION_NATURE, size=n),
            "Street_Address": [f"{(i * 53) % 9000} S SYNTH {a}" for i, a in zip(ids, area, strict=True)],
            "ZIP_Code": 60600 + area,
            "X_Coordinate": np.round(fx, 8),
            "Y_Coordinate": np.round(fy, 8),
            "Ward": ((area - 1) // 2 + 1).astype(float),
            "Police_District": ((area - 1) // 4 + 1).astype(float),
            "Community_Area": area.astype(float),
            "Latitude": lat,
            "Longitude": lon,
        }
    )
    frame["Location"] = "(" + frame["Latitude"].astype(str) + ", " + frame["Longitude"].astype(str) + ")"
    bad = rng.random(n) < opts.bad_share
    frame.loc[bad, ["Latitude", "Longitude", "X_Coordinate", "Y_Coordinate", "Location"]] = np.nan
    return frame


def _chunks(total: int, size: int) -> Iterator[int]:
    while total > 0:
        yield min(total, size)
        total -= size


@dataclass(frozen=True)
class Period:
    """Events of a stretch of days written to one file (periods sharing a path share the file)."""

    index: int  # seeds the period's chunks: (seed, feed, index, chunk)
    first_day: int  # days since the span's start
    n_days: int
    events: int
    path: Path


def month_periods(
    opts: Span, city: City, total: int, path_of: Callable[[pd.Timestamp], Path]
) -> list[Period]:
    """One period a month of the span, `total` events split over them by the crime intensity;
    `path_of(month start)` names each month's file."""
    months = _months(opts)
    weight = np.array([city.day_weight[d : d + k].sum() for _, d, k in months])
    counts = _split(total, weight)
    return [
        Period(m, d0, nd, int(n), path_of(first))
        for m, ((first, d0, nd), n) in enumerate(zip(months, counts, strict=True))
    ]


def write_police(opts: Span, city: City, geo: Geography, periods: list[Period], first_id: int) -> int:
    """The police crimes of each period, chunk by chunk; returns the rows written."""
    return _write_feed(opts, city, geo, periods, first_id, feed=1, chunk=_crime_chunk, frame=_police_frame)


def write_complaints(opts: Span, city: City, geo: Geography, periods: list[Period], first_id: int) -> int:
    """The 311 complaints of each period, chunk by chunk; returns the rows written."""
    return _write_feed(
        opts, city, geo, periods, first_id, feed=2, chunk=_complaint_chunk, frame=_complaint_frame
    )


def _write_feed(
    opts: Span,
    city: City,
    geo: Geography,
    periods: list[Period],
    first_id: int,
    *,
    feed: int,
    chunk: Callable[..., Chunk],
    frame: Callable[..., pd.DataFrame],
) -> int:
    """Generate and write each period's events in chunks of `opts.chunk_rows`: only one chunk is
    in memory at a time. A file's header is written with its first chunk."""
    rows, fh, path = 0, None, None
    try:
        for p in periods:
            if p.path != path:
                if fh is not None:
                    fh.close()
                path = p.path
                path.parent.mkdir(parents=True, exist_ok=True)
                fh, header = _gzip_text(path), True
            for c, size in enumerate(_chunks(p.events, opts.chunk_rows)):
                rng = np.random.default_rng([opts.seed, feed, p.index, c])
                rows_of = frame(rng, geo, opts, chunk(rng, city, size, p.first_day, p.n_days), first_id)
                rows_of.to_csv(fh, index=False, header=header, lineterminator="\n")
                header = False
                first_id += size
                rows += len(rows_of)
    finally:
        if fh is not None:
            fh.close()
    return rows


def write_city(opts: Options) -> dict[str, int]:
    """Write the landing files and the config; returns row counts per feed."""
    city = build_city(opts)
    geo = Geography(city)
    landing = opts.out / "landing"
    n_complaints = int(round(opts.events * SHARE_311))
    n_crimes = opts.events - n_complaints
    police = month_periods(
        opts, city, n_crimes, lambda first: landing / "police_crimes" / f"synth_crimes_{first:%Y-%m}.csv.gz"
    )
    complaints = month_periods(
        opts,
        city,
        n_complaints,
        lambda first: landing / "sanitation_311" / f"synth_sanitation_{first.year}.csv.gz",
    )
    counts = {
        "police_crimes": write_police(opts, city, geo, police, POLICE_FIRST_ID),
        "sanitation_311": write_complaints(opts, city, geo, complaints, COMPLAINT_FIRST_ID),
    }
    weather = weather_frame(city, opts)
    counts["weather"] = write_csv(weather, landing / "weather" / "synth_weather_daily.csv")
    counts["census_indicators"] = write_census(city, geo, landing / "census")
    counts["census_areas"] = geo.n_areas
    write_config(opts, geo, command=f"riskradar synth --events {opts.events} --seed {opts.seed}")
    return counts


def _gzip_text(path: Path):
    # mtime=0: the same input writes byte-identical files
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", compresslevel=4, mtime=0), encoding="utf-8", newline="")


def weather_frame(city: City, opts: Span) -> pd.DataFrame:
    """The daily weather of every day of the city's calendar."""
    rng = np.random.default_rng([opts.seed, 3])
    days = city.temperature_f.size
    return pd.DataFrame(
        {
            "precipIntensity": np.round(city.precip_in_h, 5),
            "temperatureMax": np.round(city.temperature_f, 2),
            "windSpeed": np.round(rng.gamma(4, 2.5, days), 2),
            "humidity": np.round(rng.uniform(0.4, 0.95, days), 2),
            "date": pd.date_range(opts.start, periods=days, freq="D").strftime("%Y-%m-%d"),
        }
    )


def write_csv(frame: pd.DataFrame, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return len(frame)


def write_census(city: City, geo: Geography, folder: Path, seed: int = 0) -> int:
    """Indicators per area (hardship follows the urban cores) and the area boundaries."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 4])
    codes = np.arange(1, geo.n_areas + 1)
    col, row = (codes - 1) % geo.areas[0], (codes - 1) // geo.areas[0]
    cx, cy = (col + 0.5) * geo.size[0], (row + 0.5) * geo.size[1]
    density = sum(w * np.exp(-((cx - x) ** 2 + (cy - y) ** 2) / (2 * sd**2)) for x, y, sd, w in city.cores)
    hardship = np.clip(
        np.round(100 * pd.Series(density + rng.normal(0, 0.05, codes.size)).rank(pct=True)), 1, 100
    )
    poverty = np.round(5 + 0.35 * hardship + rng.normal(0, 3, codes.size), 1).clip(0, 100)
    pd.DataFrame(
        {
            "Community Area": codes,
            "COMMUNITY AREA NAME": [f"Synth Area {c}" for c in codes],
            "PERCENT OF HOUSING CROWDED": np.round(1 + 0.1 * hardship, 1),
            "PERCENT HOUSEHOLDS BELOW POVERTY": poverty,
            "PERCENT AGED 16+ UNEMPLOYED": np.round(4 + 0.2 * hardship, 1),
            "PERCENT AGED 25+ WITHOUT HIGH SCHOOL DIPLOMA": np.round(3 + 0.3 * hardship, 1),
            "PERCENT AGED UNDER 18 OR OVER 64": np.round(rng.uniform(20, 45, codes.size), 1),
            "PER CAPITA INCOME ": np.round(80000 - 650 * hardship).astype(int),
            "HARDSHIP INDEX": hardship.astype(int),
        }
    ).to_csv(folder / "census_socioeconomic_synth.csv", index=False, lineterminator="\n")
    features = []
    for c, i, j in zip(codes, col, row, strict=True):
        xs = np.array([i, i + 1, i + 1, i, i]) * geo.size[0]
        ys = np.array([j, j, j + 1, j + 1, j]) * geo.size[1]
        lon, lat = geo.to("EPSG:4326", xs, ys)
        ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lon, lat, strict=True)]
        features.append(
            {
                "type": "Feature",
                "properties": {"community": f"SYNTH AREA {c}", "area_numbe": str(c), "area_num_1": str(c)},
                "geometry": {"type": "MultiPolygon", "coordinates": [[ring]]},
            }
        )
    (folder / "synth_areas.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    return int(codes.size)


def write_config(opts: Span, geo: Geography, *, command: str, expectations_dir: Path | None = None) -> Path:
    """The committed config, pointed at the synthetic landing and a lake beside it (and at the
    committed expectation suites, or at `expectations_dir`)."""
    data = yaml.safe_load((ROOT / "conf" / "riskradar.yaml").read_text())
    data["city"] = "synth"
    data["lake"]["root"] = str((opts.out / "lake").resolve())
    data["partners"]["landing_root"] = str((opts.out / "landing").resolve())
    data["partners"]["contracts_dir"] = str(ROOT / "conf" / "partners")
    data["expectations_dir"] = str(expectations_dir.resolve() if expectations_dir else ROOT / "expectations")
    data["study_area"]["bbox_wgs84"] = geo.bbox_wgs84()
    path = opts.out / "riskradar.yaml"
    header = (
        f"# The synthetic {'country' if expectations_dir else 'city'}'s config, written by `{command}`.\n"
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return path


def parse_month(text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month (expected YYYY-MM)") from None


def parse_positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number")
    return value


def add_span_arguments(parser: argparse.ArgumentParser, *, months: int) -> None:
    """The arguments the city and the country share: where, the seed, the span, the damage, the chunks."""
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for landing/, riskradar.yaml and lake/"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", type=parse_month, default=date(2013, 1, 1), help="first month, YYYY-MM")
    parser.add_argument("--months", type=parse_positive, default=months)
    parser.add_argument("--bad-share", type=float, default=0.005, help="share of rows damaged on purpose")
    parser.add_argument("--chunk-rows", type=parse_positive, default=500_000, help="rows generated at once")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="riskradar synth", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=parse_positive, required=True, help="events over all partners")
    add_span_arguments(parser, months=24)
    args = parser.parse_args(argv)
    opts = Options(args.events, args.out, args.seed, args.start, args.months, args.bad_share, args.chunk_rows)
    counts = write_city(opts)
    print(f"synth: wrote {opts.out / 'landing'}: " + ", ".join(f"{k} {v:,} rows" for k, v in counts.items()))
    print(f"synth: config {opts.out / 'riskradar.yaml'} (lake {opts.out / 'lake'})")


if __name__ == "__main__":
    main()
