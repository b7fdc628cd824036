"""Config and contracts: valid files load; every wrong value names file, key, value and what is allowed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from builders import ROOT, write_config

from riskradar.config import StrictLoader, load_contract, load_settings
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
        ("study_area.bbox_wgs84", [10, 50, 5, 40], "in degrees: min lat 50 is not below max lat 40"),
        ("study_area.bbox_wgs84", [-87.9, 41.6, -87.5, 95], "in degrees: max lat 95 is outside [-90, 90]"),
        (
            "study_area.bbox_wgs84",
            [179.5, -17.0, -179.5, -16.0],
            "min lon 179.5 is east of max lon -179.5: a box across the antimeridian (180 degrees) is not",
        ),
        (
            "targets.burglary.categories",
            ["sanitation_complaint"],
            "names ['sanitation_complaint'], which no enabled contract maps",
        ),
        ("partners.enabled", ["police_crimes", "nope"], "'partners.enabled' names 'nope' but"),
        ("targets.burglary.categories", ["burglary", "jaywalking"], "unknown categories ['jaywalking']"),
        ("spark.colour", "blue", "key 'spark.colour' = 'blue': Extra inputs are not permitted"),
        ("governance.publication_category", "Hoog risico", "key 'governance.publication_category' = 'Hoog"),
        ("governance.contact", "nobody", "key 'governance.contact' = 'nobody': String should match pattern"),
        ("governance.purpose", {"nl": "alleen Nederlands"}, "key 'governance.purpose.en'"),
        ("governance.in_use_since", "2026-13", "key 'governance.in_use_since' = '2026-13'"),
        (
            "training.promotion_lower_end",
            -0.1,
            "key 'training.promotion_lower_end' = -0.1: Input should be greater than or equal to 0",
        ),
        (
            "training.promotion_lower_end",
            float("nan"),
            "key 'training.promotion_lower_end' = nan: Input should be a finite number",
        ),
        (
            "retention.counts_days",
            1000,
            "key 'retention.counts_days' = 1000: shorter than the retention_days of the events feed "
            "'police_crimes' (1825)",
        ),
    ],
)
def test_wrong_value_names_file_key_and_value(tmp_path: Path, key, value, message):
    path = write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"], **{key: value})
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_a_register_name_of_a_target_the_config_lacks_is_refused(tmp_path: Path):
    path = write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"])
    data = yaml.safe_load(path.read_text())
    data["governance"]["target_names"]["jaywalking"] = {"nl": "door rood lopen", "en": "jaywalking"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(
        ConfigError, match=r"key 'governance.target_names' names \['jaywalking'\], which are not"
    ):
        load_settings(path)


def test_police_data_of_the_dutch_example_fall_under_the_wpg():
    settings = load_settings(ROOT / "conf" / "examples" / "nl" / "riskradar.yaml")
    assert {n: c.privacy_law for n, c in settings.contracts.items()} == {
        "politie_bvh": "wpg",
        "gemeente_meldingen": "avg",
        "cbs_buurten": "avg",
        "cbs_kerncijfers": "avg",
    }


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
        ({"reader.format": "xls"}, "key 'reader.format' = 'xls': Input should be 'csv', 'csv.gz'"),
        ({"reader.encoding": "klingon"}, "unknown encoding 'klingon'"),
        ({"events.coordinates.crs": "EPSG:999999"}, "unsupported CRS 'EPSG:999999': PROJ does not know it"),
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


def test_a_contract_without_retention_days_is_refused(tmp_path: Path):
    """Nothing may be kept without a term: `riskradar retention` enforces each contract's."""
    path = _contract_file(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["retention_days"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="retention_days"):
        load_contract(path)


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


# --------------------------------------------------------------------------- duplicate keys


def _with_line_after(text: str, anchor: str, line: str) -> tuple[str, int]:
    """`text` with `line` inserted after the line `anchor`; returns it and the new line's number."""
    lines = text.splitlines(keepends=True)
    at = lines.index(anchor + "\n") + 1
    lines.insert(at, line + "\n")
    return "".join(lines), at + 1


def test_a_duplicated_key_in_the_pipeline_config_names_file_key_and_line(tmp_path: Path):
    path = write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"])
    text, line = _with_line_after(path.read_text(), "lake:", "  root: /somewhere/else")
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value) == (
        f"{path}: key 'lake.root' is given twice, at line {line} and again at line {line + 1}; "
        "YAML would silently keep the last value: keep one"
    )


