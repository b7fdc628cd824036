"""Drivers of a score: occlusion contributions checked against a model whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from features.panel import describe_feature, is_count_feature
from jobs.score import driver_detail, shown_count
from models.explain import occlusion_contributions, top_drivers


class Product:
    """f(x) = a * b: an interaction, where occlusion depends on the other feature's value."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X["a"].to_numpy() * X["b"].to_numpy()


def test_linear_model_contributions_are_coefficient_times_distance_from_typical():
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 5.0], "b": [1.0, 0.0, 3.0, 2.0], "c": [7.0, 7.0, 7.0, 7.0]})
    y = 2.0 * X["a"] - 1.0 * X["b"] + 0.5
    model = LinearRegression().fit(X, y)
    reference = pd.Series({"a": 1.0, "b": 2.0, "c": 7.0})
    mu, contrib = occlusion_contributions(model, X, reference)
    np.testing.assert_allclose(mu, y.to_numpy(), atol=1e-9)
    expected = np.column_stack([2.0 * (X["a"] - 1.0), -1.0 * (X["b"] - 2.0), np.zeros(4)])
    np.testing.assert_allclose(contrib, expected, atol=1e-9)


@pytest.mark.parametrize("max_values", [1, 7, 4_000_000])
def test_chunking_does_not_change_the_result(max_values):
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 0.0, 1.0]})
    mu, contrib = occlusion_contributions(
        Product(), X, pd.Series({"a": 0.0, "b": 1.0}), max_values=max_values
    )
    np.testing.assert_allclose(mu, [4.0, 0.0, 3.0])
    # a := 0 gives 0; b := 1 gives a
    np.testing.assert_allclose(contrib, [[4.0, 3.0], [0.0, -2.0], [3.0, 0.0]])


def test_top_drivers_largest_first_and_ties_by_column_order():
    contrib = np.array([[0.1, 0.5, 0.5, -1.0], [-0.2, -0.1, -0.3, -0.4]])
    np.testing.assert_array_equal(top_drivers(contrib, 3), [[1, 2, 0], [1, 0, 2]])
    assert top_drivers(contrib, 10).shape == (2, 4)


def test_counts_below_k_are_suppressed_and_others_shown():
    assert [shown_count(v, 5) for v in (0, 1, 4.9, 5, 12, 7.25)] == ["<5", "<5", "<5", "5", "12", "7.2"]
    text = driver_detail("n_burglary_w52", 3.0, 0.0, 0.41, 5)
    assert text == "burglary incidents in the cell, past 52 weeks: <5 (typical <5), +0.410 expected"
    text = driver_detail("n3_all_crime_w4", 17.0, 2.0, 0.05, 5)
    assert (
        text == "all crime incidents in the 3x3 cells around, past 4 weeks: 17 (typical <5), +0.050 expected"
    )
    # area covariates are not counts of events: shown as they are
    assert driver_detail("hardship_index", 3.0, 48.0, -0.2, 5).startswith(
        "hardship index (area): 3 (typical 48)"
    )


def test_feature_names_read_as_plain_language():
    assert (
        describe_feature("d_violence_hl0p5")
        == "violence incidents in the cell, recent-weighted (half-life 0.5 weeks)"
    )
    assert describe_feature("s_sanitation_311_w4") == "sanitation 311 reports in the cell, past 4 weeks"
    assert describe_feature("n5_burglary_w13") == "burglary incidents in the 5x5 cells around, past 13 weeks"
    assert is_count_feature("histd_burglary_hl4") and not is_count_feature("per_capita_income")
