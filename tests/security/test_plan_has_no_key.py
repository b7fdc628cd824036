"""No form of the pseudonymisation key in the plans of `pseudonymise`: parsed, analysed,
optimised, physical, executed (after adaptive execution), nor in explain()'s text."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from key_forms import leaked
from pyspark.sql import functions as F

from intake.pseudonym import key_pads, pseudonymise

KEY = b"plan-test-key-0123456789"


def plans(df) -> str:
    """Every text of `df`'s plans that Spark shows: the UI, the event log and explain() print these."""
    df.collect()  # the executed plan is final once the query ran
    execution = df._jdf.queryExecution()
    shown = io.StringIO()
    with redirect_stdout(shown):
        df.explain("extended")
        df.explain("formatted")
    texts = [execution.toString(), execution.executedPlan().toString(), execution.simpleString()]
    return "\n".join([*texts, shown.getvalue()])


def test_the_scan_finds_a_key_that_is_a_literal(spark):
    """The check can fail: a plan with the padded key as a literal (as HMAC was once built) is caught."""
    ipad, opad = key_pads(KEY)
    df = spark.createDataFrame([("1",)], "id string").select(F.sha2(F.concat(F.lit(opad), F.lit(ipad)), 256))
    assert {"ipad HEX", "opad HEX"} <= set(leaked(plans(df), KEY))


def test_pseudonymise_plans_hold_no_form_of_the_key(spark):
    df = spark.createDataFrame([(str(99000000 + i), i) for i in range(20)], "ID string, n int")
    out = pseudonymise(df, {"ID": F.col("ID")}, KEY, domain="police_crimes").where("n > 3")
    text = plans(out)
    assert "BroadcastNestedLoopJoin" in text and "Scan ExistingRDD" in text  # the pads' path
    assert leaked(text, KEY) == []
