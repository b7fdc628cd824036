"""riskradar.crs: the Spark UDF path and the NumPy path against pyproj, published points,
round trips, missing values, and the codes refused."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pyproj
import pytest
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from riskradar import crs
from riskradar.crs import (
    Target,
    UnsupportedCRS,
    get_crs,
    is_geographic,
    require_projected,
    transform_array,
    transform_columns,
    transform_columns_to,
)

METRE_TOL = 0.01  # what issue 15 asks of every transform
ROUND_TRIP_TOL = 0.001
METRES_PER_DEGREE = 6_371_000.0 * math.pi / 180

# A real Chicago record: state-plane feet and the lat/lon the source published with it.
CHICAGO_X_FT, CHICAGO_Y_FT = 1165166.51552093, 1872509.02087899
CHICAGO_LON, CHICAGO_LAT = -87.66975672568209, 41.80576343586902

# (min lon, min lat, max lon, max lat) of each region the transforms must hold over.
NETHERLANDS = (3.4, 50.8, 7.2, 53.5)
CHICAGO = (-88.0, 41.6, -87.5, 42.1)
PHILADELPHIA = (-75.3, 39.85, -74.95, 40.15)
FRANCE = (-4.5, 42.5, 8.0, 51.0)
UTM31 = (0.2, 0.5, 5.8, 60.0)  # most of zone 31N, equator to Norway

REGION_CASES = [
    pytest.param(NETHERLANDS, "EPSG:28992", "EPSG:4326", id="nl-28992->4326"),
    pytest.param(NETHERLANDS, "EPSG:4326", "EPSG:28992", id="nl-4326->28992"),
    pytest.param(NETHERLANDS, "EPSG:28992", "EPSG:32631", id="nl-28992->32631"),
    pytest.param(NETHERLANDS, "EPSG:32631", "EPSG:28992", id="nl-32631->28992"),
    pytest.param(CHICAGO, "EPSG:3435", "EPSG:26916", id="chicago-3435->26916"),
    pytest.param(CHICAGO, "EPSG:26916", "EPSG:3435", id="chicago-26916->3435"),
    pytest.param(CHICAGO, "EPSG:3435", "EPSG:4326", id="chicago-3435->4326"),
    pytest.param(PHILADELPHIA, "EPSG:2272", "EPSG:4326", id="philadelphia-2272->4326"),
    pytest.param(PHILADELPHIA, "EPSG:2272", "EPSG:26918", id="philadelphia-2272->26918"),
    pytest.param(FRANCE, "EPSG:2154", "EPSG:4326", id="france-2154->4326"),
    pytest.param(FRANCE, "EPSG:2154", "EPSG:32631", id="france-2154->32631"),
    pytest.param(UTM31, "EPSG:32631", "EPSG:4326", id="utm-32631->4326"),
    pytest.param(CHICAGO, "EPSG:26916", "EPSG:4326", id="utm-26916->4326"),
    pytest.param(CHICAGO, "EPSG:32616", "EPSG:26916", id="utm-32616->26916"),
]


def _pyproj(x, y, source: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    out = pyproj.Transformer.from_crs(source, target, always_xy=True).transform(x, y)
    return np.asarray(out[0], dtype=float), np.asarray(out[1], dtype=float)


def _grid(region: tuple[float, float, float, float], code: str, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """An n x n grid of points over ``region``, in ``code``'s coordinates (placed by pyproj)."""
    lon, lat = np.meshgrid(np.linspace(region[0], region[2], n), np.linspace(region[1], region[3], n))
    return _pyproj(lon.ravel(), lat.ravel(), "EPSG:4326", code)


