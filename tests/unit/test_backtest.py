"""Backtest harness on a tiny panel: no fit sees its own week, baselines read history columns;
the exposure strata and the promotion gate on hand-made results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from synthetic_panel import synthetic_settings

from jobs.train import standings
from models.backtest import (
    BacktestResult,
    Fitting,
    Frames,
    backtest_candidate,
    exposure_table,
    fits_per_backtest,
    pai_curve,
    run_baseline,
    run_candidate,
    score_predictions,
)
from models.baselines import baselines_for, exponentially_weighted, prior_counts
from models.gate import (
    MIN_BLOCKS,
    baseline_serves_reason,
    best_non_inferior,
    best_of,
    champion_recipe,
    gate,
    shortfall,
)
from models.metrics import Interval, PairedInterval, pai
from models.strata import exposure_strata


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

    frames = Frames(panel, panel[panel.week_idx >= 4], ["x1"], "label_t_h1", 1, [4, 5, 6, 7])
    result = run_candidate("spy", Spy(), frames, Fitting(refit_every=2)).result
    assert seen_weeks == [[0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]
    assert sorted(result.predictions.week_idx.unique()) == [4, 5, 6, 7]
    assert len(result.weekly) == 4 and result.summary["pai_3"].weeks == 4


def test_a_model_that_knows_the_rate_beats_a_flat_one():
    from sklearn.ensemble import HistGradientBoostingRegressor

    panel = _panel(weeks=12, cells=60)
    evaluate = panel[panel.week_idx >= 8]
    frames = Frames(panel, evaluate, ["x1"], "label_t_h1", 1, [8, 9, 10, 11])
    good = run_candidate(
        "hgb", HistGradientBoostingRegressor(loss="poisson", max_iter=30), frames, Fitting(4)
    ).result
    flat = run_candidate("flat", DummyRegressor(), frames, Fitting(4)).result
    assert good.mean("pai_5") > flat.mean("pai_5")
    assert good.mean("deviance") < flat.mean("deviance")
    base = run_baseline("prior_4w", prior_counts("t", 4), evaluate, "label_t_h1")
    assert base.predictions["mu"].tolist() == (evaluate["hist_t_w4"] / 4).tolist()


def test_the_pai_curve_is_each_coverages_mean_over_the_weeks_that_had_incidents():
    rng = np.random.default_rng(3)
    preds = pd.DataFrame(
        {
            "cell_id": [f"c{c}" for _ in range(3) for c in range(50)],
            "week_idx": np.repeat([0, 1, 2], 50),
            "y": rng.poisson(0.5, 150).astype(float),
            "mu": rng.random(150),
        }
    )
    preds.loc[preds["week_idx"] == 1, "y"] = 0.0  # a week without incidents has no PAI
    coverages = np.array([0.02, 0.1, 0.5, 1.0])
    weeks = [preds[preds["week_idx"] == w] for w in (0, 2)]
    expected = [np.mean([pai(g["y"].to_numpy(), g["mu"].to_numpy(), c) for g in weeks]) for c in coverages]
    np.testing.assert_allclose(pai_curve(preds, coverages), expected)
    assert pai_curve(preds, coverages)[-1] == pytest.approx(1.0)
    empty = preds.assign(y=0.0)
    assert np.isnan(pai_curve(empty, coverages)).all()


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


def test_a_candidate_backtest_reports_each_fit_and_ranks_the_features():
    panel = _panel()
    frames = Frames(panel, panel, ["x1", "hist_t_w1"], "label_t_h1", 1, [3, 4, 5, 6, 7])
    fits = []
    result = backtest_candidate(
        "dummy", DummyRegressor(), frames, Fitting(refit_every=2), on_fit=lambda: fits.append(len(fits) + 1)
    ).result
    # origins 3..7 refitted every 2 weeks: fits at 3, 5 and 7
    assert fits == [1, 2, 3] and fits_per_backtest(frames.origins, 2) == 3
    assert sorted(result.predictions["week_idx"].unique()) == [3, 4, 5, 6, 7]
    # a constant model ignores every feature: shuffling one changes nothing
    assert result.importances["importance_mean"].tolist() == [0.0, 0.0]
    assert sorted(result.importances["feature"]) == ["hist_t_w1", "x1"]


def test_exposure_strata_come_from_the_configured_indicator():
    """Quintiles of areas by the indicator `roles.area_indicators.exposure_strata` names, whatever
    it is called; one stratum without it."""
    evaluate = pd.DataFrame(
        {
            "cell_id": [f"{c}_0" for c in range(12)],
            "area_code": [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, None],
            "median_income": [10.0, 10.0, 20, 30, 40, 50, 60, 70, 80, 90, 100, None],
        }
    )
    strata = exposure_strata(evaluate, "median_income").set_index("cell_id")["stratum"]
    assert strata.to_dict() == {
        "0_0": "Q1 (lowest median income)",
        "1_0": "Q1 (lowest median income)",
        "2_0": "Q1 (lowest median income)",
        "3_0": "Q2",
        "4_0": "Q2",
        "5_0": "Q3",
        "6_0": "Q3",
        "7_0": "Q4",
        "8_0": "Q4",
        "9_0": "Q5 (highest median income)",
        "10_0": "Q5 (highest median income)",
        "11_0": "outside the areas",
    }
    assert set(exposure_strata(evaluate, None)["stratum"]) == {"all cells"}
    assert set(exposure_strata(evaluate, "hardship_index")["stratum"]) == {"all cells"}  # not a column


def _result(name: str, kind: str, pai_3: float) -> BacktestResult:
    return BacktestResult(
        name, kind, pd.DataFrame(), pd.DataFrame(), {"pai_3": Interval(pai_3, pai_3 - 1, pai_3 + 1, weeks=4)}
    )


@pytest.mark.parametrize(
    ("champion", "margin", "alias", "reason"),
    [
        (
            None,
            0.5,
            "champion",
            "beats the best baseline prior_4w (2.000) (no champion yet) by more than 0.5",
        ),
        (
            2.4,
            0.5,
            "champion",
            "beats the best baseline prior_4w (2.000) and the champion (2.400) by more than 0.5",
        ),
        (None, 1.0, "challenger", "does not beat the best baseline prior_4w (2.000) by the margin 1.0"),
        (2.6, 0.5, "challenger", "does not beat the current champion (2.600) by the margin 0.5"),
    ],
)
def test_the_gate_promotes_only_what_beats_the_best_baseline_and_the_champion_by_the_margin(
    champion, margin, alias, reason
):
    best, baseline = _result("hgb", "candidate", 3.0), _result("prior_4w", "baseline", 2.0)
    assert gate(best, baseline, champion, "pai_3", margin) == (alias, f"hgb pai_3 3.000 {reason}")


def _gain(low: float, weeks: int = 26) -> PairedInterval:
    return PairedInterval(mean=low + 0.2, low=low, high=low + 0.4, weeks=weeks, won=weeks // 2)


def test_a_candidate_that_buys_the_promotion_metric_with_a_loss_at_another_coverage_is_held_back():
    best, baseline = _result("hgb", "candidate", 3.0), _result("ewma", "baseline", 2.0)
    losing = {"pai_1": _gain(-0.05), "pai_5": _gain(-0.3)}
    alias, reason = gate(best, baseline, None, "pai_3", 0.5, non_inferior=losing, tolerance=0.1)
    assert alias == "challenger"
    assert reason == (
        "hgb pai_3 3.000 beats the best baseline ewma (2.000) (no champion yet) by more than 0.5, but at "
        "pai_5 its paired gain -0.10 [-0.30, +0.10], 13/26 weeks reaches below -0.1: not non-inferior to "
        "ewma; held back by pai_5"
    )
    holding = {"pai_1": _gain(-0.1), "pai_5": _gain(0.02)}
    alias, reason = gate(best, baseline, None, "pai_3", 0.5, non_inferior=holding, tolerance=0.1)
    assert alias == "champion"
    assert reason.endswith(
        "; non-inferior at pai_1 and pai_5 (lower ends of the paired gains pai_1 -0.10, pai_5 +0.02, "
        "none below -0.1); decided by pai_3"
    )
    alias, reason = gate(best, baseline, None, "pai_3", 1.5, non_inferior=holding, tolerance=0.1)
    assert (alias, reason.endswith("by the margin 1.5; decided by pai_3")) == ("challenger", True)


def _paired(low: float, mean: float) -> PairedInterval:
    return PairedInterval(mean=mean, low=low, high=2 * mean - low, weeks=52, won=30)


def test_with_a_bar_on_the_lower_end_a_small_clear_gain_passes_and_a_large_unclear_one_does_not():
    """promotion_lower_end: the best baseline is beaten when the paired gain's interval lies above
    the bar, whatever the mean's distance; the margin still guards the champion."""
    baseline = _result("ewma", "baseline", 2.0)
    small = _result("hgb", "candidate", 2.03)
    alias, reason = gate(small, baseline, None, "pai_3", 0.05, paired=_paired(0.01, 0.03), lower_end=0.0)
    assert alias == "champion"
    assert reason.startswith(
        "hgb pai_3 2.030 beats the best baseline ewma (2.000) with the lower end of its paired gain, "
        "+0.01, above 0 (no champion yet); paired gain over ewma, pai_3 +0.03 [+0.01, +0.05]"
    )
    assert gate(small, baseline, None, "pai_3", 0.05, paired=_paired(0.01, 0.03))[0] == "challenger"
    large = _result("hgb", "candidate", 2.5)
    alias, reason = gate(large, baseline, None, "pai_3", 0.05, paired=_paired(-0.02, 0.5), lower_end=0.0)
    assert alias == "challenger"
    assert reason.startswith(
        "hgb pai_3 2.500 does not beat the best baseline ewma (2.000) clearly: its paired gain "
        "+0.50 [-0.02, +1.02], 30/52 weeks has no lower end above 0"
    )
    # No week to pair leaves the interval nothing to judge (the margin on the mean does), and a
    # mean under the baseline's is no clear gain whatever the interval says.
    none = PairedInterval(mean=float("nan"), low=float("nan"), high=float("nan"), weeks=0, won=0)
    alias, reason = gate(small, baseline, None, "pai_3", 0.05, paired=none, lower_end=0.0)
    assert alias == "challenger" and "(0 weeks paired, fewer than" in reason
    below = _result("hgb", "candidate", 1.99)
    assert (
        gate(below, baseline, None, "pai_3", 0.0, paired=_paired(0.01, 0.03), lower_end=0.0)[0]
        == "challenger"
    )
    # The champion's bar is the margin on the mean, as without the lower end.
    alias, reason = gate(small, baseline, 2.0, "pai_3", 0.05, paired=_paired(0.01, 0.03), lower_end=0.0)
    assert (alias, reason) == (
        "challenger",
        "hgb pai_3 2.030 does not beat the current champion (2.000) by the margin 0.05; paired gain "
        "over ewma, pai_3 +0.03 [+0.01, +0.05], 30/52 weeks",
    )
    alias, reason = gate(small, baseline, 1.9, "pai_3", 0.05, paired=_paired(0.01, 0.03), lower_end=0.0)
    assert alias == "champion" and ", and the champion (1.900) by more than 0.05;" in reason
    with pytest.raises(ValueError, match="needs the paired gain"):
        gate(small, baseline, None, "pai_3", 0.05, lower_end=0.0)


