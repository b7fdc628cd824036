"""Write the synthetic deliveries of the Dutch example deployment (conf/examples/nl/).

    .venv/bin/python scripts/make_nl_example.py [OUT]     # default: data/examples/nl

A small made-up city in a real Dutch extent (a 5 x 5 km part of Utrecht), a year of incidents
(2023), delivered the way Dutch partners deliver:

- politie/: the police's BVH-style export, one file a month: `;`-separated, Windows-1252,
  day-first dates without leading zeros (`20-9-2023 17:30`), RD New coordinates (EPSG:28992)
  with decimal commas, mixed CRLF/LF line ends and a quoted field holding a line end; the
  registration number, street, house number and postcode are personal data;
- gemeente/: the municipality's public-space reports (meldingen openbare ruimte), one Excel
  workbook a year, WGS84 degrees, date-time cells;
- cbs/: CBS-style neighbourhoods (buurten) as a GeoPackage in RD New, and key figures per
  buurt as a `;`-separated Windows-1252 file with decimal commas.

Every point is drawn in WGS84 and converted to RD New with pyproj. No real person, address
or incident is in it: registration numbers, streets and names are generated. Seeded: the
same files every time.
"""

from __future__ import annotations

import argparse
import csv
import io
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = 20221
# A part of Utrecht, in WGS84 degrees (lon, lat); Utrecht's CBS municipality code is 0344.
EXTENT = (5.085, 52.075, 5.155, 52.115)
MUNICIPALITY = "0344"
START, END = date(2023, 1, 1), date(2023, 12, 31)
BUURT_SIZE_M = 1000.0

# Maatschappelijke klasse (the BVH's crime classes) -> events a year, share in hotspots.
POLICE_CLASSES = {
    "Fietsdiefstal": (2600, 0.6),
    "Woninginbraak": (650, 0.4),
    "Straatroof": (160, 0.7),
    "Zakkenrollerij": (520, 0.8),
    "Vernieling cq. zaakbeschadiging": (900, 0.5),
    "Mishandeling": (700, 0.6),
    "Diefstal uit/vanaf motorvoertuigen": (800, 0.5),
}
MUNICIPAL_CATEGORIES = {"Afval": 1800, "Verlichting": 300, "Overlast": 500}
STREETS = [
    "Lange Nieuwstraat",
    "Oudegracht",
    "Biltstraat",
    "Amsterdamsestraatweg",
    "Croeselaan",
    "Vleutenseweg",
]
PLACES = ["Openbare weg", "Woning", "Fietsenstalling", "Winkel", "Station", "Parkeerterrein"]
POLICE_HEADER = [
    "Registratienummer",
    "Pleegdatum begin",
    "Pleegdatum eind",
    "Maatschappelijke klasse",
    "Pleeglocatie",
    "Straat",
    "Huisnummer",
    "Postcode",
    "Plaats",
    "X-coördinaat",
    "Y-coördinaat",
]


def _transformer():
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", "EPSG:28992", always_xy=True)


def _hotspots(rng: np.random.Generator) -> np.ndarray:
    lon0, lat0, lon1, lat1 = EXTENT
    return np.column_stack(
        [rng.uniform(lon0 + 0.01, lon1 - 0.01, 8), rng.uniform(lat0 + 0.005, lat1 - 0.005, 8)]
    )


def _points(rng: np.random.Generator, n: int, hot_share: float, hotspots: np.ndarray) -> np.ndarray:
    """n WGS84 points: a share around the hotspots (about 250 m spread), the rest anywhere."""
    lon0, lat0, lon1, lat1 = EXTENT
    hot = rng.random(n) < hot_share
    which = rng.integers(0, len(hotspots), n)
    around = hotspots[which] + rng.normal(0, 1, (n, 2)) * np.array([0.0037, 0.0023])
    anywhere = np.column_stack([rng.uniform(lon0, lon1, n), rng.uniform(lat0, lat1, n)])
    pts = np.where(hot[:, None], around, anywhere)
    pts[:, 0] = np.clip(pts[:, 0], lon0, lon1)
    pts[:, 1] = np.clip(pts[:, 1], lat0, lat1)
    return pts


