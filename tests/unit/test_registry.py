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


def test_an_offset_model_its_blend_and_the_ensemble_load_from_the_registry_and_predict_as_they_did(tmp_path):
    """The model classes of our own that a version may hold are trusted by the skops loader."""
    import mlflow
    import numpy as np
    import pandas as pd

    from models.baselines import prior_counts
    from models.estimators import Blend, fit_weighted, make_candidates
    from riskradar.registry import register_model

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x1": rng.uniform(0, 2, 500), "hist_t_w4": rng.gamma(2.0, 2.0, 500)})
    frame["y"], frame["w"] = rng.poisson(frame["hist_t_w4"] / 4).astype(float), 1.0
    candidates = {"hgb_poisson_offset": {"offset": "prior_4w", "max_iter": 5}}
    offset = make_candidates(candidates, {"prior_4w": prior_counts("t", 4)})["hgb_poisson_offset"]
    fit_weighted(offset, frame, ["x1"], label="y", weight="w")
    inputs = frame[["x1", "hist_t_w4"]]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    # the artifacts in tmp_path too, not in ./mlruns of the working folder
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("t", artifact_location=(tmp_path / "a").as_uri())
    )
    candidates = {"hgb_poisson_ensemble": {"offset": "prior_4w", "max_iter": 5}}
    ensemble = make_candidates(candidates, {"prior_4w": prior_counts("t", 4)})["hgb_poisson_ensemble"]
    fit_weighted(ensemble, frame, ["x1"], label="y", weight="w")
    blend = Blend(offset, prior_counts("t", 4), 0.5, ("x1", "hist_t_w4"))
    for name, model in (("offset", offset), ("blend", blend), ("ensemble", ensemble)):
        with mlflow.start_run():
            version = register_model(model, "model", inputs, f"riskradar-{name}")
        loaded = mlflow.sklearn.load_model(f"models:/riskradar-{name}/{version}")
        np.testing.assert_allclose(loaded.predict(inputs), model.predict(inputs))
