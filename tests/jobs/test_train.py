"""train on a synthetic panel: MLflow holds the experiment, runs, artifacts, registered model
and alias (checked through a real tracking server's REST API), and the gate refuses a worse model."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from synthetic_panel import GOOD, WORSE, synthetic_settings, write_synthetic_panel

from jobs import train
from models.metrics import paired_gain
from reports.model_card import paired_cell
from riskradar.audit import audited_run, code_state, read_audit
from riskradar.errors import ConfigError, NothingToDo
from riskradar.lake import Lake, lock
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


def _download(client, run_id: str, path: str, tmp) -> Path:
    return Path(client.download_artifacts(run_id, path, str(tmp)))


def test_a_registered_model_states_its_requirements_and_nothing_else(trained, tmp_path):
    """requirements.txt is registry.MODEL_REQUIREMENTS, in order, at the versions that trained
    it: not what MLflow would infer from the training process (which had imported pytest)."""
    from importlib.metadata import version

    import mlflow

    _, settings, first = trained
    uri = tracking_uri(settings, Lake(settings.lake_root))
    folder = mlflow.artifacts.download_artifacts(
        f"models:/riskradar-burglary/{first['version']}",
        dst_path=str(tmp_path),
        tracking_uri=uri,
        registry_uri=uri,
    )
    stated = (Path(folder) / "requirements.txt").read_text().split()
    packages = ("mlflow", "scikit-learn", "scipy", "numpy", "pandas", "skops", "riskradar")
    assert stated == [f"{p}=={version(p)}" for p in packages]


def _paired_setting(trained):
    from mlflow import MlflowClient

    _, settings, first = trained
    results = first["results"]
    client = MlflowClient(tracking_uri(settings, Lake(settings.lake_root)))
    best_baseline = max((r for r in results.values() if r.kind == "baseline"), key=lambda r: r.mean("pai_3"))
    return settings, first, results, client, best_baseline


def test_the_paired_gain_over_the_best_baseline_is_reported_everywhere_alike(trained, tmp_path):
    """comparison.md, the model card, each candidate's child run (metrics and
    paired_weekly.csv), the version's tag and the gate's reason show one paired gain."""
    settings, first, results, client, best_baseline = _paired_setting(trained)
    paired = first["paired"]
    # paired_block_weeks is null: blocks of refit_every_weeks (2)
    assert (paired.baseline, paired.metric, paired.block) == (best_baseline.name, "pai_3", 2)
    assert set(paired.gains) == {"hgb_poisson", "poisson_glm"}
    comparison = _download(client, first["run_id"], "comparison.md", tmp_path).read_text().splitlines()
    header = f"| paired gain vs {best_baseline.name}, PAI@3 [95% CI] (weeks won) |"
    assert comparison[0].startswith(
        "| model | kind | PAI@1% | PAI@3% | PAI@5% | PEI*@3% | deviance " + header
    )
    (reference,) = [line for line in comparison if line.startswith(f"| {best_baseline.name} | baseline |")]
    assert reference.split(" | ")[7] == "0 (reference)"
    card = _download(client, first["run_id"], "model_card.md", tmp_path).read_text()
    assert "## Paired comparison with the best baseline" in card
    weeks = list(range(first["weeks"][0], first["weeks"][1] + 1))
    for name, gain in paired.gains.items():
        run = client.get_run(first["child_runs"][name])
        weekly = pd.read_csv(_download(client, run.info.run_id, "paired_weekly.csv", tmp_path / name))
        assert list(weekly.columns) == ["week", "candidate", "baseline", "difference"]
        assert weekly["week"].tolist() == weeks
        assert weekly["candidate"].tolist() == pytest.approx(
            results[name].weekly["pai_3"].tolist(), nan_ok=True
        )
        assert weekly["baseline"].tolist() == pytest.approx(
            best_baseline.weekly["pai_3"].tolist(), nan_ok=True
        )
        again = paired_gain(
            weekly["candidate"].to_numpy(),
            weekly["baseline"].to_numpy(),
            block=2,
            seed=settings.training.seed,
        )
        assert again == gain  # the artifact holds exactly the weeks the interval was drawn from
        assert gain.weeks == weekly["difference"].notna().sum() == 4
        assert gain.won == (weekly["difference"] > 0).sum()
        assert gain.low <= gain.mean <= gain.high
        metrics = run.data.metrics
        assert {
            k: metrics[k]
            for k in (
                "paired_gain_pai_3_mean",
                "paired_gain_pai_3_low",
                "paired_gain_pai_3_high",
                "weeks_won",
            )
        } == pytest.approx(
            {
                "paired_gain_pai_3_mean": gain.mean,
                "paired_gain_pai_3_low": gain.low,
                "paired_gain_pai_3_high": gain.high,
                "weeks_won": gain.won,
            }
        )
        (row,) = [line for line in comparison if line.startswith(f"| {name} | candidate |")]
        assert row.split(" | ")[7] == paired_cell(gain)
        assert f"| {name} | {paired_cell(gain)} |" in card
    baseline_runs = [n for n, r in results.items() if r.kind == "baseline"]
    assert not any("weeks_won" in client.get_run(first["child_runs"][n]).data.metrics for n in baseline_runs)
    # the registered version is the best candidate's: its tag, the reason and the parent run agree
    version_tags = client.get_model_version("riskradar-burglary", first["version"]).tags
    best = version_tags["candidate"]
    gain, tag = paired.gains[best], version_tags["paired_gain_pai_3"]
    assert tag == gain.text()
    assert first["reason"].startswith(f"{best} pai_3 ")
    assert re.fullmatch(r"[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\], \d/4 weeks", tag), tag
    assert first["reason"].endswith(f" by more than 0.0; paired gain over {best_baseline.name}, pai_3 {tag}")
    assert version_tags["gate_reason"] == first["reason"]
    parent = client.get_run(first["run_id"]).data.metrics
    assert parent["best_paired_gain_pai_3_mean"] == pytest.approx(gain.mean)
    assert parent["best_paired_gain_pai_3_low"] == pytest.approx(gain.low)
    assert f"registered as v{first['version']} with the alias `champion`: {first['reason']}." in card


def test_the_paired_gains_at_pai_1_and_5_stand_beside_the_gates_in_every_table_and_run(trained, tmp_path):
    """The same comparison at PAI@1 and PAI@5: each candidate's gains are the bootstrap of its
    own and the best baseline's weekly PAI@1/5, shown after the PAI@3 gain in comparison.md and
    the card, and logged on its run and (the best candidate's) on the parent run."""
    settings, first, results, client, best_baseline = _paired_setting(trained)
    paired, also = first["paired"], first["paired_also"]
    assert [(c.metric, c.baseline, c.block, set(c.gains)) for c in also] == [
        (m, best_baseline.name, 2, set(paired.gains)) for m in ("pai_1", "pai_5")
    ]
    comparison = _download(client, first["run_id"], "comparison.md", tmp_path).read_text().splitlines()
    assert comparison[0].endswith(
        "".join(f"| paired gain vs {best_baseline.name}, PAI@{k} [95% CI] (weeks won) " for k in (3, 1, 5))
        + "|"
    )
    (reference,) = [line for line in comparison if line.startswith(f"| {best_baseline.name} | baseline |")]
    assert reference.endswith(" | 0 (reference) | 0 (reference) | 0 (reference) |")
    card = _download(client, first["run_id"], "model_card.md", tmp_path).read_text()
    for name, gain in paired.gains.items():
        at = {
            m: paired_gain(
                results[name].weekly[m].to_numpy(),
                best_baseline.weekly[m].to_numpy(),
                block=2,
                seed=settings.training.seed,
            )
            for m in ("pai_1", "pai_5")
        }
        assert [c.gains[name] for c in also] == [at["pai_1"], at["pai_5"]]
        metrics = client.get_run(first["child_runs"][name]).data.metrics
        assert {k: metrics[k] for k in metrics if "paired" in k} == pytest.approx(
            {
                f"paired_gain_{m}_{end}": getattr(g, end)
                for m, g in {"pai_3": gain, **at}.items()
                for end in ("mean", "low", "high")
            }
        )
        cells = " | ".join(paired_cell(g) for g in (gain, at["pai_1"], at["pai_5"]))
        (row,) = [line for line in comparison if line.startswith(f"| {name} | candidate |")]
        assert row.endswith(f" {cells} |")
        assert f"| {name} | {cells} |" in card
    best = client.get_model_version("riskradar-burglary", first["version"]).tags["candidate"]
    parent = client.get_run(first["run_id"]).data.metrics
    expected = {
        f"best_paired_gain_{c.metric}_{end}": getattr(c.gains[best], end)
        for c in (paired, *also)
        for end in ("mean", "low", "high")
    }
    assert {k: parent[k] for k in parent if "paired" in k} == pytest.approx(expected)
    assert len(expected) == 9


def test_the_paired_block_is_a_positive_number_of_weeks_or_null(tmp_path):
    assert synthetic_settings(tmp_path).training.paired_block_weeks is None
    assert synthetic_settings(tmp_path, **{"training.paired_block_weeks": 3}).training.paired_block_weeks == 3
    for wrong, allowed in ((0, "greater than or equal to 1"), (2.5, "valid integer")):
        with pytest.raises(ConfigError, match=rf"key 'training.paired_block_weeks' = {wrong}: .*{allowed}"):
            synthetic_settings(tmp_path, **{"training.paired_block_weeks": wrong})


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
    """Also with the non-inferiority check on (at PAI@1 % and the rank correlation): the gate
    compares at those metrics too and says the promotion metric decided."""
    tmp, _, first = trained
    checks = {"metrics": ["pai_1", "spearman"], "tolerance": 0.1}
    settings = synthetic_settings(tmp, **{"training.candidates": GOOD, "training.non_inferiority": checks})
    again = train.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    assert again["alias"] == "challenger"
    assert "does not beat the current champion" in again["reason"]
    assert again["reason"].split("; paired gain over")[0].endswith("; decided by pai_3")
    assert [c.metric for c in again["paired_also"]] == ["pai_1", "pai_5", "spearman"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str, **params) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}{path}",
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