def test_a_duplicated_top_level_key_is_refused(tmp_path: Path):
    path = write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"])
    text = path.read_text() + "city: rotterdam\n"
    path.write_text(text)
    with pytest.raises(
        ConfigError,
        match=rf"key 'city' is given twice, at line 1 and again at line "
        rf"{len(text.splitlines())};",
    ):
        load_settings(path)


@pytest.mark.parametrize(
    ("anchor", "line", "key", "lines_apart"),
    [
        ("    timezone: America/Chicago", "    timezone: Europe/Amsterdam", "events.timestamp.timezone", 1),
        ("      THEFT: theft", "      THEFT: burglary", "events.category.map.THEFT", 1),
        # a flow mapping inside a list: both `name`s are on the inserted line
        ("  - {name: Date}", "  - {name: Beat, name: Ward}", "columns.3.name", 0),
    ],
)
def test_a_duplicated_key_in_a_contract_is_refused_with_its_dotted_path(
    tmp_path: Path, anchor, line, key, lines_apart
):
    text, at = _with_line_after((ROOT / "conf" / "partners" / "police_crimes.yaml").read_text(), anchor, line)
    contracts = tmp_path / "partners"
    contracts.mkdir()
    (contracts / "police_crimes.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_contract(contracts / "police_crimes.yaml")
    assert str(err.value) == (
        f"{contracts / 'police_crimes.yaml'}: key '{key}' is given twice, at line {at - lines_apart} "
        f"and again at line {at}; YAML would silently keep the last value: keep one"
    )
    # and through the pipeline config, which loads every enabled contract
    path = write_config(
        tmp_path, landing=tmp_path, enabled=["police_crimes"], **{"partners.contracts_dir": str(contracts)}
    )
    with pytest.raises(ConfigError, match=rf"police_crimes.yaml: key '{key}' is given twice"):
        load_settings(path)


def test_the_strict_loader_reads_everything_else_as_safe_load_does():
    for path in [ROOT / "conf" / "riskradar.yaml", *sorted((ROOT / "conf" / "partners").glob("*.yaml"))]:
        text = path.read_text()
        assert yaml.load(text, Loader=StrictLoader) == yaml.safe_load(text), path
    # keys merged in from an anchor may be overridden; that is not a duplicate
    text = "base: &b {a: 1, b: 2}\nfeed:\n  <<: *b\n  a: 3\n"
    assert yaml.load(text, Loader=StrictLoader) == {"base": {"a": 1, "b": 2}, "feed": {"a": 3, "b": 2}}
    # keys that read as the same value are the same key
    with pytest.raises(yaml.YAMLError, match="key 'off' at line 2 repeats line 1"):
        yaml.load("false: 1\noff: 2\n", Loader=StrictLoader)
    with pytest.raises(yaml.constructor.ConstructorError):  # still a SafeLoader
        yaml.load("x: !!python/object/apply:os.system ['true']\n", Loader=StrictLoader)


# --------------------------------------------------------------------------- local roots only


OBJECT_STORES = [
    "s3a://bucket/lake",
    "s3://bucket/lake",
    "gs://bucket/lake",
    "abfss://lake@account.dfs.core.windows.net/riskradar",
    "hdfs://namenode:8020/lake",
    "s3a:/bucket/lake",
    "file://fileserver/share/lake",  # a file URI with a host is not a local path
]


@pytest.mark.parametrize("value", OBJECT_STORES)
@pytest.mark.parametrize("key", ["lake.root", "partners.landing_root"])
def test_object_store_roots_are_refused_with_the_reason(tmp_path: Path, monkeypatch, key, value):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path, landing=tmp_path / "landing", enabled=["police_crimes"], **{key: value})
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert message.startswith(f"{path}: key '{key}' = {value!r}: ")
    reason = "atomic folder renames and a lock file" if key == "lake.root" else "a regular file inside"
    assert reason in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]  # no local 's3a:' folder


