"""Regenerate the bad-delivery corpus: python tests/data/bad_deliveries/make_corpus.py

Every file imitates a partner export (the Chicago police or 311 layout) with made-up ids,
made-up blocks and made-up coordinates in the city, and one defect each. `cases.yaml`
beside it says what riskradar must answer for each file.
"""

from __future__ import annotations

import gzip
import io
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).parent
POLICE_HEADER = (
    "ID,Case Number,Date,Block,IUCR,Primary Type,Description,Location Description,Arrest,"
    "Domestic,Beat,District,Ward,Community Area,FBI Code,X Coordinate,Y Coordinate,Updated On,"
    "Latitude,Longitude"
)
SR_HEADER = (
    "Creation_Date,Status,Completion_Date,Service_Request_Number,Type_of_Service_Request,"
    "What_is_the_Nature_of_this_Code_Violation,Street_Address,ZIP_Code,X_Coordinate,Y_Coordinate,"
    "Ward,Police_District,Community_Area,Latitude,Longitude,Location"
)


WEATHER_HEADER = "precipIntensity,temperatureMax,windSpeed,humidity,date"


def police_row(
    i: int,
    *,
    date: str = "03/0{d}/2013 10:15:00 PM",
    ptype: str = "BURGLARY",
    x: str | None = None,
    y: str | None = None,
) -> str:
    day = 1 + i % 9
    x = x if x is not None else str(1170000 + 37 * i)
    y = y if y is not None else str(1890000 + 53 * i)
    return (
        f"{90000000 + i},ZZ{100000 + i},{date.format(d=day)},000XX W TEST ST {i},0610,{ptype},"
        f"FORCIBLE ENTRY,RESIDENCE,false,false,1011,010,24,29,05,{x},{y},"
        f"02/10/2018 03:50:01 PM,,"
    )


def sr_row(i: int, *, lat: float | None = None, lon: float | None = None) -> str:
    lat = lat if lat is not None else 41.85 + i * 0.001
    lon = lon if lon is not None else -87.68 + i * 0.001
    return (
        f"2013-05-1{i % 10},Completed,2013-06-01,13-9{i:07d},Sanitation Code Violation,Garbage in yard,"
        f'{i} W MADEUP AVE,60601,,,2.0,1.0,32.0,{lat},{lon},"({lat}, {lon})"'
    )