def _max_error_m(got, expected, code: str) -> float:
    """Largest distance in metres between two point sets (x arrays, y arrays) in ``code``."""
    dx = np.abs(np.asarray(got[0]) - expected[0])
    dy = np.abs(np.asarray(got[1]) - expected[1])
    assert np.isfinite(dx).all() and np.isfinite(dy).all()
    if get_crs(code).is_geographic:
        dx = dx * METRES_PER_DEGREE * np.cos(np.radians(expected[1]))
        dy = dy * METRES_PER_DEGREE
    else:
        unit = get_crs(code).axis_info[0].unit_conversion_factor
        dx, dy = dx * unit, dy * unit
    return float(np.hypot(dx, dy).max())


def _frame(spark, x, y):
    return spark.createDataFrame(
        [(float(a), float(b)) for a, b in zip(x, y, strict=True)], "x double, y double"
    )


def _spark_transform(spark, x, y, source: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [(i, float(a), float(b)) for i, (a, b) in enumerate(zip(x, y, strict=True))]
    df = spark.createDataFrame(rows, "id int, x double, y double")
    out = transform_columns(df, "x", "y", source, target, out_x="ox", out_y="oy")
    # Sorting on the driver is cheaper than a Spark orderBy for a few hundred rows.
    got = sorted((r.id, r.ox, r.oy) for r in out.select("id", "ox", "oy").collect())
    return np.array([r[1] for r in got]), np.array([r[2] for r in got])


def _ground_distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    # Local flat-earth approximation; ample for a metre-level tolerance.
    k = METRES_PER_DEGREE
    return math.hypot((lon1 - lon2) * k * math.cos(math.radians(lat1)), (lat1 - lat2) * k)


@pytest.mark.parametrize(("region", "source", "target"), REGION_CASES)
def test_spark_matches_pyproj_over_a_grid_of_points(spark, region, source, target):
    x, y = _grid(region, source)
    expected = _pyproj(x, y, source, target)
    assert _max_error_m(_spark_transform(spark, x, y, source, target), expected, target) < METRE_TOL


@pytest.mark.parametrize(("region", "source", "target"), REGION_CASES)
def test_numpy_matches_pyproj_and_round_trips(region, source, target):
    x, y = _grid(region, source)
    there = transform_array(x, y, source, target)
    assert _max_error_m(there, _pyproj(x, y, source, target), target) < METRE_TOL
    back = transform_array(*there, target, source)
    assert _max_error_m(back, (x, y), source) < ROUND_TRIP_TOL


def test_spark_round_trip_through_project_crs(spark):
    x, y = _grid(NETHERLANDS, "EPSG:28992")
    df = _frame(spark, x, y)
    there = transform_columns(df, "x", "y", "EPSG:28992", "EPSG:32631", out_x="ux", out_y="uy")
    back = transform_columns(there, "ux", "uy", "EPSG:32631", "EPSG:28992", out_x="bx", out_y="by")
    out = back.select("x", "y", "bx", "by").toPandas()
    assert len(out) == 400
    assert _max_error_m((out.bx, out.by), (out.x.to_numpy(), out.y.to_numpy()), "EPSG:28992") < ROUND_TRIP_TOL


# Published coordinates, so that the tests are not only pyproj against pyproj.
REFERENCE_POINTS = [
    # RD New's origin, the Onze Lieve Vrouwetoren in Amersfoort, in ETRS89 (~WGS84) as the
    # RDNAPTRANS documentation gives it; without the grid PROJ's Helmert is good to ~1 m.
    pytest.param("EPSG:28992", (155000.0, 463000.0), (5.387206, 52.155174), 1.0, id="rd-new-origin"),
    # False origins: 300 km east of the central meridian (984,250 ftUS) at the origin latitude.
    pytest.param("EPSG:3435", (984250.0, 0.0), (-88.0 - 1 / 3, 36.0 + 2 / 3), 0.001, id="illinois-east"),
    pytest.param("EPSG:2272", (1968500.0, 0.0), (-77.75, 39.0 + 1 / 3), 0.001, id="pennsylvania-south"),
    pytest.param("EPSG:2154", (700000.0, 6600000.0), (3.0, 46.5), 0.001, id="lambert-93"),
    pytest.param("EPSG:32631", (500000.0, 0.0), (3.0, 0.0), 0.001, id="utm-31n"),
    # A record of the Chicago sample: its feet and the lat/lon published with it (rounded).
    pytest.param(
        "EPSG:3435", (CHICAGO_X_FT, CHICAGO_Y_FT), (CHICAGO_LON, CHICAGO_LAT), 2.0, id="chicago-record"
    ),
]


@pytest.mark.parametrize(("source", "xy", "lonlat", "tol_m"), REFERENCE_POINTS)
def test_published_points(spark, source, xy, lonlat, tol_m):
    lon, lat = transform_array(np.array([xy[0]]), np.array([xy[1]]), source, "EPSG:4326")
    assert _ground_distance_m(lon[0], lat[0], *lonlat) < tol_m
    s_lon, s_lat = _spark_transform(spark, [xy[0]], [xy[1]], source, "EPSG:4326")
    assert _ground_distance_m(s_lon[0], s_lat[0], *lonlat) < tol_m


def test_chicago_record_round_trips_through_lonlat(spark):
    df = spark.createDataFrame([(CHICAGO_LON, CHICAGO_LAT)], "lon double, lat double")
    projected = transform_columns(df, "lon", "lat", "EPSG:4326", "EPSG:3435", out_x="x", out_y="y")
    row = transform_columns(projected, "x", "y", "EPSG:3435", "EPSG:4326", out_x="lon2", out_y="lat2").first()
    foot = get_crs("EPSG:3435").axis_info[0].unit_conversion_factor
    assert abs(row.x - CHICAGO_X_FT) < 2.0 / foot
    assert abs(row.y - CHICAGO_Y_FT) < 2.0 / foot
    assert abs(row.lon2 - CHICAGO_LON) < 1e-8
    assert abs(row.lat2 - CHICAGO_LAT) < 1e-8


def test_several_targets_come_from_one_udf_call(spark):
    x, y = _grid(NETHERLANDS, "EPSG:28992", n=5)
    df = _frame(spark, x, y)
    both = transform_columns_to(
        df, "x", "y", "EPSG:28992", [Target("EPSG:4326", "lon", "lat"), Target("EPSG:32631", "ux", "uy")]
    )
    assert both.columns == ["x", "y", "lon", "lat", "ux", "uy"]
    plan = both._jdf.queryExecution().executedPlan().toString()
    assert plan.count("ArrowEvalPython") == 1 and plan.count("transform_points(") == 1, plan
    out = both.toPandas()
    expected_lonlat = _pyproj(out.x.to_numpy(), out.y.to_numpy(), "EPSG:28992", "EPSG:4326")
    expected_utm = _pyproj(out.x.to_numpy(), out.y.to_numpy(), "EPSG:28992", "EPSG:32631")
    assert _max_error_m((out.lon, out.lat), expected_lonlat, "EPSG:4326") < METRE_TOL
    assert _max_error_m((out.ux, out.uy), expected_utm, "EPSG:32631") < METRE_TOL


def test_missing_or_non_finite_input_and_failed_points_give_nulls(spark):
    inf, nan = float("inf"), float("nan")
    rows = [
        (0, None, 463000.0),
        (1, 155000.0, None),
        (2, None, None),
        (3, nan, 463000.0),
        (4, 155000.0, inf),
        (5, -inf, 463000.0),
        (6, 155000.0, 463000.0),
    ]
    df = spark.createDataFrame(rows, "id int, x double, y double")
    out = transform_columns_to(
        df, "x", "y", "EPSG:28992", [Target("EPSG:4326", "lon", "lat"), Target("EPSG:28992", "rx", "ry")]
    )
    got = sorted(tuple(r) for r in out.select("id", "lon", "lat", "rx", "ry").collect())
    assert got[:6] == [(i, None, None, None, None) for i in range(6)]
    assert got[6][3:] == (155000.0, 463000.0) and None not in got[6]

    # A latitude beyond the pole has no place on RD New: PROJ fails the point, both are null.
    pole = spark.createDataFrame([(5.0, 95.0), (5.0, 52.0)], "lon double, lat double")
    rd = transform_columns(pole, "lon", "lat", "EPSG:4326", "EPSG:28992", out_x="x", out_y="y")
    rows = rd.select("lat", "x", "y").collect()
    assert [(r.x, r.y) for r in rows if r.lat == 95.0] == [(None, None)]
    assert all(v is not None for r in rows if r.lat == 52.0 for v in (r.x, r.y))


def test_numpy_nan_in_gives_nan_out():
    x = np.array([np.nan, CHICAGO_X_FT, np.inf, CHICAGO_X_FT])
    y = np.array([CHICAGO_Y_FT, CHICAGO_Y_FT, CHICAGO_Y_FT, -np.inf])
    for target in ("EPSG:26916", "EPSG:4326", "EPSG:3435"):
        ox, oy = transform_array(x, y, "EPSG:3435", target)
        assert np.isnan(ox[[0, 2, 3]]).all() and np.isnan(oy[[0, 2, 3]]).all(), target
        assert np.isfinite(ox[1]) and np.isfinite(oy[1]), target
    lon, lat = transform_array(np.array([5.0]), np.array([95.0]), "EPSG:4326", "EPSG:28992")
    assert np.isnan(lon[0]) and np.isnan(lat[0])


@pytest.mark.parametrize(("source", "target"), [("EPSG:4326", "EPSG:4326"), ("EPSG:3435", "EPSG:3435")])
def test_null_half_point_blanks_both_outputs_even_for_identity(spark, source, target):
    df = spark.createDataFrame([(None, 41.8), (-87.6, None)], "x double, y double")
    out = transform_columns(df, "x", "y", source, target, out_x="ox", out_y="oy")
    assert [tuple(r) for r in out.select("ox", "oy").collect()] == [(None, None), (None, None)]


def test_identity_returns_doubles_and_numpy_copies(spark):
    df = spark.createDataFrame([(1, 2)], "x int, y int")
    out = transform_columns(df, F.col("x"), "y", "EPSG:26916", "epsg:26916", out_x="x", out_y="y")
    assert [(f.name, f.dataType.typeName()) for f in out.schema.fields] == [("x", "double"), ("y", "double")]
    assert tuple(out.first()) == (1.0, 2.0)

    xs = np.array([1.0])
    ox, _ = transform_array(xs, np.array([2.0]), "EPSG:4326", "EPSG:4326")
    ox[0] = 99.0
    assert xs[0] == 1.0


def test_numpy_refuses_arrays_of_different_shapes():
    with pytest.raises(ValueError, match=r"x and y differ in shape: \(2,\) and \(3,\)"):
        transform_array(np.zeros(2), np.zeros(3), "EPSG:4326", "EPSG:28992")


def test_one_transformer_per_worker_process(spark):
    """Many Arrow batches in one task build the Transformer once: the worker's cache misses
    do not grow after the first batch."""
    source, target = "EPSG:2154", "EPSG:27572"  # a pair no other test uses

    @pandas_udf("pid long, misses long")
    def probe(x: pd.Series, y: pd.Series) -> pd.DataFrame:
        crs._transform_batch(source, (target,), x, y)
        info = crs._transformer.cache_info()
        return pd.DataFrame({"pid": [os.getpid()] * len(x), "misses": [info.misses] * len(x)})

    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "10")
    try:
        df = (
            spark.range(200)
            .repartition(1)
            .select((F.col("id") * 100 + 700000).cast("double").alias("x"), F.lit(6600000.0).alias("y"))
        )
        rows = df.select(probe("x", "y").alias("p")).select("p.*").distinct().collect()
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
    # 20 batches in one worker process, all reporting the cache after its single miss
    assert len({r.pid for r in rows}) == 1
    assert len(rows) == 1, rows


