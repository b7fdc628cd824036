"""Drivers of a score: occlusion contributions checked against a model whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

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