def test_an_interval_of_too_few_blocks_does_not_judge_and_the_margin_on_the_mean_does():
    """With a single block every resample holds the same weeks and the interval is a point: the
    bar needs MIN_BLOCKS blocks of weeks, and below that the margin on the mean decides."""
    baseline, small = _result("ewma", "baseline", 2.0), _result("hgb", "candidate", 2.03)
    point = PairedInterval(mean=0.03, low=0.03, high=0.03, weeks=4, won=3)
    alias, reason = gate(small, baseline, None, "pai_3", 0.05, paired=point, lower_end=0.0, block=4)
    assert alias == "challenger"
    assert reason.startswith(
        "hgb pai_3 2.030 does not beat the best baseline ewma (2.000) by the margin 0.05 (4 weeks "
        f"paired, fewer than {MIN_BLOCKS} blocks of 4: too few for the interval to judge, so the margin "
        "on the mean did)"
    )
    enough = PairedInterval(mean=0.03, low=0.01, high=0.05, weeks=4 * MIN_BLOCKS, won=10)
    assert gate(small, baseline, None, "pai_3", 0.05, paired=enough, lower_end=0.0, block=4)[0] == "champion"


def test_a_coverage_without_a_week_to_judge_is_a_shortfall_and_without_checks_nothing_is():
    assert shortfall({"pai_1": _gain(0.5), "pai_5": _gain(0.5, weeks=0)}, 0.1) == "pai_5"
    assert shortfall({"pai_1": _gain(float("nan"))}, 0.1) == "pai_1"
    assert shortfall({}, 0.1) is None