def police(rows: list[str], header: str = POLICE_HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def good(n: int) -> list[str]:
    return [police_row(i) for i in range(n)]


N = 40
_FULL_WIDTH = str.maketrans("0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19")


def _workbook(sheets: dict[str, list[list[str]]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _shapefile_without_prj() -> bytes:
    """Two square areas as a zipped shapefile whose .prj was left out of the zip."""
    import tempfile
    import zipfile

    import numpy as np
    import pyogrio
    import shapely

    with tempfile.TemporaryDirectory() as tmp:
        shapes = [
            shapely.box(440000, 4630000, 441000, 4631000),
            shapely.box(441000, 4630000, 442000, 4631000),
        ]
        pyogrio.raw.write(
            f"{tmp}/areas.shp",
            shapely.to_wkb(shapes),
            [np.array(["1", "2"], dtype=object), np.array(["North", "South"], dtype=object)],
            ["area_numbe", "community"],
            driver="ESRI Shapefile",
            geometry_type="Polygon",
            crs="EPSG:26916",
        )
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            for part in sorted(Path(tmp).iterdir()):
                if part.suffix != ".prj":
                    z.writestr(part.name, part.read_bytes())
        return out.getvalue()


def _police_files() -> dict[str, bytes]:
    """The police feed's bad deliveries: whole-file faults, then row-level defects."""
    return {
        "police/empty.csv": b"",
        "police/header_only.csv": police([]),
        "police/missing_column.csv": police(
            [",".join(r.split(",")[:2] + r.split(",")[3:]) for r in good(4)],
            header=POLICE_HEADER.replace("Date,", "", 1),
        ),
        "police/extra_column.csv": police(
            [r + ",note" for r in good(4)], header=POLICE_HEADER + ",Extra Notes"
        ),
        "police/wrong_delimiter.csv": police(
            [r.replace(",", ";") for r in good(4)], header=POLICE_HEADER.replace(",", ";")
        ),
        # Row-level defects: one or two bad rows among N good ones, so the batch gate
        # (at most 5% quarantined) passes and the bad rows are quarantined.
        "police/non_utf8.csv": police(good(N)).replace(b"BURGLARY", b"BURGL\xc4RY", 1),
        "police/truncated_last_line.csv": police(good(N)) + police_row(N).encode()[:60],
        "police/malformed_dates.csv": police(
            good(N) + [police_row(N, date="2013-13-45 25:61"), police_row(N + 1, date="")]
        ),
        "police/outside_city.csv": police(
            good(N) + [police_row(N, x="900000", y="1500000"), police_row(N + 1, x="0", y="0")]
        ),
        "police/future_dates.csv": police(good(N) + [police_row(N, date="01/0{d}/2099 10:00:00 AM")]),
        "police/duplicate_rows.csv": police(good(N) + [police_row(1), police_row(2)]),
        "police/unknown_category.csv": police(good(N) + [police_row(N, ptype="ALIEN ABDUCTION")]),
        # More bad rows than a small delivery may hold (10, or 5% of a bigger one): a broken export.
        "police/too_many_bad_rows.csv": police(
            good(N) + [police_row(N + i, date="not a date") for i in range(20)]
        ),
        # A small delivery with a few ordinary rows without coordinates (8%): it passes, as the
        # same rows pass inside a monthly file.
        "police/small_delivery.csv": police(good(92) + [police_row(92 + i, x="", y="") for i in range(8)]),
        # A missing field and an unquoted comma shift values: the address would land in Date.
        "police/shifted_fields.csv": police(
            good(N)
            + [
                ",".join(p for k, p in enumerate(police_row(N).split(",")) if k != 2),
                police_row(N + 1).replace("TEST ST", "TEST, ST"),
            ]
        ),
        # A quoted field holding a line end is one record, read whole.
        "police/embedded_newline.csv": police(
            good(N) + [police_row(N).replace("FORCIBLE ENTRY", '"FORCIBLE\nENTRY"')]
        ),
        # An export without its header line: its first record sits where the names should be.
        "police/no_header.csv": ("\n".join(good(N)) + "\n").encode(),
        "police/year_1900.csv": police(good(N) + [police_row(N, date="01/01/1900 12:00:00 AM")]),
        # A mistyped year after the data, before the delivery: it would stretch the panel by years.
        "police/stray_year.csv": police(good(N) + [police_row(N, date="11/30/2026 10:00:00 AM")]),
        **_police_time_and_id_files(),
    }


def _police_time_and_id_files() -> dict[str, bytes]:
    """Police deliveries whose times or ids read otherwise than they look, and odd landings."""
    return {
        # Wall times at Chicago's 2014 DST changes: 02:30 did not exist on 9 March, 01:30 was
        # lived twice on 2 November.
        # (around them a delivery of October 2014: its bulk, which no stray rule confuses them with)
        "police/dst_times.csv": police(
            [police_row(i, date="10/2{d}/2014 10:15:00 PM") for i in range(N)]
            + [
                police_row(N, date="03/09/2014 02:30:00 AM"),
                police_row(N + 1, date="11/02/2014 01:30:00 AM"),
            ]
        ),
        # The same id twice, once with surrounding spaces, with different content.
        "police/spaced_ids.csv": police(
            good(N) + [police_row(3, ptype="ROBBERY").replace(f"{90000000 + 3},", f" {90000000 + 3} ,", 1)]
        ),
        # Ids that read as another row's, with different content: a no-break space after one,
        # the other in full-width digits.
        "police/lookalike_ids.csv": police(
            good(N)
            + [
                police_row(3, ptype="ROBBERY").replace(f"{90000000 + 3},", f"{90000000 + 3}\u00a0,", 1),
                police_row(5, ptype="ROBBERY").replace(
                    f"{90000000 + 5},", str(90000000 + 5).translate(_FULL_WIDTH) + ",", 1
                ),
            ]
        ),
        # Rows of a file that a link in landing points to, from outside the landing root.
        "police/outside_landing.csv": police([police_row(500 + i) for i in range(N)]),
        # Delivered under a name Spark would read as a glob over the folder.
        "police/glob_name.csv": police([police_row(700 + i) for i in range(N)]),
    }


def _other_files() -> dict[str, bytes]:
    """The other feeds' bad deliveries: weather, 311 requests, workbooks and shapefiles."""
    files = {
        "weather/hot_day.csv": (WEATHER_HEADER + "\n0.0,99.0,4.0,0.4,2014-07-22\n").encode(),
        "weather/next_week.csv": (
            "\n".join([WEATHER_HEADER, *[f"0.0,{78 + d},4.0,0.5,2014-07-{23 + d}" for d in range(7)]]) + "\n"
        ).encode(),
        "sanitation/swapped_latlon.csv": (
            "\n".join([SR_HEADER, *[sr_row(i) for i in range(N)], sr_row(N, lat=-87.66, lon=41.87)]) + "\n"
        ).encode(),
    }
    days = [date(2014, 7, 10) + timedelta(days=d) for d in range(60)]
    files["weather/decimal_point.csv"] = (
        "\n".join(
            [
                WEATHER_HEADER.replace(",", ";"),
                *[f"0,0;{70 + d % 15},5;4,0;0,5;{day}" for d, day in enumerate(days)],
            ]
        )
        + "\n0,0;81.5;4,0;0,5;2014-09-10\n"  # a decimal point where the contract says comma
    ).encode()
    files["workbook/no_such_sheet.xlsx"] = _workbook({"Toelichting": [["Export of the partner's system"]]})
    files["workbook/corrupt.xlsx"] = _workbook({"Weerdata": [WEATHER_HEADER.split(",")]})[:900]
    files["gis/no_prj.zip"] = _shapefile_without_prj()
    return files


def main() -> None:
    for name, content in {**_police_files(), **_other_files()}.items():
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (HERE / "police" / "good_delivery.csv.gz").write_bytes(gzip.compress(police(good(5)), mtime=0))


if __name__ == "__main__":
    main()