@contextmanager
def _tracking_server(settings) -> Iterator[str]:
    """An MLflow server on the training's store, bound to 127.0.0.1; its base URL once it
    answers /health. Stopped (its process group) on exit."""
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
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _artifacts(base: str, run_id: str) -> set[str]:
    return {f["path"] for f in _get(base, "/api/2.0/mlflow/artifacts/list", run_id=run_id)["files"]}


def test_tracking_server_api_shows_the_training(trained):
    _, settings, first = trained
    with _tracking_server(settings) as base:
        exp = _get(base, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="riskradar-burglary")[
            "experiment"
        ]
        body = {"experiment_ids": [exp["experiment_id"]], "max_results": 100}
        runs = _post(base, "/api/2.0/mlflow/runs/search", body)["runs"]
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
        # every backtest week's metrics, one step each, as the weekly table has them
        weekly = first["results"]["hgb_poisson"].weekly.dropna(subset=["pai_3"])  # NaN: not logged
        history = _get(
            base,
            "/api/2.0/mlflow/metrics/get-history",
            run_id=first["child_runs"]["hgb_poisson"],
            metric_key="pai_3",
        )["metrics"]
        steps = sorted((m["step"], m["value"]) for m in history)
        assert [w for w, _ in steps] == sorted(weekly["week_idx"].astype(int))
        assert [v for _, v in steps] == pytest.approx(list(weekly.sort_values("week_idx")["pai_3"]))
        assert {"model_card.md", "comparison.md", "gate_decision.txt"} <= _artifacts(base, first["run_id"])
        assert {
            "pai_curve.png",
            "calibration.png",
            "exposure_3pct.csv",
            "weekly_metrics.csv",
            "permutation_importances.csv",
            "permutation_importances.png",
        } <= _artifacts(base, first["child_runs"]["hgb_poisson"])
        model = _get(base, "/api/2.0/mlflow/registered-models/get", name="riskradar-burglary")[
            "registered_model"
        ]
        aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
        assert aliases["champion"] == str(first["version"])
        assert parent["data"]["tags"] and any(
            t["key"] == "riskradar.git_commit" for t in parent["data"]["tags"]
        )
        tags = {t["key"]: t["value"] for t in parent["data"]["tags"]}
        commit, dirty = code_state()  # what the job's audit record holds
        assert (tags["riskradar.git_commit"], tags["riskradar.git_dirty"]) == (
            commit or "unknown",
            {True: "true", False: "false", None: "unknown"}[dirty],
        )
        assert parent["inputs"]["dataset_inputs"][0]["dataset"]["name"] == "gold.features"


