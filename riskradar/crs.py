"""Coordinate reference systems and transforms between them, through PROJ (pyproj).

A CRS is named by any string ``pyproj.CRS`` accepts: "EPSG:28992" (the Dutch RD New),
"EPSG:2272" (a US state plane in feet), "EPSG:2154" (Lambert 93), "EPSG:326NN" (UTM), a
WKT or a PROJ string. Transforms always take and give (x, y) as (easting, northing) or
(longitude, latitude), whatever the axis order of the EPSG definition (``always_xy``).

Two paths, one implementation, one ``Transformer`` per (source, target) and process:

- ``transform_array`` on NumPy arrays, for driver-side geometry (grid polygons, exports);
- ``transform_columns`` / ``transform_columns_to`` on a Spark DataFrame: a vectorised
  pandas (Arrow) UDF that calls ``transform_array`` on each row batch, so each Python worker
  process keeps its Transformers for as long as Spark reuses it. Several targets of one
  source (say WGS84 lon/lat and the project CRS) come out of ONE UDF call per batch. The
  executors need this package and pyproj installed, as for any pandas UDF.

Missing values: a null, NaN or infinite x or y gives null (Spark) or NaN (NumPy) in both
outputs, and so does a point PROJ cannot transform (outside the projection's domain).

Datums are handled as PROJ handles them: for each point it takes the most accurate
operation it has whose area of use contains the point. riskradar never turns on PROJ's
network access, and the pyproj wheel ships no transformation grids, so operations that need
a grid are not candidates and PROJ uses the best grid-free one. For Amersfoort / RD New
(EPSG:28992) <-> WGS84 that is the 7-parameter Helmert "Amersfoort to WGS 84 (3)/(4)",
accurate to about 1 m according to EPSG, against centimetres for the official
RDNAPTRANS(TM)2018 grid. The offset varies slowly over the country, so at 150 m cells it
moves only events within a metre of a cell edge, and none at all when a feed is in the
project CRS itself (an identity). NAD83 <-> WGS84 is a null transformation in PROJ's
default ("NAD83 to WGS 84 (1)"), as before. Installing the grids in PROJ's data directory
(``projsync``) makes PROJ use them, with no code change.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyproj
from pyproj.exceptions import CRSError
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import DoubleType, StructField, StructType

__all__ = [
    "WGS84",
    "Target",
    "UnsupportedCRS",
    "get_crs",
    "is_geographic",
    "require_projected",
    "transform_array",
    "transform_columns",
    "transform_columns_to",
]

WGS84 = "EPSG:4326"

# The struct column that carries a UDF's outputs between the call and their unpacking.
_PACKED = "__crs_transformed"


class UnsupportedCRS(ValueError):
    """A CRS that PROJ does not know, or that is unfit for its role."""


class Target(NamedTuple):
    """One output of a transform: the target CRS and the names of its x and y columns."""

    crs: str
    x: str
    y: str


@cache
def get_crs(code: str) -> pyproj.CRS:
    """The horizontal CRS named by ``code`` (cached per code).

    Raises UnsupportedCRS, naming ``code``, if PROJ does not know it or if it is not a
    horizontal CRS (geographic or projected): a vertical or geocentric CRS has no x/y on a map.
    """
    if not isinstance(code, str) or not code.strip():
        raise UnsupportedCRS(f"unsupported CRS {code!r}: expected a code such as 'EPSG:28992'")
    try:
        crs = pyproj.CRS.from_user_input(code.strip())
    except CRSError:
        raise UnsupportedCRS(
            f"unsupported CRS {code!r}: PROJ does not know it "
            "(expected e.g. 'EPSG:28992', a WKT or a PROJ string)"
        ) from None
    if not (crs.is_geographic or crs.is_projected):
        raise UnsupportedCRS(
            f"unsupported CRS {code!r}: {crs.name} is a {crs.type_name}, not a geographic or projected CRS"
        )
    return crs


def is_geographic(code: str) -> bool:
    """Whether ``code`` is a geographic CRS (x = longitude, y = latitude, in its angle unit)."""
    return get_crs(code).is_geographic


def require_projected(code: str) -> pyproj.CRS:
    """The CRS for ``code`` if it can be the project CRS: projected, with both axes in metres.

    Raises UnsupportedCRS otherwise, because grid cell sizes are in metres.
    """
    crs = get_crs(code)
    if not crs.is_projected:
        raise UnsupportedCRS(f"project CRS must be projected (metres), got {crs.type_name.lower()} {code!r}")
    units = {axis.unit_name for axis in crs.axis_info[:2] if axis.unit_conversion_factor != 1.0}
    if units:
        raise UnsupportedCRS(
            f"project CRS must be in metres, {code!r} ({crs.name}) is in {', '.join(sorted(units))}"
        )
    method = (crs.coordinate_operation.method_name if crs.coordinate_operation else "").lower()
    if "mercator" in method and "transverse" not in method:
        # Web Mercator's "metres" are 1.6 ground metres at 52 degrees: a 150 m cell would be 92 m.
        raise UnsupportedCRS(
            f"project CRS {code!r} ({crs.name}) is a Mercator projection, whose metres are not ground "
            f"metres away from the equator: use the country's national grid (e.g. EPSG:28992) or a UTM zone"
        )
    return crs


@cache
def _transformer(source: str, target: str) -> pyproj.Transformer:
    # Building one costs milliseconds (a proj.db lookup): once per pair and process.
    return pyproj.Transformer.from_crs(get_crs(source), get_crs(target), always_xy=True)


def transform_array(x: np.ndarray, y: np.ndarray, source: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) in ``target`` as new float64 arrays, from ``x``/``y`` (same shape) in ``source``.

    NaN plays null: a non-finite x or y, or a point PROJ cannot transform, gives NaN in both
    outputs. Raises UnsupportedCRS for an unknown code.
    """
    transformer = _transformer(source, target)
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in shape: {xs.shape} and {ys.shape}")
    out_x, out_y = np.full(xs.shape, np.nan), np.full(ys.shape, np.nan)
    valid = np.isfinite(xs) & np.isfinite(ys)
    out_x[valid], out_y[valid] = transformer.transform(xs[valid], ys[valid])
    # PROJ reports a point it cannot transform as inf
    failed = ~(np.isfinite(out_x) & np.isfinite(out_y))
    out_x[failed] = out_y[failed] = np.nan
    return out_x, out_y


