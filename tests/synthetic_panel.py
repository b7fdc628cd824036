"""A synthetic cell x week panel whose ranking is known, and a config to train on it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from builders import write_config

from features.panel import week_of
from riskradar.config import Settings, load_settings
from riskradar.lake import Lake

WEEKS, CELLS = 14, 300
FIRST = 2275  # a week index in 2013


def write_synthetic_panel(spark, lake: Lake, *, extra: dict | None = None) -> None:
    """Cells with very different true rates; the candidate sees the rate (as `hardship_index`),
    the baselines' history columns are noise, so the ranking of who should win is known."""
    rng = np.random.default_rng(3)
    rate = rng.lognormal(-2.0, 1.2, CELLS)
    rows = []
    for w in range(WEEKS):
        for c in range(CELLS):
            noise = {f"hist_burglary_w{k}": float(rng.poisson(0.2 * k)) for k in (1, 2, 4, 8, 13, 26, 52)}
            noise.update(
                {"histd_burglary_hl1": float(rng.random()), "histd_burglary_hl4": float(rng.random())}
            )
            rows.append(
                {
                    "cell_id": f"{c}_0",
                    "ix": c,
                    "iy": 0,
                    "area_code": 1 + c % 5,
                    "week": week_of(FIRST + w),
                    "week_idx": FIRST + w,
                    "hardship_index": float(rate[c]),
                    "label_burglary_h1": float(rng.poisson(rate[c])) if w < WEEKS - 1 else None,
                    **noise,
                    **(extra or {}),
                }
            )
    spark.createDataFrame(pd.DataFrame(rows)).write.partitionBy("week").parquet(str(lake.gold("features")))


def synthetic_settings(tmp_path, **training):
    defaults = {
        "training.backtest_weeks": 4,
        "training.refit_every_weeks": 2,
        "training.zero_row_fraction": 0.5,
        "training.promotion_margin": 0.0,
        "training.promotion_lower_end": None,  # any gain on the mean promotes; the tests of the bar say so
        "training.tuning": None,  # the tests that tune say so
        "training.non_inferiority": None,  # and those that check non-inferiority
        "targets": {"burglary": {"categories": ["burglary"]}},
    }
    return load_settings(
        write_config(
            tmp_path,
            landing=tmp_path,
            enabled=["police_crimes", "census_indicators"],
            **{**defaults, **training},
        )
    )


GOOD = {"hgb_poisson": {"max_iter": 40, "random_state": 0}, "poisson_glm": {"alpha": 1.0}}
# A deliberately worse model: leaves may not be smaller than the data, so no tree can split and
# every cell gets the same prediction (a random ranking, PAI about 1).
WORSE = {"hgb_poisson": {"max_iter": 5, "min_samples_leaf": 1_000_000, "random_state": 0}}


# The synthetic cells lie in areas 1..5: with an area-boundaries feed, scores roll up by area.
WITH_AREAS = {
    "partners.enabled": ["police_crimes", "census_indicators", "census_areas"],
    "roles.area_boundaries": {"feed": "census_areas", "level": "community_area"},
}


def write_synthetic_areas(lake: Lake) -> None:
    """gold.areas of the synthetic cells' areas 1..5 (as build-features publishes it): area k
    holds the cells c with c % 5 == k - 1; its outline is a box around them (WGS84)."""
    import json

    import pyproj

    to_wgs84 = pyproj.Transformer.from_crs("EPSG:26916", "EPSG:4326", always_xy=True)
    rows = []
    for k in range(1, 6):
        x0, x1, y0, y1 = (k - 1) * 150.0, CELLS * 150.0, 0.0, 150.0
        ring = [to_wgs84.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
        geometry = {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}
        rows.append({"area_code": str(k), "area_name": f"Area {k}", "geometry_geojson": json.dumps(geometry)})
    folder = lake.gold("areas") / "feed=census_areas"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "part-0.parquet", index=False)


@dataclass(frozen=True)
class Scored:
    settings: Settings
    lake: Lake
    trained: dict[str, Any]
    result: dict[str, Any]
    pristine: Path  # a copy of the lake as it was scored


def scored_copy(scored: Scored, tmp: Path, **overrides: Any) -> tuple[Settings, Lake]:
    """A copy of the scored lake as it was built, with the same config (and `overrides`)."""
    shutil.copytree(scored.pristine, tmp / "lake")
    settings = synthetic_settings(tmp, **{"training.candidates": GOOD, **WITH_AREAS, **overrides})
    return settings, Lake(settings.lake_root)
