"""The square grid in the project CRS: stable cell ids, centroids, polygons, and the cells
that fall inside boundary polygons (the quiet parts of the city).

A cell is identified by its column and row, `ix = floor(x / size)`, `iy = floor(y / size)`,
so ids are reproducible from coordinates alone and stable across runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from riskradar import crs


@dataclass(frozen=True)
class Grid:
    cell_size_m: float
    crs: str

    def ix(self, x: Column) -> Column:
        return F.floor(x / F.lit(self.cell_size_m)).cast("int")

    def iy(self, y: Column) -> Column:
        return F.floor(y / F.lit(self.cell_size_m)).cast("int")


def cell_id(ix: Column, iy: Column) -> Column:
    """A readable id: `<ix>_<iy>` (the cell size is the grid's, named in the config)."""
    return F.concat_ws("_", ix.cast("string"), iy.cast("string"))


def assign_cells(df: DataFrame, grid: Grid, *, x: str = "x", y: str = "y") -> DataFrame:
    """Add `ix`, `iy` and `cell_id` from projected coordinates."""
    return df.withColumns({"ix": grid.ix(F.col(x)), "iy": grid.iy(F.col(y))}).withColumn(
        "cell_id", cell_id(F.col("ix"), F.col("iy"))
    )


def with_geometry(cells: DataFrame, grid: Grid) -> DataFrame:
    """Add the centroid (`lon`, `lat`, WGS84) and the cell polygon as WKT in WGS84."""
    size = grid.cell_size_m

    def to_lonlat(df: DataFrame, dx: float, dy: float, lon: str, lat: str) -> DataFrame:
        x, y = (F.col("ix") + dx) * size, (F.col("iy") + dy) * size
        return crs.transform_columns(df, x, y, grid.crs, crs.WGS84, out_x=lon, out_y=lat)

    # Spark evaluates the five transforms in one Python round trip per row batch.
    cells = to_lonlat(cells, 0.5, 0.5, "lon", "lat")
    corners, temporary = [], []
    for i, (dx, dy) in enumerate(((0, 0), (1, 0), (1, 1), (0, 1))):
        cells = to_lonlat(cells, dx, dy, f"__lon{i}", f"__lat{i}")
        temporary += [f"__lon{i}", f"__lat{i}"]
        corners.append(
            F.concat_ws(" ", F.format_number(F.col(f"__lon{i}"), 7), F.format_number(F.col(f"__lat{i}"), 7))
        )
    wkt = F.concat(F.lit("POLYGON(("), F.concat_ws(", ", *corners, corners[0]), F.lit("))"))
    # format_number adds thousands separators only above 999: never for degrees.
    return cells.withColumn("polygon_wkt", wkt).drop(*temporary)


def _rings(geometry: dict) -> list[list[list[list[float]]]]:
    """Polygons of a GeoJSON geometry as lists of rings (outer first, then holes)."""
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    if geometry["type"] == "MultiPolygon":
        return geometry["coordinates"]
    raise ValueError(f"expected a Polygon or MultiPolygon, got {geometry['type']!r}")


def _inside_ring(px: np.ndarray, py: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Even-odd ray casting for many points against one ring."""
    inside = np.zeros(px.shape, dtype=bool)
    x0, y0 = ring[:-1, 0], ring[:-1, 1]
    x1, y1 = ring[1:, 0], ring[1:, 1]
    for a, b, c, d in zip(x0, y0, x1, y1, strict=True):
        crosses = (b > py) != (d > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = a + (py - b) * (c - a) / (d - b)
        inside ^= crosses & (px < xint)
    return inside


def cells_in_areas(areas: list[tuple[int, str]], grid: Grid) -> list[tuple[int, int, int]]:
    """(ix, iy, area_code) of every cell whose centroid lies in an area polygon.

    `areas` holds (area_code, GeoJSON geometry in WGS84). Runs on the driver: boundaries are
    a few hundred polygons, the grid of a city some tens of thousands of cells.
    """
    size = grid.cell_size_m
    out: list[tuple[int, int, int]] = []
    for code, text in areas:
        for polygon in _rings(json.loads(text)):
            projected = []
            for ring in polygon:
                arr = np.asarray(ring, dtype=float)[:, :2]
                x, y = crs.transform_array(arr[:, 0], arr[:, 1], crs.WGS84, grid.crs)
                projected.append(np.column_stack([x, y]))
            outer = projected[0]
            ix = np.arange(np.floor(outer[:, 0].min() / size), np.floor(outer[:, 0].max() / size) + 1)
            iy = np.arange(np.floor(outer[:, 1].min() / size), np.floor(outer[:, 1].max() / size) + 1)
            gx, gy = np.meshgrid(ix, iy)
            gx, gy = gx.ravel(), gy.ravel()
            px, py = (gx + 0.5) * size, (gy + 0.5) * size
            inside = _inside_ring(px, py, outer)
            for hole in projected[1:]:
                inside &= ~_inside_ring(px, py, hole)
            out += [(int(a), int(b), int(code)) for a, b in zip(gx[inside], gy[inside], strict=True)]
    return out
