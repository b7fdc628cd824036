"""`riskradar register processing | algorithm` through the CLI: what each writes, where, and
what it refuses. The algorithm entry reads a champion registered without a training (no Spark)."""

from __future__ import annotations

import json

import pytest
from builders import CHAMPION_METRICS, EXPOSURE, ROOT

from jobs import register
from reports.algorithm_register import check_entry
from reports.processing_register import processing_markdown, processing_register
from riskradar.audit import read_audit
from riskradar.cli import main
from riskradar.config import load_settings
from riskradar.lake import Lake
from riskradar.sharing import load_agreements

CONFIGS = [ROOT / "conf" / "riskradar.yaml", ROOT / "conf" / "examples" / "nl" / "riskradar.yaml"]


@pytest.mark.parametrize("config", CONFIGS, ids=["bundled", "nl"])
def test_register_processing_writes_json_for_tools_and_markdown_for_people(config, tmp_path, monkeypatch):
    monkeypatch.setenv("RISKRADAR_LAKE", str(tmp_path / "lake"))
    assert main(["register", "processing", "--config", str(config)]) == 0
    folder = tmp_path / "lake" / "reports" / "register"
    written = json.loads((folder / "processing.json").read_text(encoding="utf-8"))
    settings = load_settings(config)
    assert written == processing_register(settings, load_agreements(settings))
    assert (folder / "processing.md").read_text(encoding="utf-8") == processing_markdown(written)
    (record,) = read_audit(Lake(tmp_path / "lake"))
    assert (record["job"], record["status"], record["counts"]) == (
        "register",
        "succeeded",
        {"feeds": len(settings.contracts)},
    )


def _entry(champion, target: str = "burglary") -> dict:
    return json.loads((champion.lake / "reports" / "register" / "algorithm" / f"{target}.json").read_text())


def test_register_algorithm_writes_the_champions_entry_to_the_lake_and_to_its_run(champion):
    from mlflow import MlflowClient

    assert main(["register", "algorithm", "--target", "burglary", "--config", str(champion.config)]) == 0
    entry = _entry(champion)
    assert check_entry(entry) == []
    assert (entry["model"]["name"], entry["model"]["version"], entry["model"]["run_id"]) == (
        "riskradar-burglary",
        champion.version,
        champion.run_id,
    )
    assert entry["performance"]["metrics"] == CHAMPION_METRICS and entry["exposure"] == EXPOSURE
    markdown = (champion.lake / "reports" / "register" / "algorithm" / "burglary.md").read_text()
    assert markdown.startswith(f"# Algoritmeregister: riskradar-burglary v{champion.version}\n")
    client = MlflowClient(champion.uri)
    logged = [a.path for a in client.list_artifacts(champion.run_id, "register")]
    assert logged == ["register/burglary.json", "register/burglary.md"]
    copy = client.download_artifacts(champion.run_id, "register/burglary.json", str(champion.lake.parent))
    assert json.loads(open(copy, encoding="utf-8").read()) == entry


def test_a_target_without_a_champion_is_named_and_the_others_still_get_their_entry(champion, capsys):
    assert main(["register", "algorithm", "--all", "--config", str(champion.config)]) == 1
    error = capsys.readouterr().err
    assert "no model 'riskradar-robbery_assault' is registered: run `riskradar train` first" in error
    assert "no model 'riskradar-all_incidents' is registered" in error
    assert check_entry(_entry(champion)) == []


def test_an_incomplete_entry_is_written_nowhere(champion, monkeypatch, capsys):
    from mlflow import MlflowClient

    complete = register.algorithm_entry

    def without_goal(settings, facts):
        entry = complete(settings, facts)
        entry["nld"]["goal"] = ""
        return entry

    monkeypatch.setattr(register, "algorithm_entry", without_goal)
    assert main(["register", "algorithm", "--target", "burglary", "--config", str(champion.config)]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f"the Algoritmeregister entry of riskradar-burglary v{champion.version} is not complete, nothing "
            "written: nld: 'goal' (doel en impact) is empty"
        )
    )
    assert not (champion.lake / "reports" / "register").exists()
    assert MlflowClient(champion.uri).list_artifacts(champion.run_id, "register") == []


@pytest.mark.parametrize("argv", [["algorithm"], ["processing", "--target", "burglary"]])
def test_register_algorithm_needs_a_target_and_processing_takes_none(argv):
    with pytest.raises(SystemExit) as exit_:
        main(["register", *argv, "--config", str(CONFIGS[0])])
    assert exit_.value.code == 2