def test_training_sample_over_the_bound_is_thinned_and_weighted_back(trained, spark):
    tmp, settings, _ = trained
    panel = spark.read.parquet(str(Lake(settings.lake_root).gold("features")))
    features, label = ["hardship_index", "hist_burglary_w4"], "label_burglary_h1"
    full, _, _, _ = train.load_frames(panel, features, label, 1, settings.training)
    bounded = synthetic_settings(tmp, **{"training.max_train_rows": 200}).training
    thinned, evaluate, _, _ = train.load_frames(panel, features, label, 1, bounded)
    assert len(full) > 400  # the bound bites
    p = 200 / len(full)
    assert thinned.attrs == {"sampled_rows": len(full), "thinning": pytest.approx(p)}
    # Bernoulli thinning: about the bound (within 5 standard deviations), weighted back by 1/p.
    assert abs(len(thinned) - 200) < 5 * (200 * (1 - p)) ** 0.5
    assert set(thinned["sample_weight"].round(6)) <= {round(w / p, 6) for w in full["sample_weight"]}
    assert thinned["sample_weight"].sum() == pytest.approx(full["sample_weight"].sum(), rel=0.25)
    # The backtest frame is not thinned: every study cell of every backtest week is scored.
    assert len(evaluate) == len(train.load_frames(panel, features, label, 1, settings.training)[1])