def test_the_lake_reason_says_what_object_stores_need(tmp_path: Path):
    path = write_config(
        tmp_path, landing=tmp_path, enabled=["police_crimes"], **{"lake.root": "s3a://b/lake"}
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value) == (
        f"{path}: key 'lake.root' = 's3a://b/lake': s3a: URIs are not supported: publishing relies on "
        "atomic folder renames and a lock file, which object stores do not provide; an object store "
        "needs a table format with atomic commits (Delta Lake, Iceberg), which the lake does not "
        "support yet. Use a local folder, a file system every node mounts (NFS), or file:///absolute/path"
    )


def test_an_object_store_lake_from_the_environment_is_refused(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RISKRADAR_LAKE", "s3a://b/lake")
    path = write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"])
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).startswith(
        f"environment variable RISKRADAR_LAKE (overrides {path}): key 'lake.root' = 's3a://b/lake': "
        "s3a: URIs are not supported: publishing relies on atomic folder renames"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]


def test_file_uris_are_local_paths(tmp_path: Path, monkeypatch):
    landing = tmp_path / "landing area"
    (landing / "police_crimes").mkdir(parents=True)
    path = write_config(
        tmp_path,
        landing=landing,
        enabled=["police_crimes"],
        **{"lake.root": (tmp_path / "the lake").as_uri(), "partners.landing_root": landing.as_uri()},
    )
    settings = load_settings(path)
    assert settings.lake_root == tmp_path / "the lake"
    assert settings.landing_dir(settings.contract("police_crimes")) == landing / "police_crimes"
    monkeypatch.setenv("RISKRADAR_LAKE", "file:///srv/riskradar/lake")
    assert load_settings(path).lake_root == Path("/srv/riskradar/lake")


# --------------------------------------------------------------------------- paths stay in their roots


def _settings_with_contract(tmp_path: Path, landing: Path, **changes) -> tuple[Path, Path]:
    """A pipeline config whose police contract (under tmp_path) has `changes`; returns both paths."""
    contract = _contract_file(tmp_path, **changes)
    path = write_config(
        tmp_path, landing=landing, enabled=["police_crimes"], **{"partners.contracts_dir": str(tmp_path)}
    )
    return path, contract


@pytest.mark.parametrize("value", ["../../../etc", "/etc", "police_crimes/../../outside", ".."])
def test_a_landing_path_that_leaves_the_landing_root_is_refused(tmp_path: Path, value):
    landing = tmp_path / "landing"
    (landing / "police_crimes").mkdir(parents=True)
    path, contract = _settings_with_contract(tmp_path, landing, **{"landing.path": value})
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).startswith(
        f"{contract}: key 'landing.path' = {value!r}: must name a folder inside {landing} "
        f"(partners.landing_root of {path}), but resolves to "
    )


def test_a_landing_folder_that_is_a_symlink_out_of_the_root_is_refused(tmp_path: Path):
    landing, outside = tmp_path / "landing", tmp_path / "outside"
    landing.mkdir()
    outside.mkdir()
    (landing / "police_crimes").symlink_to(outside, target_is_directory=True)
    path, contract = _settings_with_contract(tmp_path, landing)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value) == (
        f"{contract}: key 'landing.path' = 'police_crimes': must name a folder inside {landing} "
        f"(partners.landing_root of {path}), but resolves to {outside}"
    )


