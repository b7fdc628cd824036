"""Exposure strata: the groups of cells whose share of flagged cells the model card compares
with their share of area and of incidents (quintiles of areas by one area indicator).

Pure pandas. The indicator comes from the config (`roles.area_indicators.exposure_strata`).
"""

from __future__ import annotations

import pandas as pd

from riskradar.config import Settings

ONE_STRATUM = "all cells"
OUTSIDE_THE_AREAS = "outside the areas"


def strata_indicator(settings: Settings) -> str | None:
    """The area indicator whose quintiles of areas are the exposure strata (None: no strata)."""
    role = settings.roles.area_indicators
    return role.exposure_strata if role else None


def _quintile_labels(indicator: str) -> list[str]:
    words = indicator.replace("_", " ")
    return [
        f"Q{i} (lowest {words})" if i == 1 else (f"Q{i} (highest {words})" if i == 5 else f"Q{i}")
        for i in range(1, 6)
    ]


def exposure_strata(evaluate: pd.DataFrame, indicator: str | None) -> pd.DataFrame:
    """cell_id, stratum: cells grouped by `indicator` of their area, in quintiles of areas;
    cells without an area are `outside the areas`. One stratum (`all cells`) when there is no
    such indicator among the columns (or no `area_code`)."""
    if indicator is None or indicator not in evaluate.columns or "area_code" not in evaluate.columns:
        cells = evaluate.drop_duplicates("cell_id")[["cell_id"]].copy()
        cells["stratum"] = ONE_STRATUM
        return cells
    cells = evaluate.drop_duplicates("cell_id")[["cell_id", "area_code", indicator]]
    areas = cells.dropna(subset=["area_code", indicator]).drop_duplicates("area_code")
    quintile = pd.qcut(areas[indicator], 5, labels=_quintile_labels(indicator))
    lookup = dict(zip(areas["area_code"], quintile.astype(str), strict=True))
    strata = cells[["cell_id"]].copy()
    strata["stratum"] = cells["area_code"].map(lookup).fillna(OUTSIDE_THE_AREAS).to_numpy()
    return strata