def _transform_batch(source: str, targets: tuple[str, ...], x: pd.Series, y: pd.Series) -> pd.DataFrame:
    """One Arrow batch: the packed struct's fields x0, y0, x1, y1, ... (NaN becomes null)."""
    xs = x.to_numpy(dtype=np.float64, na_value=np.nan)
    ys = y.to_numpy(dtype=np.float64, na_value=np.nan)
    out: dict[str, np.ndarray] = {}
    for i, target in enumerate(targets):
        out[f"x{i}"], out[f"y{i}"] = transform_array(xs, ys, source, target)
    return pd.DataFrame(out)


def _packed_udf(source: str, targets: tuple[str, ...]):
    schema = StructType(
        [StructField(f"{axis}{i}", DoubleType()) for i in range(len(targets)) for axis in "xy"]
    )

    # Shipped by value; `_transform_batch` by reference, so the worker's cache is the module's.
    @pandas_udf(schema)
    def transform_points(x: pd.Series, y: pd.Series) -> pd.DataFrame:
        return _transform_batch(source, targets, x, y)

    return transform_points


def transform_columns_to(
    df: DataFrame, x: str | Column, y: str | Column, source: str, targets: Sequence[Target]
) -> DataFrame:
    """``df`` plus, for each target, its x and y columns (double) in its CRS.

    ``x`` and ``y`` (column names or expressions) are in ``source``. All targets come from one
    pandas UDF call per row batch. A null or non-finite x or y, or a point PROJ cannot
    transform, gives nulls in both columns of a target. Existing columns of the same names
    are replaced. Raises UnsupportedCRS on the driver, before Spark runs, for an unknown code.
    """
    if not targets:
        raise ValueError("transform_columns_to needs at least one target")
    for code in (source, *(t.crs for t in targets)):
        get_crs(code)
    udf = _packed_udf(source, tuple(t.crs for t in targets))
    as_column = [F.col(c) if isinstance(c, str) else c for c in (x, y)]
    packed = df.withColumn(_PACKED, udf(*(c.cast("double") for c in as_column)))
    unpacked: dict[str, Column] = {}
    for i, t in enumerate(targets):
        unpacked[t.x] = F.col(_PACKED)[f"x{i}"]
        unpacked[t.y] = F.col(_PACKED)[f"y{i}"]
    return packed.withColumns(unpacked).drop(_PACKED)


def transform_columns(
    df: DataFrame, x: str | Column, y: str | Column, source: str, target: str, *, out_x: str, out_y: str
) -> DataFrame:
    """``df`` plus ``out_x``/``out_y`` (double) in ``target``; see ``transform_columns_to``."""
    return transform_columns_to(df, x, y, source, [Target(target, out_x, out_y)])
