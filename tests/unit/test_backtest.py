"""Backtest harness on a tiny panel: no fit sees its own week, baselines read history columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor

from models.backtest import exposure_table, run_baseline, run_candidate
from models.baselines import baselines_for, exponentially_weighted, prior_counts


def _panel(weeks=8, cells=20, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rate = np.linspace(0.1, 3, cells)
    rows = []
    for w in range(weeks):
        for c in range(cells):
            rows.append(
                {
                    "cell_id": f"c{c}",
                    "week_idx": w,
                    "x1": rate[c],
                    "label_t_h1": float(rng.poisson(rate[c])),
                    "hist_t_w1": float(rng.poisson(rate[c])),
                    "hist_t_w4": float(rng.poisson(4 * rate[c])),
                    "histd_t_hl4": rate[c] * 5.0,
                    "sample_weight": 1.0,
                }
            )
    return pd.DataFrame(rows)


def test_baselines_turn_history_into_weekly_rates():
    frame = pd.DataFrame({"hist_t_w4": [8.0, 0.0], "histd_t_hl4": [1.0, 0.0]})
    assert list(prior_counts("t", 4)(frame)) == [2.0, 0.0]
    r = 2 ** (-1 / 4)
    assert exponentially_weighted("t", 4)(frame)[0] == pytest.approx((1 - r) / r)
    assert sorted(baselines_for("t", [1, 4, 8], [4.0])) == ["ewma_hl4", "prior_1w", "prior_4w"]


def test_each_fit_only_sees_weeks_before_its_origin():
    panel = _panel()
    seen_weeks = []

    class Spy(DummyRegressor):
        def fit(self, X, y, sample_weight=None):  # noqa: N803
            seen_weeks.append(sorted(panel.loc[X.index, "week_idx"].unique()))
            return super().fit(X, y, sample_weight=sample_weight)

    result, _ = run_candidate(
        "spy",
        Spy(),
        panel,
        panel[panel.week_idx >= 4],
        features=["x1"],
        label="label_t_h1",
        horizon=1,
        origins=[4, 5, 6, 7],
        refit_every=2,
    )
    assert seen_weeks == [[0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]
    assert sorted(result.predictions.week_idx.unique()) == [4, 5, 6, 7]
    assert len(result.weekly) == 4 and result.summary["pai_3"].weeks == 4


def test_a_model_that_knows_the_rate_beats_a_flat_one():
    from sklearn.ensemble import HistGradientBoostingRegressor

    panel = _panel(weeks=12, cells=60)
    evaluate = panel[panel.week_idx >= 8]
    good, _ = run_candidate(
        "hgb",
        HistGradientBoostingRegressor(loss="poisson", max_iter=30),
        panel,
        evaluate,
        features=["x1"],
        label="label_t_h1",
        horizon=1,
        origins=[8, 9, 10, 11],
        refit_every=4,
    )
    flat, _ = run_candidate(
        "flat",
        DummyRegressor(),
        panel,
        evaluate,
        features=["x1"],
        label="label_t_h1",
        horizon=1,
        origins=[8, 9, 10, 11],
        refit_every=4,
    )
    assert good.mean("pai_5") > flat.mean("pai_5")
    assert good.mean("deviance") < flat.mean("deviance")
    base = run_baseline("prior_4w", prior_counts("t", 4), evaluate, "label_t_h1")
    assert base.predictions["mu"].tolist() == (evaluate["hist_t_w4"] / 4).tolist()


def test_exposure_shares_add_up_per_column():
    preds = pd.DataFrame(
        {
            "cell_id": ["a", "b", "c", "d"] * 2,
            "week_idx": [0] * 4 + [1] * 4,
            "y": [3, 0, 1, 0, 2, 0, 0, 1],
            "mu": [0.9, 0.1, 0.5, 0.2, 0.8, 0.1, 0.3, 0.4],
        }
    )
    strata = pd.DataFrame({"cell_id": ["a", "b", "c", "d"], "stratum": [1, 1, 2, 2]})
    table = exposure_table(preds, strata, coverage=0.25).set_index("stratum")
    assert table["flagged"].tolist() == [2, 0]  # cell a is the top cell in both weeks
    assert table["share_incidents"].tolist() == [5 / 7, 2 / 7]
    assert table["share_cells"].tolist() == [0.5, 0.5]


def test_models_are_fitted_on_float64_whatever_the_features_arrive_as():
    # train brings features to pandas as float32; the linear model's solver diverged on them
    from sklearn.base import BaseEstimator, RegressorMixin

    from models.estimators import fit_weighted, make_candidates

    class Seen(RegressorMixin, BaseEstimator):
        def fit(self, X, y, sample_weight=None):  # noqa: N803
            self.dtypes_ = set(X.dtypes)
            return self

    panel = _panel(weeks=20, cells=50)
    features = ["x1", "hist_t_w4"]
    frame32 = panel.astype({c: "float32" for c in features})
    frame32[features] *= 1000  # large counts
    fit = {"label": "label_t_h1", "weight": "sample_weight"}
    assert fit_weighted(Seen(), frame32, features, **fit).dtypes_ == {np.dtype("float64")}
    glm = make_candidates({"poisson_glm": {"alpha": 1.0}})["poisson_glm"]
    from32 = fit_weighted(glm, frame32, features, **fit).predict(frame32[features])
    frame64 = frame32.astype({c: "float64" for c in features})
    from64 = fit_weighted(
        make_candidates({"poisson_glm": {"alpha": 1.0}})["poisson_glm"], frame64, features, **fit
    )
    assert np.ptp(from32) > 0.5  # it ranks cells, not one value for all
    np.testing.assert_allclose(from32, from64.predict(frame64[features]), rtol=1e-6)


def test_the_linear_model_imputes_and_scales_in_place_only_while_it_fits():
    from models.estimators import fit_weighted, make_candidates

    panel = _panel(weeks=20, cells=50)
    features = ["x1", "hist_t_w4"]
    panel.loc[panel.index[::7], "x1"] = np.nan  # the imputer has work to do
    before = panel.copy()
    rows = (panel["week_idx"] < 15).to_numpy()
    glm = make_candidates({"poisson_glm": {"alpha": 1.0}})["poisson_glm"]
    fit_weighted(glm, panel, features, label="label_t_h1", weight="sample_weight", rows=rows)
    pd.testing.assert_frame_equal(panel, before)  # the fit worked on its own matrix
    assert glm.named_steps["impute"].copy and glm.named_steps["scale"].copy
    X = panel[features].astype("float64")  # noqa: N806
    kept = X.copy()
    glm.predict(X)
    pd.testing.assert_frame_equal(X, kept)  # predicting leaves the caller's frame alone
    # fitted on the masked rows only: the imputer's median is that of the first 15 weeks
    assert glm.named_steps["impute"].statistics_[0] == pytest.approx(panel.loc[rows, "x1"].median())


def test_the_median_imputer_fills_as_sklearns_does_and_keeps_an_empty_column():
    from sklearn.impute import SimpleImputer

    from models.estimators import MedianImputer

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.poisson(3, (200, 3)).astype(float), columns=["a", "b", "c"])  # noqa: N806
    X.loc[rng.random(200) < 0.3, "a"] = np.nan
    X.loc[rng.random(200) < 0.5, "b"] = np.nan
    ours = MedianImputer().fit(X)
    np.testing.assert_array_equal(ours.transform(X), SimpleImputer(strategy="median").fit_transform(X))
    assert X["a"].isna().any()  # copy=True leaves the input alone
    X["c"] = np.nan  # e.g. weather rows that only start after this fit's weeks
    filled = MedianImputer().fit(X).transform(X)
    assert filled.shape == (200, 3) and (filled[:, 2] == 0).all()
