"""Config and contracts: valid files load; every wrong value names file, key, value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from builders import ROOT, write_config

from riskradar.config import load_contract, load_settings
from riskradar.errors import ConfigError, UnsafeName


def test_committed_config_loads_with_every_contract():
    settings = load_settings(ROOT / "conf" / "riskradar.yaml")
    assert sorted(settings.contracts) == sorted(
        ["police_crimes", "sanitation_311", "weather", "census_indicators", "census_areas"]
    )
    assert settings.lake_root == (ROOT / "lake").resolve()
    assert (
        settings.landing_dir(settings.contract("police_crimes"))
        == ROOT / "data" / "chicago" / "police_crimes"
    )
    police = settings.contract("police_crimes")
    assert "Case Number" not in police.kept_columns and "Block" not in police.kept_columns
    assert police.pseudonymised_columns == ["ID"]
    assert "narcotics" in police.events.origin.discovered_categories


def test_lake_root_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RISKRADAR_LAKE", str(tmp_path / "elsewhere"))
    assert load_settings(ROOT / "conf" / "riskradar.yaml").lake_root == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("grid.cell_size_m", -5, "key 'grid.cell_size_m' = -5: Input should be greater than 0"),
        ("timezone", "Mars/Olympus", "key 'timezone' = 'Mars/Olympus': Value error, unknown time zone"),
        ("project_crs", "EPSG:4326", "key 'project_crs' = 'EPSG:4326'"),
        ("study_area.bbox_wgs84", [10, 50, 5, 40], "expected [min lon, min lat, max lon, max lat]"),
        ("partners.enabled", ["police_crimes", "nope"], "'partners.enabled' names 'nope' but"),
        ("targets.burglary.categories", ["burglary", "jaywalking"], "unknown categories ['jaywalking']"),
        ("spark.colour", "blue", "key 'spark.colour' = 'blue': Extra inputs are not permitted"),
    ],
)
def test_wrong_value_names_file_key_and_value(tmp_path: Path, key, value, message):
    path = write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"], **{key: value})
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def _contract_file(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((ROOT / "conf" / "partners" / "police_crimes.yaml").read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / "police_crimes.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reader.format": "xlsx"}, "key 'reader.format' = 'xlsx': Input should be 'csv', 'csv.gz'"),
        ({"reader.encoding": "klingon"}, "unknown encoding 'klingon'"),
        ({"events.coordinates.crs": "EPSG:2263"}, "unsupported CRS 'EPSG:2263'"),
        ({"events.timestamp.column": "When"}, "mapping uses columns not declared under 'columns': ['When']"),
        ({"events.id_column": "Case Number"}, "columns marked 'personal: drop' cannot be mapped"),
        ({"kind": "series"}, "kind 'series' needs a 'series' section"),
        ({"columns": [{"name": "ID"}, {"name": "batch_id"}]}, "columns ['batch_id'] clash with the lineage"),
    ],
)
def test_wrong_contract_value_is_explained(tmp_path: Path, change, message):
    with pytest.raises(ConfigError) as err:
        load_contract(_contract_file(tmp_path, **change))
    assert "police_crimes.yaml" in str(err.value)
    assert message in str(err.value)


def test_contract_category_must_be_canonical(tmp_path: Path):
    path = _contract_file(tmp_path, **{"events.category.map": {"THEFT": "stealing"}})
    with pytest.raises(ConfigError, match=r"maps to unknown categories \['stealing'\]"):
        load_contract(path, ["theft"])


def test_unknown_partner_is_refused_with_the_known_ones():
    settings = load_settings(ROOT / "conf" / "riskradar.yaml")
    with pytest.raises(ConfigError, match="partner 'fire_brigade' is not enabled.*police_crimes"):
        settings.contract("fire_brigade")
    with pytest.raises(UnsafeName):
        settings.contract("../etc")
