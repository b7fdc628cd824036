"""Both DAGs run for real with dag.test() on a slice of the bundled police data (every 10th
row of March to June 2014): every task submits its job with spark-submit (connection
spark_default, local[2]), and the test reads the outputs the jobs wrote. Then both runs are
repeated and the outputs do not change."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from builders import SAMPLE, write_config

from riskradar.config import load_settings
from riskradar.lake import Lake

pytestmark = pytest.mark.slow

INTAKE_DATE = datetime(2014, 7, 1, 6, tzinfo=UTC)
WEEK_DATE = datetime(2014, 6, 30, 12, tzinfo=UTC)  # a Monday: the weekly run scores 2014-06-30
MONTHS = ("2014-03", "2014-04", "2014-05", "2014-06")


def _every_nth(source: Path, target: Path, n: int) -> None:
    with gzip.open(source, "rt", encoding="utf-8", newline="") as fh:
        lines = fh.readlines()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress("".join([lines[0], *lines[1::n]]).encode(), mtime=0))


def _landing(tmp: Path) -> Path:
    landing = tmp / "landing"
    for month in MONTHS:
        name = f"chicago_crimes_{month}.csv.gz"
        _every_nth(SAMPLE / "police_crimes" / name, landing / "police_crimes" / name, 10)
    return landing


def _outputs(lake: Lake) -> dict[str, pd.DataFrame]:
    """What the runs published, as comparable frames (run timestamps left out)."""
    out = {}
    for name, path in {
        "silver": lake.silver("events"),
        "panel": lake.gold("features"),
        "scores": lake.gold("scores"),
    }.items():
        frame = pd.read_parquet(path)
        # when and by which run: the provenance of a rerun is its own
        run_columns = ("ingested_at", "scored_at", "features_version")
        frame = frame.drop(columns=[c for c in run_columns if c in frame.columns])
        keys = [c for c in ("event_id", "cell_id", "week", "target") if c in frame.columns]
        out[name] = (
            frame.astype({c: str for c in frame.columns if str(frame[c].dtype) == "category"})
            .sort_values(keys)
            .reset_index(drop=True)
        )
    return out


@pytest.fixture(scope="module")
def runs(airflow_db, tmp_path_factory):
    from airflow.dag_processing.dagbag import DagBag

    tmp = tmp_path_factory.mktemp("dags")
    config = write_config(
        tmp,
        landing=_landing(tmp),
        enabled=["police_crimes"],
        **{
            "targets": {
                "all_incidents": {
                    "categories": [
                        "theft",
                        "battery",
                        "criminal_damage",
                        "assault",
                        "burglary",
                        "robbery",
                        "narcotics",
                        "deceptive_practice",
                        "motor_vehicle_theft",
                        "other_offense",
                    ]
                }
            },
            "training.backtest_weeks": 4,
            "training.refit_every_weeks": 2,
            "training.promotion_margin": 0.0,
            "training.candidates": {
                "hgb_poisson": {"max_iter": 60, "min_samples_leaf": 20, "random_state": 0}
            },
            "spark.conf": {"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g"},
        },
    )
    settings = load_settings(config)
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"), safe_mode=False)
    conf = {"config": str(config)}
    intake = bag.dags["riskradar_intake"].test(logical_date=INTAKE_DATE, run_conf=conf)
    weekly = bag.dags["riskradar_weekly"].test(logical_date=WEEK_DATE, run_conf=conf)
    first = _outputs(Lake(settings.lake_root))
    return bag, settings, conf, intake, weekly, first


def test_intake_publishes_silver_events_for_every_feed(runs):
    _, settings, _, intake, _, first = runs
    assert intake.state == "success"
    lake = Lake(settings.lake_root)
    bronze = pd.read_parquet(lake.bronze("police_crimes"))
    quarantined = (
        pd.read_parquet(lake.quarantine("police_crimes")) if lake.quarantine("police_crimes").exists() else []
    )
    silver = first["silver"]
    assert len(silver) > 1000 and set(silver["partner"].astype(str)) == {"police_crimes"}
    assert len(bronze) == len(silver) + len(quarantined)


def test_weekly_run_builds_the_panel_trains_registers_and_publishes_scores(runs):
    from mlflow import MlflowClient

    from riskradar.registry import tracking_uri

    _, settings, _, _, weekly, first = runs
    assert weekly.state == "success"
    lake = Lake(settings.lake_root)
    panel = first["panel"]
    weeks = sorted(pd.to_datetime(panel["week"].astype(str)).dt.date.unique())
    assert str(weeks[-1]) == "2014-06-30" and len(panel) == panel["cell_id"].nunique() * len(weeks)

    client = MlflowClient(tracking_uri(settings, lake))
    experiment = client.get_experiment_by_name("riskradar-all_incidents")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`riskradar.kind` = 'candidate'")
    assert [r.data.tags["mlflow.runName"] for r in runs] == ["hgb_poisson"]
    champion = client.get_model_version_by_alias("riskradar-all_incidents", "champion")

    scores = first["scores"]
    assert set(scores["week"].astype(str)) == {"2014-06-30"}
    assert scores["cell_id"].nunique() == len(scores) == panel["cell_id"].nunique()
    assert set(scores["model_version"]) == {int(champion.version)}
    files = sorted(p.name for p in lake.reports("scores", "all_incidents", "2014-06-30").iterdir())
    assert files == [f"all_incidents_2014-06-30.{ext}" for ext in ("csv", "geojson", "html")]


def test_rerunning_both_dags_changes_no_output(runs):
    """The intake again (every file is already ingested) and the weekly run again: panel, scores
    and reports are rebuilt and equal. Training is marked done in the rerun to keep CI short;
    that a retrained identical model does not replace the champion is tested in test_train."""
    bag, settings, conf, _, _, first = runs
    again_intake = bag.dags["riskradar_intake"].test(logical_date=INTAKE_DATE, run_conf=conf)
    again_weekly = bag.dags["riskradar_weekly"].test(
        logical_date=WEEK_DATE, run_conf=conf, mark_success_pattern=r"target\.train_and_gate"
    )
    assert again_intake.state == again_weekly.state == "success"
    second = _outputs(Lake(settings.lake_root))
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name], check_like=True, obj=name)
