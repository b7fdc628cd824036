"""Tuning inside each backtest fit: it learns and judges only on weeks before the origin, picks
the better grid point and the better blend, and a blend of weight 1 is the model alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor

from models.backtest import Fitting, Frames, blend_name, fits_per_backtest, run_candidate
from models.baselines import HistoryRate, prior_counts
from models.estimators import Blend
from models.metrics import week_metric, week_metrics
from models.tuning import known_rows, mean_metric, tune
from riskradar.config import TuningConfig


def _panel(weeks=12, cells=40, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rate = np.linspace(0.05, 3, cells)
    rows = []
    for w in range(weeks):
        for c in range(cells):
            rows.append(
                {
                    "cell_id": f"c{c}",
                    "week_idx": w,
                    "x1": rng.normal(),  # noise: a model of x1 alone knows nothing
                    "wk": float(w),  # the week as a feature, so that a fit can tell what it saw
                    "label_t_h1": float(rng.poisson(rate[c])),
                    "hist_t_w4": float(rng.poisson(4 * rate[c])),
                    "sample_weight": 1.0,
                }
            )
    return pd.DataFrame(rows)


def _tune_at_12(estimator, panel: pd.DataFrame, tuning: TuningConfig, baselines: dict, metric: str):
    """The choice at week 12 of a model of the column `rate`, every week's cells loaded."""
    return tune(
        estimator,
        panel,
        panel,
        features=["rate"],
        label="label_t_h1",
        horizon=1,
        origin=12,
        tuning=tuning,
        baselines=baselines,
        metric=metric,
    )


class Spy(DummyRegressor):
    """Records the weeks of every fit (its feature `wk`)."""

    fitted: list[list[int]] = []

    def fit(self, X, y, sample_weight=None):  # noqa: N803
        Spy.fitted.append(sorted(int(w) for w in X["wk"].unique()))
        return super().fit(X, y, sample_weight=sample_weight)


def test_tuning_fits_and_judges_only_on_weeks_before_the_origin():
    panel = _panel()
    Spy.fitted = []
    tuning = TuningConfig(validation_weeks=2, every_weeks=4, blend_weights=[0.0, 0.5, 1.0])
    origins = [8, 9, 10, 11]
    frames = Frames(
        panel, panel[panel.week_idx >= 8], ["x1", "wk"], "label_t_h1", 1, origins, panel[panel.week_idx < 8]
    )
    fitting = Fitting(refit_every=2, tuning=tuning, baselines={"prior_4w": prior_counts("t", 4)})
    run = run_candidate("spy", Spy(), frames, fitting)
    # origin 8 tunes (fit on weeks < 6, judged on 6 and 7) then fits on < 8; origin 10 is only
    # 2 weeks later, so it keeps that choice and fits on < 10
    assert Spy.fitted == [list(range(6)), list(range(8)), list(range(10))]
    assert [(c.origin, c.weeks) for c in run.choices] == [(8, (6, 7))]
    assert fits_per_backtest(origins, 2, tuning) == 3
    assert run.blend is not None and run.blend.name == blend_name("spy") == "spy_blend"
    assert sorted(run.blend.predictions["week_idx"].unique()) == origins


def test_the_history_cap_keeps_only_the_newest_weeks_before_the_origin():
    panel = _panel()
    Spy.fitted = []
    frames = Frames(panel, panel[panel.week_idx >= 8], ["x1", "wk"], "label_t_h1", 1, [8, 9, 10, 11])
    run_candidate("spy", Spy(), frames, Fitting(refit_every=2, max_history=3))
    assert Spy.fitted == [[5, 6, 7], [7, 8, 9]]
    assert known_rows(panel, "label_t_h1", 2, 8, None).sum() == 7 * 40  # horizon 2: week 7 is not known


def test_a_blend_with_a_baseline_that_knows_the_rate_beats_a_model_that_does_not():
    """A flat model ranks cells at random; the blend takes the 4-week count in and wins."""
    panel = _panel(weeks=16, cells=80)
    origins = list(range(10, 16))
    frames = Frames(
        panel, panel[panel.week_idx >= 10], ["x1"], "label_t_h1", 1, origins, panel[panel.week_idx < 10]
    )
    tuning = TuningConfig(validation_weeks=3, every_weeks=6, blend_weights=[0.0, 0.5, 1.0])
    fitting = Fitting(
        refit_every=3, tuning=tuning, baselines={"prior_4w": prior_counts("t", 4)}, metric="pai_5"
    )
    run = run_candidate("flat", DummyRegressor(), frames, fitting)
    choice = run.choices[0]
    assert choice.baseline == "prior_4w" and choice.weight < 1.0
    assert choice.blend_score > choice.model_score
    assert run.blend is not None and run.blend.mean("pai_5") > run.result.mean("pai_5")


