"""Human oversight: `riskradar score --off` stops scoring a target, whatever the registry's
aliases say, until `--on`; a refused or skipped target never reaches Spark (these tests start
none: scoring is refused before the session, and the champion is registered without a training)."""

from __future__ import annotations

import getpass
import re

import pytest
from builders import ROOT, registered_champion

from riskradar.audit import read_audit
from riskradar.cli import main
from riskradar.lake import Lake
from riskradar.registry import SCORING_OFF, scoring_off


def _score(champion, *args: str) -> int:
    return main(["score", "--target", "burglary", *args, "--config", str(champion.config)])


def _client(champion):
    from mlflow import MlflowClient

    return MlflowClient(champion.uri)


def test_scoring_switched_off_is_refused_naming_why_and_how_to_switch_it_on(champion, capsys):
    assert _score(champion, "--off", "--reason", "under review after a complaint") == 0
    assert _score(champion) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"riskradar score: error: scoring of 'burglary' is switched off \(\d{4}-\d{2}-\d{2} by "
        + re.escape(getpass.getuser())
        + r": under review after a complaint\); the champion of riskradar-burglary stays as it is: "
        r"`riskradar score --target burglary --on` switches scoring back on",
        error,
    ), error
    client = _client(champion)
    assert (
        str(client.get_model_version_by_alias("riskradar-burglary", "champion").version) == champion.version
    )
    switched, refused = read_audit(Lake(champion.lake))
    assert (switched["arguments"]["switch"], switched["status"]) == ("off", "succeeded")
    assert (refused["status"], refused["error_type"]) == ("failed", "ScoringOff")


def test_the_weekly_run_skips_it_even_after_a_new_champion(champion, tmp_path):
    assert _score(champion, "--off", "--reason", "paused") == 0
    # the next training promotes another version: the switch is on the model, not on a version
    version, _ = registered_champion(champion.uri, tmp_path / "artifacts", "burglary")
    assert version != champion.version
    assert _score(champion, "--skip-without-champion") == 0
    skipped = read_audit(Lake(champion.lake))[-1]
    assert skipped["status"] == "succeeded"
    assert skipped["notes"][0].startswith("skipped: scoring of 'burglary' is switched off (")
    assert not (champion.lake / "gold" / "scores").exists()


def test_on_switches_scoring_back_on(champion):
    client = _client(champion)
    assert _score(champion, "--off", "--reason", "paused") == 0
    assert scoring_off(client, "riskradar-burglary").endswith(f"by {getpass.getuser()}: paused")
    assert _score(champion, "--on") == 0
    assert scoring_off(client, "riskradar-burglary") is None
    assert SCORING_OFF not in client.get_registered_model("riskradar-burglary").tags
    records = read_audit(Lake(champion.lake))
    assert [r["arguments"]["switch"] for r in records] == ["off", "on"]


def test_off_needs_a_reason():
    with pytest.raises(SystemExit) as exit_:
        main(["score", "--target", "burglary", "--off", "--config", str(ROOT / "conf" / "riskradar.yaml")])
    assert exit_.value.code == 2
