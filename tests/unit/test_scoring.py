"""How a score's drivers and counts read where they are published (models.scoring), with the
features named and described in one place (riskradar.catalog)."""

from __future__ import annotations

from models.scoring import driver_detail, shown_count
from riskradar.catalog import (
    Feature,
    area_indicator,
    decayed_count,
    decayed_target_history,
    event_count,
    signal_count,
)


def test_counts_below_k_are_suppressed_and_others_shown():
    assert [shown_count(v, 5) for v in (0, 1, 4.9, 5, 12, 7.25)] == ["<5", "<5", "<5", "5", "12", "7.2"]
    text = driver_detail(event_count("burglary", 52), 3.0, 0.0, 0.41, 5)
    assert text == "burglary incidents in the cell, past 52 weeks: <5 (typical <5), +0.410 expected"
    text = driver_detail(event_count("all_crime", 4, around=3), 17.0, 2.0, 0.05, 5)
    assert (
        text == "all crime incidents in the 3x3 cells around, past 4 weeks: 17 (typical <5), +0.050 expected"
    )
    # area covariates are not counts of events: shown as they are
    assert driver_detail(area_indicator("hardship_index"), 3.0, 48.0, -0.2, 5).startswith(
        "hardship index (area): 3 (typical 48)"
    )


def test_feature_names_read_as_plain_language():
    assert decayed_count("violence", 0.5) == Feature(
        "d_violence_hl0p5", "violence incidents in the cell, recent-weighted (half-life 0.5 weeks)", True
    )
    assert signal_count("sanitation_311", 4) == Feature(
        "s_sanitation_311_w4", "sanitation 311 reports in the cell, past 4 weeks", True
    )
    assert event_count("burglary", 13, around=5) == Feature(
        "n5_burglary_w13", "burglary incidents in the 5x5 cells around, past 13 weeks", True
    )
    assert decayed_target_history("burglary", 4).name == "histd_burglary_hl4"
    assert decayed_target_history("burglary", 4).counts_events
    assert not area_indicator("per_capita_income").counts_events
