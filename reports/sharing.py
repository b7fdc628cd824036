"""What a recipient receives: a week's scores cut to its data-sharing agreement, as a GeoPackage
(QGIS, ArcGIS), a CSV (spreadsheets, BI tools) and an offline HTML report, with the check suite
the package must pass before it is delivered.

Pure functions of pandas frames (one per target) and the agreement; the share job reads gold,
writes the files and delivers them. A package table holds exactly `table_columns(agreement)`:
`target`, `week` and the agreed columns (`drivers` spelled out as driver_i / driver_i_detail).
Expected counts are shown as published, "<k" below the agreement's k, never as the exact number.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.scoring import shown_count
from reports.exports import neutralised
from riskradar import crs
from riskradar.sharing import KEY_COLUMNS, Agreement

CELL_ID_PATTERN = r"^-?[0-9]+_-?[0-9]+$"
GEOMETRY = "geometry"


def table_columns(agreement: Agreement, drivers: int) -> list[str]:
    """The columns of the agreement's package table, in order."""
    out: list[str] = []
    for column in agreement.package_columns:
        if column == "drivers":
            out += [name for i in range(1, drivers + 1) for name in (f"driver_{i}", f"driver_{i}_detail")]
        else:
            out.append(column)
    return out


def cell_table(scores: pd.DataFrame, agreement: Agreement, *, drivers: int) -> pd.DataFrame:
    """One (target, week) of gold.scores cut to a cell-level agreement: its rows (every study
    cell, or the hotspots), its columns, counts shown at its k; ranked."""
    rows = scores if agreement.rows == "all" else scores[scores["hotspot"].astype(bool)]
    rows = rows.sort_values("rank").reset_index(drop=True)
    k = agreement.min_count_shown
    out = pd.DataFrame(
        {"target": rows["target"].astype(str), "week": rows["week"].map(lambda w: str(w)[:10])}
    )
    for column in agreement.columns:
        if column == GEOMETRY:
            out[GEOMETRY] = rows["polygon_wkt"]
        elif column == "expected_count":
            out[column] = [shown_count(v, k) for v in rows["expected_count"]]
        elif column == "drivers":
            for i in range(1, drivers + 1):
                out[f"driver_{i}"] = rows[f"driver_{i}"]
                out[f"driver_{i}_detail"] = rows[f"driver_{i}_detail"]
        else:
            out[column] = rows[column]
    return neutralised(out[table_columns(agreement, drivers)])


def area_table(
    areas: pd.DataFrame, agreement: Agreement, *, outlines: dict[str, str], target: str, week: date
) -> pd.DataFrame:
    """One (target, week) rolled up to the agreement's area level (area_code, area_name, cells,
    expected_count, hotspot_cells, share_of_hotspots: models.scoring.scores_by_area) cut to the
    agreement: the areas of the level only (cells outside every area are not an area), ranked by
    expected count (1 = highest), counts shown at its k, the outline (WKT, WGS84) as geometry."""
    rows = areas[areas["area_code"].notna()]
    rows = rows.sort_values(["expected_count", "area_code"], ascending=[False, True]).reset_index(drop=True)
    out = pd.DataFrame({"target": [target] * len(rows), "week": [str(week)] * len(rows)})
    for column in agreement.columns:
        if column == GEOMETRY:
            out[GEOMETRY] = [outlines.get(code) for code in rows["area_code"]]
        elif column == "expected_count":
            out[column] = [shown_count(v, agreement.min_count_shown) for v in rows["expected_count"]]
        elif column == "rank":
            out[column] = np.arange(1, len(rows) + 1)
        else:
            out[column] = rows[column].to_numpy()
    return neutralised(out[table_columns(agreement, 0)])


# --------------------------------------------------------------------------- spreadsheets


def to_package_csv(tables: dict[str, pd.DataFrame]) -> str:
    """Every target's table in one CSV (the `target` column tells them apart); the geometry as
    WKT (QGIS: Add Delimited Text Layer, geometry WKT)."""
    frame = pd.concat(list(tables.values()), ignore_index=True)
    return frame.to_csv(index=False, lineterminator="\n")