@pytest.mark.parametrize(
    "code",
    ["EPSG:28992", "EPSG:2154", "EPSG:2272", "EPSG:3435", "EPSG:26916", "EPSG:32760", "epsg:4326", "4326"],
)
def test_any_code_proj_knows_is_accepted(code):
    assert isinstance(get_crs(code), pyproj.CRS)
    assert get_crs(code) is get_crs(code)  # cached


@pytest.mark.parametrize("code", ["EPSG:9999", "EPSG:1234", "nope", ""])
def test_unknown_code_is_refused_by_name(code):
    with pytest.raises(UnsupportedCRS) as excinfo:
        get_crs(code)
    assert isinstance(excinfo.value, ValueError)
    assert str(excinfo.value).startswith(f"unsupported CRS {code!r}: ")


@pytest.mark.parametrize(("code", "kind"), [("EPSG:5709", "Vertical CRS"), ("EPSG:4978", "Geocentric CRS")])
def test_a_crs_without_map_coordinates_is_refused(code, kind):
    with pytest.raises(UnsupportedCRS, match=f"unsupported CRS '{code}': .* is a {kind}, not a geographic"):
        get_crs(code)


def test_transforms_refuse_an_unknown_code_before_spark_runs(spark):
    df = spark.createDataFrame([(1.0, 2.0)], "x double, y double")
    with pytest.raises(UnsupportedCRS, match="EPSG:9999"):
        transform_columns(df, "x", "y", "EPSG:9999", "EPSG:26916", out_x="a", out_y="b")
    with pytest.raises(UnsupportedCRS, match="EPSG:9998"):
        targets = [Target("EPSG:28992", "a", "b"), Target("EPSG:9998", "c", "d")]
        transform_columns_to(df, "x", "y", "EPSG:4326", targets)
    with pytest.raises(UnsupportedCRS, match="EPSG:9999"):
        transform_array(np.zeros(1), np.zeros(1), "EPSG:4326", "EPSG:9999")


