"""The model card's texts from the config: what the city lacks, said in words."""

from __future__ import annotations

from synthetic_panel import synthetic_settings

from reports.model_card import absent_parts


def test_the_card_names_the_parts_the_city_lacks(tmp_path):
    # the synthetic city has indicators but no boundaries and no weather: the card says so
    settings = synthetic_settings(tmp_path)
    assert absent_parts(settings, ["hardship_index"]) == [
        "no area boundaries (roles.area_boundaries): cells belong to no area; no roll-up by area",
        "no weather series (roles.weather): no weather features",
        "no other partners' signals (features.signals)",
    ]
    missing = "no area indicators in gold.features (census_indicators had published nothing)"
    assert absent_parts(settings, [])[1] == missing
