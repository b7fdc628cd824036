"""Benchmark: forecasts averaged over a grid shifted by a fraction of a cell (issue 17, item 3).

    .venv/bin/python benchmarks/shifted_grid.py --lake L --work W [--target T ...] [--shift-m 75]
        [--master local[2]] [--out benchmarks/results/shifted_grid.json]

L: a lake where build-features has run with conf/riskradar.yaml (e.g. the lake of
`benchmarks/features_chicago.py`). W: a folder for the shifted lake, made once from L: its
bronze, silver and state copied, every silver event moved by -shift in x and in y (the same as
the grid moved by +shift), and its panel built there by build-features with the same config.

Per target: the configured boosted candidate, untuned (each fit as the training's, without the
tuning), backtested over the training's backtest weeks on both panels. The shifted grid's
forecasts are put back onto the published cells by area: a published cell gets from each shifted
cell it overlaps the share of that cell's forecast that its overlap is of the cell's area (a
cell's risk taken as spread evenly over it; shifted cells outside the study area leave their
share out, and the rest is scaled up to the whole cell). Then the two grids' forecasts are
averaged. Each forecast is compared with the training's best baseline on the published grid:
mean PAI@1/3/5 % and the paired gain (the training's bootstrap) at each. And, to tell the grid's
placement from the putting back: the shifted grid's forecasts and that baseline on the shifted
cells and their own incidents (PAI@3 %).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COPIED = ("_meta", "_state", "bronze", "silver", "quarantine")  # what build-features reads, and state
FORECASTS = ("published grid", "shifted grid, put back", "both grids averaged")


def shifted_lake(spark, source: Path, target: Path, shift: float) -> None:
    """`target`: the folders of `source` a panel is built from, with every event moved by
    -shift in x and y. Each Parquet folder of silver.events is rewritten by Spark in place."""
    from pyspark.sql import functions as F

    for name in COPIED:
        if (source / name).exists():
            shutil.copytree(source / name, target / name, symlinks=False)
    events = target / "silver" / "events"
    leaves = sorted({p.parent for p in events.rglob("*.parquet")})
    for leaf in leaves:
        moved = leaf.with_name(leaf.name + ".shifted")
        frame = spark.read.parquet(str(leaf))
        frame.withColumns({"x": F.col("x") - shift, "y": F.col("y") - shift}).write.parquet(str(moved))
        shutil.rmtree(leaf)
        moved.rename(leaf)


def put_back(published: pd.DataFrame, shifted: pd.DataFrame, shift: float, size: float) -> np.ndarray:
    """Forecasts `shifted` (cell_id "<ix>_<iy>", week_idx, mu) of the grid moved by +shift,
    onto the rows of `published` (cell_id, week_idx), by area (see the module's docstring).

    With events moved by -shift, published column a spans shifted columns a - 1 (a share
    shift / size of its width) and a (the rest); the same for rows."""
    share = shift / size
    weights = {-1: share, 0: 1.0 - share}
    from features.grid import cell_indices

    ix, iy = cell_indices(published["cell_id"])
    keys = pd.DataFrame({"ix": ix, "iy": iy, "week_idx": published["week_idx"].to_numpy()})
    ix, iy = cell_indices(shifted["cell_id"])
    source = pd.DataFrame(
        {"ix": ix, "iy": iy, "week_idx": shifted["week_idx"].to_numpy(), "mu": shifted["mu"].to_numpy()}
    )
    total, covered = np.zeros(len(keys)), np.zeros(len(keys))
    for dx, wx in weights.items():
        for dy, wy in weights.items():
            # the shifted cell (a + dx, b + dy) lands on published (a, b)
            moved = source.assign(ix=source["ix"] - dx, iy=source["iy"] - dy)
            mu = keys.merge(moved, on=["ix", "iy", "week_idx"], how="left")["mu"].to_numpy()
            present = ~np.isnan(mu)
            total += np.where(present, wx * wy * mu, 0.0)
            covered += np.where(present, wx * wy, 0.0)
    if (covered == 0).any():
        raise ValueError(f"{int((covered == 0).sum())} published cell-weeks overlap no shifted cell")
    return total / covered


@dataclass
class Setup:
    """What every target's comparison shares: the session, both lakes' settings and panels, the
    training config, the candidate and how it is fitted, and the shift."""

    spark: Any
    settings: dict[str, Any]  # "published", "shifted" -> Settings
    panels: dict[str, Any]  # the same -> gold.features
    training: Any
    horizon: int
    name: str
    estimator: Any
    fitting: Any
    shift: float
    size: float


def settings_of(lake: Path):
    """conf/riskradar.yaml with its lake at `lake`."""
    from riskradar.config import load_settings

    os.environ["RISKRADAR_LAKE"] = str(lake)
    return load_settings(ROOT / "conf" / "riskradar.yaml")


def compare(setup: Setup, target: str) -> dict[str, Any]:
    """The target's record: the forecasts of the published grid, of the shifted grid put back
    and of both averaged against the published grid's best baseline, and the shifted grid on
    its own cells."""
    from sklearn.base import clone

    from jobs import train
    from models.backtest import run_baseline, run_candidate, score_predictions
    from models.gate import best_of
    from reports.model_card import PAI_COLUMNS
    from riskradar.catalog import label_column

    t0, training = time.perf_counter(), setup.training
    label = label_column(target, setup.horizon)
    sides = {}
    for side, settings in setup.settings.items():
        panel = setup.panels[side]
        baselines = train.target_baselines(settings, target, panel.columns)
        frames, _ = train.read_frames(
            setup.spark, settings, panel, target, label, setup.horizon, baselines=baselines
        )
        sides[side] = (
            frames,
            baselines,
            run_candidate(setup.name, clone(setup.estimator), frames, setup.fitting).result,
        )
    frames, baselines, _ = sides["published"]
    baseline_results = [run_baseline(b, f, frames.evaluate, label) for b, f in baselines.items()]
    best = best_of(baseline_results, "baseline", training.promotion_metric)

    def gains(result, baseline) -> dict[str, str]:
        """`result`'s paired gain over `baseline` at each PAI coverage, as training compares."""
        paired, also = train.paired_comparisons([result], baseline, training)
        by_metric = {c.metric: c.gains[result.name].text() for c in (paired, *also)}
        return {m: by_metric[m] for m in PAI_COLUMNS}

    # The shifted grid on its own cells and their own incidents: does the placement matter?
    frames, baselines, own = sides["shifted"]
    own_baseline = run_baseline(best.name, baselines[best.name], frames.evaluate, label)
    published, shifted = (sides[side][2].predictions for side in ("published", "shifted"))
    back = put_back(published, shifted, setup.shift, setup.size)
    mu = published["mu"].to_numpy()
    mus = dict(zip(FORECASTS, (mu, back, 0.5 * mu + 0.5 * back), strict=True))
    rows = []
    for what, forecast in mus.items():
        r = score_predictions(f"{setup.name}, {what}", "candidate", published.assign(mu=forecast))
        means = {m: round(r.mean(m), 3) for m in PAI_COLUMNS}
        rows.append({"forecast": r.name, **means, "paired_gains": gains(r, best)})
    return {
        "best_baseline": {"name": best.name, **{m: round(best.mean(m), 3) for m in PAI_COLUMNS}},
        "cells": {
            "published": int(published["cell_id"].nunique()),
            "shifted": int(shifted["cell_id"].nunique()),
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
        "shifted_on_its_own_cells": {
            "candidate_pai_3": round(own.mean("pai_3"), 3),
            "best_baseline_pai_3": round(own_baseline.mean("pai_3"), 3),
            "paired_gain_pai_3": gains(own, own_baseline)["pai_3"],
        },
    }


def show(target: str, record: dict[str, Any], name: str) -> None:
    best, own = record["best_baseline"], record["shifted_on_its_own_cells"]
    print(f"\n## {target}: best baseline {best['name']} PAI@3 % {best['pai_3']:.3f}\n")
    print(
        f"On the shifted grid's own cells and incidents: {name} PAI@3 % {own['candidate_pai_3']:.3f}, "
        f"{best['name']} {own['best_baseline_pai_3']:.3f}, paired gain {own['paired_gain_pai_3']}\n"
    )
    print("| forecast | PAI@1 % | PAI@3 % | PAI@5 % | paired gain PAI@1 % | PAI@3 % | PAI@5 % |")
    print("|---|---:|---:|---:|---|---|---|")
    for row in record["rows"]:
        g = row["paired_gains"]
        print(
            f"| {row['forecast']} | {row['pai_1']:.2f} | {row['pai_3']:.2f} | {row['pai_5']:.2f} | "
            f"{g['pai_1']} | {g['pai_3']} | {g['pai_5']} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, type=Path, help="a lake with gold.features")
    parser.add_argument("--work", required=True, type=Path, help="a folder for the shifted lake")
    parser.add_argument("--target", action="append", help="default: every configured target")
    parser.add_argument("--shift-m", type=float, help="default: half a cell")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "shifted_grid.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RISKRADAR_PSEUDONYM_KEY", "benchmark-key-not-a-secret-0123456789")

    from jobs import build_features
    from models.backtest import Fitting
    from models.estimators import make_candidates
    from riskradar.catalog import read_panel
    from riskradar.lake import Lake
    from riskradar.spark import get_session

    published = settings_of(args.lake)
    training, size = published.training, published.grid.cell_size_m
    assert training is not None and published.features is not None
    shift = args.shift_m if args.shift_m is not None else size / 2
    if not 0 < shift < size:
        raise SystemExit(f"--shift-m {shift:g}: expected more than 0 and less than the cell size {size:g} m")
    spark = get_session("bench", master=args.master, conf=published.spark.conf)
    shifted_root = args.work / "lake"
    shifted = settings_of(shifted_root)
    if not Lake(shifted_root).gold("features").exists():
        t0 = time.perf_counter()
        shutil.rmtree(shifted_root, ignore_errors=True)
        shifted_lake(spark, args.lake, shifted_root, shift)
        build_features.main(["--full"], settings=shifted, spark=spark)
        print(f"shifted lake and its panel: {time.perf_counter() - t0:.0f} s", flush=True)
    (name, params), *_ = training.candidates.items()
    sides = {"published": published, "shifted": shifted}
    setup = Setup(
        spark,
        sides,
        {side: read_panel(spark, Lake(s.lake_root)) for side, s in sides.items()},
        training,
        published.features.horizons_weeks[0],
        name,
        make_candidates({name: params})[name],
        Fitting(training.refit_every_weeks, training.max_history_weeks, seed=training.seed),
        shift,
        size,
    )
    out = {
        "benchmark": "shifted_grid",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "master": args.master,
        "cell_size_m": size,
        "shift_m": shift,
        "candidate": name,
        "targets": {},
    }
    for target in args.target or list(published.targets):
        out["targets"][target] = record = compare(setup, target)
        show(target, record, name)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    spark.stop()


if __name__ == "__main__":
    main()