def _moments(rng: np.random.Generator, n: int, *, autumn_peak: bool) -> list[datetime]:
    """n times over the two years: more in autumn for some classes, more in the evening."""
    days = (END - START).days + 1
    day = rng.integers(0, days, n * 2)
    if autumn_peak:
        doy = np.array([(START + timedelta(days=int(d))).timetuple().tm_yday for d in day])
        keep = rng.random(len(day)) < 0.6 + 0.4 * np.cos((doy - 300) / 365 * 2 * np.pi)
        day = day[keep]
    day = day[:n]
    minute = (rng.normal(17.5, 4.5, len(day)) * 60).astype(int) % (24 * 60)
    return [
        datetime.combine(START + timedelta(days=int(d)), datetime.min.time()) + timedelta(minutes=int(m))
        for d, m in zip(day, minute, strict=True)
    ]


def _dutch_time(t: datetime) -> str:
    return f"{t.day}-{t.month}-{t.year} {t.hour}:{t.minute:02d}"  # no leading zeros: 20-9-2022 7:05


def _comma(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}".replace(".", ",")


def police(out: Path, rng: np.random.Generator, hotspots: np.ndarray) -> int:
    to_rd = _transformer()
    rows = []
    for klass, (per_year, hot) in POLICE_CLASSES.items():
        n = per_year
        pts = _points(rng, n, hot, hotspots)
        x, y = to_rd.transform(pts[:, 0], pts[:, 1])
        for i, t in enumerate(_moments(rng, n, autumn_peak=klass in ("Fietsdiefstal", "Woninginbraak"))):
            rows.append((t, klass, float(x[i]), float(y[i])))
    rows.sort(key=lambda r: r[0])
    by_month: dict[tuple[int, int], list[list[str]]] = {}
    for k, (t, klass, x, y) in enumerate(rows):
        missing_xy = rng.random() < 0.004  # some registrations have no location yet
        place = PLACES[k % len(PLACES)]
        if k % 997 == 0:
            place = f"{place}\n(achterzijde)"  # a free-text field holding a line end
        by_month.setdefault((t.year, t.month), []).append(
            [
                f"PL0900-{t.year}{k:07d}",
                _dutch_time(t),
                _dutch_time(t + timedelta(minutes=int(rng.integers(0, 240)))),
                klass,
                place,
                STREETS[k % len(STREETS)],
                str(1 + k % 180),
                f"35{k % 90 + 10:02d} {'ABCDEFGH'[k % 8]}{'KLMNPRST'[k % 8]}",
                "Utrecht",
                "" if missing_xy else _comma(x, 2),
                "" if missing_xy else _comma(y, 2),
            ]
        )
    folder = out / "politie"
    folder.mkdir(parents=True, exist_ok=True)
    for (year, month), records in sorted(by_month.items()):
        text = io.StringIO()
        writer = csv.writer(text, delimiter=";", lineterminator="\n")
        writer.writerow(POLICE_HEADER)
        writer.writerows(records)
        lines = text.getvalue().split("\n")
        # An export assembled from two systems: some lines end CRLF, others LF.
        mixed = "".join(line + ("\r\n" if i % 3 == 0 else "\n") for i, line in enumerate(lines[:-1]))
        (folder / f"bvh_misdrijven_{year}-{month:02d}.csv").write_bytes(mixed.encode("cp1252"))
    return len(rows)


def municipality(out: Path, rng: np.random.Generator, hotspots: np.ndarray) -> int:
    import openpyxl

    folder = out / "gemeente"
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for year in sorted({START.year, END.year}):
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.title = "Meldingen"
        sheet.append(["Meldingnummer", "Datum melding", "Categorie", "Adres", "Breedtegraad", "Lengtegraad"])
        records = []
        for category, per_year in MUNICIPAL_CATEGORIES.items():
            pts = _points(rng, per_year, 0.5, hotspots)
            for i, t in enumerate(_moments(rng, per_year, autumn_peak=False)):
                t = (
                    t.replace(year=year)
                    if not (t.month == 2 and t.day == 29)
                    else t.replace(year=year, day=28)
                )
                records.append((t, category, float(pts[i, 1]), float(pts[i, 0])))
        records.sort(key=lambda r: r[0])
        for k, (t, category, lat, lon) in enumerate(records):
            sheet.append(
                [
                    f"M{year}-{k:06d}",
                    t,
                    category,
                    f"{STREETS[k % len(STREETS)]} {1 + k % 90}",
                    round(lat, 6),
                    round(lon, 6),
                ]
            )
            sheet.cell(row=k + 2, column=2).number_format = "dd-mm-yyyy hh:mm"
        book.save(folder / f"meldingen_openbare_ruimte_{year}.xlsx")
        total += len(records)
    return total


