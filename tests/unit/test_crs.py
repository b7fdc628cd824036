"""riskradar.crs: Spark expressions and their NumPy twin against pyproj and known points."""

from __future__ import annotations

import math

import numpy as np
import pyproj
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from riskradar import crs
from riskradar.crs import (
    Geographic,
    TransverseMercator,
    UnsupportedCRS,
    from_lonlat,
    get_crs,
    require_projected,
    to_lonlat,
    transform,
    transform_array,
)

METRE_TOL = 0.01
DEGREE_TOL = 1e-8

# A real Chicago record: state-plane feet and the lat/lon the source published with it.
CHICAGO_X_FT, CHICAGO_Y_FT = 1165166.51552093, 1872509.02087899
CHICAGO_LON, CHICAGO_LAT = -87.66975672568209, 41.80576343586902

# EPSG:3435 (ftUS) spread over Chicago and its surroundings.
ILLINOIS_EAST_FT = [
    (CHICAGO_X_FT, CHICAGO_Y_FT),
    (1176000.0, 1900500.0),  # the Loop
    (1100000.0, 1935000.0),  # O'Hare
    (1205000.0, 1815000.0),  # far South Side, near the Indiana line
    (1160000.0, 1950000.0),  # Rogers Park / Evanston
    (1050000.0, 1700000.0),  # ~50 km south-west, towards Joliet
]

# EPSG:4326 lon/lat: Chicago landmarks plus the edges and extremes of UTM zone 16.
LONLAT = [
    (CHICAGO_LON, CHICAGO_LAT),
    (-87.6298, 41.8781),  # the Loop
    (-87.9048, 41.9786),  # O'Hare
    (-87.5400, 41.6445),  # Hegewisch
    (-90.0, 25.0),  # west edge of the zone
    (-84.0, 49.0),  # east edge of the zone
    (-87.0, 0.0),  # central meridian on the equator
]


# EPSG:26916 / 32616 metres around Chicago.
UTM16_M = [(447000.0, 4629000.0), (420000.0, 4650000.0), (460000.0, 4600000.0)]


def _pyproj(points: list[tuple[float, float]], source: str, target: str) -> np.ndarray:
    xs, ys = np.array(points).T
    out = pyproj.Transformer.from_crs(source, target, always_xy=True).transform(xs, ys)
    return np.column_stack(out)


def _spark_transform(
    spark: SparkSession, points: list[tuple[float, float]], source: str, target: str
) -> np.ndarray:
    rows = [(i, float(x), float(y)) for i, (x, y) in enumerate(points)]
    df = spark.createDataFrame(rows, "id int, x double, y double")
    ox, oy = transform(F.col("x"), F.col("y"), source, target)
    # Sorting on the driver is cheaper than a Spark orderBy for a handful of rows.
    out = sorted(df.select("id", ox.alias("ox"), oy.alias("oy")).collect())
    return np.array([(r.ox, r.oy) for r in out], dtype=np.float64)


def _numpy_transform(points: list[tuple[float, float]], source: str, target: str) -> np.ndarray:
    xs, ys = np.array(points).T
    return np.column_stack(transform_array(xs, ys, source, target))


def _ground_distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    # Local flat-earth approximation; ample for a metre-level tolerance.
    k = 6_371_000.0 * math.pi / 180
    return math.hypot((lon1 - lon2) * k * math.cos(math.radians(lat1)), (lat1 - lat2) * k)


CASES = [
    pytest.param(ILLINOIS_EAST_FT, "EPSG:3435", "EPSG:26916", METRE_TOL, id="3435->26916"),
    pytest.param(LONLAT, "EPSG:4326", "EPSG:26916", METRE_TOL, id="4326->26916"),
    pytest.param(LONLAT, "EPSG:4326", "EPSG:32616", METRE_TOL, id="4326->32616"),
    pytest.param(LONLAT, "EPSG:4326", "EPSG:3435", METRE_TOL / crs.US_SURVEY_FOOT, id="4326->3435"),
    # TM -> TM across GRS80 and WGS84: the conformal-sphere shift and rotation.
    pytest.param(ILLINOIS_EAST_FT, "EPSG:3435", "EPSG:32616", METRE_TOL, id="3435->32616"),
    pytest.param(UTM16_M, "EPSG:32616", "EPSG:26917", METRE_TOL, id="32616->26917"),
]


@pytest.mark.parametrize(("points", "source", "target", "tol"), CASES)
def test_spark_matches_pyproj(spark, points, source, target, tol):
    got = _spark_transform(spark, points, source, target)
    np.testing.assert_allclose(got, _pyproj(points, source, target), rtol=0, atol=tol)


