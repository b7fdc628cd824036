"""The square grid in the project CRS: stable cell ids, centroids, polygons, and the cells
that fall inside boundary polygons (the quiet parts of the city).

A cell is identified by its column and row, `ix = floor(x / size)`, `iy = floor(y / size)`,
so ids are reproducible from coordinates alone and stable across runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
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


def cell_indices(cell_ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The column and row (`ix`, `iy`) of each id that `cell_id` made."""
    parts = cell_ids.str.split("_", expand=True).astype(int)
    return parts[0].to_numpy(), parts[1].to_numpy()


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


def cells_in_areas(areas: list[tuple[str, str]], grid: Grid) -> list[tuple[int, int, str]]:
    """(ix, iy, area_code) of every cell whose centroid lies in an area polygon (holes and
    multipolygons as GeoJSON has them). A centroid on an edge counts as inside; on the edge two
    areas share, it goes to the lower code, so every cell has at most one area.

    `areas` holds (area_code, GeoJSON geometry in WGS84); the code is passed through as given.
    Runs on the driver: boundaries are a few hundred polygons, the grid of a city some tens of
    thousands of cells.
    """
    import shapely

    size = grid.cell_size_m

    def to_grid(coords: np.ndarray) -> np.ndarray:
        x, y = crs.transform_array(coords[:, 0], coords[:, 1], crs.WGS84, grid.crs)
        return np.column_stack([x, y])

    out: list[tuple[int, int, str]] = []
    seen: set[tuple[int, int]] = set()
    for code, text in sorted(areas, key=lambda a: str(a[0])):  # a centroid on a shared edge: the lower code
        shape = shapely.transform(shapely.from_geojson(text), to_grid)
        if shape.geom_type not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"area {code!r}: expected a Polygon or MultiPolygon, got {shape.geom_type}")
        x0, y0, x1, y1 = shape.bounds
        gx, gy = np.meshgrid(
            np.arange(np.floor(x0 / size), np.floor(x1 / size) + 1),
            np.arange(np.floor(y0 / size), np.floor(y1 / size) + 1),
        )
        gx, gy = gx.ravel(), gy.ravel()
        inside = shapely.intersects_xy(shape, (gx + 0.5) * size, (gy + 0.5) * size)
        for a, b in zip(gx[inside].astype(int), gy[inside].astype(int), strict=True):
            if (a, b) not in seen:
                seen.add((a, b))
                out.append((int(a), int(b), code))
    return out
