"""The artifacts of one backtested model: its weekly metrics, PAI curve, calibration, exposure
table, permutation importances and weekly paired comparison, as CSV files and PNG plots in a folder.

The train job logs the folder to the model's MLflow run. Names of the files are part of the
contract (the MLflow UI, the tests and the model card refer to them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.backtest import BacktestResult, exposure_table, pai_curve
from models.metrics import calibration_by_decile

EXPOSURE_COVERAGE = 0.03  # the share of cells flagged in `exposure_3pct.csv`
PAI_COVERAGES = np.linspace(0.005, 0.2, 40)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(fig)


def plot_pai_curve(result: BacktestResult, path: Path) -> None:
    """Mean PAI over the backtest weeks against the share of the study area flagged."""
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    ax.plot(PAI_COVERAGES * 100, pai_curve(result.predictions, PAI_COVERAGES))
    ax.set(
        xlabel="share of the study area flagged (%)",
        ylabel="mean PAI over backtest weeks",
        title=f"PAI vs coverage: {result.name}",
    )
    _save(fig, path)


def calibration_table(result: BacktestResult) -> pd.DataFrame:
    """Mean predicted vs mean observed count per decile of the predictions."""
    predictions = result.predictions
    return pd.DataFrame(calibration_by_decile(predictions["y"].to_numpy(), predictions["mu"].to_numpy()))


def plot_calibration(result: BacktestResult, cal: pd.DataFrame, path: Path) -> None:
    fig, ax = _pyplot().subplots(figsize=(5, 5))
    ax.plot(cal["predicted"], cal["observed"], "o-")
    top = max(cal["predicted"].max(), cal["observed"].max())
    ax.plot([0, top], [0, top], "--", color="grey")
    ax.set(xlabel="mean predicted count", ylabel="mean observed count", title=f"Calibration: {result.name}")
    _save(fig, path)


def plot_importances(result: BacktestResult, importances: pd.DataFrame, path: Path) -> None:
    """The 20 features whose shuffling costs most, largest at the top."""
    top = importances.head(20).iloc[::-1]
    fig, ax = _pyplot().subplots(figsize=(6, 6))
    ax.barh(top["feature"], top["importance_mean"], xerr=top["importance_std"])
    ax.set(
        xlabel="increase in mean Poisson deviance when shuffled",
        title=f"Permutation importance: {result.name}",
    )
    _save(fig, path)


def write_result_artifacts(
    result: BacktestResult, strata: pd.DataFrame, out: Path, paired_weekly: pd.DataFrame | None = None
) -> None:
    """Into `out`: weekly_metrics.csv, pai_curve.png, calibration.csv/.png, exposure_3pct.csv,
    for a result with importances permutation_importances.csv/.png and, given its weekly paired
    comparison with the best baseline (week, candidate, baseline, difference), paired_weekly.csv."""
    result.weekly.to_csv(out / "weekly_metrics.csv", index=False)
    if paired_weekly is not None:
        paired_weekly.to_csv(out / "paired_weekly.csv", index=False)
    plot_pai_curve(result, out / "pai_curve.png")
    cal = calibration_table(result)
    cal.to_csv(out / "calibration.csv", index=False)
    plot_calibration(result, cal, out / "calibration.png")
    exposure = exposure_table(result.predictions, strata, EXPOSURE_COVERAGE)
    exposure.to_csv(out / "exposure_3pct.csv", index=False)
    if result.importances is not None:
        result.importances.to_csv(out / "permutation_importances.csv", index=False)
        plot_importances(result, result.importances, out / "permutation_importances.png")