def test_landing_dir_is_resolved_and_checked_on_every_call(tmp_path: Path):
    landing, outside = tmp_path / "landing", tmp_path / "outside"
    (landing / "deliveries" / "police").mkdir(parents=True)
    outside.mkdir()
    (landing / "police_crimes").symlink_to(landing / "deliveries" / "police")  # stays inside: fine
    path, contract = _settings_with_contract(tmp_path, landing)
    settings = load_settings(path)
    police = settings.contract("police_crimes")
    assert settings.landing_dir(police) == landing / "deliveries" / "police"
    (landing / "police_crimes").unlink()
    (landing / "police_crimes").symlink_to(outside)  # swapped after the config was loaded
    with pytest.raises(
        ConfigError, match=rf"key 'landing.path' = 'police_crimes': .* resolves to {outside}$"
    ):
        settings.landing_dir(police)


@pytest.mark.parametrize("value", ["../../../etc/passwd", "/etc/passwd", "sub/../../police_crimes.yaml", "."])
def test_an_expectation_suite_outside_the_expectations_dir_is_refused(tmp_path: Path, value):
    path, contract = _settings_with_contract(tmp_path, tmp_path, expectation_suite=value)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    expectations = ROOT / "expectations"
    assert str(err.value).startswith(
        f"{contract}: key 'expectation_suite' = {value!r}: must name a file inside {expectations} "
        f"(expectations_dir of {path}), but resolves to "
    )


def test_suite_paths_are_resolved_inside_the_expectations_dir(tmp_path: Path):
    settings = load_settings(ROOT / "conf" / "riskradar.yaml")
    assert settings.suite_path(settings.contract("weather")) == ROOT / "expectations" / "weather.json"
    assert settings.suite_path_for("gold_scores.json") == ROOT / "expectations" / "gold_scores.json"
    with pytest.raises(ConfigError, match=r"the suite '../conf/riskradar.yaml': must name a file inside"):
        settings.suite_path_for("../conf/riskradar.yaml")


# --------------------------------------------------------------------------- event time policy


def test_event_time_policy_is_read_from_the_contracts():
    settings = load_settings(ROOT / "conf" / "riskradar.yaml")
    police = settings.contract("police_crimes").events.timestamp
    sanitation = settings.contract("sanitation_311").events.timestamp
    assert (police.nonexistent, police.ambiguous, police.earliest) == (
        "shift_forward",
        "earlier",
        date(2001, 1, 1),
    )
    assert (sanitation.nonexistent, sanitation.ambiguous, sanitation.earliest) == (
        "shift_forward",
        "earlier",
        date(1999, 1, 1),
    )


def test_event_time_policy_defaults_to_what_spark_does(tmp_path: Path):
    timestamp = {"column": "Date", "format": "MM/dd/yyyy hh:mm:ss a", "timezone": "America/Chicago"}
    spec = load_contract(_contract_file(tmp_path, **{"events.timestamp": timestamp})).events.timestamp
    assert (spec.nonexistent, spec.ambiguous, spec.earliest) == ("shift_forward", "earlier", date(1970, 1, 1))
    changed = {**timestamp, "nonexistent": "quarantine", "ambiguous": "later", "earliest": "2010-06-01"}
    spec = load_contract(_contract_file(tmp_path, **{"events.timestamp": changed})).events.timestamp
    assert (spec.nonexistent, spec.ambiguous, spec.earliest) == ("quarantine", "later", date(2010, 6, 1))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"events.timestamp.nonexistent": "skip"},
            "key 'events.timestamp.nonexistent' = 'skip': Input should be 'shift_forward' or 'quarantine'",
        ),
        (
            {"events.timestamp.ambiguous": "first"},
            "key 'events.timestamp.ambiguous' = 'first': Input should be 'earlier', 'later' or 'quarantine'",
        ),
        (
            {"events.timestamp.earliest": "long ago"},
            "key 'events.timestamp.earliest' = 'long ago': Input should",
        ),
    ],
)
def test_a_wrong_event_time_policy_is_explained(tmp_path: Path, change, message):
    path = _contract_file(tmp_path, **change)
    with pytest.raises(ConfigError) as err:
        load_contract(path)
    assert str(err.value).startswith(f"{path}: {message}")