@pytest.mark.parametrize(("points", "source", "target", "tol"), CASES)
def test_numpy_matches_pyproj(points, source, target, tol):
    got = _numpy_transform(points, source, target)
    np.testing.assert_allclose(got, _pyproj(points, source, target), rtol=0, atol=tol)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("EPSG:3435", "EPSG:26916"),
        ("EPSG:3435", "EPSG:32616"),
        ("EPSG:32616", "EPSG:26917"),
        ("EPSG:26916", "EPSG:3435"),
        ("EPSG:4326", "EPSG:3435"),
    ],
)
def test_numpy_precision_far_below_tolerance(source, target):
    # 10 um over the Chicago region, a guard that the 0.01 m tolerance above cannot give:
    # it catches a dropped series term or the ~0.1 mm GRS80/WGS84 conformal shift.
    lon, lat = np.meshgrid(np.linspace(-88.6, -87.2, 8), np.linspace(41.3, 42.5, 8))
    grid = np.column_stack([lon.ravel(), lat.ravel()]).tolist()
    points = [tuple(p) for p in _pyproj(grid, "EPSG:4326", source)]
    tol = 1e-5 / get_crs(target).unit_to_metre
    expected = _pyproj(points, source, target)
    np.testing.assert_allclose(_numpy_transform(points, source, target), expected, rtol=0, atol=tol)


def test_inverse_utm_matches_pyproj(spark):
    utm = [tuple(p) for p in _pyproj(LONLAT, "EPSG:4326", "EPSG:26916")]
    expected = _pyproj(utm, "EPSG:26916", "EPSG:4326")
    got_spark = _spark_transform(spark, utm, "EPSG:26916", "EPSG:4326")
    got_numpy = _numpy_transform(utm, "EPSG:26916", "EPSG:4326")
    np.testing.assert_allclose(got_spark, expected, rtol=0, atol=DEGREE_TOL)
    np.testing.assert_allclose(got_numpy, expected, rtol=0, atol=DEGREE_TOL)


def test_chicago_record_lands_on_its_published_lonlat(spark):
    df = spark.createDataFrame([(CHICAGO_X_FT, CHICAGO_Y_FT)], "x double, y double")
    lon, lat = to_lonlat(F.col("x"), F.col("y"), "EPSG:3435")
    row = df.select(lon.alias("lon"), lat.alias("lat")).first()
    assert _ground_distance_m(row.lon, row.lat, CHICAGO_LON, CHICAGO_LAT) < 2.0

    np_lon, np_lat = transform_array(
        np.array([CHICAGO_X_FT]), np.array([CHICAGO_Y_FT]), "EPSG:3435", "EPSG:4326"
    )
    assert _ground_distance_m(np_lon[0], np_lat[0], CHICAGO_LON, CHICAGO_LAT) < 2.0


def test_from_lonlat_round_trips_through_to_lonlat(spark):
    df = spark.createDataFrame([(CHICAGO_LON, CHICAGO_LAT)], "lon double, lat double")
    x, y = from_lonlat(F.col("lon"), F.col("lat"), "EPSG:3435")
    # Chained through a select, as the module docstring advises, to keep the plan small.
    projected = df.select(x.alias("x"), y.alias("y"))
    lon, lat = to_lonlat(F.col("x"), F.col("y"), "EPSG:3435")
    row = projected.select("x", "y", lon.alias("lon"), lat.alias("lat")).first()
    assert abs(row.x - CHICAGO_X_FT) < 2.0 / crs.US_SURVEY_FOOT
    assert abs(row.y - CHICAGO_Y_FT) < 2.0 / crs.US_SURVEY_FOOT
    assert abs(row.lon - CHICAGO_LON) < DEGREE_TOL
    assert abs(row.lat - CHICAGO_LAT) < DEGREE_TOL


def test_null_in_gives_null_out(spark):
    rows = [
        (0, None, CHICAGO_Y_FT),
        (1, CHICAGO_X_FT, None),
        (2, None, None),
        (3, CHICAGO_X_FT, CHICAGO_Y_FT),
    ]
    df = spark.createDataFrame(rows, "id int, x double, y double")
    ux, uy = transform(F.col("x"), F.col("y"), "EPSG:3435", "EPSG:26916")
    lon, lat = to_lonlat(F.col("x"), F.col("y"), "EPSG:3435")
    out = sorted(df.select("id", ux, uy, lon, lat).collect())
    for row in out[:3]:
        assert list(row)[1:] == [None, None, None, None], row
    assert None not in list(out[3])


@pytest.mark.parametrize(("source", "target"), [("EPSG:4326", "EPSG:4326"), ("EPSG:3435", "EPSG:3435")])
def test_null_half_point_blanks_both_outputs_even_for_identity(spark, source, target):
    df = spark.createDataFrame([(None, 41.8), (-87.6, None)], "x double, y double")
    x, y = transform(F.col("x"), F.col("y"), source, target)
    assert [tuple(r) for r in df.select(x, y).collect()] == [(None, None), (None, None)]


