"""A synthetic country for scale tests: the study area grows with the number of cells asked for.

    riskradar synth-country --cells 250000 --out /tmp/country250k [--months 36] [--seed 42]
        [--events-per-cell-year 3.2] [--start 2013-01] [--bad-share 0.005] [--chunk-rows 500000]

`riskradar synth` writes a city of a fixed extent, so more events only make it denser. This
writes a country whose extent holds `--cells` cells of the config's grid (`grid.cell_size_m`,
150 m): a 5:7 rectangle (250,000 cells of 150 m are 63 km x 89 km), with
- settlements of three kinds, each a Gaussian of its own spread (sd) and weight: a few large
  cities (one per 60,000 cells, sd 2-3.5 km), more towns (one per 8,000 cells, 0.6-1.2 km)
  and many villages (one per 1,000 cells, 150-350 m); cities draw half the settled events,
  towns a third, villages a sixth;
- rural cells with rare events: a fifth of the background events (a tenth of all) falls
  anywhere in the country;
- what the city has, at the city's rate per cell: stable hotspots (600 per 25,000 cells),
  episodes where 311 complaints lead crime (30 a month per 25,000 cells), near repeats, weekly
  and seasonal cycles, and the same share of damaged rows.

Events: `--events-per-cell-year` police crimes per study cell and year (default 3.2: 800,000 a
year at 250,000 cells, the order of the crimes the Dutch police register in a year), plus 311
complaints at the city's share (12 % of all events).

Files: the city's partner files and formats (`benchmarks/synth.py`: police crimes one gzipped
CSV a month, 311 complaints one a year, daily weather, census indicators and area boundaries),
with areas of about 3 km x 3 km tiling the country (more areas as it grows, numbered 1..n), and
`<out>/expectations/`, the committed suites with the country's coordinate box and area codes
(the committed ones hold the bundled city's). `<out>/next_week/` holds the deliveries of the 7
days after the span (police, 311, weather) in landing's layout: copied into `landing/`, they are
one new week of deliveries, for a weekly run. Generated and written in chunks of `--chunk-rows`
as the city is, so memory does not grow with the country; the same seed and arguments give
byte-identical files.

Study cells: the pipeline studies the cells inside the area boundaries and those holding any
event (`jobs.build_features.study_cells`). The areas tile the extent, which is aligned to the
grid, and every event lies inside it, so the study cells are the extent's cells: its columns x
rows, within a row or a column of `--cells`, printed and returned as `study_cells`.

Where: the country is centred in the area of use that the project CRS and the feeds' CRS share
(for the committed config's UTM 16N and the police feed's Illinois State Plane East, central
Illinois); a country larger than that area is refused, with the sizes that fit.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pyproj import CRS

from benchmarks import synth
from riskradar.crs import WGS84, transform_array

ASPECT = 5 / 7  # width / height, as the city's 20 km x 28 km
# kind: (cells per settlement, kernel sd range in metres, share of the settled events)
SETTLEMENTS = {
    "city": (60_000, (2_000.0, 3_500.0), 0.50),
    "town": (8_000, (600.0, 1_200.0), 0.33),
    "village": (1_000, (150.0, 350.0), 0.17),
}
MAX_SD_SHARE = 0.1  # no settlement's kernel is wider than a tenth of the country's short side
RURAL_SHARE = 0.2  # of the background events: anywhere in the country
CITY_CELLS = 25_000  # the city's hotspots and episodes are per this many cells
AREA_SIDE_M = 3_000.0
NEXT_WEEK_DAYS = 7
EDGE_M = 1.0  # events keep this far inside the extent: rounding to whole feet cannot move them out
BBOX_MARGIN_M = 2_000.0


@dataclass(frozen=True)
class CountryOptions:
    cells: int
    out: Path
    seed: int = 42
    start: date = date(2013, 1, 1)
    months: int = 36
    events_per_cell_year: float = 3.2
    bad_share: float = 0.005
    chunk_rows: int = 500_000


@dataclass(frozen=True)
class Country:
    """The country's plan: its grid-aligned extent, its settlements and its areas."""

    cell_size_m: float
    cols: int
    rows: int
    origin: tuple[float, float]  # south-west corner of the extent, project CRS metres
    kinds: tuple[str, ...]  # the kind of each settlement (a row of `settlements`)
    settlements: np.ndarray  # (k, 4): x, y, sd, weight; metres from the origin
    areas: tuple[int, int]  # areas across x and y

    @property
    def cells(self) -> int:
        return self.cols * self.rows

    @property
    def extent(self) -> tuple[float, float]:
        return (self.cols * self.cell_size_m, self.rows * self.cell_size_m)


def grid_cell_size() -> float:
    """The committed config's cell size, metres."""
    config = yaml.safe_load((synth.ROOT / "conf" / "riskradar.yaml").read_text())
    return float(config["grid"]["cell_size_m"])