# --------------------------------------------------------------------------- calendar and roles

ALL_FEEDS = ["police_crimes", "sanitation_311", "weather", "census_indicators", "census_areas"]


def test_the_committed_config_names_its_roles_and_calendar():
    settings = load_settings(ROOT / "conf" / "riskradar.yaml")
    roles = settings.roles
    assert roles.area_boundaries.feed == "census_areas"
    assert (roles.area_indicators.feed, roles.area_indicators.exposure_strata) == (
        "census_indicators",
        "hardship_index",
    )
    assert {n: (m.measure, m.aggregate, m.scale) for n, m in roles.weather.weekly.items()} == {
        "temp_max_c": ("temperature_max_c", "mean", 1.0),
        "precip_mm": ("precip_intensity_mm_h", "sum", 24.0),
    }
    calendar = settings.features.calendar
    assert (calendar.country, calendar.subdivision, calendar.extra_dates) == ("US", None, [])


def test_a_city_without_the_roles_feeds_loads_without_its_roles(tmp_path: Path):
    settings = load_settings(write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"]))
    assert settings.roles.model_dump() == {"area_boundaries": None, "area_indicators": None, "weather": None}


def test_the_committed_config_sets_the_long_run_families():
    f = load_settings(ROOT / "conf" / "riskradar.yaml").features
    assert (f.windows_weeks[-1], f.decay_half_lives_weeks, f.all_history) == (104, [1, 4, 13, 26, 52], True)
    assert (f.last_year.lag_weeks, f.last_year.half_width_weeks) == (52, 2)
    assert f.near_repeat.model_dump() == {"max_weeks": 52, "half_lives_weeks": [1.0], "groups": []}
    assert f.kde.model_dump() == {
        "bandwidths_m": [150.0, 300.0, 600.0],
        "truncate_sigmas": 2.0,
        "groups": ["all_crime"],
        "windows_weeks": [52],
    }


def test_the_long_run_families_are_off_unless_configured(tmp_path: Path):
    path = write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"])
    data = yaml.safe_load(path.read_text())
    for key in ("all_history", "last_year", "near_repeat", "kde"):
        del data["features"][key]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    f = load_settings(path).features
    assert (f.all_history, f.last_year, f.near_repeat, f.kde) == (False, None, None, None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"features.last_year": {"lag_weeks": 2, "half_width_weeks": 2}},
            "key 'features.last_year.half_width_weeks' = 2: Value error, must be less than lag_weeks (2): "
            "the window must end before week t",
        ),
        (
            {"features.last_year.half_width_weeks": -1},
            "key 'features.last_year.half_width_weeks' = -1: Input should be greater than or equal to 0",
        ),
        (
            {"features.last_year.lag_weeks": 0},
            "key 'features.last_year.lag_weeks' = 0: Input should be greater",
        ),
        (
            {"features.near_repeat.max_weeks": 0},
            "key 'features.near_repeat.max_weeks' = 0: Input should be greater than or equal to 1",
        ),
        (
            {"features.near_repeat.half_lives_weeks": [1, 0]},
            "key 'features.near_repeat.half_lives_weeks' = [1, 0]: Value error, half-lives must be > 0 weeks",
        ),
        (
            {"features.decay_half_lives_weeks": [-4]},
            "key 'features.decay_half_lives_weeks' = [-4]: Value error, half-lives must be > 0 weeks",
        ),
        (
            {"features.near_repeat.groups": ["violence", "nope"]},
            "key 'features.near_repeat.groups.1' = 'nope': not a category group (allowed: property, violence",
        ),
        (
            {"features.near_repeat.groups": ["burglary"]},
            "key 'features.near_repeat.groups.0' = 'burglary': also a target, which gets the weeks since "
            "its last event already",
        ),
        (
            {"features.kde.groups": ["nope"]},
            "key 'features.kde.groups.0' = 'nope': not a category group (allowed: property, violence",
        ),
        (
            {"features.kde.bandwidths_m": [50, 300]},
            "key 'features.kde.bandwidths_m' = 50: must be at least half a cell (75 m with "
            "'grid.cell_size_m' 150)",
        ),
        (
            {"features.kde.bandwidths_m": [1500]},
            "key 'features.kde.bandwidths_m' = 1500: reaches 20 cells of 150 m at "
            "'features.kde.truncate_sigmas' 2; at most 16",
        ),
        (
            {"features.kde.bandwidths_m": [0]},
            "key 'features.kde.bandwidths_m' = [0]: Value error, bandwidths must be > 0 metres",
        ),
        (
            {"features.kde.truncate_sigmas": 0},
            "key 'features.kde.truncate_sigmas' = 0: Input should be greater than 0",
        ),
        (
            {"features.kde.windows_weeks": [0]},
            "key 'features.kde.windows_weeks' = [0]: Value error, weeks must be >= 1",
        ),
        (
            {"features.all_history": "sometimes"},
            "key 'features.all_history' = 'sometimes': Input should be a valid boolean",
        ),
    ],
)
def test_a_wrong_long_run_setting_names_file_key_value_and_what_is_allowed(tmp_path: Path, changes, message):
    assert message in _refused(tmp_path, changes)