def buurten(out: Path) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    """Square 1 km neighbourhoods in RD New over the extent, CBS-style codes and names."""
    to_rd = _transformer()
    x0, y0 = to_rd.transform(EXTENT[0], EXTENT[1])
    x1, y1 = to_rd.transform(EXTENT[2], EXTENT[3])
    x0, y0 = np.floor(x0 / BUURT_SIZE_M) * BUURT_SIZE_M, np.floor(y0 / BUURT_SIZE_M) * BUURT_SIZE_M
    cells = []
    nx, ny = int(np.ceil((x1 - x0) / BUURT_SIZE_M)), int(np.ceil((y1 - y0) / BUURT_SIZE_M))
    for j in range(ny):
        for i in range(nx):
            k = j * nx + i
            wijk, buurt = 1 + k // 10, k % 10
            code = f"BU{MUNICIPALITY}{wijk:02d}{buurt:02d}"
            name = f"Buurt {k + 1:02d} {'Noordoëst' if j >= ny // 2 else 'Zuidwest'}"
            box = (
                x0 + i * BUURT_SIZE_M,
                y0 + j * BUURT_SIZE_M,
                x0 + (i + 1) * BUURT_SIZE_M,
                y0 + (j + 1) * BUURT_SIZE_M,
            )
            cells.append((code, name, box))
    return cells


def cbs(out: Path, rng: np.random.Generator) -> int:
    import pyogrio
    import shapely

    folder = out / "cbs"
    folder.mkdir(parents=True, exist_ok=True)
    areas = buurten(out)
    shapes = [shapely.box(*box) for _, _, box in areas]
    codes = np.array([c for c, _, _ in areas], dtype=object)
    names = np.array([n for _, n, _ in areas], dtype=object)
    wijken = np.array([f"WK{MUNICIPALITY}{c[6:8]}" for c in codes], dtype=object)
    municipality = np.array(["Utrecht"] * len(areas), dtype=object)
    pyogrio.raw.write(
        str(folder / "wijk_buurtkaart_2022.gpkg"),
        shapely.to_wkb(shapes),
        [codes, names, wijken, municipality],
        ["buurtcode", "buurtnaam", "wijkcode", "gemeentenaam"],
        driver="GPKG",
        geometry_type="Polygon",
        crs="EPSG:28992",
        layer="buurten",
    )
    text = io.StringIO()
    writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
    writer.writerow(
        [
            "Codering",
            "Naam",
            "Aantal inwoners",
            "Huishoudens met laag inkomen (%)",
            "Gemiddelde WOZ-waarde (x 1 000 euro)",
        ]
    )
    for code, name, _ in areas:
        writer.writerow(
            [
                code,
                name,
                int(rng.integers(300, 4000)),
                _comma(float(rng.uniform(3, 25)), 1),
                _comma(float(rng.uniform(180, 620)), 1),
            ]
        )
    writer.writerow(
        [f"GM{MUNICIPALITY}", "Utrecht (gemeente)", 361924, "9,8", "385,0"]
    )  # the municipal total
    (folder / "kerncijfers_buurten_2022.csv").write_bytes(text.getvalue().encode("cp1252"))
    return len(areas)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "data" / "examples" / "nl"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    rng = np.random.default_rng(SEED)
    hotspots = _hotspots(rng)
    n_police = police(out, rng, hotspots)
    n_municipal = municipality(out, rng, hotspots)
    n_areas = cbs(out, rng)
    print(f"{out}: {n_police} police registrations, {n_municipal} municipal reports, {n_areas} buurten")


if __name__ == "__main__":
    main()
