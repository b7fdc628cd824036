"""Airflow for the DAG tests: its own home (SQLite) in a temp folder, no examples, the local
Spark connection from the environment, and the venv's spark-submit on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HOME = Path(tempfile.mkdtemp(prefix="riskradar-airflow-"))
BIN = Path(sys.executable).parent
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[2] / "dags"),
    "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[2]"}',
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
}
# Set before anything imports airflow (it reads its home once).
os.environ.update(AIRFLOW_ENV)


@pytest.fixture(scope="session")
def airflow_db():
    """An initialised Airflow metadata database (SQLite) in the test home."""
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True, timeout=300)
    return HOME