def test_the_training_sample_is_the_same_however_the_panel_is_partitioned(trained, spark):
    """The zero rows kept and the rows thinned are drawn per cell-week, not by position: the same
    panel in other partitions, in another order, gives the same sample in the same order."""
    tmp, settings, _ = trained
    panel = spark.read.parquet(str(Lake(settings.lake_root).gold("features")))
    shuffled = panel.repartition(5, "cell_id").sortWithinPartitions(F.desc("week_idx"))
    features, label = ["hardship_index", "hist_burglary_w4"], "label_burglary_h1"
    thinned = synthetic_settings(tmp, **{"training.max_train_rows": 200}).training
    samples = []
    for training in (settings.training, thinned):
        one = train.load_frames(panel, features, label, 1, training)[0]
        other = train.load_frames(shuffled, features, label, 1, training)[0]
        assert 0 < (one[label] == 0).sum() < len(one)  # zero rows were drawn, some kept
        assert list(one["week_idx"]) == sorted(one["week_idx"])
        pd.testing.assert_frame_equal(one, other)
        assert one.attrs == other.attrs
        samples.append(one)
    assert samples[1].attrs["thinning"] < 1  # the second draw bit
    # The draw is uniform: about zero_row_fraction of the zero rows are kept (5 standard deviations).
    zeros = panel.where(F.col(label) == 0).count()
    f = settings.training.zero_row_fraction
    assert abs((samples[0][label] == 0).sum() - f * zeros) < 5 * (zeros * f * (1 - f)) ** 0.5
    # Another seed draws other zero rows.
    reseeded = synthetic_settings(tmp, **{"training.seed": settings.training.seed + 7}).training
    again = train.load_frames(panel, features, label, 1, reseeded)[0]
    assert not again[["cell_id", "week_idx"]].equals(samples[0][["cell_id", "week_idx"]])


def test_training_without_a_panel_says_what_to_run(spark, tmp_path):
    settings = synthetic_settings(tmp_path, **{"training.candidates": GOOD})
    with pytest.raises(NothingToDo, match=r"no feature panel under .*run `riskradar build-features` first"):
        train.main(["--all"], settings=settings, spark=spark)


@pytest.mark.parametrize(
    ("state", "tagged"),
    [
        (("c0ffee", True), ("c0ffee", "true")),
        (("c0ffee", False), ("c0ffee", "false")),
        ((None, None), ("unknown", "unknown")),
    ],
)
def test_a_training_run_is_tagged_with_its_code_as_the_audit_read_it(tmp_path, monkeypatch, state, tagged):
    settings = synthetic_settings(tmp_path)
    monkeypatch.setattr(train, "code_state", lambda: state)
    tags = train._run_tags(settings, Lake(settings.lake_root), "burglary", "label_burglary_h1")
    assert (tags["riskradar.git_commit"], tags["riskradar.git_dirty"]) == tagged


