"""A weekly run reads one week of gold.features, one (target, week) of gold.scores and one batch
of bronze from their own folders (riskradar.catalog.read_panel with a week, read_scores,
read_bronze_batch): the same rows, columns and types as the whole table filtered to it, without
listing the table's other weeks or batches."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from riskradar.catalog import SCORES, read_bronze_batch, read_panel, read_scores
from riskradar.errors import NothingToDo
from riskradar.lake import Lake

WEEKS = [date(2016, 1, 4), date(2016, 1, 11), date(2016, 1, 18)]


def _panel(spark, lake: Lake) -> None:
    rows = [(f"c{i}", float(i + k), w) for k, w in enumerate(WEEKS) for i in range(3)]
    frame = spark.createDataFrame(rows, "cell_id string, f_1 double, week date")
    frame.write.partitionBy("week").parquet(str(lake.gold("features")))


def test_one_week_of_the_panel_is_the_whole_panel_filtered_to_it(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    _panel(spark, lake)
    whole = read_panel(spark, lake)
    week = read_panel(spark, lake, WEEKS[1])
    assert week.schema == whole.schema
    assertDataFrameEqual(week, whole.where(F.col("week") == F.lit(WEEKS[1])))
    assert {r["f_1"] for r in week.collect()} == {1.0, 2.0, 3.0}


def test_a_week_the_panel_lacks_gives_no_rows_and_the_same_columns(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    _panel(spark, lake)
    missing = read_panel(spark, lake, date(2017, 1, 2))
    assert missing.schema == read_panel(spark, lake).schema
    assert missing.collect() == []


def test_no_panel_is_still_refused_with_a_week(spark, tmp_path):
    with pytest.raises(NothingToDo, match="run `riskradar build-features` first"):
        read_panel(spark, Lake(tmp_path / "lake"), WEEKS[0])


def test_one_scored_week_reads_as_the_whole_table_filtered_to_it(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    rows = [(f"c{i}", float(i), t, w) for t in ("burglary", "robbery") for w in WEEKS for i in range(2)]
    frame = spark.createDataFrame(rows, "cell_id string, expected_count double, target string, week date")
    frame.write.partitionBy("target", "week").parquet(str(lake.gold(SCORES)))
    got = read_scores(spark, lake, "robbery", WEEKS[2])
    whole = spark.read.parquet(str(lake.gold(SCORES)))
    expected = whole.where((F.col("target") == "robbery") & (F.col("week") == F.lit(WEEKS[2]))).toPandas()
    assert got.dtypes.to_dict() == expected.dtypes.to_dict()
    assert (
        got.sort_values("cell_id")
        .reset_index(drop=True)
        .equals(expected.sort_values("cell_id").reset_index(drop=True))
    )
    assert list(got["week"].unique()) == [WEEKS[2]] and list(got["target"].unique()) == ["robbery"]
    with pytest.raises(NothingToDo, match="no scores for 'robbery' in the week of 2017-01-02"):
        read_scores(spark, lake, "robbery", date(2017, 1, 2))


def test_one_bronze_batch_reads_as_the_whole_table_filtered_to_it(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    batches = ["b000000000000000", "b111111111111111", "b222222222222222"]
    rows = [(f"id{i}", f"f{b}.csv", i, batch) for b, batch in enumerate(batches) for i in range(2)]
    frame = spark.createDataFrame(rows, "ID string, source_file string, source_row long, batch_id string")
    frame.write.partitionBy("batch_id").parquet(str(lake.bronze("feed_a")))
    whole = spark.read.parquet(str(lake.bronze("feed_a")))
    one = read_bronze_batch(spark, lake, "feed_a", batches[1])
    assert one.schema == whole.schema
    assertDataFrameEqual(one, whole.where(F.col("batch_id") == batches[1]))
    assert sorted((r["source_file"], r["source_row"]) for r in one.collect()) == [
        ("f1.csv", 0),
        ("f1.csv", 1),
    ]
    missing = read_bronze_batch(spark, lake, "feed_a", "b999999999999999")
    assert missing.schema == whole.schema and missing.collect() == []