def _refused(tmp_path: Path, changes: dict) -> str:
    """The message a config with `changes` is refused with; it starts with the file."""
    path = write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"], **changes)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).startswith(f"{path}: ")
    return str(err.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"features.calendar.country": "XX"},
            "key 'features.calendar.country' = 'XX': Value error, not a country of the holidays package; "
            "allowed: one of its",
        ),
        (
            {"features.calendar.subdivision": "ZZ"},
            "key 'features.calendar.subdivision' = 'ZZ': Value error, not a subdivision of US in the "
            "holidays package; allowed: AK, AL, AR",
        ),
        (
            {"features.calendar": {"country": "NL", "subdivision": "IL"}},
            "key 'features.calendar.subdivision' = 'IL': Value error, not a subdivision of NL",
        ),
        (
            {"features.calendar.extra_dates": ["2016-13-01"]},
            "key 'features.calendar.extra_dates.0' = '2016-13-01'",
        ),
    ],
)
def test_a_wrong_calendar_names_file_key_value_and_what_is_allowed(tmp_path: Path, changes, message):
    error = _refused(tmp_path, changes)
    assert message in error
    if "country" in changes:
        assert "NL, NO" in error  # the codes are listed


@pytest.mark.parametrize(
    ("enabled", "changes", "message"),
    [
        (
            ["police_crimes", "census_indicators"],
            {
                "roles.weather": {
                    "feed": "weather",
                    "weekly": {"t": {"measure": "temperature_max_c", "aggregate": "mean"}},
                }
            },
            "key 'roles.weather.feed' = 'weather': not an enabled feed (enabled: police_crimes, "
            "census_indicators); enable it under 'partners.enabled' or leave the role out",
        ),
        (
            ALL_FEEDS,
            {"roles.area_boundaries.feed": "census_indicators"},
            "key 'roles.area_boundaries.feed' = 'census_indicators': its contract "
            f"{ROOT / 'conf' / 'partners' / 'census_indicators.yaml'} is of kind 'area_attributes'; the role "
            "area_boundaries needs a feed of kind 'area_boundaries'",
        ),
        (
            ALL_FEEDS,
            {"roles.weather.feed": "police_crimes"},
            "key 'roles.weather.feed' = 'police_crimes': its contract",
        ),
        (
            ALL_FEEDS,
            {"roles.weather.weekly.temp_max_c.measure": "temperature_min_c"},
            "key 'roles.weather.weekly.temp_max_c.measure' = 'temperature_min_c': not among the measures "
            "of the feed 'weather' (allowed: temperature_max_c, precip_intensity_mm_h, wind_speed_m_s, "
            "humidity)",
        ),
        (
            ALL_FEEDS,
            {"roles.weather.weekly.temp_max_c.aggregate": "median"},
            "key 'roles.weather.weekly.temp_max_c.aggregate' = 'median': Input should be 'mean', 'sum', "
            "'min' or 'max'",
        ),
        (
            ALL_FEEDS,
            {"roles.weather.weekly": {}},
            "key 'roles.weather.weekly': Dictionary should have at least 1 item",
        ),
        (
            ALL_FEEDS,
            {"roles.area_indicators.exposure_strata": "population"},
            "key 'roles.area_indicators.exposure_strata' = 'population': not among the indicators of the "
            "feed 'census_indicators' (allowed: pct_housing_crowded,",
        ),
        (
            ALL_FEEDS,
            {"roles.area_indicators.indicators": ["per_capita_income", "median_age"]},
            "key 'roles.area_indicators.indicators.1' = 'median_age': not among the indicators",
        ),
        (
            ALL_FEEDS,
            {"roles.area_indicators.indicators": ["per_capita_income"]},
            "key 'roles.area_indicators.exposure_strata' = 'hardship_index': not among the indicators of the "
            "feed 'census_indicators' (allowed: per_capita_income)",
        ),
        (
            ALL_FEEDS,
            {"roles.census": {"feed": "census_indicators"}},
            "key 'roles.census': Extra inputs are not permitted",
        ),
        (
            ALL_FEEDS,
            {"study_area.boundaries_feed": "census_areas"},
            "key 'study_area.boundaries_feed' is no longer read: use 'roles.area_boundaries.feed'",
        ),
        (
            ALL_FEEDS,
            {"features.holidays": ["2014-01-01"]},
            "key 'features.holidays' is no longer read: use 'features.calendar'",
        ),
    ],
)
def test_a_wrong_role_names_file_key_value_and_what_is_allowed(tmp_path: Path, enabled, changes, message):
    path = write_config(tmp_path, landing=tmp_path, enabled=enabled, **changes)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"training.tuning.blend_weights": [0.5, 1.5]},
            "key 'training.tuning.blend_weights' = [0.5, 1.5]: Value error, blend weights must be in [0, 1]",
        ),
        (
            {"training.tuning.validation_weeks": 1},
            "key 'training.tuning.validation_weeks' = 1: Input should be greater than or equal to 2",
        ),
        ({"training.tuning.grid": []}, "key 'training.tuning.grid' = []: List should have at least 1 item"),
        (
            {"training.max_history_weeks": 0},
            "key 'training.max_history_weeks' = 0: Input should be greater than or equal to 1",
        ),
        (
            {"training.study.refit_every_weeks": 0},
            "key 'training.study.refit_every_weeks' = 0: Input should be greater than or equal to 1",
        ),
        (
            {"training.study.learning_curve_weeks": []},
            "key 'training.study.learning_curve_weeks' = []: List should have at least 1 item",
        ),
    ],
)
def test_a_wrong_tuning_or_study_setting_names_its_key_and_value(tmp_path: Path, changes, message):
    assert message in _refused(tmp_path, changes)


def test_the_bundled_city_tunes_blends_and_caps_the_history(tmp_path: Path):
    training = load_settings(ROOT / "conf" / "riskradar.yaml").training
    assert training is not None and training.tuning is not None
    assert training.max_history_weeks == 156 and "poisson_glm" not in training.candidates
    assert 0.0 not in training.tuning.blend_weights  # a blend is always partly the learned model
    assert training.study.learning_curve_weeks == [26, 52, 78]