def read_package_csv(text: str) -> pd.DataFrame:
    """A package CSV as delivered, every value as text (what a spreadsheet sees)."""
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------- GeoPackage


def write_gpkg(path: Path, tables: dict[str, pd.DataFrame], *, written_on: date) -> None:
    """One layer per target; the geometry (WGS84) as the layer's geometry when agreed, else an
    attribute table. The file's own timestamps are `written_on`, so the same package gives the
    same bytes."""
    import pyogrio
    import shapely
    from pyogrio.raw import write

    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": f"{written_on}T00:00:00Z"})
    try:
        for target, table in tables.items():
            fields = [c for c in table.columns if c != GEOMETRY]
            geometry = None
            if GEOMETRY in table.columns:
                shapes = shapely.from_wkt(table[GEOMETRY].to_numpy(dtype=object))
                geometry = shapely.to_wkb(shapes)
            data = [_field_values(table[c]) for c in fields]
            write(
                str(path),
                geometry,
                data,
                fields,
                layer=target,
                driver="GPKG",
                geometry_type="MultiPolygon" if geometry is not None else None,
                crs="EPSG:4326" if geometry is not None else None,
                promote_to_multi=True,
                append=path.exists(),
            )
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})


def _field_values(column: pd.Series) -> np.ndarray:
    if column.dtype == bool or column.dtype.kind in "iuf":
        return column.to_numpy()
    return column.map(
        lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
    ).to_numpy(dtype=object)


def read_gpkg(path: Path) -> dict[str, pd.DataFrame]:
    """Each layer of a package GeoPackage as a frame (geometry as WKT), by layer name."""
    import pyogrio
    import shapely
    from pyogrio.raw import read

    out = {}
    for name, _ in pyogrio.list_layers(str(path)):
        meta, _, geometry, values = read(str(path), layer=name)
        frame = pd.DataFrame(dict(zip(meta["fields"], values, strict=True)))
        if geometry is not None:
            frame[GEOMETRY] = shapely.to_wkt(shapely.from_wkb(geometry))
        out[name] = frame
    return out


# --------------------------------------------------------------------------- the check suite


def int_at_least(k: int) -> str:
    """A regex of the whole numbers >= k (no leading zeros)."""
    s, n = str(k), len(str(k))
    alternatives = [f"[1-9][0-9]{{{n},}}"]
    for i, digit in enumerate(s):
        if digit != "9":
            rest = n - i - 1
            first = f"[{int(digit) + 1}-9]"
            alternatives.append(s[:i] + first + (f"[0-9]{{{rest}}}" if rest else ""))
    alternatives.append(s)
    return "(" + "|".join(alternatives) + ")"


def shown_count_regex(k: int) -> str:
    """What an expected count may look like in a package: '<k', or a number of at least k."""
    return rf"^(<{k}|{int_at_least(k)}(\.[0-9])?)$"


