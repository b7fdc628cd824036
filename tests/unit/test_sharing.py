"""Data-sharing agreements are validated like the partner contracts (each error names the file and
the key), judged at a moment (in force, expired, revoked, not yet, embargo), and cut the scores
to exactly what they allow: pure functions, tiny frames."""

from __future__ import annotations

import base64
import hmac
import re
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from builders import CITY, POLICE, ROOT, write_agreements, write_config

from reports.exports import spreadsheet_safe
from reports.sharing import (
    area_table,
    cell_table,
    int_at_least,
    package_suite,
    shown_count_regex,
    table_columns,
    to_package_csv,
)
from riskradar.config import load_settings
from riskradar.errors import ConfigError
from riskradar.sharedb import scram_verifier
from riskradar.sharing import agreement_status, deliverable_from, load_agreement, load_agreements


@pytest.fixture
def settings(tmp_path):
    path = write_config(
        tmp_path,
        landing=tmp_path,
        enabled=["police_crimes", "census_areas"],
        **{"roles.area_boundaries": {"feed": "census_areas", "level": "community_area"}},
    )
    return load_settings(path)


def _load(settings, tmp_path, body: dict, name: str = "police"):
    write_agreements(tmp_path / "sharing", **{name: body})
    return load_agreement(settings, tmp_path / "sharing" / f"{name}.yaml")


def test_the_example_agreements_load_for_both_example_deployments():
    chicago = load_agreements(load_settings(ROOT / "conf" / "riskradar.yaml"))
    assert {n: (a.granularity, a.area_level) for n, a in chicago.items()} == {
        "police": ("cell", None),
        "city": ("area", "community_area"),
        "emergency_services": ("area", "community_area"),
    }
    assert (chicago["city"].min_count_shown, chicago["emergency_services"].embargo_days) == (10, 7)
    dutch = load_agreements(load_settings(ROOT / "conf" / "examples" / "nl" / "riskradar.yaml"))
    assert {n: (a.granularity, a.area_level) for n, a in dutch.items()} == {
        "politie": ("cell", None),
        "gemeente": ("area", "buurt"),
        "veiligheidsregio": ("area", "wijk"),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, r"key 'colour' = 'red': Extra inputs are not permitted"),
        (
            {"columns": ["cell_id", "event_id"]},
            r"key '\(top level\)'.*\['event_id'\] cannot be delivered at granularity 'cell'",
        ),
        ({"targets": ["burglary", "arson"]}, r"key 'targets.1' = 'arson': not a target of"),
        (
            {"min_count_shown": 3},
            r"key 'min_count_shown' = 3: must be at least the pipeline's scoring.min_count_shown \(5\)",
        ),
        ({"min_count_shown": 10}, r"names 'drivers' with min_count_shown 10"),
        ({"valid_until": "2012-01-01"}, r"valid_until 2012-01-01 is before valid_from 2013-01-01"),
        ({"granularity": "area", "columns": ["area_code"]}, r"granularity 'area' needs area_level"),
        ({"area_level": "buurt"}, r"area_level is for granularity 'area'"),
        ({"formats": ["csv", "pdf"]}, r"key 'formats.1' = 'pdf'"),
        ({"columns": ["cell_id", "rank", "rank"]}, r"listed twice: \['rank'\]"),
        ({"database": {"password_env": "X"}}, r"key 'database' is set, but .* names no sharing database"),
        ({"name": "other"}, r"key 'name': not an agreement key"),
    ],
)
def test_a_wrong_agreement_names_the_file_and_the_key(settings, tmp_path, change, message):
    with pytest.raises(ConfigError, match=rf"police.yaml: .*{message}"):
        _load(settings, tmp_path, {**POLICE, **change})


def test_an_area_agreement_names_a_level_the_boundaries_have(settings, tmp_path):
    assert _load(settings, tmp_path, CITY, "city").area_level == "community_area"
    with pytest.raises(ConfigError, match=r"key 'area_level' = 'wijk': not a level of .*community_area"):
        _load(settings, tmp_path, {**CITY, "area_level": "wijk"}, "city")
    no_areas = load_settings(write_config(tmp_path / "x", landing=tmp_path, enabled=["police_crimes"]))
    with pytest.raises(ConfigError, match=r"key 'granularity' = 'area': .* has no area boundaries"):
        _load(no_areas, tmp_path, CITY, "city")


def test_a_level_made_of_codes_has_no_names_to_deliver(tmp_path):
    nl = load_settings(ROOT / "conf" / "examples" / "nl" / "riskradar.yaml")
    wijk = {**CITY, "targets": ["burglary"], "area_level": "wijk"}
    with pytest.raises(ConfigError, match=r"the level 'wijk' is made from area codes and has no names"):
        _load(nl, tmp_path, wijk, "regio")
    assert _load(nl, tmp_path, {**wijk, "columns": ["area_code", "rank"]}, "regio").area_level == "wijk"


