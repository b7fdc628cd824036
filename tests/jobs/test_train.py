"""train on a synthetic panel: MLflow holds the experiment, runs, artifacts, registered model
and alias (checked through a real tracking server's REST API), and the gate refuses a worse model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from synthetic_panel import GOOD, WORSE, synthetic_settings, write_synthetic_panel

from jobs import train
from riskradar.errors import ConfigError, NothingToDo
from riskradar.lake import Lake
from riskradar.registry import tracking_uri


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    settings = synthetic_settings(tmp, **{"training.candidates": GOOD})
    write_synthetic_panel(spark, Lake(settings.lake_root))
    first = train.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    return tmp, settings, first


def test_best_candidate_beats_the_baselines_and_becomes_champion(trained):
    _, _, first = trained
    assert first["alias"] == "champion", first["reason"]
    results = first["results"]
    assert set(results) >= {
        "hgb_poisson",
        "poisson_glm",
        "prior_1w",
        "prior_4w",
        "prior_13w",
        "prior_52w",
        "ewma_hl4",
    }
    assert results["hgb_poisson"].mean("pai_3") > max(
        r.mean("pai_3") for r in results.values() if r.kind == "baseline"
    )
    assert "beats the best baseline" in first["reason"] and "(no champion yet)" in first["reason"]
    # the candidate learnt from the one informative column, and the importances say so
    assert results["hgb_poisson"].importances["feature"].iloc[0] == "hardship_index"


def test_a_worse_model_does_not_become_champion_and_the_reason_is_recorded(trained, spark):
    tmp, _, first = trained
    settings = synthetic_settings(tmp, **{"training.candidates": WORSE})
    worse = train.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    assert worse["alias"] == "challenger"
    flat = worse["results"]["hgb_poisson"].predictions.groupby("week_idx")["mu"].nunique()
    assert flat.max() == 1  # it really ranks no cell above another
    assert "does not beat the best baseline" in worse["reason"]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri(settings, Lake(settings.lake_root)))
    assert client.get_model_version_by_alias("riskradar-burglary", "champion").version == first["version"]
    assert client.get_run(worse["run_id"]).data.tags["riskradar.gate_reason"] == worse["reason"]
    assert (
        client.get_model_version("riskradar-burglary", worse["version"]).tags["gate_reason"]
        == worse["reason"]
    )


def test_the_same_model_again_does_not_replace_the_champion(trained, spark):
    tmp, settings, first = trained
    again = train.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    assert again["alias"] == "challenger"
    assert "does not beat the current champion" in again["reason"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str, **params) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_tracking_server_api_shows_the_training(trained):
    _, settings, first = trained
    lake = Lake(settings.lake_root)
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            tracking_uri(settings, lake),
            "--default-artifact-root",
            (lake.root / "mlflow" / "artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("the MLflow server did not answer /health") from None
                time.sleep(1)
        exp = _get(base, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="riskradar-burglary")[
            "experiment"
        ]
        runs = json.loads(
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{base}/api/2.0/mlflow/runs/search",
                    method="POST",
                    data=json.dumps({"experiment_ids": [exp["experiment_id"]], "max_results": 100}).encode(),
                    headers={"Content-Type": "application/json"},
                ),
                timeout=10,
            ).read()
        )["runs"]
        by_id = {r["info"]["run_id"]: r for r in runs}
        parent = by_id[first["run_id"]]
        children = [
            r
            for r in runs
            if any(
                t["key"] == "mlflow.parentRunId" and t["value"] == first["run_id"]
                for t in r["data"].get("tags", [])
            )
        ]
        assert {c["info"]["run_name"] for c in children} >= {
            "hgb_poisson",
            "poisson_glm",
            "prior_52w",
            "ewma_hl4",
        }
        assert any(m["key"] == "pai_3_mean" for m in children[0]["data"]["metrics"])
        files = {
            f["path"] for f in _get(base, "/api/2.0/mlflow/artifacts/list", run_id=first["run_id"])["files"]
        }
        assert {"model_card.md", "comparison.md", "gate_decision.txt"} <= files
        child = first["child_runs"]["hgb_poisson"]
        child_files = {f["path"] for f in _get(base, "/api/2.0/mlflow/artifacts/list", run_id=child)["files"]}
        assert {
            "pai_curve.png",
            "calibration.png",
            "exposure_3pct.csv",
            "weekly_metrics.csv",
            "permutation_importances.csv",
            "permutation_importances.png",
        } <= child_files
        model = _get(base, "/api/2.0/mlflow/registered-models/get", name="riskradar-burglary")[
            "registered_model"
        ]
        aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
        assert aliases["champion"] == str(first["version"])
        assert parent["data"]["tags"] and any(
            t["key"] == "riskradar.git_commit" for t in parent["data"]["tags"]
        )
        assert parent["inputs"]["dataset_inputs"][0]["dataset"]["name"] == "gold.features"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_training_sample_over_the_bound_is_thinned_and_weighted_back(trained, spark):
    tmp, settings, _ = trained
    panel = spark.read.parquet(str(Lake(settings.lake_root).gold("features")))
    features, label = ["hardship_index", "hist_burglary_w4"], "label_burglary_h1"
    full, _, _ = train.load_frames(panel, features, label, 1, settings.training)
    bounded = synthetic_settings(tmp, **{"training.max_train_rows": 200}).training
    thinned, evaluate, _ = train.load_frames(panel, features, label, 1, bounded)
    assert len(full) > 400  # the bound bites
    p = 200 / len(full)
    assert thinned.attrs == {"sampled_rows": len(full), "thinning": pytest.approx(p)}
    # Bernoulli thinning: about the bound (within 5 standard deviations), weighted back by 1/p.
    assert abs(len(thinned) - 200) < 5 * (200 * (1 - p)) ** 0.5
    assert set(thinned["sample_weight"].round(6)) <= {round(w / p, 6) for w in full["sample_weight"]}
    assert thinned["sample_weight"].sum() == pytest.approx(full["sample_weight"].sum(), rel=0.25)
    # The backtest frame is not thinned: every study cell of every backtest week is scored.
    assert len(evaluate) == len(train.load_frames(panel, features, label, 1, settings.training)[1])


def test_training_without_a_panel_says_what_to_run(spark, tmp_path):
    settings = synthetic_settings(tmp_path, **{"training.candidates": GOOD})
    with pytest.raises(NothingToDo, match=r"no feature panel under .*run `riskradar build-features` first"):
        train.main(["--all"], settings=settings, spark=spark)


def test_a_feature_without_any_value_is_left_out_and_named(spark, tmp_path):
    """A feed that has published nothing leaves its feature columns empty (here last week's
    weather): the boosted trees cannot bin such a column, so training leaves it out and logs it."""
    weather = {
        "feed": "weather",
        "weekly": {"temp_max_c": {"measure": "temperature_max_c", "aggregate": "mean"}},
    }
    settings = synthetic_settings(
        tmp_path,
        **{
            "training.candidates": GOOD,
            "partners.enabled": ["police_crimes", "census_indicators", "weather"],
            "roles.weather": weather,
        },
    )
    write_synthetic_panel(spark, Lake(settings.lake_root), extra={"weather_prev_temp_max_c": np.nan})
    result = train.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri(settings, Lake(settings.lake_root))).get_run(result["run_id"])
    assert run.data.params["features_left_out_empty"] == "weather_prev_temp_max_c"
    assert result["alias"] == "champion"


def test_backtest_frame_over_the_bound_is_refused(trained, spark):
    tmp, _, _ = trained
    settings = synthetic_settings(tmp, **{"training.candidates": GOOD, "training.max_evaluate_rows": 10})
    with pytest.raises(ConfigError, match=r"more than training.max_evaluate_rows = 10"):
        train.main(["--target", "burglary"], settings=settings, spark=spark)


def test_exposure_strata_come_from_the_configured_indicator(tmp_path):
    """Quintiles of areas by the indicator `roles.area_indicators.exposure_strata` names, whatever
    it is called; one stratum without it."""
    import pandas as pd

    evaluate = pd.DataFrame(
        {
            "cell_id": [f"{c}_0" for c in range(12)],
            "area_code": [1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, None],
            "median_income": [10.0, 10.0, 20, 30, 40, 50, 60, 70, 80, 90, 100, None],
        }
    )
    strata = train._strata(evaluate, "median_income").set_index("cell_id")["stratum"]
    assert strata.to_dict() == {
        "0_0": "Q1 (lowest median income)",
        "1_0": "Q1 (lowest median income)",
        "2_0": "Q1 (lowest median income)",
        "3_0": "Q2",
        "4_0": "Q2",
        "5_0": "Q3",
        "6_0": "Q3",
        "7_0": "Q4",
        "8_0": "Q4",
        "9_0": "Q5 (highest median income)",
        "10_0": "Q5 (highest median income)",
        "11_0": "outside the areas",
    }
    assert set(train._strata(evaluate, None)["stratum"]) == {"all cells"}
    assert set(train._strata(evaluate, "hardship_index")["stratum"]) == {"all cells"}  # not a column
    # the synthetic city has indicators but no boundaries and no weather: the card says so
    settings = synthetic_settings(tmp_path)
    assert train.absent_parts(settings, ["hardship_index"]) == [
        "no area boundaries (roles.area_boundaries): cells belong to no area; no roll-up by area",
        "no weather series (roles.weather): no weather features",
        "no other partners' signals (features.signals)",
    ]
    missing = "no area indicators in gold.features (census_indicators had published nothing)"
    assert train.absent_parts(settings, [])[1] == missing
