"""The ablation and learning-curve study: which variants it runs, and that a variant without
the one informative feature loses what that feature was worth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from features.grid import Grid
from features.panel import PanelSpec, target_features
from models.backtest import Fitting, Frames, run_baseline
from models.baselines import prior_counts
from models.study import FULL, Variant, ablations, learning_curve, records, run_variant, study_table
from riskradar.config import KdeConfig, NearRepeatConfig, TargetConfig

SPEC = PanelSpec(
    timezone="UTC",
    grid=Grid(150.0, "EPSG:28992"),
    crime_feeds=["police"],
    groups={"all": ["burglary", "theft"]},
    windows=[1, 104],
    half_lives=[1.0],
    spatial_windows=[1],
    horizons=[1],
    targets={"burglary": TargetConfig(categories=["burglary"])},
    all_history=True,
    near_repeat=NearRepeatConfig(max_weeks=5, half_lives_weeks=[2.0], groups=[]),
    kde=KdeConfig(bandwidths_m=[300.0], truncate_sigmas=2.0, groups=["all"], windows_weeks=[52]),
)


def test_each_family_the_target_has_is_left_out_once_and_the_curve_caps_the_history():
    features = target_features(SPEC, "burglary")
    variants = ablations(SPEC, "burglary", features)
    assert [v.name for v in variants] == [
        "without long_run",
        "without smoothing",
        "without pooling",
        "without near_repeat",
    ]
    assert all(len(v.features) < len(features) and v.max_history is None for v in variants)
    # a family the training did not use (no near-repeat column among its features) is not run
    no_near = [c for c in features if not c.startswith(("wsl", "d3_"))]
    assert "without near_repeat" not in [v.name for v in ablations(SPEC, "burglary", no_near)]
    assert [(v.name, v.max_history) for v in learning_curve(features, [26, 52])] == [
        ("history 26 weeks", 26),
        ("history 52 weeks", 52),
    ]


def _panel(weeks=20, cells=150, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rate = rng.lognormal(-1.5, 1.0, cells)
    frame = pd.DataFrame(
        {
            "cell_id": np.tile([f"c{c}" for c in range(cells)], weeks),
            "week_idx": np.repeat(np.arange(weeks), cells),
            "signal": np.tile(rate, weeks),
            "noise": rng.normal(size=weeks * cells),
            "label_t_h1": rng.poisson(np.tile(rate, weeks)).astype(float),
            "hist_t_w1": rng.poisson(np.tile(rate, weeks)).astype(float),
            "sample_weight": 1.0,
        }
    )
    return frame


def test_a_variant_without_the_informative_feature_loses_its_gain():
    panel = _panel()
    origins = list(range(12, 20))
    frames = Frames(panel, panel[panel.week_idx >= 12], ["signal", "noise"], "label_t_h1", 1, origins)
    fitting = Fitting(refit_every=4, metric="pai_5", seed=0)
    baseline = run_baseline("prior_1w", prior_counts("t", 1), frames.evaluate, "label_t_h1")
    model = HistGradientBoostingRegressor(loss="poisson", max_iter=30, random_state=0)
    rows = [
        run_variant(
            Variant(FULL, ["signal", "noise"], None), "hgb", model, frames, fitting, baseline, block=4
        ),
        run_variant(
            Variant("without signal", ["noise"], None), "hgb", model, frames, fitting, baseline, block=4
        ),
        run_variant(
            Variant("history 2 weeks", ["signal", "noise"], 2),
            "hgb",
            model,
            frames,
            fitting,
            baseline,
            block=4,
        ),
    ]
    full, without, short = rows
    assert full["gain"].low > 0  # the rate itself ranks better than last week's count
    assert without["pai_5"] < full["pai_5"] and without["gain"].mean < full["gain"].mean
    assert (full["history_weeks"], short["history_weeks"], short["features"]) == ("all", 2, 2)
    table = study_table(rows, "pai_5").splitlines()
    assert table[0].startswith(
        "| variant | features | history (weeks) | best candidate | pai_5 | Δ vs all features |"
    )
    assert table[2].startswith(f"| all features | 2 | all | hgb | {full['pai_5']:.3f} | +0.000 | ")
    assert table[3].endswith(f" | {without['gain'].text()} |")
    flat = records(rows)
    assert flat["gain_low"].tolist() == [r["gain"].low for r in rows] and "gain" not in flat
