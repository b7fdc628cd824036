"""What analysts open: one week of gold.scores as CSV, GeoJSON and a self-contained HTML map
report (inline SVG and CSS, no scripts, fonts, tiles or links to fetch: it works offline and
can be mailed or archived as one file), and its roll-up by area (gold.scores_by_area) as CSV
and as a table of the report.

Pure functions of a pandas frame of one (target, week) partition plus small context; the
export job reads the lake and writes the files.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.grid import cell_indices
from riskradar import crs


@dataclass(frozen=True)
class ReportContext:
    city: str
    target: str
    week: date
    cell_size_m: float
    project_crs: str
    hotspot_coverage: float
    min_count_shown: int
    top_n: int
    drivers: int
    # (area_code, area_name, GeoJSON geometry text) of the city's areas, for the outlines
    boundaries: list[tuple[Any, str, str]] = field(default_factory=list)
    # partner feed -> the date of its newest data (ISO)
    freshness: dict[str, str] = field(default_factory=dict)
    model_card: str = ""
    generated_at: str = ""
    # the feed of the area boundaries (None: the config names none, so there is no roll-up)
    area_feed: str | None = None
    # gold.scores_by_area of the week (None: not rolled up)
    areas: pd.DataFrame | None = None


def write_text(path: Path, text: str) -> None:
    """Write a file atomically (temp file + rename): readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.rename(path)


# --------------------------------------------------------------------------- spreadsheets

_FORMULA_START = ("=", "+", "@", "\t", "\r", "-")
_NUMBER_OR_CELL = re.compile(r"^-?[0-9]+([._][0-9]+)?(_-?[0-9]+)?$")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (it starts with =, +, -, @, a tab or a
    carriage return: the OWASP rule) gets a leading apostrophe, so it opens as text. Numbers,
    negative ones and cell ids (-12_40) included, stay as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER_OR_CELL.match(value):
        return "'" + value
    return value


def neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every text value passed through spreadsheet_safe: a package's tables hold
    partner text (area names and codes), and every format and the database get the safe form."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(spreadsheet_safe)
    return out


def _plain(scores: pd.DataFrame, order: str | None = "rank") -> pd.DataFrame:
    """Dates as ISO text, and partner text (area names and codes) safe to open in a spreadsheet."""
    out = scores.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif out[col].dtype == object:
            out[col] = out[col].map(lambda v: v.isoformat() if isinstance(v, date) else spreadsheet_safe(v))
    return out.sort_values(order) if order else out


def to_csv(scores: pd.DataFrame) -> str:
    """All columns, ranked; the polygon stays as WKT (QGIS and ArcGIS read it from CSV)."""
    return _plain(scores).to_csv(index=False)


OUTSIDE_AREAS = "outside the areas"
# What the areas CSV publishes: the exact expected count is left out, its shown form ("<k"
# below scoring.min_count_shown) takes its place.
AREA_CSV_COLUMNS = {
    "area_code": "area_code",
    "area_name": "area_name",
    "cells": "cells",
    "expected_count_shown": "expected_count",
    "hotspot_cells": "hotspot_cells",
    "share_of_hotspots": "share_of_hotspots",
    "target": "target",
    "week": "week",
    "model_name": "model_name",
    "model_version": "model_version",
}


def _ranked_areas(areas: pd.DataFrame) -> pd.DataFrame:
    """Areas by expected count, highest first; the cells outside every area named as such."""
    out = areas.sort_values(["expected_count", "area_code"], ascending=[False, True]).reset_index(drop=True)
    out["area_name"] = out["area_name"].where(out["area_code"].notna(), OUTSIDE_AREAS)
    return out


def to_areas_csv(areas: pd.DataFrame) -> str:
    """The week's areas, highest expected count first, with counts as published ("<k" below k)."""
    out = _plain(_ranked_areas(areas), order=None)[list(AREA_CSV_COLUMNS)].rename(columns=AREA_CSV_COLUMNS)
    out["share_of_hotspots"] = out["share_of_hotspots"].round(4)
    return out.to_csv(index=False)


_WKT = re.compile(r"^POLYGON\(\((.*)\)\)$")