def test_a_blend_is_only_chosen_where_it_does_better():
    """A model that ranks by the true rate gains nothing from a noisy baseline: weight 1."""
    cells = 400
    panel = _panel(weeks=16, cells=cells)
    panel["rate"] = np.tile(np.linspace(0.05, 3, cells), 16)
    panel["noise_w4"] = np.random.default_rng(1).poisson(2.0, len(panel)).astype(float)
    tuning = TuningConfig(validation_weeks=4, blend_weights=[0.0, 0.5, 1.0])
    # the model predicts the rate itself: no ties for the noise to break
    choice = _tune_at_12(
        HistoryRate("rate", 1.0), panel, tuning, {"noise": HistoryRate("noise_w4", 0.25)}, "pai_5"
    )
    assert (choice.baseline, choice.weight) == (None, 1.0)
    assert choice.blend_score == choice.model_score


def test_the_grid_point_that_ranks_better_on_the_split_is_chosen():
    panel = _panel(weeks=16, cells=80)
    panel["rate"] = panel.groupby("cell_id")["label_t_h1"].transform("mean")
    # one tree of depth 1 can tell only two groups of cells apart; 40 trees rank them all
    tuning = TuningConfig(validation_weeks=3, grid=[{"max_iter": 1, "max_depth": 1}, {"max_iter": 40}])
    choice = _tune_at_12(
        HistGradientBoostingRegressor(loss="poisson", early_stopping=False), panel, tuning, {}, "pai_3"
    )
    assert choice.params == {"max_iter": 40}


def _tune_flat(train: pd.DataFrame, cells: pd.DataFrame, origin: int):
    """A tuning of a flat model of x1 on 4 validation weeks, without baselines."""
    return tune(
        DummyRegressor(),
        train,
        cells,
        features=["x1"],
        label="label_t_h1",
        horizon=1,
        origin=origin,
        tuning=TuningConfig(validation_weeks=4),
        baselines={},
        metric="pai_3",
    )


def test_tuning_refuses_when_the_validation_weeks_are_not_loaded():
    panel = _panel()
    with pytest.raises(ValueError, match=r"weeks 4\.\.7; 2 of them are loaded"):
        _tune_flat(panel, panel[panel.week_idx >= 6], origin=8)


def test_the_blend_estimator_mixes_and_names_the_columns_it_reads():
    frame = pd.DataFrame({"x1": [1.0, 2.0, 3.0], "hist_t_w4": [4.0, 0.0, 8.0]})
    model = DummyRegressor(strategy="constant", constant=1.0).fit(frame[["x1"]], [1.0, 1.0, 1.0])
    blend = Blend(model, prior_counts("t", 4), 0.25, ("x1",))
    assert blend.predict(frame).tolist() == [0.25 + 0.75, 0.25, 0.25 + 1.5]
    assert blend.inputs() == ["x1", "hist_t_w4"]
    assert Blend(model, None, 1.0, ("x1",)).predict(frame).tolist() == [1.0, 1.0, 1.0]


def test_a_tuning_without_weeks_before_its_validation_weeks_names_the_keys_to_lower():
    panel = _panel()
    with pytest.raises(
        ValueError, match=r"no training rows before week 0: the tuning at week 4 starts too early"
    ) as err:
        _tune_flat(panel, panel, origin=4)
    assert "lower training.tuning.validation_weeks or training.backtest_weeks" in str(err.value)


def test_a_tuning_judges_on_one_metric_computed_as_week_metrics_computes_it():
    panel = _panel(weeks=3)
    y, mu = panel["label_t_h1"].to_numpy(), panel["hist_t_w4"].to_numpy() / 4 + 0.01
    every = week_metrics(y, mu)
    assert {name: week_metric(y, mu, name) for name in every} == pytest.approx(every, nan_ok=True)
    by_week = [week_metrics(y[panel["week_idx"] == w], mu[panel["week_idx"] == w])["pai_3"] for w in range(3)]
    assert mean_metric(panel, mu, "label_t_h1", "pai_3") == pytest.approx(np.mean(by_week))
    with pytest.raises(KeyError, match="unknown metric 'pai_4'.*pai_3"):
        week_metric(y, mu, "pai_4")
