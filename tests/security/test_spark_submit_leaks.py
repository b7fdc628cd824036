"""A job started the way the DAG tasks start it (the venv's spark-submit, the DAGs' conf and
the environment they give spark-submit, nothing else) listens on loopback only, and the
pseudonymisation key, in none of its forms, reaches the UI's REST API, the event log or the
job's output. The job is tests/security/pseudonymise_app.py; it waits while it is inspected.

Three runs, one spark-submit each, submitted together:
- UI and event log turned on through spark-submit's conf: the UI answers on 127.0.0.1 and
  shows the plan, which holds no key; the event log and the output neither;
- the issue's case, UI asked for but no SPARK_LOCAL_IP for spark-submit: no UI at all;
- the DAG's defaults: no UI.
And (slow) the same job on the standalone cluster of support.cluster, with its UI on: master,
worker, executor and driver listen on loopback only, and no daemon or executor log holds the key.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from builders import TEST_KEY
from key_forms import leaked

from riskradar.orchestration import spark_conf, spark_env

APP = Path(__file__).with_name("pseudonymise_app.py")
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
KEY = TEST_KEY.encode()
IDS = 300
START_TIMEOUT = 150  # s until the application has done its work
# The UI turned on through spark-submit's conf, on any free port (others may hold 4040).
UI_ASKED = {"spark.ui.enabled": "true", "spark.ui.port": "0"}
# Short-lived cold JVMs spend much of their time in the C2 compiler (see
# tests/cluster/test_standalone_cluster.py); the JIT tier changes nothing of what they listen
# on or write.
QUICK_JVM = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}
# Variables of this test process that a DAG task's environment does not have.
NOT_IN_A_TASK = ("SPARK_LOCAL_IP", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PYSPARK_GATEWAY_PORT")


class Job:
    """One spark-submit of the application: its work folder, process and captured output."""

    def __init__(self, work: Path, proc: subprocess.Popen):
        self.work, self.proc = work, proc

    @property
    def output(self) -> str:
        return (self.work / "stdout.txt").read_text(errors="replace") + (self.work / "stderr.txt").read_text(
            errors="replace"
        )

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if (self.work / "ready.json").exists():
                return json.loads((self.work / "ready.json").read_text())
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        tail = "\n".join(self.output.splitlines()[-40:])
        pytest.fail(f"the application did not get ready (exit {self.proc.poll()}):\n{tail}")

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def listening(self) -> list[tuple[str, str, int]]:
        """(process name, address, port) of every listening TCP socket of the process tree."""
        return [(p.name(), c.laddr.ip, c.laddr.port) for p in self.processes() for c in _listening(p)]

    def finish(self) -> int:
        (self.work / "release").touch()
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.stop()

    def stop(self) -> None:
        """End the job's process group (this test started it) if it still runs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def submit(work: Path, conf: dict[str, str], env: dict[str, str], master: str = "local[1]") -> Job:
    """spark-submit the application as a DAG task does: the DAGs' conf (driver memory 1g
    instead of the param's template, a quicker JIT) plus `conf`, in the task's environment
    plus `env`."""
    work.mkdir(parents=True)
    merged = {**spark_conf(), "spark.driver.memory": "1g", **QUICK_JVM, **conf}
    command = [str(SPARK_SUBMIT), "--master", master, "--name", "riskradar-security-test"]
    for key, value in merged.items():
        command += ["--conf", f"{key}={value}"]
    command += [str(APP), str(work), str(IDS)]
    task_env = {k: v for k, v in os.environ.items() if k not in NOT_IN_A_TASK}
    # `riskradar airflow` puts the venv's bin/ first on PATH: spark-submit finds pyspark there.
    task_env["PATH"] = f"{SPARK_SUBMIT.parent}{os.pathsep}{task_env.get('PATH', '')}"
    task_env.update({**env, "RISKRADAR_PSEUDONYM_KEY": TEST_KEY})
    with (work / "stdout.txt").open("wb") as out, (work / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(
            command, stdout=out, stderr=err, env=task_env, cwd=work, start_new_session=True
        )
    return Job(work, proc)


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:  # ::ffff:127.0.0.1
        ip = ip.ipv4_mapped
    return ip.is_loopback


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def http_answers(port: int) -> bool:
    """Whether something on 127.0.0.1:`port` answers an HTTP request (a web UI would)."""
    try:
        get(f"http://127.0.0.1:{port}/api/v1/applications", timeout=2)
    except urllib.error.HTTPError:
        return True
    except (OSError, http.client.HTTPException):  # refused, reset, timed out, not HTTP
        return False
    return True


def event_log_text(folder: Path, app_id: str) -> bytes:
    """The application's event log, decompressed: Spark 4 writes rolling logs (a folder
    eventlog_v2_<app> of events_<n>_<app>.zstd files) by default, older settings one file."""
    paths = sorted(p for p in folder.rglob(f"*{app_id}*") if p.is_file())
    assert paths, f"no event log of {app_id} under {folder}"
    data = b""
    for path in paths:
        if path.suffix == ".zstd":
            import pyarrow as pa

            with pa.input_stream(str(path), compression="zstd") as stream:
                data += stream.read()
        else:
            data += path.read_bytes()
    return data


def assert_only_loopback(job: Job) -> list[tuple[str, str, int]]:
    sockets = job.listening()
    assert sockets, "the driver listens on nothing: the process tree was not found"
    beyond = [s for s in sockets if not is_loopback(s[1])]
    assert beyond == [], f"listening beyond loopback: {beyond}"
    return sockets


# The local runs (the conf and the environment each is submitted with, beyond the DAGs'): the UI
# and the event log asked for, as a DAG task runs it, and the case (the UI asked for, no
# SPARK_LOCAL_IP). Their tests take turns looking at them, but all are submitted at once: the
# cold JVMs and Python processes start side by side instead of one after the other.
LOCAL_RUNS = {
    "ui-and-event-log": (UI_ASKED, spark_env()),
    "dag-defaults": ({}, spark_env()),
    "ui-asked-without-local-ip": (UI_ASKED, {}),
}


@pytest.fixture(scope="module")
def local_jobs(tmp_path_factory):
    """name of LOCAL_RUNS -> its Job, all submitted at once; "ui-and-event-log" writes its
    event log to the folder `events` beside its work folder. Any still running are stopped."""
    root = tmp_path_factory.mktemp("submits")
    events = root / "events"
    events.mkdir()
    jobs = {}
    try:
        for name, (conf, env) in LOCAL_RUNS.items():
            if name == "ui-and-event-log":
                conf = {**conf, "spark.eventLog.enabled": "true", "spark.eventLog.dir": events.as_uri()}
            jobs[name] = submit(root / name, conf, env)
        yield jobs
    finally:
        for job in jobs.values():
            job.stop()


def test_ui_and_event_log_on_loopback_and_without_the_key(local_jobs):
    job = local_jobs["ui-and-event-log"]
    try:
        ready = job.wait_ready()
        assert ready["rows"] == IDS
        assert_only_loopback(job)
        ui, app = ready["ui_url"], ready["app_id"]
        assert ui and ipaddress.ip_address(ui.split("//")[1].rsplit(":", 1)[0]).is_loopback, ui
        status, sql = get(f"{ui}/api/v1/applications/{app}/sql?details=true&planDescription=true")
        assert status == 200
        # The endpoint shows the plans, with their literals (the domain prefix "police_crimes:"),
        # but no form of the key: the pads are data.
        assert b"Scan ExistingRDD" in sql and b"BroadcastNestedLoopJoin" in sql
        assert b"police_crimes:".hex().upper().encode() in sql
        assert leaked(sql, KEY) == []
        status, environment = get(f"{ui}/api/v1/applications/{app}/environment")
        assert status == 200 and b"spark.ui.enabled" in environment
        assert leaked(environment, KEY) == []
        assert job.finish() == 0
    finally:
        job.stop()
    log = event_log_text(job.work.parent / "events", app)
    assert b"SparkListenerSQLExecutionStart" in log and b"Scan ExistingRDD" in log
    assert leaked(log, KEY) == []
    assert "Scan ExistingRDD" in job.output  # the application printed its plan
    assert leaked(job.output, KEY) == []


@pytest.mark.parametrize(
    ("name", "warning"),
    [
        pytest.param("dag-defaults", None, id="dag-defaults"),
        # As the issue found it: without SPARK_LOCAL_IP the UI would listen on *:4040.
        pytest.param("ui-asked-without-local-ip", "the UI stays off", id="ui-asked-without-local-ip"),
    ],
)
def test_no_ui_is_served(local_jobs, name, warning):
    job = local_jobs[name]
    try:
        ready = job.wait_ready()
        sockets = assert_only_loopback(job)
        assert ready["ui_url"] is None
        assert [port for _, _, port in sockets if http_answers(port)] == []
        assert job.finish() == 0
    finally:
        job.stop()
    assert warning is None or warning in job.output
    assert leaked(job.output, KEY) == []


@pytest.mark.slow
def test_standalone_cluster_listens_on_loopback_only(tmp_path):
    from support.cluster import LocalCluster, client_env

    root = tmp_path / "cluster"
    with LocalCluster(root, cores=1, memory="1g") as cluster:
        # The cluster's own client environment, as support.cluster.submit uses it.
        env = {k: v for k, v in client_env().items() if k in ("SPARK_LOCAL_IP", "PATH")}
        job = submit(tmp_path / "job", UI_ASKED, env, cluster.master_url)
        try:
            ready = job.wait_ready()
            assert ready["rows"] == IDS and ready["ui_url"]
            # The daemons and the executor run with the cluster's folder on their class path.
            daemons = [p for p in psutil.process_iter() if _mentions(p, str(root))]
            names = " ".join(" ".join(p.cmdline()) for p in daemons)
            assert all(role in names for role in ("deploy.master.Master", "deploy.worker.Worker", "Executor"))
            assert_only_loopback(job)
            sockets = [(p.name(), c.laddr.ip, c.laddr.port) for p in daemons for c in _listening(p)]
            assert sockets and [s for s in sockets if not is_loopback(s[1])] == []
            assert job.finish() == 0
        finally:
            job.stop()
    logs = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".jar"]
    assert logs and [str(p) for p in logs if leaked(p.read_bytes(), KEY)] == []
    assert leaked(job.output, KEY) == []


def _mentions(process: psutil.Process, text: str) -> bool:
    try:
        return any(text in part for part in process.cmdline())
    except psutil.Error:  # gone, or not ours to read
        return False


def _listening(process: psutil.Process) -> list:
    return [c for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
