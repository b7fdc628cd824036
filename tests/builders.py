"""Builders of test configs and landing folders, shared by every test folder."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "chicago"
TEST_KEY = "test-key-0123456789abcdef-not-a-secret"


def write_config(tmp_path: Path, *, landing: Path, enabled: list[str], **overrides) -> Path:
    """A copy of the committed config with its own lake and landing, for one test."""
    import yaml

    data = yaml.safe_load((ROOT / "conf" / "riskradar.yaml").read_text())
    data["lake"]["root"] = str(tmp_path / "lake")
    data["partners"]["landing_root"] = str(landing)
    data["partners"]["contracts_dir"] = str(ROOT / "conf" / "partners")
    data["partners"]["enabled"] = enabled
    data["expectations_dir"] = str(ROOT / "expectations")
    # A role must name an enabled feed: a test city without that feed has no such role; and a
    # target's categories must come from an enabled feed: a city without them has no such target.
    data["roles"] = {role: spec for role, spec in data["roles"].items() if spec and spec["feed"] in enabled}
    produced = set()
    for feed in enabled:
        contract = ROOT / "conf" / "partners" / f"{feed}.yaml"
        if contract.exists():
            events = yaml.safe_load(contract.read_text()).get("events") or {}
            produced |= set(events.get("category", {}).get("map", {}).values())
    data["targets"] = {name: t for name, t in data["targets"].items() if set(t["categories"]) <= produced}
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    governance = data.get("governance") or {}
    if governance.get("target_names"):  # the registers' names of the targets this city keeps
        governance["target_names"] = {
            t: names for t, names in governance["target_names"].items() if t in (data.get("targets") or {})
        }
    path = tmp_path / "conf" / "riskradar.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def csv_gz(header: list[str], rows: list[dict[str, str]]) -> bytes:
    """A gzipped CSV delivery of `rows` under `header` (a row's other keys are left out)."""
    import csv
    import gzip
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return gzip.compress(out.getvalue().encode(), mtime=0)


def landing_with(tmp_path: Path, feed_folder: str, files: dict[str, bytes]) -> Path:
    """A landing root holding `files` (name -> bytes) in the folder of one feed."""
    root = tmp_path / "landing"
    folder = root / feed_folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return root


def copy_sample(tmp_path: Path, feed_folder: str, names: list[str]) -> Path:
    root = tmp_path / "landing"
    (root / feed_folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(SAMPLE / feed_folder / name, root / feed_folder / name)
    return root


# Two data-sharing agreements for the synthetic scored lake (areas 1..5 of community_area):
# the police get the cells of burglary, the city its areas with k = 10.
POLICE = {
    "recipient": {"organisation": "Police (test)", "contact_role": "analyst"},
    "version": 1,
    "purpose": "patrol planning",
    "legal_basis": "test basis",
    "valid_from": "2013-01-01",
    "valid_until": "2030-12-31",
    "targets": ["burglary"],
    "granularity": "cell",
    "min_count_shown": 5,
    "columns": ["cell_id", "geometry", "rank", "hotspot", "expected_count", "drivers"],
    "formats": ["gpkg", "csv", "html"],
}
CITY = {
    **POLICE,
    "recipient": {"organisation": "City (test)", "contact_role": "coordinator"},
    "granularity": "area",
    "area_level": "community_area",
    "min_count_shown": 10,
    "columns": ["area_code", "area_name", "geometry", "rank", "expected_count", "share_of_hotspots"],
}


def write_agreements(folder: Path, **agreements: dict) -> Path:
    """An agreements folder holding `agreements` (recipient -> its YAML body)."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for name, body in agreements.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return folder


# What two builds of one feed from the same deliveries may differ in: when they ran.
RUN_TIMES = frozenset({"ingested_at", "superseded_at"})


def intake_tables(spark, settings, feed: str, table: str, *, drop=frozenset({"superseded_at"})) -> dict:
    """A feed's rows in silver `table`, its history and its quarantine, each sorted and without
    the columns `drop`, and its batches' statuses: what two builds from the same deliveries
    (or a lake before and after a replay) must share."""
    from riskradar.catalog import read_history, read_quarantine, read_silver
    from riskradar.lake import FeedState, Lake

    lake = Lake(settings.lake_root)
    frames = {
        "silver": read_silver(spark, settings, lake, table, feeds=[feed]),
        "history": read_history(spark, settings, lake, table, feeds=[feed]),
        "quarantine": read_quarantine(spark, lake, feed),
    }
    out: dict = {
        name: sorted(
            tuple(sorted((k, str(v)) for k, v in r.asDict().items() if k not in drop)) for r in df.collect()
        )
        if df is not None
        else []
        for name, df in frames.items()
    }
    out["statuses"] = {b: r["status"] for b, r in FeedState.read(lake, feed).batches.items()}
    return out


# The figures a training logs for the model it registers: means and 95 % intervals of its backtest
# and its paired gain over the best baseline (the registers' tests read them back).
CHAMPION_METRICS = {
    **{
        f"pai_{c}_{end}": v
        for c in (1, 3, 5)
        for end, v in zip(("mean", "low", "high"), (2.4, 1.9, 2.9), strict=True)
    },
    "hit_rate_3_mean": 0.12,
    "hit_rate_3_low": 0.09,
    "hit_rate_3_high": 0.15,
    "paired_gain_pai_3_mean": 0.53,
    "paired_gain_pai_3_low": 0.24,
    "paired_gain_pai_3_high": 0.81,
    "weeks_won": 19.0,
}
EXPOSURE = [
    {
        "stratum": "Q1 (lowest x)",
        "flagged": 10,
        "incidents": 40,
        "cells": 50,
        "share_flagged": 0.25,
        "share_incidents": 0.4,
        "share_cells": 0.5,
    },
    {
        "stratum": "Q5 (highest x)",
        "flagged": 30,
        "incidents": 60,
        "cells": 50,
        "share_flagged": 0.75,
        "share_incidents": 0.6,
        "share_cells": 0.5,
    },
]
BACKTEST = {"backtest_first_week_idx": 2268, "backtest_last_week_idx": 2293, "refit_every_weeks": 4}


def registered_champion(
    uri: str, artifacts: Path, target: str, *, candidate: str = "hgb_poisson"
) -> tuple[str, str]:
    """A version of the target's model with the alias champion, as `riskradar train` leaves one,
    without a training: a training run with the BACKTEST window and a child run of `candidate`
    with CHAMPION_METRICS and EXPOSURE (exposure_3pct.csv). (version, training run id)"""
    import pandas as pd
    from mlflow import MlflowClient

    from riskradar.catalog import experiment_name, model_name

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment_name(target))
    experiment = (
        found.experiment_id
        if found
        else client.create_experiment(
            experiment_name(target), artifact_location=(artifacts / target).as_uri()
        )
    )
    run_id = client.create_run(
        experiment, run_name=f"train-{target}", tags={"riskradar.git_commit": "0123abc"}
    ).info.run_id
    for key, value in BACKTEST.items():
        client.log_param(run_id, key, value)
    child = client.create_run(experiment, run_name=candidate, tags={"mlflow.parentRunId": run_id}).info.run_id
    for key, value in CHAMPION_METRICS.items():
        client.log_metric(child, key, value)
    for week, value in enumerate([1.5, 3.5]):  # a weekly metric, as train logs them: no summary
        client.log_metric(child, "pai_3", value, step=BACKTEST["backtest_first_week_idx"] + week)
    table = artifacts / "exposure_3pct.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(EXPOSURE).to_csv(table, index=False)
    client.log_artifact(child, str(table))
    for run in (child, run_id):
        client.set_terminated(run)
    name = model_name(target)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id).version
    tags = {"candidate": candidate, "gate_reason": "beats the best baseline", "params": '{"max_iter": 40}'}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, "champion", version)
    return str(version), run_id


@dataclass(frozen=True)
class ChampionStore:
    """A test city whose MLflow store holds a champion of `burglary` (registered_champion)."""

    config: Path
    lake: Path
    uri: str
    version: str
    run_id: str


def champion_store(tmp_path: Path) -> ChampionStore:
    """The bundled config with its lake under `tmp_path` and a champion of burglary registered."""
    from riskradar.config import load_settings
    from riskradar.lake import Lake
    from riskradar.registry import tracking_uri

    feeds = ["police_crimes", "sanitation_311", "weather", "census_indicators", "census_areas"]
    config = write_config(tmp_path, landing=SAMPLE, enabled=feeds)
    settings = load_settings(config)
    uri = tracking_uri(settings, Lake(settings.lake_root))
    version, run_id = registered_champion(uri, tmp_path / "artifacts", "burglary")
    return ChampionStore(config, settings.lake_root, uri, version, run_id)
