"""The register of processing (reports.processing_register), for the bundled config and the
Dutch example, checked against the contracts and agreements as their YAML files say them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from builders import POLICE, ROOT, SAMPLE, write_agreements, write_config

from reports.processing_register import processing_markdown, processing_register
from riskradar.config import load_settings
from riskradar.errors import ConfigError
from riskradar.sharing import load_agreements

CONFIGS = [ROOT / "conf" / "riskradar.yaml", ROOT / "conf" / "examples" / "nl" / "riskradar.yaml"]


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _contracts(config: Path) -> dict[str, dict]:
    """The enabled contracts, read as plain YAML (not through the config models)."""
    partners = _yaml(config)["partners"]
    folder = config.parent / partners["contracts_dir"]
    return {name: _yaml(folder / f"{name}.yaml") for name in partners["enabled"]}


def _register(config: Path) -> dict:
    settings = load_settings(config)
    return processing_register(settings, load_agreements(settings))


@pytest.mark.parametrize("config", CONFIGS, ids=["bundled", "nl"])
def test_every_personal_column_of_every_contract_is_named_with_its_handling(config):
    contracts = _contracts(config)
    register = _register(config)
    markdown = processing_markdown(register)
    assert [e["feed"] for e in register["entries"]] == list(contracts)
    for entry in register["entries"]:
        columns = contracts[entry["feed"]]["columns"]
        personal = [(c["name"], c["personal"]) for c in columns if c.get("personal")]
        assert [(c["column"], c["handling"]) for c in entry["personal_columns"]] == personal
        assert entry["other_columns"] == [c["name"] for c in columns if not c.get("personal")]
        for name, handling in personal:
            assert f"| `{name}` | {handling} |" in markdown
    handled = {c["handling"] for e in register["entries"] for c in e["personal_columns"]}
    assert handled == {"pseudonymise", "drop"}  # both configs have both kinds


@pytest.mark.parametrize("config", CONFIGS, ids=["bundled", "nl"])
def test_each_entry_states_partner_basis_retention_storage_and_recipients(config):
    contracts = _contracts(config)
    agreements = sorted(
        p.stem for p in (config.parent / _yaml(config)["sharing"]["agreements_dir"]).glob("*.yaml")
    )
    register = _register(config)
    for entry in register["entries"]:
        contract = contracts[entry["feed"]]
        assert (entry["partner"], entry["legal_basis"], entry["retention_days"]) == (
            contract["partner"],
            contract["legal_basis"],
            contract["retention_days"],
        )
        assert f"`bronze/{entry['feed']}/`" in " ".join(entry["storage"])
        assert f"`_delivered/{entry['feed']}/`" in " ".join(entry["storage"])
        assert sorted(r["recipient"] for r in entry["recipients"]) == agreements
    assert register["controller"]["organisation"] == _yaml(config)["governance"]["organisation"]


def test_police_data_are_entered_under_the_wpg_and_other_feeds_under_the_avg():
    register = _register(CONFIGS[1])
    laws = {e["feed"]: e["law"].split()[0] for e in register["entries"]}
    assert laws == {
        "politie_bvh": "Wpg",
        "gemeente_meldingen": "AVG",
        "cbs_buurten": "AVG",
        "cbs_kerncijfers": "AVG",
    }
    police = register["entries"][0]
    assert "police data (politiegegevens) about criminal offences" in police["data_categories"]
    none = register["entries"][2]
    assert none["personal_columns"] == [] and none["data_subjects"].startswith("none")


def test_a_feed_the_panel_does_not_use_has_no_recipients_and_no_gold(tmp_path):
    config = write_config(
        tmp_path,
        landing=SAMPLE,
        enabled=["police_crimes", "sanitation_311"],
        **{
            "features.signals": {},
            "sharing.agreements_dir": str(write_agreements(tmp_path / "sharing", police=POLICE)),
        },
    )
    register = _register(config)
    police, complaints = register["entries"]
    assert police["used_for"] and [r["organisation"] for r in police["recipients"]] == ["Police (test)"]
    assert complaints["used_for"] == [] and complaints["recipients"] == []
    assert not any("gold/" in place for place in complaints["storage"])


def test_a_config_without_governance_is_refused_naming_the_section(tmp_path):
    config = write_config(tmp_path, landing=SAMPLE, enabled=["police_crimes"], governance=None)
    settings = load_settings(config)
    with pytest.raises(ConfigError, match=r"riskradar.yaml: no 'governance' section"):
        processing_register(settings, {})
