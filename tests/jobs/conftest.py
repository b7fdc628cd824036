"""A scored lake shared by the job tests that read scores: a synthetic panel with a trained
champion and its newest week scored and rolled up by area, built once per test run. Tests
that change a lake take a copy of it as it was built (`scored_copy`). And, for the tests that
read the registry only, a champion registered without a training (`champion`)."""

from __future__ import annotations

import shutil

import pytest
from builders import ChampionStore, champion_store
from synthetic_panel import (
    GOOD,
    WITH_AREAS,
    Scored,
    synthetic_settings,
    write_synthetic_areas,
    write_synthetic_panel,
)

from jobs import score, train
from riskradar.lake import Lake


@pytest.fixture(scope="session")
def scored_synthetic(spark, tmp_path_factory) -> Scored:
    tmp = tmp_path_factory.mktemp("scored")
    settings = synthetic_settings(tmp, **{"training.candidates": GOOD, **WITH_AREAS})
    lake = Lake(settings.lake_root)
    write_synthetic_panel(spark, lake)
    write_synthetic_areas(lake)
    trained = train.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    assert trained["alias"] == "champion", trained["reason"]
    result = score.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    pristine = tmp_path_factory.mktemp("scored-pristine") / "lake"
    shutil.copytree(lake.root, pristine)
    return Scored(settings, lake, trained, result, pristine)


@pytest.fixture
def champion(tmp_path) -> ChampionStore:
    return champion_store(tmp_path)
