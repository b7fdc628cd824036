"""support.cluster: a LocalCluster whose worker cannot start fails the start, says why and
leaves nothing running; quick JVM options without their class archive are C1 only.

That the jobs publish on it exactly what they publish in local mode is tested beside the DAG
runs (tests/dags/test_dag_runs.py): the cluster runs the DAG tasks' jobs while the DAGs run.
"""

from __future__ import annotations

import pytest
import support.cluster
from support.cluster import C1_ONLY, ClusterError, LocalCluster, quick_jvm

pytestmark = pytest.mark.slow


def test_a_worker_that_cannot_start_fails_the_start_with_its_log_and_stops_the_master(tmp_path):
    cluster = LocalCluster(tmp_path, memory="0g", timeout=60)  # the worker refuses 0 bytes
    with pytest.raises(ClusterError, match="did not get 1 worker") as failed:
        cluster.start()
    assert "Memory is below 1MB" in str(failed.value)
    with pytest.raises(OSError):  # the master's web UI is gone: the master was stopped
        cluster.state()


def test_quick_jvm_options_without_the_archive_are_c1_only_with_their_conf_folder(tmp_path):
    quick = quick_jvm(tmp_path, archive=False)
    assert quick.options == C1_ONLY == "-XX:TieredStopAtLevel=1"
    assert quick.conf_dir == tmp_path / "conf" and quick.conf_dir.is_dir()
    assert quick.submit_env() == {"SPARK_SUBMIT_OPTS": C1_ONLY, "SPARK_CONF_DIR": str(tmp_path / "conf")}
    assert quick.executor_conf() == {"spark.executor.extraJavaOptions": C1_ONLY}
    assert list(tmp_path.iterdir()) == [tmp_path / "conf"]  # no archive made


def test_when_the_class_archive_cannot_be_made_the_options_are_c1_only_and_say_why(tmp_path, monkeypatch):
    broken = "print('warm-up broke here')\nraise SystemExit(3)\n"
    monkeypatch.setattr(support.cluster, "WARM_UP_APP", broken)
    with pytest.warns(UserWarning, match="no class data sharing archive") as warned:
        quick = quick_jvm(tmp_path)
    assert "warm-up broke here" in str(warned[0].message)
    assert quick.options == C1_ONLY and quick.conf_dir == tmp_path / "conf"
    assert not (tmp_path / "spark-classes.jsa").exists() and not (tmp_path / "spark-classes.partial").exists()
