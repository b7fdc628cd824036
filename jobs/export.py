"""Export: one week of gold.scores as the files analysts open.

    riskradar export --target burglary [--week 2014-12-29]
    riskradar export --all

Writes, under reports/scores/<target>/<week>/: `<target>_<week>.csv` (all columns, polygon as
WKT), `<target>_<week>.geojson` (opens in QGIS and ArcGIS) and `<target>_<week>.html`, a
self-contained map report that works offline: the hotspot map, the top cells with what drives
them, the top areas, the model card summary and the date of each partner's newest data. With
an area-boundaries feed (`roles.area_boundaries`) also `<target>_<week>_areas.csv`: the week's
roll-up by area (gold.scores_by_area), its counts shown as published ("<k" below k). The week
defaults to the newest scored week of the target.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from reports.exports import ReportContext, render_report, to_areas_csv, to_csv, to_geojson, write_text
from riskradar.audit import audited_run
from riskradar.catalog import (
    feed_freshness,
    newest_scored_week,
    read_scores,
    read_scores_by_area,
    read_silver,
    scored_weeks,
    silver_table,
)
from riskradar.config import Settings
from riskradar.lake import Lake
from riskradar.registry import tracking_uri
from riskradar.runtime import add_target_arguments, context, job_parser, monday, parse, selected_targets

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, dict[str, Path]]:
    parser = job_parser("riskradar export", __doc__)
    add_target_arguments(parser)
    parser.add_argument("--week", type=monday, help="the Monday of the scored week (default: newest)")
    parser.add_argument(
        "--skip-missing", action="store_true", help="a target not scored for the week is reported and skipped"
    )
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    written = {}
    for target in selected_targets(settings, args):
        weeks = scored_weeks(lake, target)
        if args.skip_missing and (args.week or None) not in (weeks if args.week else weeks[-1:]):
            log.warning("export %s %s: skipped, the week was not scored", target, args.week or "")
            continue
        week = args.week or newest_scored_week(lake, target)
        with audited_run(lake, "export", {"target": target, "week": str(week)}) as record:
            written[target] = export_week(spark, settings, lake, target, week)
            record.inputs.append({"table": "gold.scores", "target": target, "week": str(week)})
            record.outputs += [{"file": str(p)} for p in written[target].values()]
            log.info("export %s %s: %s", target, week, ", ".join(str(p) for p in written[target].values()))
    return written


def export_week(
    spark: SparkSession, settings: Settings, lake: Lake, target: str, week: date
) -> dict[str, Path]:
    scores = read_scores(spark, lake, target, week)
    folder = lake.reports("scores", target, str(week))
    stem = f"{target}_{week}"
    boundaries = settings.roles.area_boundaries
    areas = read_scores_by_area(spark, lake, target, week) if boundaries else None
    ctx = ReportContext(
        city=settings.city,
        target=target,
        week=week,
        cell_size_m=settings.grid.cell_size_m,
        project_crs=settings.project_crs,
        hotspot_coverage=settings.scoring.hotspot_coverage,
        min_count_shown=settings.scoring.min_count_shown,
        top_n=settings.scoring.report_top_n,
        drivers=settings.scoring.drivers,
        boundaries=_boundaries(spark, settings, lake),
        freshness=feed_freshness(spark, settings, lake),
        model_card=_model_card(settings, lake, scores["model_run_id"].iloc[0]),
        generated_at=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        area_feed=boundaries.feed if boundaries else None,
        areas=areas,
    )
    files = {
        "csv": folder / f"{stem}.csv",
        "geojson": folder / f"{stem}.geojson",
        "html": folder / f"{stem}.html",
    }
    write_text(files["csv"], to_csv(scores))
    write_text(files["geojson"], to_geojson(scores))
    write_text(files["html"], render_report(scores, ctx))
    if areas is not None:
        files["areas_csv"] = folder / f"{stem}_areas.csv"
        write_text(files["areas_csv"], to_areas_csv(areas))
    return files


def _boundaries(spark: SparkSession, settings: Settings, lake: Lake) -> list[tuple[Any, str, str]]:
    """(area_code, area_name, GeoJSON geometry) of the area-boundaries feed, for the map's outlines."""
    role = settings.roles.area_boundaries
    if role is None:
        return []
    contract = settings.contract(role.feed)
    boundaries = read_silver(spark, settings, lake, silver_table(contract), feeds=[role.feed])
    if boundaries is None:
        return []
    rows = boundaries.select("area_code", "area_name", "geometry_geojson")
    return [tuple(r) for r in rows.dropDuplicates(["area_code"]).collect()]


def _model_card(settings: Settings, lake: Lake, run_id: str) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri(settings, lake))
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model_card.md")
    except (MlflowException, OSError):
        return ""
    return Path(path).read_text(encoding="utf-8")


if __name__ == "__main__":
    main()
