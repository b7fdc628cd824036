"""A small batch reads of the feed's published rows only those of its own keys
(intake.conform.only_batch_keys): what the comparison with the current rows and the replaced
versions would find, without a shuffle of the feed's history."""

from __future__ import annotations

from pyspark.testing import assertDataFrameEqual

from intake.conform import only_batch_keys


def test_the_published_rows_are_cut_to_the_keys_of_the_batch(spark):
    batch = spark.createDataFrame([("a",), ("c",), ("c",), (None,)], "__k_id string")
    current = spark.createDataFrame(
        [("a", "h1", "b1"), ("b", "h2", "b1"), ("c", "h3", "b2"), (None, "h4", "b2")],
        "key string, row_hash string, batch_id string",
    )
    replaced = spark.createDataFrame([("c", "h0"), ("c", "h9"), ("d", "h5")], "key string, row_hash string")
    cut_current, cut_replaced = only_batch_keys(batch, current, replaced)
    # every row of a batch key, each once; a null key matches nothing, as in the join it feeds
    assertDataFrameEqual(
        cut_current,
        spark.createDataFrame([("a", "h1", "b1"), ("c", "h3", "b2")], current.schema),
    )
    assertDataFrameEqual(cut_replaced, spark.createDataFrame([("c", "h0"), ("c", "h9")], replaced.schema))


def test_a_table_not_published_yet_stays_none(spark):
    batch = spark.createDataFrame([("2014-06-01",)], "__k_date string")
    current = spark.createDataFrame(
        [("2014-06-01", "h1", "b1")], "key string, row_hash string, batch_id string"
    )
    assert only_batch_keys(batch, None, None) == (None, None)
    cut, none = only_batch_keys(batch, current, None)
    assert none is None
    assertDataFrameEqual(cut, current)


def test_a_batch_with_no_published_key_reads_no_published_row(spark):
    batch = spark.createDataFrame([("z",)], "__k_code string")
    current = spark.createDataFrame([("a", "h1", "b1")], "key string, row_hash string, batch_id string")
    (cut,) = only_batch_keys(batch, current)
    assert cut.collect() == []
    assert cut.columns == current.columns
