"""PAI, hit rate, PEI*, deviance and intervals against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mean_poisson_deviance

from models.metrics import (
    bootstrap_mean,
    calibration_by_decile,
    expected_hits,
    flagged_count,
    flagged_metrics,
    hit_rate,
    pai,
    pai_at,
    paired_gain,
    pei_star,
    poisson_deviance,
    week_metric,
    week_metrics,
)

Y = np.array([5, 0, 3, 0, 2, 0, 0, 0, 0, 0], dtype=float)  # 10 incidents in 10 cells
SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])


def test_top_cells_by_hand():
    # 20% of the area = 2 cells: cells 0 and 1 catch 5 of 10 incidents
    assert flagged_count(10, 0.2) == 2
    assert hit_rate(Y, SCORE, 0.2) == 0.5
    assert pai(Y, SCORE, 0.2) == 2.5  # 50% of incidents on 20% of the area
    assert pei_star(Y, SCORE, 0.2) == 5 / 8  # the best 2 cells would have caught 5 + 3


def test_a_perfect_ranking_has_pei_one():
    assert pei_star(Y, Y, 0.3) == 1.0
    assert pai(Y, Y, 0.3) == pytest.approx(1.0 / 0.3)


def test_ties_at_the_cut_off_count_in_expectation():
    y = np.array([4, 0, 2, 1, 0, 0], dtype=float)
    score = np.array([1, 1, 1, 0.5, 0, 0], dtype=float)
    # 2 slots among 3 tied cells whose mean count is 2: 4 hits expected
    assert expected_hits(y, score, 2) == 4.0
    assert hit_rate(y, score, 2 / 6) == 4 / 7
    # cells above the cut-off count fully, the tied ones share the rest
    assert expected_hits(y, np.array([3, 1, 1, 1, 0, 0], dtype=float), 2) == 4 + 1 * (0 + 2 + 1) / 3


def _hits_by_hand(y, score, k):
    """The cells above the k-th highest score, and the tied ones' mean count per slot left."""
    cut = np.sort(score)[::-1][k - 1]
    above, at = score > cut, score == cut
    return y[above].sum() + (k - above.sum()) * y[at].mean()


def test_pai_at_many_coverages_is_pai_at_each_ties_included():
    rng = np.random.default_rng(5)
    y = rng.poisson(0.7, 200).astype(float)
    tied = rng.integers(0, 6, 200).astype(float)  # many cells share a score at every cut-off
    coverages = np.array([0.001, 0.01, 0.03, 0.05, 0.2, 0.5, 0.999, 1.0])
    for score in (tied, rng.random(200)):
        flagged = [max(1, round(c * 200)) for c in coverages]
        expected = [_hits_by_hand(y, score, k) / y.sum() / (k / 200) for k in flagged]
        np.testing.assert_allclose(pai_at(y, score, coverages), expected)
        np.testing.assert_allclose([pai(y, score, c) for c in coverages], expected)
    assert np.isnan(pai_at(np.zeros(200), tied, coverages)).all()


def test_every_coverage_metric_of_a_week_follows_the_tie_rule():
    rng = np.random.default_rng(11)
    y = rng.poisson(0.6, 300).astype(float)
    score = rng.integers(0, 8, 300).astype(float)  # ties at every cut-off
    coverages = (0.01, 0.03, 0.05, 0.2, 1.0)
    got = week_metrics(y, score, coverages)
    assert got["incidents"] == y.sum()
    for c in coverages:
        k, tag = max(1, round(c * 300)), f"{round(c * 100):d}"
        hits = _hits_by_hand(y, score, k)
        assert got[f"hit_rate_{tag}"] == pytest.approx(hits / y.sum())
        assert got[f"pai_{tag}"] == pytest.approx(hits / y.sum() / (k / 300))
        assert got[f"pei_{tag}"] == pytest.approx(hits / np.sort(y)[::-1][:k].sum())
        assert got[f"pei_{tag}"] == pytest.approx(pei_star(y, score, c))


def test_a_cell_without_a_score_ranks_below_every_scored_cell():
    y = np.array([0, 2, 1, 0, 3, 0], dtype=float)
    score = np.array([1, 1, np.nan, 0.5, np.nan, 0.2])
    # the two cells scored 1 share the first slot; then 0.5 and 0.2; the unscored cells last
    assert [expected_hits(y, score, k) for k in (1, 2, 4, 6)] == [1.0, 2.0, 2.0, 6.0]


def test_coverages_that_share_a_name_are_refused():
    with pytest.raises(ValueError, match="share a name when rounded to whole percents"):
        week_metrics(Y, SCORE, (0.01, 0.014))
    with pytest.raises(ValueError, match="share a name"):
        week_metric(Y, SCORE, "pai_1", (0.01, 0.014))


def test_a_week_without_incidents_has_no_pai():
    zero = np.zeros(10)
    assert math.isnan(hit_rate(zero, SCORE, 0.1))
    assert math.isnan(pai(zero, SCORE, 0.1))
    assert math.isnan(pei_star(zero, SCORE, 0.1))
    metrics = week_metrics(zero, SCORE + 0.1)
    assert metrics["incidents"] == 0 and math.isnan(metrics["pai_3"])


def test_coverage_outside_the_unit_interval_is_refused():
    with pytest.raises(ValueError, match="coverage must be in"):
        flagged_count(10, 0)


def test_poisson_deviance_matches_scikit_learn():
    mu = np.array([4.0, 0.5, 2.5, 0.1, 1.0, 0.2, 0.3, 0.1, 0.1, 0.2])
    assert poisson_deviance(Y, mu) == pytest.approx(mean_poisson_deviance(Y, mu))


