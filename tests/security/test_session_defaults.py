"""The settings every session starts with: driver on 127.0.0.1 and no UI unless a config (or
spark-submit) sets them, and never a UI beyond loopback; the DAG tasks give spark-submit
SPARK_LOCAL_IP=127.0.0.1."""

from __future__ import annotations

import logging

import pytest

from riskradar.orchestration import spark_conf, spark_env, spark_job
from riskradar.spark import is_loopback, private_conf

LOOPBACK_DRIVER = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
PRIVATE = {**LOOPBACK_DRIVER, "spark.ui.enabled": "false"}


def test_nothing_set_gives_the_private_defaults():
    assert private_conf({"spark.sql.shuffle.partitions": "2"}, {}, local_ip=None) == {
        "spark.sql.shuffle.partitions": "2",
        **PRIVATE,
    }


def test_a_cluster_config_sets_the_driver_address():
    """Either address key, from the config or from spark-submit, leaves both to the cluster."""
    config = {"spark.driver.host": "10.1.2.3"}
    assert private_conf(config, {}, local_ip="127.0.0.1") == {**config, "spark.ui.enabled": "false"}
    submitted = {"spark.driver.bindAddress": "0.0.0.0"}
    assert private_conf({}, submitted, local_ip="127.0.0.1") == {"spark.ui.enabled": "false"}


@pytest.mark.parametrize("where", ["config", "spark-submit"])
def test_a_ui_asked_for_is_served_on_loopback(where, caplog):
    asked = {"spark.ui.enabled": "true"}
    config, submitted = (asked, {}) if where == "config" else ({}, asked)
    with caplog.at_level(logging.WARNING):
        got = private_conf(config, submitted, local_ip="127.0.0.1")
    assert got == {**config, **LOOPBACK_DRIVER}
    assert caplog.records == []


@pytest.mark.parametrize("local_ip", [None, "", "0.0.0.0", "10.1.2.3", "myhost.example"])
def test_a_ui_that_would_listen_beyond_loopback_is_turned_off_with_a_warning(local_ip, caplog):
    with caplog.at_level(logging.WARNING, logger="riskradar.spark"):
        got = private_conf({}, {"spark.ui.enabled": " TRUE "}, local_ip=local_ip)
    assert got == PRIVATE
    [record] = caplog.records
    assert record.levelname == "WARNING"
    assert "the UI stays off" in record.getMessage()
    assert "SPARK_LOCAL_IP=127.0.0.1" in record.getMessage()


def test_a_ui_turned_off_by_config_stays_off():
    assert private_conf({"spark.ui.enabled": "false"}, {"spark.ui.enabled": "true"}, local_ip=None) == PRIVATE


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.1.1", "::1", "localhost", " 127.0.0.1 "])
def test_loopback_addresses(address):
    assert is_loopback(address) is True


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "192.168.1.5", "host.example"])
def test_addresses_beyond_loopback(address):
    assert is_loopback(address) is False


def test_dag_tasks_give_spark_submit_a_loopback_local_ip():
    task = spark_job("ingest_new_files", "ingest", ["--partner", "police_crimes"])
    assert task.env_vars == spark_env() == {"SPARK_LOCAL_IP": "127.0.0.1"}
    assert task.conf == spark_conf()
    on_cluster = spark_job("ingest_new_files", "ingest", ["--partner", "p"], deploy_mode="cluster")
    assert on_cluster.env_vars is None


def test_spark_submit_gets_the_env_in_client_mode(monkeypatch):
    """The provider's hook hands env_vars to spark-submit's process (not only to the operator)."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    monkeypatch.setenv("AIRFLOW_CONN_SPARK_SECURITY_TEST", '{"conn_type": "spark", "host": "local[1]"}')
    hook = SparkSubmitHook(conn_id="spark_security_test", conf=spark_conf(), env_vars=spark_env())
    command = hook._build_spark_submit_command("app.py")
    assert command[:3] == ["spark-submit", "--master", "local[1]"]
    assert hook._env == {"SPARK_LOCAL_IP": "127.0.0.1"}