def test_a_feature_without_any_value_is_left_out_and_named(spark, tmp_path, capsys):
    """A feed that has published nothing leaves its feature columns empty (here last week's
    weather): the boosted trees cannot bin such a column, so training leaves it out and logs it.
    The training says how far its backtest got after each fit and keeps each step's time."""
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
    # 4 backtest weeks refitted every 2: 2 fits for each of the 2 candidates (no champion yet)
    fits = re.findall(r"INFO  train\[\w+\] fit (\d)/4 for burglary, \d+ s elapsed", capsys.readouterr().out)
    assert fits == ["1", "2", "3", "4"]  # in order, each once
    (record,) = read_audit(Lake(settings.lake_root))
    assert (record["git_commit"], record["git_dirty"]) == code_state()
    assert set(record["timings"]) == {
        "read panel",
        "backtest baselines",
        "backtest hgb_poisson",
        "backtest poisson_glm",
        "final fit",
        "log runs",
        "registration",
        "gate",
    }


def test_a_tuning_grid_the_candidates_do_not_take_is_refused_before_any_work(spark, tmp_path):
    tuning = {"validation_weeks": 2, "grid": [{}, {"max_iter": 5, "depth": 3}]}
    settings = synthetic_settings(tmp_path, **{"training.candidates": GOOD, "training.tuning": tuning})
    with pytest.raises(
        ConfigError, match=r"'training.tuning.grid' = .*: depth is not a hyperparameter of candidate"
    ):
        train.main(["--all"], settings=settings, spark=spark)


@pytest.mark.parametrize(
    ("key", "metric"),
    [
        ("training.promotion_metric", "deviance"),
        ("training.promotion_metric", "pai_2"),
        ("training.promotion_metric", "PAI_3"),
        ("training.non_inferiority.metrics.1", "deviance"),
        ("training.non_inferiority.metrics.1", "pai_2"),
    ],
)
def test_a_metric_the_gate_cannot_keep_the_higher_of_is_refused_before_any_work(spark, tmp_path, key, metric):
    """The promotion metric, and each metric the gate checks non-inferiority at."""
    if key == "training.promotion_metric":
        config = {key: metric}
    else:
        config = {"training.non_inferiority": {"metrics": ["pai_1", metric]}}
    settings = synthetic_settings(tmp_path, **{"training.candidates": GOOD, **config})
    with pytest.raises(ConfigError) as err:
        train.main(["--all"], settings=settings, spark=spark)
    assert f"key '{key}' = {metric!r}: expected one of spearman, hit_rate_1, " in str(err.value)
    assert "pai_3, pei_3" in str(err.value) and "(a metric where higher is better)" in str(err.value)
    assert not list(Lake(settings.lake_root).root.glob("mlflow/*")), "nothing was trained"


def test_backtest_frame_over_the_bound_is_refused(trained, spark):
    tmp, _, _ = trained
    settings = synthetic_settings(tmp, **{"training.candidates": GOOD, "training.max_evaluate_rows": 10})
    with pytest.raises(ConfigError, match=r"more than training.max_evaluate_rows = 10"):
        train.main(["--target", "burglary"], settings=settings, spark=spark)


def test_a_training_leaves_no_evaluation_rows_after_success_or_failure(trained, spark):
    """The backtest's evaluation rows are written to the run's scratch (the refusal below comes
    after they were written: it counts them) and are gone when the run ends, and its lock too."""
    tmp, settings, _ = trained
    lake = Lake(settings.lake_root)
    assert (lake.root / "_scratch").is_dir() and not list(lake.root.glob("_scratch/train/*/*"))
    bounded = synthetic_settings(tmp, **{"training.candidates": GOOD, "training.max_evaluate_rows": 599})
    with pytest.raises(ConfigError, match=r"reads up to 600 rows at once"):
        train.main(["--target", "burglary"], settings=bounded, spark=spark)
    assert not list(lake.root.glob("_scratch/train/*/*")) and not list(lake.locks().glob("train.*"))