def test_the_gate_judges_the_best_candidate_that_loses_at_no_coverage():
    results = [
        _result("raw", "candidate", 3.0),
        _result("blend", "candidate", 3.2),
        _result("smooth", "candidate", 2.9),
        _result("ewma", "baseline", 2.5),
    ]
    gains = {
        "pai_1": {"blend": _gain(-0.4), "raw": _gain(0.1), "smooth": _gain(0.3)},
        "pai_5": {"blend": _gain(0.2), "raw": _gain(0.0), "smooth": _gain(0.3)},
    }
    assert best_non_inferior(results, "pai_3", gains, 0.1).name == "raw"
    gains["pai_5"]["raw"] = _gain(-0.2)
    assert best_non_inferior(results, "pai_3", gains, 0.1).name == "smooth"
    gains["pai_1"]["smooth"] = _gain(-1.0)
    assert best_non_inferior(results, "pai_3", gains, 0.1).name == "blend", "none holds: the best on pai_3"


def test_a_baseline_serving_as_champion_is_said_in_the_reason():
    baseline = _result("prior_4w", "baseline", 2.0)
    assert baseline_serves_reason("r", baseline, "3") == (
        "r; no champion yet, so the best baseline prior_4w is registered as v3 and serves as champion "
        "until a learned model passes the gate"
    )