def test_an_agreement_is_judged_at_a_moment(settings, tmp_path):
    body = {**POLICE, "valid_from": "2026-01-01", "valid_until": "2026-12-31", "embargo_days": 7}
    agreement = _load(settings, tmp_path, body)
    at = [
        datetime(2025, 12, 31, tzinfo=UTC),
        datetime(2026, 6, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    ]
    assert [agreement_status(agreement, t)[0] for t in at] == ["not_yet_valid", "active", "expired"]
    revoked = _load(
        settings, tmp_path, {**body, "revoked": {"on": "2026-05-01", "reason": "ended by the board"}}
    )
    assert agreement_status(revoked, at[1]) == ("revoked", "revoked on 2026-05-01: ended by the board")
    assert deliverable_from(agreement, date(2026, 6, 1)) == date(2026, 6, 8)


@pytest.mark.parametrize("k", [1, 5, 9, 10, 19, 20, 99, 100, 123])
def test_the_count_regexes_admit_exactly_the_numbers_at_least_k(k):
    whole = re.compile(rf"^{int_at_least(k)}$")
    assert [n for n in range(0, 1200) if bool(whole.match(str(n))) != (n >= k)] == []
    shown = re.compile(shown_count_regex(k))
    assert shown.match(f"<{k}") and not shown.match(f"<{k + 1}") and not shown.match("0")
    assert bool(shown.match(f"{k - 1}.9")) is False and shown.match(f"{k}.5") and not shown.match(f"0{k}")


def test_formulas_in_partner_text_open_as_text():
    assert [spreadsheet_safe(v) for v in ["=HYPERLINK(1)", "@SUM(1)", "+1", "-cmd", "\tx", "Loop"]] == [
        "'=HYPERLINK(1)",
        "'@SUM(1)",
        "'+1",
        "'-cmd",
        "'\tx",
        "Loop",
    ]
    assert [spreadsheet_safe(v) for v in ["-12_40", "-3.5", 7, None]] == ["-12_40", "-3.5", 7, None]


SCORES = pd.DataFrame(
    {
        "cell_id": ["1_0", "2_0", "3_0"],
        "polygon_wkt": ["POLYGON((0 0,1 0,1 1,0 1,0 0))"] * 3,
        "area_code": ["7", "7", "8"],
        "area_name": ["=cmd", "=cmd", "South"],
        "expected_count": [6.0, 0.5, 2.0],
        "rank": [1, 3, 2],
        "percentile": [100.0, 33.3, 66.7],
        "hotspot": [True, False, False],
        "driver_1": ["a", "b", "c"],
        "driver_1_detail": ["x", "y", "z"],
        "target": ["burglary"] * 3,
        "week": [date(2014, 12, 29)] * 3,
    }
)


def test_a_cell_package_has_the_agreed_rows_columns_and_k(settings, tmp_path):
    agreement = _load(
        settings,
        tmp_path,
        {**POLICE, "rows": "hotspots", "columns": ["cell_id", "expected_count", "area_name"]},
    )
    table = cell_table(SCORES, agreement, drivers=1)
    assert table.to_dict("records") == [
        {
            "target": "burglary",
            "week": "2014-12-29",
            "cell_id": "1_0",
            "expected_count": "6",
            "area_name": "'=cmd",
        }
    ]
    every = _load(settings, tmp_path, {**POLICE, "columns": ["cell_id", "rank", "drivers"]})
    table = cell_table(SCORES, every, drivers=1)
    assert (
        list(table.columns)
        == table_columns(every, 1)
        == ["target", "week", "cell_id", "rank", "driver_1", "driver_1_detail"]
    )
    assert table["cell_id"].tolist() == ["1_0", "3_0", "2_0"]  # by rank


def test_an_area_package_ranks_areas_and_shows_counts_at_its_k(settings, tmp_path):
    agreement = _load(
        settings, tmp_path, {**CITY, "columns": ["area_code", "rank", "expected_count", "geometry"]}, "city"
    )
    areas = pd.DataFrame(
        {"area_code": ["7", "8", None], "area_name": ["N", "S", None], "expected_count": [6.5, 12.25, 3.0]}
    )
    outlines = {"7": "POLYGON((0 0,2 0,2 2,0 0))", "8": "POLYGON((5 5,6 5,6 6,5 5))"}
    table = area_table(areas, agreement, outlines=outlines, target="burglary", week=date(2014, 12, 29))
    assert table.to_dict("records") == [
        {
            "target": "burglary",
            "week": "2014-12-29",
            "area_code": "8",
            "rank": 1,
            "expected_count": "12.2",
            "geometry": outlines["8"],
        },
        {
            "target": "burglary",
            "week": "2014-12-29",
            "area_code": "7",
            "rank": 2,
            "expected_count": "<10",
            "geometry": outlines["7"],
        },
    ]  # the cells outside every area are not an area of the level
    csv = to_package_csv({"burglary": table})
    assert csv.splitlines()[0] == "target,week,area_code,rank,expected_count,geometry"


def test_the_package_suite_states_the_agreement(settings, tmp_path):
    agreement = _load(settings, tmp_path, CITY, "city")
    suite = package_suite(agreement, date(2014, 12, 29), drivers=3, area_code_pattern="^[0-9]+$")
    kinds = {(e["type"], e["kwargs"].get("column")): e["kwargs"] for e in suite["expectations"]}
    assert kinds[("expect_table_columns_to_match_set", None)]["column_set"] == [
        "target",
        "week",
        *CITY["columns"],
    ]
    assert kinds[("expect_column_values_to_be_in_set", "week")]["value_set"] == ["2014-12-29"]
    assert kinds[("expect_column_values_to_match_regex", "expected_count")]["regex"] == shown_count_regex(10)
    assert kinds[("expect_column_values_to_match_regex", "area_code")]["regex"] == "^[0-9]+$"


def test_a_role_password_reaches_the_server_as_a_scram_verifier():
    """RFC 7677's exchange (user "user", password "pencil"): the server signature computed from
    our verifier's ServerKey is the one the RFC gives; the password itself is not in it."""
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt=salt, iterations=4096)
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    assert (method, iterations_salt) == ("SCRAM-SHA-256", "4096:W22ZaJ0SNY7soEsUEjb6gQ==")
    server_key = base64.b64decode(keys.split(":")[1])
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
    signature = hmac.new(server_key, auth.encode(), "sha256").digest()
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert "pencil" not in verifier