def wkt_ring(wkt: str) -> list[list[float]]:
    match = _WKT.match(wkt)
    if not match:
        raise ValueError(f"not a simple WKT polygon: {wkt[:60]!r}")
    return [[float(v) for v in point.split()] for point in match.group(1).split(", ")]


def to_geojson(scores: pd.DataFrame) -> str:
    """An RFC 7946 FeatureCollection: one polygon per cell (WGS84), every other column a property."""
    plain = _plain(scores)
    props = [c for c in plain.columns if c != "polygon_wkt"]
    features = []
    for record in plain.to_dict("records"):
        properties = {c: (None if _missing(record[c]) else _json_value(record[c])) for c in props}
        features.append(
            {
                "type": "Feature",
                "id": record["cell_id"],
                "geometry": {"type": "Polygon", "coordinates": [wkt_ring(record["polygon_wkt"])]},
                "properties": properties,
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":"))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------------------ the HTML report

_BANDS = [  # (css class, label, lowest percentile), drawn under the hotspots
    ("band-high", "top 10%", 90.0),
    ("band-elevated", "top 25%", 75.0),
    ("band-base", "other study cells", 0.0),
]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2733;max-width:1280px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d5dbe3}
.sub{color:#5b6b7c;margin:0 0 14px}.note{background:#f3f6fa;border-left:4px solid #5b7fa6;padding:8px 12px}
.layout{display:flex;gap:24px;flex-wrap:wrap}.map{flex:1 1 620px}.side{flex:1 1 340px}
svg{width:100%;height:auto;border:1px solid #d5dbe3;background:#fbfcfd}
.band-base{fill:#e6eaef}.band-elevated{fill:#f6d58a}.band-high{fill:#f29b4c}.hot{fill:#c8102e}
.area{fill:none;stroke:#46546a;stroke-width:0.8}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border-bottom:1px solid #e3e7ec;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f3f6fa}td.num{text-align:right;font-variant-numeric:tabular-nums}.drivers{color:#3b4a5a;font-size:12px}
.card{font-size:13px}.card table{font-size:12px}footer{color:#8191a3;font-size:12px;margin-top:28px}
"""


def _cell_xy(cell_ids: pd.Series, size: float) -> tuple[np.ndarray, np.ndarray]:
    ix, iy = cell_indices(cell_ids)
    return ix * size, iy * size


def _rings(geometry: dict) -> list[list[list[float]]]:
    if geometry["type"] == "Polygon":
        return geometry["coordinates"]
    if geometry["type"] == "MultiPolygon":
        return [ring for polygon in geometry["coordinates"] for ring in polygon]
    return []


def render_map(scores: pd.DataFrame, ctx: ReportContext, *, width: float = 900.0) -> str:
    """An SVG map in the project CRS: study cells shaded by percentile band, hotspots in red
    (each with a tooltip), area outlines on top."""
    size = ctx.cell_size_m
    x, y = _cell_xy(scores["cell_id"], size)
    outlines = []
    for _, name, text in ctx.boundaries:
        for ring in _rings(json.loads(text)):
            lon, lat = np.array(ring, dtype=float)[:, 0], np.array(ring, dtype=float)[:, 1]
            rx, ry = crs.transform_array(lon, lat, "EPSG:4326", ctx.project_crs)
            outlines.append((name, rx, ry))
    xs = np.concatenate([x, x + size, *[o[1] for o in outlines]])
    ys = np.concatenate([y, y + size, *[o[2] for o in outlines]])
    x0, x1, y0, y1 = np.nanmin(xs), np.nanmax(xs), np.nanmin(ys), np.nanmax(ys)
    scale = width / max(x1 - x0, 1.0)
    height = (y1 - y0) * scale
    side = size * scale

    def px(v):
        return (np.asarray(v) - x0) * scale

    def py(v):
        return (y1 - np.asarray(v)) * scale

    sx, sy = px(x), py(y + size)
    percentile = scores["percentile"].to_numpy()
    hot = scores["hotspot"].to_numpy(dtype=bool)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="map of {html.escape(ctx.city)}: hotspot cells of {html.escape(ctx.target)}">'
    ]
    upper = np.inf
    for css, _, lowest in _BANDS:
        sel = (~hot) & (percentile >= lowest) & (percentile < upper)
        upper = lowest
        path = "".join(
            f"M{a:.1f} {b:.1f}h{side:.2f}v{side:.2f}h-{side:.2f}z"
            for a, b in zip(sx[sel], sy[sel], strict=True)
        )
        parts.append(f'<path class="{css}" d="{path}"/>')
    for i in np.flatnonzero(hot):
        row = scores.iloc[i]
        tip = (
            f"#{row['rank']} cell {row['cell_id']} ({row.get('area_name') or 'no area'}): "
            f"{row['expected_count']:.2f} expected; {row.get('driver_1_detail') or ''}"
        )
        parts.append(
            f'<rect class="hot" x="{sx[i]:.1f}" y="{sy[i]:.1f}" width="{side:.2f}" height="{side:.2f}">'
            f"<title>{html.escape(tip)}</title></rect>"
        )
    for name, rx, ry in outlines:
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(rx), py(ry), strict=True))
        parts.append(f'<polygon class="area" points="{points}"><title>{html.escape(name)}</title></polygon>')
    parts.append("</svg>")
    return "".join(parts)


def markdown_to_html(text: str) -> str:
    """The small Markdown subset of our model cards: headings, lists, tables, paragraphs, bold
    and code. Everything is escaped first."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    while i < len(lines):
        line = lines[i].rstrip()
        if not line:
            i += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(set(c) <= set("-: ") for c in cells):
                    rows.append(cells)
                i += 1
            head, *body = rows
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body]
            out.append("</table>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith(("- ", "  ")):
                if lines[i].startswith("- "):
                    items.append(lines[i][2:].strip())
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            out.append("<ul>" + "".join(f"<li>{inline(t)}</li>" for t in items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", "- ")):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{inline(' '.join(para))}</p>")
    return "\n".join(out)


def render_report(scores: pd.DataFrame, ctx: ReportContext) -> str:
    """The self-contained HTML report of one target and week."""
    scores = scores.sort_values("rank").reset_index(drop=True)
    esc = html.escape
    first = scores.iloc[0]
    week_end = ctx.week + timedelta(days=6)
    n_hot = int(scores["hotspot"].sum())
    top = scores.head(ctx.top_n)
    rows = []
    for _, r in top.iterrows():
        drivers = "<br>".join(
            esc(str(r[f"driver_{i}_detail"]))
            for i in range(1, ctx.drivers + 1)
            if f"driver_{i}_detail" in r and isinstance(r[f"driver_{i}_detail"], str)
        )
        rows.append(
            f"<tr><td class=num>{r['rank']}</td><td>{esc(r['cell_id'])}</td>"
            f"<td>{esc(str(r['area_name'] if isinstance(r['area_name'], str) else '-'))}</td>"
            f"<td class=num>{r['expected_count']:.2f}</td><td class=num>{r['percentile']:.1f}</td>"
            f"<td class=num>{r['lat']:.5f}, {r['lon']:.5f}</td><td class=drivers>{drivers}</td></tr>"
        )
    freshness = "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in sorted(ctx.freshness.items())
    )
    legend = (
        f'<span class="hot" style="background:#c8102e"></span>hotspot (top {ctx.hotspot_coverage * 100:g}%)'
        + "".join(
            f'<span style="background:{c}"></span>{esc(label)}'
            for (_, label, _), c in zip(_BANDS, ("#f29b4c", "#f6d58a", "#e6eaef"), strict=True)
        )
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>riskradar: {esc(ctx.target)}, week of {ctx.week} ({esc(ctx.city)})</title>
<style>{_CSS}</style></head><body>
<h1>Where {esc(ctx.target.replace("_", " "))} is expected to concentrate: week of {ctx.week}</h1>
<p class="sub">{esc(ctx.city.title())}, {ctx.week:%a %d %b %Y} to {week_end:%a %d %b %Y}.
{len(scores):,} study cells of {ctx.cell_size_m:g} m; {n_hot} hotspot cells (the top {ctx.hotspot_coverage:.0%}).
Model {esc(first["model_name"])} version {first["model_version"]}, {esc(first["model_recipe"])} (run {esc(first["model_run_id"])}),
features {esc(first["features_version"])}, scored {esc(str(first["scored_at"]))[:19]} UTC.</p>
<p class="note">Risk of <strong>places</strong>, never of people: the scores hold grid cells and
aggregates only, no event rows and no identifiers. Counts below {ctx.min_count_shown} are shown as
"&lt;{ctx.min_count_shown}". An expected count is a forecast, not a record.</p>
<div class="layout"><div class="map"><h2>Map</h2>{render_map(scores, ctx)}
<p class="legend">{legend}{_outlines_text(ctx)}. Hover a red cell for its rank and drivers.</p></div>
<div class="side"><h2>Newest data per partner</h2>
<table><tr><th>partner feed</th><th>newest data</th></tr>{freshness}</table>
<h2>Model card (summary)</h2><div class="card">{markdown_to_html(_card_summary(ctx.model_card))}</div></div></div>
<h2>Top {len(top)} cells</h2>
<table><tr><th>rank</th><th>cell</th><th>area</th><th>expected</th><th>percentile</th><th>centre (lat, lon)</th>
<th>what drives the score (vs a typical cell)</th></tr>
{"".join(rows)}</table>
{_areas_section(ctx)}
<footer>riskradar report, generated {esc(ctx.generated_at)}. Data, CSV and GeoJSON of this week:
the files beside this one.</footer>
</body></html>
"""


def _outlines_text(ctx: ReportContext) -> str:
    if ctx.area_feed is None or not ctx.boundaries:
        return ""
    return f"; outlines: the areas of {html.escape(ctx.area_feed)}"


def _areas_section(ctx: ReportContext) -> str:
    """The roll-up by area: the top areas by expected count, or why there is none."""
    esc = html.escape
    if ctx.area_feed is None:
        return (
            '<h2>Areas</h2><p class="note">No roll-up by area: the config names no area boundaries '
            "(roles.area_boundaries).</p>"
        )
    if ctx.areas is None or ctx.areas.empty:
        return (
            f'<h2>Areas</h2><p class="note">No roll-up by area for this week in gold.scores_by_area: '
            f"score the week again to add it (areas of {esc(ctx.area_feed)}).</p>"
        )
    ranked = _ranked_areas(ctx.areas)
    top = ranked.head(ctx.top_n)
    rows = "".join(
        f"<tr><td>{esc(str(r['area_name']) if isinstance(r['area_name'], str) else '-')}</td>"
        f"<td class=num>{esc(str(r['expected_count_shown']))}</td><td class=num>{r['cells']}</td>"
        f"<td class=num>{r['hotspot_cells']}</td><td class=num>{r['share_of_hotspots']:.1%}</td></tr>"
        for _, r in top.iterrows()
    )
    return f"""<h2>Top {len(top)} of {len(ranked)} areas ({esc(ctx.area_feed)})</h2>
<p class="sub">Expected {esc(ctx.target.replace("_", " "))} incidents per area: the sum over its study cells
(below {ctx.min_count_shown} shown as "&lt;{ctx.min_count_shown}"), and its share of the week's hotspot cells.
Every area: the areas CSV beside this file.</p>
<table><tr><th>area</th><th>expected</th><th>study cells</th><th>hotspot cells</th><th>share of hotspots</th></tr>
{rows}</table>"""


def _card_summary(card: str) -> str:
    """The model card without its title and data section: intended use, metrics, limits, risks."""
    if not card:
        return "No model card was found for this model version."
    keep, sections = [], re.split(r"(?m)^## ", card)
    for section in sections[1:]:
        title = section.splitlines()[0].strip().lower()
        if not title.startswith("data"):
            keep.append("### " + section)
    return "\n".join(keep)


CHROMIUM = "/usr/bin/chromium"


def screenshot(html_path: Path, png_path: Path, *, width: int = 1400, height: int = 1500) -> Path:
    """Render a report in headless Chromium (Debian's package) and save a PNG. Chromium gets a
    fresh profile and no network features, so the page shows only what the file holds."""
    import subprocess
    import tempfile

    png_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--screenshot={png_path}",
            html_path.resolve().as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if done.returncode != 0 or not png_path.exists():
        raise RuntimeError(f"chromium could not render {html_path}: {done.stderr[-500:]}")
    return png_path
