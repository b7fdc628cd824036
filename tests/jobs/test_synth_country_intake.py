"""A small synthetic country through ingest and validate with the suites it writes: more areas
than the bundled city's 77 pass, every delivered row is published or quarantined, and the week
after the span comes in as a delivery of its own."""

from __future__ import annotations

import shutil
from datetime import datetime

import pandas as pd
import pytest
from pyspark.sql import functions as F

from benchmarks import synth_country
from jobs import ingest, validate
from riskradar.catalog import read_quarantine, read_silver
from riskradar.config import load_settings
from riskradar.lake import Lake

FEEDS = ["police_crimes", "sanitation_311"]


@pytest.fixture(scope="module")
def country(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("country")
    opts = synth_country.CountryOptions(
        cells=40_000, out=out, months=2, events_per_cell_year=0.5, bad_share=0.02
    )
    counts = synth_country.write_country(opts)
    settings = load_settings(out / "riskradar.yaml")
    ingest.main(["--all"], settings=settings, spark=spark)
    validate.main(["--all"], settings=settings, spark=spark)
    return out, counts, settings, Lake(settings.lake_root)


def _delivered(folder, feed: str) -> int:
    return sum(len(pd.read_csv(f, dtype=str)) for f in sorted((folder / feed).glob("*.csv.gz")))


def test_every_area_of_the_country_passes_its_suites(country, spark):
    _, counts, settings, lake = country
    assert counts["areas"] > 77  # the bundled city's suites accept codes 1..77 only
    for table in ("boundaries", "areas"):
        codes = {
            r["area_code"] for r in read_silver(spark, settings, lake, table).select("area_code").collect()
        }
        assert codes == {str(c) for c in range(1, counts["areas"] + 1)}, table


def test_every_delivered_row_is_published_or_quarantined(country, spark):
    out, _, settings, lake = country
    for feed in FEEDS:
        published = read_silver(spark, settings, lake, "events", feeds=[feed]).count()
        quarantined = read_quarantine(spark, lake, feed)
        assert published + quarantined.count() == _delivered(out / "landing", feed), feed
        rules = {r["quarantine_rule"] for r in quarantined.select("quarantine_rule").distinct().collect()}
        assert "missing_coordinates" in rules, feed
    police = read_quarantine(spark, lake, "police_crimes").select("quarantine_rule").distinct().collect()
    assert {r["quarantine_rule"] for r in police} == {
        "missing_coordinates",
        "unparseable_timestamp",
        "unknown_category",
        "out_of_area",
        "duplicate_row",
    }


def test_the_next_week_is_a_new_delivery_of_its_own(country, spark):
    out, counts, settings, lake = country
    before = read_silver(spark, settings, lake, "events", feeds=["police_crimes"]).count()
    # the police's part of it only: the other tests' counts hold whichever test runs first
    shutil.copytree(
        out / "next_week" / "police_crimes", out / "landing" / "police_crimes", dirs_exist_ok=True
    )
    ingested = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)["police_crimes"]
    assert len(ingested["files"]) == 1 and ingested["rows"] == counts["next_week_police_crimes"]
    validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)
    after = read_silver(spark, settings, lake, "events", feeds=["police_crimes"])
    assert before < after.count() <= before + counts["next_week_police_crimes"]
    # the span is January and February 2013: the new week is March 1-7 (local; UTC is 6 h on)
    newest = after.agg(F.max("occurred_at")).first()[0]
    assert datetime(2013, 3, 1) <= newest < datetime(2013, 3, 8, 6)
