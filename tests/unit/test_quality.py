"""The validation report of a real Great Expectations run, read as a reviewer reads it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from intake.quality import failed_expectations, run_suite, write_report
from riskradar.errors import ConfigError


def _suite(tmp_path, expectations):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"name": "unit_suite", "expectations": expectations}))
    return path


def test_the_report_says_when_a_column_had_no_value_to_check(spark, tmp_path):
    # e.g. a score's third driver, empty for a baseline champion with one input
    frame = spark.createDataFrame([(1, None), (2, None), (30, None)], "n int, driver_3 string")
    suite = _suite(
        tmp_path,
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "driver_3", "mostly": 0.0}},
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "driver_3", "value_set": ["a"]},
            },
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "n", "max_value": 10}},
        ],
    )
    result = run_suite(frame, suite, run_name="unit")
    page = write_report(tmp_path, "report", result, title="unit", counts={"rows": 3}).read_text()
    rows = {
        line.split(" | ")[0].lstrip("| "): line for line in page.splitlines() if line.startswith("| expect_")
    }
    assert "no values to check" in rows["expect_column_values_to_be_in_set"]
    assert "100.000% unexpected" in rows["expect_column_values_to_not_be_null"]
    assert "33.333% unexpected" in rows["expect_column_values_to_be_between"]
    assert not result["success"]
    (failed,) = failed_expectations(result)
    assert (
        failed
        == 'expect_column_values_to_be_between(column="n", max_value=10.0): observed 33.333% unexpected'
    )


def test_an_unknown_expectation_names_the_suite_file(spark, tmp_path):
    frame = spark.createDataFrame([(1,)], "n int")
    suite = _suite(tmp_path, [{"type": "expect_the_moon", "kwargs": {"column": "n"}}])
    # GX itself only logs an expectation it cannot build and runs the suite without it
    with pytest.raises(ConfigError, match=r"suite.json: the suite cannot be loaded: .*#1 .*expect_the_moon"):
        run_suite(frame, suite, run_name="unit")


@pytest.mark.parametrize(
    ("rows", "bad", "passes"),
    [
        (100, 8, True),  # 8% of a small delivery: ordinary rows without coordinates
        (100, 11, False),  # more than 10 rows
        (12, 6, True),  # half of it at most
        (12, 7, False),
        (5000, 250, True),  # a big delivery: the 5% share as before
        (5000, 251, False),
    ],
)
def test_a_small_delivery_may_hold_a_few_bad_rows_where_a_big_one_holds_a_share(tmp_path, rows, bad, passes):
    """The share gate with its small-deliveries rule (as expectations/police_crimes.json has it),
    run by Great Expectations on a routed batch of `rows` rows, `bad` of them quarantined."""
    frame = pd.DataFrame({"quarantine_rule": ["missing_coordinates"] * bad + [None] * (rows - bad)})
    gate = {
        "type": "expect_column_values_to_be_null",
        "kwargs": {"column": "quarantine_rule", "mostly": 0.95},
        "small_deliveries": {"below_rows": 1000, "max_unexpected_rows": 10},
    }
    assert run_suite(frame, _suite(tmp_path, [gate]), run_name="small")["success"] is passes
