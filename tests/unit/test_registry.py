"""What a registered model's requirements.txt states (registry.model_requirements)."""

from __future__ import annotations

import importlib.metadata

from riskradar.registry import MODEL_REQUIREMENTS, model_requirements


def test_a_requirement_that_is_not_installed_is_left_out_with_a_warning(monkeypatch, caplog):
    installed = importlib.metadata.version

    def version(name: str) -> str:
        if name == "riskradar":
            raise importlib.metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with caplog.at_level("WARNING", logger="riskradar.registry"):
        pinned = model_requirements()
    assert [p.split("==")[0] for p in pinned] == [p for p in MODEL_REQUIREMENTS if p != "riskradar"]
    assert "riskradar is not installed as a package" in caplog.text