def test_calibration_deciles_cover_every_cell():
    mu = np.linspace(0, 1, 100)
    y = (mu > 0.5).astype(float)
    table = calibration_by_decile(y, mu)
    assert [row["cells"] for row in table] == [10] * 10
    assert table[0]["observed"] == 0.0 and table[-1]["observed"] == 1.0


def test_bootstrap_interval_leaves_out_empty_weeks():
    interval = bootstrap_mean(np.array([2.0, 2.0, float("nan"), 2.0]))
    assert (interval.mean, interval.low, interval.high, interval.weeks) == (2.0, 2.0, 2.0, 3)
    spread = bootstrap_mean(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), seed=1)
    assert spread.low < spread.mean == 3.0 < spread.high


def test_flagged_metrics_of_a_published_hotspot_set():
    # 10 cells, 2 flagged (20% of the area); 8 incidents, 4 of them in flagged cells
    y = np.array([3, 1, 0, 0, 2, 0, 1, 1, 0, 0])
    flagged = np.array([True, True, False, False, False, False, False, False, False, False])
    m = flagged_metrics(y, flagged)
    assert m["hit_rate"] == 4 / 8
    assert m["pai"] == (4 / 8) / (2 / 10)
    assert m["pei"] == 4 / 5  # the best 2 cells held 3 + 2
    assert m["flagged"] == 2


def test_flagged_metrics_of_a_week_without_incidents_are_undefined():
    m = flagged_metrics(np.zeros(5), np.array([True, False, False, False, False]))
    assert np.isnan(m["hit_rate"]) and np.isnan(m["pai"]) and np.isnan(m["pei"])


def _ar1(n: int, rho: float, seed: int) -> np.ndarray:
    """A stationary AR(1) series: x_t = rho x_(t-1) + e_t, e_t standard normal."""
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = rng.normal() / math.sqrt(1 - rho**2)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + rng.normal()
    return x


def test_a_constant_difference_has_a_degenerate_interval_at_that_value():
    a = np.array([3.5, 4.0, 2.25, 6.0, 5.5, 1.0, 7.0])
    gain = paired_gain(a, a - 0.42, block=3)
    assert gain.mean == pytest.approx(0.42)
    assert gain.low == pytest.approx(0.42) and gain.high == pytest.approx(0.42)
    assert (gain.weeks, gain.won) == (7, 7)
    assert gain.text() == "+0.42 [+0.42, +0.42], 7/7 weeks"


def test_correlated_weeks_give_a_wider_block_interval_than_single_weeks():
    # With rho = 0.8 the mean's true spread is about 3x what i.i.d. resampling of weeks says;
    # blocks of 8 recover most of it (about 2x on this series).
    x = _ar1(104, 0.8, seed=3)
    blocks = paired_gain(x, np.zeros(104), block=8)
    single = paired_gain(x, np.zeros(104), block=1)
    assert blocks.mean == single.mean == pytest.approx(x.mean())
    assert blocks.high - blocks.low > 1.5 * (single.high - single.low)
    assert blocks.low < blocks.mean < blocks.high


def test_weeks_undefined_on_either_side_are_dropped_pairwise():
    nan = float("nan")
    a = np.array([2.0, nan, 3.0, 1.0, 4.0])
    b = np.array([1.0, 1.0, nan, 2.0, 1.0])
    gain = paired_gain(a, b, block=2)
    # the weeks left: differences 1, -1, 3
    assert (gain.mean, gain.weeks, gain.won) == (1.0, 3, 2)
    assert paired_gain(a, b, block=2, seed=5) == paired_gain(a[[0, 3, 4]], b[[0, 3, 4]], block=2, seed=5)
    empty = paired_gain(np.array([nan, 1.0]), np.array([1.0, nan]), block=1)
    assert (empty.weeks, empty.won, empty.text()) == (0, 0, "n/a (no week where both are defined)")
    assert math.isnan(empty.mean) and math.isnan(empty.low) and math.isnan(empty.high)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    x = _ar1(26, 0.5, seed=1)
    assert paired_gain(x, -x, block=4, seed=7) == paired_gain(x, -x, block=4, seed=7)
    assert paired_gain(x, -x, block=4, seed=7) != paired_gain(x, -x, block=4, seed=8)


def test_weeks_won_count_strict_gains_only():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    b = np.array([0.5, 2.0, 3.5, 3.0, 5.0, 1.0])  # won, tie, lost, won, tie, won
    gain = paired_gain(a, b, block=2)
    assert (gain.weeks, gain.won) == (6, 3)
    assert gain.mean == pytest.approx((0.5 + 0 - 0.5 + 1 + 0 + 5) / 6)
    assert gain.text().endswith(", 3/6 weeks")


def test_a_block_longer_than_the_series_only_rotates_it():
    # every resample is the series turned around its end: the same mean each time
    gain = paired_gain(np.array([1.0, 5.0, 2.0]), np.zeros(3), block=10)
    assert gain.low == pytest.approx(8 / 3) and gain.high == pytest.approx(8 / 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block": 0}, "block must be a positive number of weeks, got 0"),
        ({"block": 2.0}, "block must be a positive number of weeks, got 2.0"),
        ({"block": 2, "level": 1.0}, r"level in \(0, 1\)"),
        ({"block": 2, "n_boot": 0}, "n_boot must be >= 1"),
    ],
)
def test_a_wrong_block_level_or_resample_count_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_gain(np.ones(4), np.zeros(4), **kwargs)


def test_series_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match=r"two 1-D series of one length, got shapes \(3,\) and \(4,\)"):
        paired_gain(np.ones(3), np.zeros(4), block=1)