def test_is_geographic():
    assert is_geographic("EPSG:4326") and is_geographic("EPSG:4258")
    assert not is_geographic("EPSG:28992") and not is_geographic("EPSG:3435")


def test_require_projected():
    assert require_projected("EPSG:28992").name == "Amersfoort / RD New"
    assert require_projected("EPSG:26916") == get_crs("EPSG:26916")
    assert require_projected("EPSG:2154") == get_crs("EPSG:2154")
    with pytest.raises(UnsupportedCRS, match="project CRS must be projected .*geographic 2d crs 'EPSG:4326'"):
        require_projected("EPSG:4326")
    # Grid cell sizes are metres, so a feet-based CRS cannot be the project CRS either.
    with pytest.raises(UnsupportedCRS, match=r"must be in metres, 'EPSG:3435' \(.*\) is in US survey foot"):
        require_projected("EPSG:3435")
    with pytest.raises(UnsupportedCRS, match="'EPSG:2272'"):
        require_projected("EPSG:2272")
    with pytest.raises(UnsupportedCRS, match="EPSG:1234"):
        require_projected("EPSG:1234")


@pytest.mark.parametrize("code", ["EPSG:3857", "EPSG:3395"])
def test_a_mercator_project_crs_is_refused(code):
    """Its metres are not ground metres away from the equator: cells would not be the size the
    config says. As a partner's coordinates it is fine."""
    with pytest.raises(UnsupportedCRS, match=f"project CRS '{code}' .* is a Mercator projection"):
        require_projected(code)
    assert get_crs(code).is_projected


@pytest.mark.parametrize("code", ["EPSG:28992", "EPSG:26916", "EPSG:2154", "EPSG:32631"])
def test_national_grids_and_utm_zones_can_be_project_crs(code):
    assert require_projected(code) is get_crs(code)