def _expect(kind: str, why: str | None = None, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": {**kwargs, **({"meta": {"why": why}} if why else {})}}


def package_suite(
    agreement: Agreement, week: date, *, drivers: int, area_code_pattern: str | None
) -> dict[str, Any]:
    """The Great Expectations suite a package table must pass before it is delivered: exactly
    the agreed columns, only agreed targets and the week, no count under the agreed k, cell ids
    only at cell level and area codes of the agreed level only at area level."""
    columns = table_columns(agreement, drivers)
    k = agreement.min_count_shown
    out = [
        _expect("expect_table_row_count_to_be_between", min_value=1),
        _expect(
            "expect_table_columns_to_match_set",
            "a package holds the agreed columns and nothing else",
            column_set=columns,
            exact_match=True,
        ),
        _expect(
            "expect_column_values_to_be_in_set",
            "agreed targets only",
            column="target",
            value_set=list(agreement.targets),
        ),
        _expect(
            "expect_column_values_to_be_in_set",
            "the delivered week only",
            column="week",
            value_set=[str(week)],
        ),
    ]
    if "expected_count" in columns:
        out.append(
            _expect(
                "expect_column_values_to_match_regex",
                f"counts below k={k} (the agreement's min_count_shown) are shown as '<{k}'",
                column="expected_count",
                regex=shown_count_regex(k),
            )
        )
    if agreement.granularity == "cell":
        out += _cell_expectations(agreement, columns, k)
    else:
        out += [
            _expect("expect_column_values_to_not_be_null", column="area_code"),
            _expect(
                "expect_column_values_to_match_regex",
                f"codes of the agreed level ({agreement.area_level}) only",
                column="area_code",
                regex=area_code_pattern or ".*",
            ),
            _expect("expect_compound_columns_to_be_unique", column_list=["target", "area_code"]),
        ]
    if GEOMETRY in columns:
        out.append(_expect("expect_column_values_to_match_regex", column=GEOMETRY, regex=r"^(MULTI)?POLYGON"))
    return {
        "name": f"share_{agreement.name}",
        "meta": {"agreement": agreement.name, "version": agreement.version, "week": str(week)},
        "expectations": out,
    }


def _cell_expectations(agreement: Agreement, columns: list[str], k: int) -> list[dict[str, Any]]:
    out = []
    if "cell_id" in columns:
        out += [
            _expect("expect_column_values_to_match_regex", column="cell_id", regex=CELL_ID_PATTERN),
            _expect("expect_compound_columns_to_be_unique", column_list=["target", "cell_id"]),
        ]
    if agreement.rows == "hotspots" and "hotspot" in columns:
        out.append(
            _expect(
                "expect_column_values_to_be_in_set",
                "hotspots only",
                column="hotspot",
                value_set=[True, "True"],
            )
        )
    below = "|".join(str(i) for i in range(k))
    for column in (c for c in columns if c.endswith("_detail")):
        out.append(
            _expect(
                "expect_column_values_to_not_match_regex",
                f"event counts below k={k} are shown as '<{k}' in the drivers too",
                column=column,
                regex=rf"(incidents|reports)[^:]*: (({below})(\.[0-9]+)? |.*\(typical ({below})(\.[0-9]+)?\))",
            )
        )
    return out


# --------------------------------------------------------------------------- the HTML report


@dataclass(frozen=True)
class PackageContext:
    """What the package report says besides its tables."""

    agreement: Agreement
    week: date
    project_crs: str
    models: dict[str, dict[str, Any]]  # target -> model_name, model_version, model_recipe, ...
    freshness: dict[str, str] = field(default_factory=dict)
    top_n: int = 20
    level: str | None = None  # the area level of an area package


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>riskradar for {{ a.recipient.organisation }}: week of {{ week }}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2733;max-width:1180px}
h1{font-size:21px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #d5dbe3}
.sub{color:#5b6b7c}.note{background:#f3f6fa;border-left:4px solid #5b7fa6;padding:8px 12px}
table{border-collapse:collapse;font-size:13px}th,td{border-bottom:1px solid #e3e7ec;padding:4px 8px;text-align:left}
th{background:#f3f6fa}svg{width:100%;max-width:900px;height:auto;border:1px solid #d5dbe3;background:#fbfcfd}
.base{fill:#e6eaef;stroke:#ffffff;stroke-width:0.3}.top{fill:#c8102e}footer{color:#8191a3;font-size:12px;margin-top:24px}
</style></head><body>
<h1>Forecast for {{ a.recipient.organisation }}: week of {{ week }} to {{ week_end }}</h1>
<p class="sub">For: {{ a.recipient.contact_role }}. Agreement <strong>{{ a.name }}</strong> version {{ a.version }},
valid {{ a.valid_from }} to {{ a.valid_until }}.</p>
<p class="note">Purpose: {{ a.purpose }}<br>Legal basis: {{ a.legal_basis }}<br>
What this package holds: {{ what }}; expected counts below {{ a.min_count_shown }} are shown as
"&lt;{{ a.min_count_shown }}". Risk of places, never of people: no event rows and no identifiers.</p>
{% for s in sections %}
<h2>{{ s.target|replace("_", " ") }}</h2>
<p class="sub">Model {{ s.model.model_name }} version {{ s.model.model_version }} ({{ s.model.model_recipe }}),
features {{ s.model.features_version }}. {{ s.rows }} rows in this package.</p>
{% if s.svg %}{{ s.svg|safe }}{% endif %}
<table><tr>{% for c in s.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in s.top %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% endfor %}
<h2>Newest data per partner</h2>
<table><tr><th>partner feed</th><th>newest data</th></tr>
{% for k, v in freshness %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}</table>
<footer>riskradar package. Every row: the GeoPackage and the CSV beside this file; the manifest
lists each file with its sha256.</footer>
</body></html>
"""


def render_package_report(tables: dict[str, pd.DataFrame], ctx: PackageContext) -> str:
    """The package's offline HTML page: per target a map (if the geometry is agreed) and the
    top rows, with only the agreed columns; the agreement's terms on top."""
    from jinja2 import Environment

    a = ctx.agreement
    what = (
        f"{'the hotspot cells' if a.rows == 'hotspots' else 'every study cell'}"
        if a.granularity == "cell"
        else f"the areas of the level {ctx.level}, no cells"
    )
    sections = []
    for target, table in tables.items():
        shown = [c for c in table.columns if c not in (GEOMETRY, *KEY_COLUMNS)]
        sections.append(
            {
                "target": target,
                "model": ctx.models.get(target, {}),
                "rows": len(table),
                "svg": package_map(table, ctx.project_crs) if GEOMETRY in table.columns else "",
                "columns": shown,
                "top": table[shown].head(ctx.top_n).to_numpy().tolist(),
            }
        )
    return (
        Environment(autoescape=True)
        .from_string(_TEMPLATE)
        .render(
            a=a,
            week=ctx.week,
            week_end=ctx.week + timedelta(days=6),
            what=what,
            sections=sections,
            freshness=sorted(ctx.freshness.items()),
        )
    )


def package_map(table: pd.DataFrame, project_crs: str, *, width: float = 900.0) -> str:
    """An SVG map of the package's polygons in the project CRS; the hotspots (cells) or the top
    tenth of the areas by rank in red."""
    import shapely

    shapes = shapely.from_wkt(table[GEOMETRY].to_numpy(dtype=object))
    rings = []
    for shape in shapes:
        parts = [] if shape is None else getattr(shape, "geoms", [shape])
        rings.append([np.asarray(p.exterior.coords) for p in parts])
    flat = [r for rs in rings for r in rs]
    if not flat:
        return ""
    xy = [crs.transform_array(r[:, 0], r[:, 1], "EPSG:4326", project_crs) for r in flat]
    xs, ys = np.concatenate([x for x, _ in xy]), np.concatenate([y for _, y in xy])
    x0, y1 = xs.min(), ys.max()
    scale = width / max(xs.max() - x0, 1.0)
    height = (y1 - ys.min()) * scale
    if "hotspot" in table.columns:
        top = table["hotspot"].astype(str).isin(["True", "true", "1"]).to_numpy()
    elif "rank" in table.columns:
        top = table["rank"].astype(float).to_numpy() <= max(1, round(len(table) * 0.1))
    else:
        top = np.zeros(len(table), dtype=bool)
    paths = {"base": [], "top": []}
    it = iter(xy)
    for i, parts in enumerate(rings):
        for _ in parts:
            x, y = next(it)
            pts = " ".join(
                f"{a:.1f} {b:.1f}" for a, b in zip((x - x0) * scale, (y1 - y) * scale, strict=True)
            )
            paths["top" if top[i] else "base"].append(f"M{pts}z")
    body = "".join(f'<path class="{k}" d="{"".join(v)}"/>' for k, v in paths.items() if v)
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}">{body}</svg>'
