"""Numbers delivered as text: a decimal comma where the contract says so, never a silent
factor of a thousand."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from intake.conform import number

CASES = [
    # text, with decimal ',', with decimal '.'
    ("1,5", 1.5, None),
    ("136512,40", 136512.4, None),
    (" -3,2 ", -3.2, None),
    ("1.234,5", 1234.5, None),
    ("1.234.567,8", 1234567.8, None),
    ("1.234", 1234.0, 1.234),  # in a comma file a '.' groups thousands
    ("52.0907", None, 52.0907),  # a '.' that cannot group thousands: not a number there
    ("1.5", None, 1.5),
    ("12", 12.0, 12.0),
    ("abc", None, None),
    ("", None, None),
    (None, None, None),
]


@pytest.mark.parametrize("decimal", [",", "."])
def test_numbers_read_with_the_contracts_decimal_separator(spark, decimal):
    df = spark.createDataFrame([(t,) for t, _, _ in CASES], "v string")
    got = [r[0] for r in df.select(number(F.col("v"), decimal)).collect()]
    expected = [comma if decimal == "," else dot for _, comma, dot in CASES]
    assert got == expected
