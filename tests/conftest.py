"""One Spark session for the whole test run, plus small builders of configs and landings."""

from __future__ import annotations

import os
import sys

import pytest
from builders import ROOT, SAMPLE, TEST_KEY, copy_sample, landing_with, write_config  # noqa: F401

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# OpenMP threads (the boosted trees') that spin while they wait take the CPU from Spark and from
# each other on two cores: training on a 16-cell panel took 100-150 s instead of 23-31 s on a
# busy machine. The wait policy changes no result. Set before anything loads the OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
os.environ.pop("RISKRADAR_LAKE", None)
# Module-scoped pipelines run before any function fixture: the test key is set for the run.
os.environ["RISKRADAR_PSEUDONYM_KEY"] = TEST_KEY


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from riskradar.spark import get_session

    warehouse = tmp_path_factory.mktemp("warehouse")
    session = get_session(
        "riskradar-tests",
        master="local[2]",
        conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.sql.warehouse.dir": str(warehouse),
            "spark.driver.memory": "2g",
            # as conf/riskradar.yaml: frames reach pandas as Arrow columns
            "spark.sql.execution.arrow.pyspark.enabled": "true",
        },
    )
    yield session
    session.stop()
    # Close the Py4J connections now, while the test run's output is open: left to the garbage
    # collector at exit, their closing lines go to a stream pytest has closed (Airflow's root
    # handler holds it) and print "--- Logging error ---" after the summary.
    from pyspark import SparkContext

    if SparkContext._gateway is not None:
        SparkContext._gateway.shutdown()
        SparkContext._gateway = SparkContext._jvm = None


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", TEST_KEY)
    return TEST_KEY.encode()
