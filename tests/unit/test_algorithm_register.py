"""The Algoritmeregister entry of a champion (reports.algorithm_register): the standard's fields
filled from the config and the champion's facts, in Dutch and English, and the check that
refuses an entry with an empty required field or a value the standard does not permit."""

from __future__ import annotations

import copy
from datetime import date

import pytest
from builders import BACKTEST, CHAMPION_METRICS, EXPOSURE, ROOT

from features.panel import week_of
from reports.algorithm_register import (
    FIELDS,
    FILLED,
    LANGUAGES,
    Champion,
    algorithm_entry,
    algorithm_markdown,
    as_markdown,
    check_entry,
)
from riskradar.config import LinkedDocument, load_settings

NL = ROOT / "conf" / "examples" / "nl" / "riskradar.yaml"
REQUIRED = sorted({f.key for f in FIELDS if f.required} | set(FILLED))


def champion(**changes) -> Champion:
    facts = {
        "target": "burglary",
        "model": "riskradar-burglary",
        "version": "7",
        "run_id": "run123",
        "tags": {"candidate": "hgb_poisson", "gate_reason": "beats the best baseline", "params": "{}"},
        "first_created": date(2026, 1, 12),
        "first_week_idx": BACKTEST["backtest_first_week_idx"],
        "last_week_idx": BACKTEST["backtest_last_week_idx"],
        "refit_every_weeks": BACKTEST["refit_every_weeks"],
        "metrics": dict(CHAMPION_METRICS),
        "exposure": EXPOSURE,
        "git_commit": "0123abc",
    }
    return Champion(**{**facts, **changes})


@pytest.fixture(scope="module")
def settings():
    return load_settings(NL)


@pytest.fixture(scope="module")
def entry(settings):
    return algorithm_entry(settings, champion())


def test_the_entry_of_a_champion_is_complete_in_both_languages(entry):
    assert check_entry(entry) == []
    assert list(entry["nld"]) == list(entry["eng"]) == [f.key for f in FIELDS]
    assert entry["nld"]["lang"] == "nld" and entry["nld"]["standard_version"] == "1.0.0"
    assert entry["nld"]["status"] == "In gebruik" and entry["eng"]["status"] == "in use"
    assert entry["nld"]["organization"] == "Gemeente Utrecht (voorbeeld)"
    assert entry["nld"]["contact_email"] == "algoritmes@utrecht.example.nl"
    assert entry["nld"]["begin_date"] == "2026-01"  # the model's first version
    assert entry["nld"]["name"] == "riskradar: verwachting woninginbraak per plek en week"
    assert entry["eng"]["name"] == "riskradar: forecast of residential burglary per place and week"


def test_the_technical_operation_quotes_the_backtest_window_and_the_paired_intervals(entry):
    first, last = (week_of(BACKTEST[k]) for k in ("backtest_first_week_idx", "backtest_last_week_idx"))
    methods = as_markdown(entry["eng"]["methods_and_models"])
    window = f"- backtest: 26 weeks, from the week of {first} to that of {last}, rolling origin"
    assert f"{window}, refit every 4 weeks" in methods
    assert "PAI@3% 2.40 [1.90, 2.90]" in methods and "hit rate@3% 0.12 [0.09, 0.15]" in methods
    assert "- paired gain over the best baseline at PAI@3%: +0.53 [+0.24, +0.81], weeks won 19/26" in methods
    assert "gepaarde winst ten opzichte van de beste baseline op PAI@3%: +0.53 [+0.24, +0.81]" in as_markdown(
        entry["nld"]["methods_and_models"]
    )
    assert (
        entry["performance"]["first_week"] == str(first)
        and entry["performance"]["metrics"] == CHAMPION_METRICS
    )


def test_the_promotion_rule_quoted_is_the_configured_one(settings, entry):
    field = "proportionality"
    clear = (
        "clearly beats the best baseline at PAI@3% (the lower end of the 95 % interval of its gain above 0)"
    )
    assert clear in as_markdown(entry["eng"][field])
    assert "aantoonbaar verslaat (de ondergrens van het 95%-interval van de winst boven 0)" in as_markdown(
        entry["nld"][field]
    )
    training = settings.training.model_copy(update={"promotion_lower_end": None})
    by_margin = algorithm_entry(settings.model_copy(update={"training": training}), champion())
    assert "beats the best baseline at PAI@3% by 0.05;" in as_markdown(by_margin["eng"][field])
    assert "op PAI@3% met 0.05 verslaat;" in as_markdown(by_margin["nld"][field])