def test_numpy_nan_in_gives_nan_out():
    x = np.array([np.nan, CHICAGO_X_FT])
    y = np.array([CHICAGO_Y_FT, CHICAGO_Y_FT])
    for target in ("EPSG:26916", "EPSG:4326", "EPSG:3435"):
        ox, oy = transform_array(x, y, "EPSG:3435", target)
        assert np.isnan(ox[0]) and np.isnan(oy[0]), target
        assert np.isfinite(ox[1]) and np.isfinite(oy[1]), target


def test_identity_returns_doubles_and_numpy_copies(spark):
    df = spark.createDataFrame([(1, 2)], "x int, y int")
    x, y = transform(F.col("x"), F.col("y"), "EPSG:26916", "epsg:26916")
    out = df.select(x.alias("x"), y.alias("y"))
    assert [f.dataType.typeName() for f in out.schema.fields] == ["double", "double"]
    assert tuple(out.first()) == (1.0, 2.0)

    xs = np.array([1.0])
    ox, _ = transform_array(xs, np.array([2.0]), "EPSG:4326", "EPSG:4326")
    ox[0] = 99.0
    assert xs[0] == 1.0


def test_plan_has_no_python_udf(spark, capsys):
    df = spark.createDataFrame([(CHICAGO_X_FT, CHICAGO_Y_FT)], "x double, y double")
    x, y = transform(F.col("x"), F.col("y"), "EPSG:3435", "EPSG:26916")
    df.select(x, y).explain(mode="extended")
    plan = capsys.readouterr().out
    assert "Project" in plan
    assert "PythonUDF" not in plan and "EvalPython" not in plan


@pytest.mark.parametrize("code", ["EPSG:2263", "EPSG:26924", "EPSG:32661", "EPSG:32716", "4326"])
def test_unsupported_code_is_refused_by_name(code):
    with pytest.raises(UnsupportedCRS, match=code) as excinfo:
        get_crs(code)
    assert isinstance(excinfo.value, ValueError)
    assert "EPSG:326NN/269NN" in str(excinfo.value)


def test_transform_refuses_unknown_code_before_spark_runs():
    with pytest.raises(UnsupportedCRS, match="EPSG:2263"):
        transform(F.col("x"), F.col("y"), "EPSG:2263", "EPSG:26916")
    with pytest.raises(UnsupportedCRS, match="EPSG:9999"):
        transform_array(np.zeros(1), np.zeros(1), "EPSG:4326", "EPSG:9999")


def test_registry_contents():
    assert isinstance(get_crs("EPSG:4326"), Geographic)
    utm16 = get_crs("EPSG:26916")
    assert isinstance(utm16, TransverseMercator)
    assert (utm16.lon0, utm16.k0, utm16.false_easting) == (-87.0, 0.9996, 500000.0)
    assert (utm16.a, utm16.f) == crs.GRS80
    assert (get_crs("EPSG:32616").a, get_crs("EPSG:32616").f) == crs.WGS84
    assert get_crs("EPSG:32601").lon0 == -177.0
    assert get_crs("EPSG:32660").lon0 == 177.0
    assert get_crs("EPSG:26901").lon0 == -177.0
    assert get_crs("EPSG:26923").lon0 == -45.0


def test_every_registered_projection_matches_pyproj():
    # Catches a wrong parameter anywhere in the programmatically built registry.
    for code in crs.supported_codes():
        tm = get_crs(code)
        if isinstance(tm, Geographic):
            continue
        lon, lat = np.array([tm.lon0 + 2.5]), np.array([45.0])
        expected = pyproj.Transformer.from_crs("EPSG:4326", code, always_xy=True).transform(lon, lat)
        got = transform_array(lon, lat, "EPSG:4326", code)
        tol = METRE_TOL / tm.unit_to_metre
        np.testing.assert_allclose(np.ravel(got), np.ravel(expected), rtol=0, atol=tol)


def test_require_projected():
    assert require_projected("EPSG:26916") == get_crs("EPSG:26916")
    assert require_projected("EPSG:32616") == get_crs("EPSG:32616")
    with pytest.raises(UnsupportedCRS, match="EPSG:4326"):
        require_projected("EPSG:4326")
    # Grid cell sizes are metres, so a feet-based CRS cannot be the project CRS either.
    with pytest.raises(UnsupportedCRS, match="EPSG:3435"):
        require_projected("EPSG:3435")
    with pytest.raises(UnsupportedCRS, match="EPSG:1234"):
        require_projected("EPSG:1234")
