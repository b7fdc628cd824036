"""A partner's free text as silver keeps it: no NUL, no right-to-left override or other
invisible control, surrounding whitespace trimmed; a line end inside a field stays."""

from __future__ import annotations

from pyspark.sql import functions as F

from intake.conform import clean_text


def test_control_and_bidi_characters_are_removed_from_kept_text(spark):
    values = ["Loop\x00", "a\u202eevil\u202c b", " Near\u200b North ", "line\nend", "tab\there", None]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    got = [r[0] for r in df.select(clean_text(F.col("v"))).collect()]
    assert got == ["Loop", "aevil b", "Near North", "line\nend", "tabhere", None]
