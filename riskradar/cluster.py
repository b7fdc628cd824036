"""A Spark standalone cluster on this machine: one master and one worker on 127.0.0.1, for
tests and benchmarks that submit jobs the way a cluster runs them.

    with LocalCluster(Path("/tmp/rr-cluster"), cores=2, memory="2g") as cluster:
        submit(cluster.master_url, "ingest", ["--partner", "police_crimes", "--config", cfg])

The daemons are started and stopped with the pyspark package's `sbin/spark-daemon.sh` (pip's
pyspark has no start-master.sh). Pid files, logs and the worker's work folder live under
`root`; every port is a free one picked at start, and the master's REST submission server is
off, so nothing listens beyond 127.0.0.1 and nothing collides with other Spark processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from riskradar.errors import RiskradarError
from riskradar.orchestration import job_path, spark_conf

HOST = "127.0.0.1"
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


class ClusterError(RiskradarError):
    """The cluster did not come up, or a job submitted to it failed."""


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def spark_home() -> Path:
    """The installed pyspark package: it holds bin/, sbin/ and jars/ of a Spark distribution."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def client_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment spark-submit runs in: this interpreter for driver and executors (it has
    pandas and the project), its bin/ first on PATH, everything bound to 127.0.0.1."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": HOST,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


class LocalCluster:
    """A standalone master and one worker (`cores`, `memory`) on 127.0.0.1, as a context
    manager: entering starts both and waits until the worker has registered (ClusterError with
    the daemons' log tails after `timeout` seconds); leaving stops both, also after an error."""

    def __init__(self, root: Path, *, cores: int = 2, memory: str = "2g", timeout: float = 90.0):
        self.root = Path(root)
        self.cores = cores
        self.memory = memory
        self.timeout = timeout
        self.port = self.webui_port = self.worker_webui_port = 0
        self._pids: dict[str, int] = {}

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.port}"

    @property
    def webui_url(self) -> str:
        return f"http://{HOST}:{self.webui_port}"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def work_dir(self) -> Path:
        """The worker's folder: one subfolder per application with each executor's stdout and stderr."""
        return self.root / "work"

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Start the master and the worker and wait for the worker; on any failure stop what
        was started and raise."""
        self.port, self.webui_port, self.worker_webui_port = free_port(), free_port(), free_port()
        master = ["--host", HOST, "--port", str(self.port), "--webui-port", str(self.webui_port)]
        worker = ["--host", HOST, "--cores", str(self.cores), "--memory", self.memory]
        worker += ["--webui-port", str(self.worker_webui_port), "--work-dir", str(self.work_dir)]
        try:
            self._daemon("start", MASTER, *master)
            self._daemon("start", WORKER, *worker, self.master_url)
            self.wait_for_workers(1)
        except BaseException:
            self.stop()
            raise

    def state(self) -> dict:
        """The master's status (its web UI's /json/): workers, aliveworkers, activeapps, completedapps."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=5) as response:
            return json.load(response)

    def wait_for_workers(self, count: int) -> None:
        """Poll the master until `count` workers are alive; ClusterError with the log tails if
        they are not within `timeout` seconds or a daemon exits."""
        deadline = time.monotonic() + self.timeout
        seen = "the master's web UI did not answer"
        while time.monotonic() < deadline:
            try:
                alive = self.state().get("aliveworkers", 0)
                if alive >= count:
                    return
                seen = f"{alive} alive worker(s)"
            except (OSError, ValueError):  # not answering yet (URLError is an OSError)
                pass
            if any(not _running(pid) for pid in self._pids.values()):
                seen = "a daemon exited"
                break
            time.sleep(0.5)
        raise ClusterError(
            f"the standalone cluster at {self.master_url} did not get {count} worker(s) within "
            f"{self.timeout:.0f} s ({seen}).\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Stop the worker (and so its executors), then the master, and wait until both are
        gone; a daemon still running 30 s after its stop is killed."""
        for command in (WORKER, MASTER):
            pid = self._pids.pop(command, None)
            if pid is None:
                continue
            self._daemon("stop", command)
            deadline = time.monotonic() + 30
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _running(pid):
                os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of every daemon log, for error messages."""
        parts = []
        for log in sorted(self.log_dir.glob("*.out")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts) or f"(no daemon logs under {self.log_dir})"

    def _env(self) -> dict[str, str]:
        env = client_env()
        env.update(
            {
                "SPARK_HOME": str(spark_home()),
                "SPARK_PID_DIR": str(self.root / "pids"),
                "SPARK_LOG_DIR": str(self.log_dir),
                # an empty conf folder: no spark-env.sh or spark-defaults.conf from the package
                "SPARK_CONF_DIR": str(self.root / "conf"),
                "SPARK_IDENT_STRING": "riskradar",
                # no REST submission server (port 6066); were it turned on, only on 127.0.0.1
                "SPARK_MASTER_OPTS": f"-Dspark.master.rest.enabled=false -Dspark.master.rest.host={HOST}",
            }
        )
        return env

    def _daemon(self, action: str, command: str, *args: str) -> None:
        """spark-daemon.sh start|stop. A started daemon's pid is recorded even when the start
        then fails, so that stop() ends it; a stop that fails is left to stop()'s kill."""
        (self.root / "conf").mkdir(parents=True, exist_ok=True)
        pid_file = self.root / "pids" / f"spark-riskradar-{command}-1.pid"
        if action == "start" and pid_file.exists():
            raise ClusterError(f"{pid_file} exists: another cluster uses {self.root}")
        try:
            done = subprocess.run(
                ["bash", str(spark_home() / "sbin" / "spark-daemon.sh"), action, command, "1", *args],
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            if action == "stop":
                return
            raise
        finally:
            if action == "start" and pid_file.exists():
                self._pids[command] = int(pid_file.read_text())
        if action == "start" and (done.returncode != 0 or command not in self._pids):
            raise ClusterError(f"spark-daemon.sh could not start {command}:\n{done.stdout}{done.stderr}")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # The daemon's parent, spark-daemon.sh, has exited: until init reaps it, a stopped daemon
    # is a zombie, which signal 0 still finds.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def submit(
    master: str,
    job: str,
    args: Sequence[str],
    *,
    conf: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """spark-submit jobs/<job>.py with `args` to `master` as the Airflow DAGs do (same
    application, name and conf; the driver's memory 1g unless `conf` says otherwise); a
    failure raises ClusterError with the end of the job's output."""
    merged = {**spark_conf(), "spark.driver.memory": "1g", **(conf or {})}
    command = ["spark-submit", "--master", master, "--name", f"riskradar-{job.replace('_', '-')}"]
    for key, value in merged.items():
        command += ["--conf", f"{key}={value}"]
    command += [job_path(job), *args]
    done = subprocess.run(
        command, env=client_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-60:])
        raise ClusterError(f"spark-submit {job} on {master} exited with {done.returncode}:\n{tail}")
    return done
