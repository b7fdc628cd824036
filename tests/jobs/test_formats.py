"""The reader options of a contract: csv without header, another delimiter and encoding,
jsonl and parquet deliveries all land as the same canonical rows."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml
from builders import ROOT, write_config
from pyspark.sql import functions as F

from jobs import ingest, validate
from riskradar.config import load_settings
from riskradar.errors import DeliveryRejected
from riskradar.lake import Lake

DAYS = [
    {
        "date": f"2013-07-{d:02d}",
        "temperatureMax": 80.0 + d,
        "precipIntensity": 0.01 * d,
        "windSpeed": 5.0,
        "humidity": 0.5,
    }
    for d in range(1, 11)
]


def _weather_contract(folder: Path, **reader) -> Path:
    data = yaml.safe_load((ROOT / "conf" / "partners" / "weather.yaml").read_text())
    data["reader"] = {**data["reader"], **reader}
    data["landing"]["pattern"] = "*"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weather.yaml").write_text(yaml.safe_dump(data))
    return folder


def _deliver(tmp_path: Path, name: str, content: bytes, **reader):
    landing = tmp_path / "landing" / "weather"
    landing.mkdir(parents=True)
    (landing / name).write_bytes(content)
    contracts = _weather_contract(tmp_path / "contracts", **reader)
    return load_settings(
        write_config(
            tmp_path,
            landing=tmp_path / "landing",
            enabled=["weather"],
            **{"partners.contracts_dir": str(contracts)},
        )
    )


def _published(spark, settings) -> list[tuple]:
    weather = spark.read.parquet(str(Lake(settings.lake_root).silver("weather")))
    return [
        tuple(r)
        for r in weather.orderBy("date")
        .select(
            F.date_format("date", "yyyy-MM-dd"),
            F.round("temperature_max_c", 3),
            F.round("precip_intensity_mm_h", 3),
        )
        .collect()
    ]


EXPECTED = [
    (d["date"], round((d["temperatureMax"] - 32) * 5 / 9, 3), round(d["precipIntensity"] * 25.4, 3))
    for d in DAYS
]


@pytest.mark.parametrize(
    "fmt",
    [
        "csv-latin1-semicolon-noheader",
        "csv-cp1252-semicolon-decimal-comma-mixed-line-ends",
        "jsonl",
        "parquet",
    ],
)
def test_each_format_gives_the_same_silver_rows(spark, tmp_path: Path, fmt: str):
    order = ["precipIntensity", "temperatureMax", "windSpeed", "humidity", "date"]  # the contract's order
    if fmt == "jsonl":
        content = "\n".join(json.dumps(d) for d in DAYS).encode()
        settings = _deliver(tmp_path, "weather.jsonl", content, format="jsonl")
    elif fmt == "parquet":
        path = tmp_path / "w.parquet"
        pd.DataFrame(DAYS).to_parquet(path)
        settings = _deliver(tmp_path, "weather.parquet", path.read_bytes(), format="parquet")
    elif fmt.startswith("csv-cp1252"):
        # A Dutch export: ';', Windows-1252 (the header's 'é'), decimal commas, CRLF and LF mixed.
        header = (
            ";".join(["precipIntensity", "temperatureMax", "windSpeed", "humidity", "date"]) + ";opmerking"
        )
        lines = [header] + [
            ";".join(str(d[c]).replace(".", ",") for c in order) + (";geüpdatet" if i % 2 else ";")
            for i, d in enumerate(DAYS)
        ]
        content = "".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(lines)).encode("cp1252")
        settings = _deliver(
            tmp_path, "weer.csv", content, format="csv", delimiter=";", encoding="cp1252", decimal=","
        )
    else:
        lines = [";".join(str(d[c]) for c in order) for d in DAYS]
        content = ("\n".join(lines) + "\n").encode("iso-8859-1")
        settings = _deliver(
            tmp_path, "weather.txt", content, format="csv", delimiter=";", encoding="ISO-8859-1", header=False
        )
    ingest.main(["--partner", "weather"], settings=settings, spark=spark)
    validate.main(["--partner", "weather"], settings=settings, spark=spark)
    assert _published(spark, settings) == EXPECTED


def _workbook(path: Path, *, sheet: str = "Weerdata") -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Toelichting"  # an explanation sheet first, as exports often have
    book.active.append(["Daily weather, exported from the partner's system"])
    ws = book.create_sheet(sheet)
    ws.append(["precipIntensity", "temperatureMax", "windSpeed", "humidity", "date"])
    for d in DAYS:
        ws.append(
            [
                d["precipIntensity"],
                d["temperatureMax"],
                d["windSpeed"],
                d["humidity"],
                date.fromisoformat(d["date"]),
            ]
        )
    ws.append([])  # an empty row at the end of the used range
    book.save(path)
    return path.read_bytes()


def test_a_workbook_sheet_gives_the_same_silver_rows(spark, tmp_path: Path):
    content = _workbook(tmp_path / "w.xlsx")
    settings = _deliver(tmp_path, "weather.xlsx", content, format="xlsx", sheet="Weerdata")
    ingest.main(["--partner", "weather"], settings=settings, spark=spark)
    validate.main(["--partner", "weather"], settings=settings, spark=spark)
    assert _published(spark, settings) == EXPECTED


@pytest.mark.parametrize(
    "case, reader, message",
    [
        ("corrupt", {"sheet": "Weerdata"}, "cannot be read as an xlsx workbook"),
        (
            "no_sheet",
            {"sheet": "Weather"},
            "the workbook has no sheet 'Weather' (its sheets: ['Toelichting', 'Weerdata'])",
        ),
        ("no_sheet_number", {"sheet": 5}, "the workbook has no sheet number 5"),
    ],
)
def test_a_workbook_that_cannot_be_read_is_rejected_naming_why(spark, tmp_path: Path, case, reader, message):
    content = _workbook(tmp_path / "w.xlsx")
    if case == "corrupt":
        content = content[: len(content) // 2]  # a transfer cut off halfway
    settings = _deliver(tmp_path, "weather.xlsx", content, format="xlsx", **reader)
    with pytest.raises(DeliveryRejected) as err:
        ingest.main(["--partner", "weather"], settings=settings, spark=spark)
    assert message in str(err.value) and "'weather.xlsx'" in str(err.value)


AREAS = ROOT / "data" / "chicago" / "census" / "community_areas.geojson"


def _areas_contract(folder: Path, **reader) -> Path:
    data = yaml.safe_load((ROOT / "conf" / "partners" / "census_areas.yaml").read_text())
    data["reader"] = {"format": reader.pop("format"), **reader}
    data["landing"]["pattern"] = "*"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "census_areas.yaml").write_text(yaml.safe_dump(data))
    return folder


def _write_gis(path: Path, driver: str, *, crs: str | None, first: int = 6) -> None:
    """The first bundled community areas, in UTM metres, as a GIS file."""
    import numpy as np
    import pyogrio
    import shapely

    from riskradar.crs import transform_array

    doc = json.loads(AREAS.read_text())["features"][:first]
    shapes = shapely.from_geojson([json.dumps(f["geometry"]) for f in doc])
    shapes = shapely.transform(
        shapes, lambda c: np.column_stack(transform_array(c[:, 0], c[:, 1], "EPSG:4326", "EPSG:26916"))
    )
    fields = ["area_numbe", "community"]
    data = [np.array([f["properties"][k] for f in doc], dtype=object) for k in fields]
    pyogrio.raw.write(
        str(path), shapely.to_wkb(shapes), data, fields, driver=driver, geometry_type="MultiPolygon", crs=crs
    )


def _boundaries(spark, settings) -> list[tuple]:
    from riskradar.catalog import read_silver

    rows = read_silver(spark, settings, Lake(settings.lake_root), "boundaries")
    return sorted((r["area_code"], r["area_name"], r["geometry_geojson"]) for r in rows.collect())


@pytest.mark.parametrize("fmt", ["gpkg", "shapefile"])
def test_boundaries_from_a_geopackage_or_a_zipped_shapefile_equal_those_from_geojson(spark, tmp_path, fmt):
    import zipfile

    landing = tmp_path / "landing" / "census"
    landing.mkdir(parents=True)
    if fmt == "gpkg":
        _write_gis(tmp_path / "areas.gpkg", "GPKG", crs="EPSG:26916")
        (landing / "areas.gpkg").write_bytes((tmp_path / "areas.gpkg").read_bytes())
    else:
        shp = tmp_path / "shp"
        shp.mkdir()
        _write_gis(shp / "areas.shp", "ESRI Shapefile", crs="EPSG:26916")
        with zipfile.ZipFile(landing / "areas.zip", "w") as z:
            for part in shp.iterdir():
                z.write(part, part.name)
    contracts = _areas_contract(tmp_path / "contracts", format=fmt)
    settings = load_settings(
        write_config(
            tmp_path,
            landing=tmp_path / "landing",
            enabled=["census_areas"],
            **{"partners.contracts_dir": str(contracts)},
        )
    )
    ingest.main(["--partner", "census_areas"], settings=settings, spark=spark)
    validate.main(["--partner", "census_areas"], settings=settings, spark=spark)
    got = _boundaries(spark, settings)
    expected = {f["properties"]["area_numbe"]: f for f in json.loads(AREAS.read_text())["features"][:6]}
    assert [(c, n) for c, n, _ in got] == sorted(
        (c, f["properties"]["community"].title()) for c, f in expected.items()
    )
    for code, _, geometry in got:  # back in WGS84, to well under a millimetre's worth of degrees
        import shapely

        delivered = shapely.from_geojson(json.dumps(expected[code]["geometry"]))
        assert shapely.hausdorff_distance(shapely.from_geojson(geometry), delivered) < 1e-8


def test_a_shapefile_without_its_prj_is_rejected_unless_the_contract_names_the_crs(spark, tmp_path):
    import zipfile

    landing = tmp_path / "landing" / "census"
    landing.mkdir(parents=True)
    shp = tmp_path / "shp"
    shp.mkdir()
    _write_gis(shp / "areas.shp", "ESRI Shapefile", crs="EPSG:26916")
    with zipfile.ZipFile(landing / "areas.zip", "w") as z:
        for part in shp.iterdir():
            if part.suffix != ".prj":
                z.write(part, part.name)
    contracts = _areas_contract(tmp_path / "contracts", format="shapefile")
    settings = load_settings(
        write_config(
            tmp_path,
            landing=tmp_path / "landing",
            enabled=["census_areas"],
            **{"partners.contracts_dir": str(contracts)},
        )
    )
    with pytest.raises(DeliveryRejected, match=r"'areas.zip': the shapefile came without its .prj"):
        ingest.main(["--partner", "census_areas"], settings=settings, spark=spark)
    # Named in the contract, the same delivery is read.
    contracts = _areas_contract(tmp_path / "contracts2", format="shapefile", crs="EPSG:26916")
    settings = load_settings(
        write_config(
            tmp_path / "second",
            landing=tmp_path / "landing",
            enabled=["census_areas"],
            **{"partners.contracts_dir": str(contracts)},
        )
    )
    ingest.main(["--partner", "census_areas"], settings=settings, spark=spark)
    validate.main(["--partner", "census_areas"], settings=settings, spark=spark)
    assert len(_boundaries(spark, settings)) == 6