def shared_area_of_use(names: Sequence[str]) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees where every CRS of `names` may be used."""
    bounds = [CRS(name).area_of_use.bounds for name in names]
    return (
        max(b[0] for b in bounds),
        max(b[1] for b in bounds),
        min(b[2] for b in bounds),
        min(b[3] for b in bounds),
    )


def plan_country(opts: CountryOptions) -> Country:
    """Extent, placement and settlements for `opts.cells` cells (seeded)."""
    size = grid_cell_size()
    cols = max(2, round(math.sqrt(opts.cells * ASPECT)))
    rows = max(2, round(opts.cells / cols))
    width, height = cols * size, rows * size
    origin = _placed(width, height, size)
    rng = np.random.default_rng([opts.seed, 10])
    kinds: list[str] = []
    parts = []
    for kind, (per, (low, high), share) in SETTLEMENTS.items():
        k = max(1, round(opts.cells / per))
        edge = 0.1 if kind == "city" else 0.02  # a city's centre is not at the border
        x = rng.uniform(edge, 1 - edge, k) * width
        y = rng.uniform(edge, 1 - edge, k) * height
        sd = np.minimum(rng.uniform(low, high, k), MAX_SD_SHARE * min(width, height))
        weight = rng.lognormal(0.0, 0.5, k)
        parts.append(np.column_stack([x, y, sd, share * weight / weight.sum()]))
        kinds += [kind] * k
    areas = (max(1, round(width / AREA_SIDE_M)), max(1, round(height / AREA_SIDE_M)))
    return Country(size, cols, rows, origin, tuple(kinds), np.concatenate(parts), areas)


def _placed(width: float, height: float, size: float) -> tuple[float, float]:
    """The extent's south-west corner, on the grid, centred in the CRSs' shared area of use;
    ValueError if the extent (with the study box's margin) does not fit in it."""
    crs_names = [synth.PROJECT_CRS, synth.FEET_CRS]
    west, south, east, north = shared_area_of_use(crs_names)
    cx, cy = transform_array(
        np.array([(west + east) / 2]), np.array([(south + north) / 2]), WGS84, crs_names[0]
    )
    x0 = math.floor((cx[0] - width / 2) / size) * size
    y0 = math.floor((cy[0] - height / 2) / size) * size
    m = BBOX_MARGIN_M
    xs = x0 + np.array([-m, width + m, -m, width + m, width / 2, width / 2])
    ys = y0 + np.array([-m, -m, height + m, height + m, -m, height + m])
    lon, lat = transform_array(xs, ys, crs_names[0], WGS84)
    if lon.min() < west or lon.max() > east or lat.min() < south or lat.max() > north:
        raise ValueError(
            f"a country of {width / 1000:.0f} km x {height / 1000:.0f} km does not fit where "
            f"{' and '.join(crs_names)} may both be used (longitude {west} to {east}, latitude {south} "
            f"to {north}): ask for fewer cells"
        )
    return (float(x0), float(y0))


def build_country(opts: CountryOptions, country: Country) -> synth.City:
    """The country as a synth.City: its settlements are the cores; hotspots and episodes at the
    city's rate per cell; a calendar of the span and the week after it."""
    rng = np.random.default_rng([opts.seed, 0])
    width, height = country.extent
    inner = country.settlements.copy()
    inner[:, :2] -= EDGE_M
    layout = synth.City(
        (country.origin[0] + EDGE_M, country.origin[1] + EDGE_M),
        inner,
        *(np.empty(0),) * 6,
        extent=(width - 2 * EDGE_M, height - 2 * EDGE_M),
        flat_share=RURAL_SHARE,
    )
    per_city = country.cells / CITY_CELLS
    return synth.populate(
        rng,
        layout,
        hotspots=max(1, round(600 * per_city)),
        episodes=max(1, round(30 * opts.months * per_city)),
        start=opts.start,
        days=span_days(opts) + NEXT_WEEK_DAYS,
    )


def span_days(opts: CountryOptions) -> int:
    end = (pd.Timestamp(opts.start) + pd.DateOffset(months=opts.months)).date()
    return (end - opts.start).days


def write_country(opts: CountryOptions) -> dict[str, int]:
    """Write landing/, next_week/, expectations/ and the config; returns the study cells, the
    areas and the rows written per feed (next_week_<feed>: the week after the span)."""
    country = plan_country(opts)
    city = build_country(opts, country)
    geo = synth.Geography(city, areas=country.areas)
    landing, week = opts.out / "landing", opts.out / "next_week"
    days = span_days(opts)
    after = pd.Timestamp(opts.start) + pd.Timedelta(days=days)  # the next week's first day
    crimes = round(opts.events_per_cell_year * country.cells * (days + NEXT_WEEK_DAYS) / 365.25)
    feeds = {  # feed: (events, first id, writer, file of a month's events, the next week's file)
        "police_crimes": (
            crimes,
            synth.POLICE_FIRST_ID,
            synth.write_police,
            lambda first: f"synth_crimes_{first:%Y-%m}.csv.gz",
            f"synth_crimes_week_{after:%Y-%m-%d}.csv.gz",
        ),
        "sanitation_311": (
            round(crimes * synth.SHARE_311 / (1 - synth.SHARE_311)),
            synth.COMPLAINT_FIRST_ID,
            synth.write_complaints,
            lambda first: f"synth_sanitation_{first.year}.csv.gz",
            f"synth_sanitation_week_{after:%Y-%m-%d}.csv.gz",
        ),
    }
    counts = {"study_cells": country.cells, "areas": geo.n_areas}
    in_week = city.day_weight[days:].sum() / city.day_weight.sum()
    for feed, (n, first_id, write, month_file, week_file) in feeds.items():
        n_week = round(n * in_week)
        months = synth.month_periods(
            opts, city, n - n_week, lambda first, f=feed, name=month_file: landing / f / name(first)
        )
        counts[feed] = write(opts, city, geo, months, first_id)
        next_week = [synth.Period(len(months), days, NEXT_WEEK_DAYS, n_week, week / feed / week_file)]
        counts[f"next_week_{feed}"] = write(opts, city, geo, next_week, first_id + n - n_week)
    weather = synth.weather_frame(city, opts)
    counts["weather"] = synth.write_csv(weather[:days], landing / "weather" / "synth_weather_daily.csv")
    counts["next_week_weather"] = synth.write_csv(
        weather[days:], week / "weather" / f"synth_weather_week_{after:%Y-%m-%d}.csv"
    )
    counts["census_indicators"] = synth.write_census(city, geo, landing / "census", seed=opts.seed)
    counts["census_areas"] = geo.n_areas
    suites = write_expectations(opts.out / "expectations", geo)
    command = f"riskradar synth-country --cells {opts.cells} --months {opts.months} --seed {opts.seed}"
    synth.write_config(opts, geo, command=command, expectations_dir=suites)
    return counts


def write_expectations(folder: Path, geo: synth.Geography) -> Path:
    """The committed suites (those of expectations/ itself), with the country's coordinate box
    (the study box in the project CRS, outward to 500 m) and area codes 1..n instead of the
    bundled city's."""
    folder.mkdir(parents=True, exist_ok=True)
    west, south, east, north = geo.bbox_wgs84(BBOX_MARGIN_M)
    mid = (west + east) / 2
    x, y = transform_array(
        np.array([west, east, west, east, mid, mid]),
        np.array([south, south, north, north, south, north]),
        WGS84,
        synth.PROJECT_CRS,
    )
    box = {
        "x": (math.floor(x.min() / 500) * 500, math.ceil(x.max() / 500) * 500),
        "y": (math.floor(y.min() / 500) * 500, math.ceil(y.max() / 500) * 500),
    }
    for source in sorted((synth.ROOT / "expectations").glob("*.json")):
        suite = json.loads(source.read_text())
        for expectation in suite.get("expectations", []):
            kwargs = expectation["kwargs"]
            column = kwargs.get("column")
            if expectation["type"] == "expect_column_values_to_be_between" and column in box:
                kwargs["min_value"], kwargs["max_value"] = box[column]
            if expectation["type"] == "expect_column_values_to_match_regex" and column == "area_code":
                kwargs["regex"] = "^[1-9][0-9]*$"
                kwargs["meta"] = {"why": f"the synthetic country's areas are numbered 1..{geo.n_areas}"}
        (folder / source.name).write_text(json.dumps(suite, indent=2) + "\n")
    return folder


def _rate(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="riskradar synth-country",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cells", type=synth.parse_positive, required=True, help="study cells (25000, 100000, 250000)"
    )
    synth.add_span_arguments(parser, months=36)
    parser.add_argument(
        "--events-per-cell-year", type=_rate, default=3.2, help="police crimes per study cell and year"
    )
    args = parser.parse_args(argv)
    opts = CountryOptions(
        args.cells,
        args.out,
        args.seed,
        args.start,
        args.months,
        args.events_per_cell_year,
        args.bad_share,
        args.chunk_rows,
    )
    try:
        counts = write_country(opts)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"synth-country: {counts.pop('study_cells'):,} study cells, {counts.pop('areas'):,} areas")
    print(f"synth-country: wrote {opts.out}: " + ", ".join(f"{k} {v:,} rows" for k, v in counts.items()))
    print(f"synth-country: config {opts.out / 'riskradar.yaml'} (lake {opts.out / 'lake'})")


if __name__ == "__main__":
    main()
