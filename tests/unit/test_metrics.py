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
    pei_star,
    poisson_deviance,
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