def test_the_risks_hold_the_exposure_table_and_the_monitoring(entry):
    risks = as_markdown(entry["eng"]["risks"])
    assert "- Q1 (lowest x): 25.0% of flagged cell-weeks, 50.0% of cells, 40.0% of incidents" in risks
    assert "- Q5 (highest x): 75.0% of flagged cell-weeks, 50.0% of cells, 60.0% of incidents" in risks
    assert "riskradar evaluate-scores" in risks
    assert entry["exposure"] == EXPOSURE


def test_the_oversight_says_who_promotes_how_to_stop_and_what_not_to_do(settings, entry):
    text = as_markdown(entry["eng"]["human_intervention"])
    assert settings.governance.reviewer_role in text
    assert 'riskradar score --target burglary --off --reason "..."' in text
    assert "- take no decision about a person on the strength of the output" in text
    assert entry["oversight"]["scoring"] == "on" and entry["oversight"]["switched_off"] is None


def test_a_champion_whose_scoring_is_off_is_out_of_use_since_that_month(settings):
    off = algorithm_entry(settings, champion(scoring_off="2026-04-06 by analyst: under review"))
    assert check_entry(off) == []
    assert (off["nld"]["status"], off["nld"]["end_date"]) == ("Buiten gebruik", "2026-04")
    assert (
        "Scoring is switched off now: 2026-04-06 by analyst: under review."
        in off["eng"]["human_intervention"]
    )


def test_a_baseline_champion_is_not_self_learning(settings):
    baseline = algorithm_entry(settings, champion(tags={"candidate": "prior_52w", "kind": "baseline"}))
    assert check_entry(baseline) == []
    assert baseline["eng"]["methods_and_models"].startswith(
        "<p>Self-learning: no. This version is the baseline"
    )


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("key", REQUIRED)
def test_an_empty_required_field_is_named(entry, lang, key):
    broken = copy.deepcopy(entry)
    broken[lang][key] = [] if isinstance(broken[lang][key], list) else "<p> </p>"
    assert check_entry(broken) == [f"{lang}: {key!r} ({next(f.nl for f in FIELDS if f.key == key)}) is empty"]


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("name", "x" * 101, "'name' (naam) has 101 characters, the standard allows 100"),
        ("status", "Actief", "'status' (status) = 'Actief' is not permitted"),
        (
            "publication_category",
            "Hoog risico",
            "'publication_category' (publicatiecategorie) = 'Hoog risico'",
        ),
        ("category", ["Veiligheid"], "'category' (thema) = 'Veiligheid' is not permitted"),
        ("lang", "eng", "'lang' (taal) = 'eng' is not permitted (nld)"),
        ("begin_date", "2026-13", "'begin_date' (begindatum) = '2026-13' is not a month written YYYY-MM"),
    ],
)
def test_a_value_the_standard_does_not_permit_is_named(entry, key, value, problem):
    broken = copy.deepcopy(entry)
    broken["nld"][key] = value
    (found,) = check_entry(broken)
    assert found.startswith(f"nld: {problem}")


def test_a_missing_field_and_a_field_of_no_standard_are_named(entry):
    broken = copy.deepcopy(entry)
    del broken["eng"]["goal"]
    broken["nld"]["score"] = "high"
    assert check_entry(broken) == [
        "nld: 'score' is not a field of the standard",
        "eng: 'goal' (doel en impact) is missing",
    ]


def test_the_markdown_shows_each_filled_field_in_dutch_then_english(entry):
    markdown = algorithm_markdown(entry)
    assert markdown.startswith("# Algoritmeregister: riskradar-burglary v7\n")
    assert "## menselijke tussenkomst / human intervention (`human_intervention`)" in markdown
    assert "*English:* riskradar: forecast of residential burglary per place and week" in markdown
    assert "## leverancier" not in markdown  # an optional field left empty is not shown


def test_linked_impact_assessments_are_named_and_linked(settings):
    dpia = LinkedDocument(title="DPIA", link="https://example.org/dpia")
    governance = settings.governance.model_copy(update={"impact_assessments": [dpia]})
    entry = algorithm_entry(settings.model_copy(update={"governance": governance}), champion())
    assert check_entry(entry) == []
    assert entry["nld"]["impacttoetsen_grouping"] == [{"title": "DPIA", "link": "https://example.org/dpia"}]
    assert entry["eng"]["impacttoetsen"] == "<p>Done and published: DPIA (see the links).</p>"