def test_the_evaluation_scratch_is_kept_under_the_targets_lock_and_removed_on_failure(tmp_path):
    """Another job's lock clears the scratch of every run that holds none: the training holds
    the target's lock while its rows are there. A killed training's rows go at the next one."""
    lake = Lake(tmp_path / "lake")
    killed = lake.scratch("train", "burglary", "killed000001")
    killed.mkdir(parents=True)
    with pytest.raises(RuntimeError, match="failed fit"):
        with audited_run(lake, "train", {"target": "burglary"}) as record:
            with train.evaluation_scratch(lake, "burglary", record) as scratch:
                assert scratch == lake.scratch("train", "burglary", record.run_id)
                assert not killed.exists()
                scratch.mkdir(parents=True)
                (scratch / "rows.parquet").write_bytes(b"rows")
                with lock(lake, "bronze.police_crimes", run_id="ingest000001", job="ingest"):
                    pass
                assert (scratch / "rows.parquet").is_file()
                assert (lake.locks() / "train.burglary.lock").is_file()
                raise RuntimeError("failed fit")
    assert not lake.scratch_root("train", "burglary").exists()
    assert not (lake.locks() / "train.burglary.lock").exists()


def test_tuned_training_blends_logs_its_choices_and_studies_the_history(spark, tmp_path):
    """With tuning: each candidate has a blend, every tuning's choice is logged on its run, the
    registered version reads the columns it needs and predicts; --study logs the learning curve."""
    from mlflow import MlflowClient, sklearn

    tuning = {
        "validation_weeks": 2,
        "every_weeks": 4,
        "grid": [{}, {"max_iter": 5}],
        "blend_weights": [0.5, 1.0],
    }
    settings = synthetic_settings(
        tmp_path,
        **{
            "training.candidates": {"hgb_poisson": GOOD["hgb_poisson"]},
            "training.tuning": tuning,
            "training.study": {"learning_curve_weeks": [3]},
        },
    )
    write_synthetic_panel(spark, Lake(settings.lake_root))
    result = train.main(["--target", "burglary", "--study"], settings=settings, spark=spark)["burglary"]
    results = result["results"]
    assert {"hgb_poisson", "hgb_poisson_blend"} <= set(results) and "prior_1w" in results
    assert set(result["paired"].gains) == {"hgb_poisson", "hgb_poisson_blend"}
    client = MlflowClient(tracking_uri(settings, Lake(settings.lake_root)))
    for name in ("hgb_poisson", "hgb_poisson_blend"):
        path = _download(client, result["child_runs"][name], "tuning.json", tmp_path / name)
        table = json.loads(path.read_text())
        choices = pd.DataFrame(table["data"], columns=table["columns"])
        # 4 backtest weeks (2285..2288) refitted every 2; a choice lasts 4 weeks: one tuning,
        # judged on the 2 labelled weeks before the first origin
        assert choices["origin_week_idx"].tolist() == [result["weeks"][0]]
        first = result["weeks"][0]
        assert choices["validation_weeks"].tolist() == [f"{first - 2}..{first - 1}"]
    version = client.get_model_version("riskradar-burglary", result["version"])
    params = json.loads(version.tags["params"])
    assert params["max_iter"] in (40, 5)  # the configured or the grid's, whichever ranked better
    model = sklearn.load_model(f"models:/riskradar-burglary/{result['version']}")
    panel = spark.read.parquet(str(Lake(settings.lake_root).gold("features"))).toPandas()
    from mlflow.models import get_model_info

    inputs = get_model_info(f"models:/riskradar-burglary/{result['version']}").signature.inputs.input_names()
    assert "hardship_index" in inputs
    mu = model.predict(panel[inputs].astype(float))
    assert len(mu) == len(panel) and (mu >= 0).all()
    # as a pyfunc, from the panel's doubles as they are (its signature states doubles)
    from mlflow import pyfunc

    as_pyfunc = pyfunc.load_model(f"models:/riskradar-burglary/{result['version']}")
    np.testing.assert_array_equal(as_pyfunc.predict(panel[inputs].astype(float)), mu)
    # the study: the training's own row, then the fits capped at 3 weeks of history
    rows = result["study"]
    assert [r["variant"] for r in rows] == ["all features", "history 3 weeks"]
    assert (
        rows[1]["history_weeks"] == 3 and rows[0]["candidate"] == result["results"][rows[0]["candidate"]].name
    )
    curve = _download(client, result["run_id"], "learning_curve.md", tmp_path).read_text()
    assert curve.startswith("Refit every 2 weeks, tuned as the training; paired blocks of 2 weeks.")
    assert curve.splitlines()[4].startswith("| all features |") and "| history 3 weeks |" in curve