def test_best_of_ranks_a_missing_metric_last_and_keeps_the_first_of_a_tie():
    results = [
        _result("nan", "candidate", float("nan")),
        _result("a", "candidate", 2.0),
        _result("b", "candidate", 2.0),
        _result("base", "baseline", 9.0),
    ]
    assert best_of(results, "candidate", "pai_3").name == "a"
    assert best_of(results, "baseline", "pai_3").name == "base"


def test_the_champion_recipe_is_read_from_a_learned_versions_tags_only():
    tags = {"candidate": "hgb_poisson", "params": '{"max_iter": 40}', "gate_reason": "x"}
    assert champion_recipe(tags) == ("hgb_poisson", {"max_iter": 40})
    assert champion_recipe({"candidate": "prior_4w", "kind": "baseline"}) is None
    assert champion_recipe(None) is None
    # a blend's recipe is its model's: the training backtests it again, blend and all
    blend = {
        "candidate": "hgb_poisson_blend",
        "params": '{"max_iter": 40}',
        "blend": "0.5 x model + 0.5 x prior_4w",
    }
    assert champion_recipe(blend) == ("hgb_poisson_blend", {"max_iter": 40})
    assert champion_recipe({"candidate": "prior_4w_blend"}) is None


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


def test_an_offset_model_learns_the_ratio_to_the_map_and_reads_the_map_beside_its_features():
    """y ~ Poisson(map x 3 where x1 > 1, map x 1 elsewhere): the offset model's trees only need
    the one split on x1; it reads the map's column even where it is not a feature."""
    from models.estimators import Offset, fit_weighted, inputs_of, make_candidates

    rng = np.random.default_rng(0)
    n = 20_000
    frame = pd.DataFrame({"x1": rng.uniform(0, 2, n), "hist_t_w4": rng.gamma(2.0, 2.0, n)})
    truth = frame["hist_t_w4"] / 4 * np.where(frame["x1"] > 1, 3.0, 1.0)
    frame["label_t_h1"] = rng.poisson(truth).astype(float)
    frame["sample_weight"] = 1.0
    baselines = baselines_for("t", [4], [])
    params = {"offset": "prior_4w", "max_iter": 30, "max_depth": 2, "random_state": 0}
    model = make_candidates({"hgb_poisson_offset": params}, baselines)["hgb_poisson_offset"]
    assert isinstance(model, Offset) and model.baseline.column == "hist_t_w4"
    assert inputs_of(model, ["x1"]) == ["x1", "hist_t_w4"] and inputs_of(model, ["hist_t_w4"]) == [
        "hist_t_w4"
    ]
    fit_weighted(model, frame, ["x1"], label="label_t_h1", weight="sample_weight")
    mu = model.predict(frame[["x1", "hist_t_w4"]])
    ratio = mu / (frame["hist_t_w4"] / 4 + model.floor_)
    assert 2.6 < ratio[frame["x1"] > 1.1].mean() < 3.4 and 0.8 < ratio[frame["x1"] < 0.9].mean() < 1.2
    assert model.floor_ == pytest.approx(0.05 * (frame["hist_t_w4"] / 4).mean())
    assert (model.predict(frame.assign(hist_t_w4=0.0)[["x1", "hist_t_w4"]]) > 0).all(), "the floor"
    with pytest.raises(
        ValueError, match=r"offset 'ewma_hl9' is not a baseline of the target; known: prior_4w"
    ):
        make_candidates({"hgb_poisson_offset": {"offset": "ewma_hl9"}}, baselines)


def test_the_train_job_judges_by_the_configured_rule(tmp_path):
    """training.promotion_lower_end reaches the gate through the job's standings, with the paired
    comparison's block: on, the reason is the interval's; off, the margin's."""
    rng = np.random.default_rng(3)
    rate = rng.gamma(0.5, 2.0, size=400)
    frames = []
    for week in range(16):
        y = rng.poisson(rate)
        frames.append(pd.DataFrame({"cell_id": np.arange(400), "week_idx": week, "y": y, "mu": rate}))
    truth = pd.concat(frames, ignore_index=True)
    noisy = truth.assign(mu=truth["mu"] * rng.lognormal(0, 0.6, len(truth)))
    results = [score_predictions("hgb", "candidate", truth), score_predictions("ewma", "baseline", noisy)]
    settings = {
        "training.backtest_weeks": 16,
        "training.refit_every_weeks": 4,
        "training.promotion_margin": 9.0,
    }
    for lower_end, rule in (
        (0.0, "with the lower end of its paired gain, +1.02, above 0"),
        (None, "by the margin 9.0"),
    ):
        training = synthetic_settings(
            tmp_path, **settings, **{"training.promotion_lower_end": lower_end}
        ).training
        ranked = standings(results, training)
        assert ranked.paired.block == 4
        alias, reason = ranked.verdict(None, training)
        assert rule in reason, reason
        assert alias == ("champion" if lower_end is not None else "challenger")
