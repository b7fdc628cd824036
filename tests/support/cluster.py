"""A Spark standalone cluster on this machine: one master and one worker on 127.0.0.1, for
tests and benchmarks that submit jobs the way a cluster runs them.

    with LocalCluster(Path("/tmp/rr-cluster"), cores=2, memory="2g") as cluster:
        submit(cluster.master_url, "ingest", ["--partner", "police_crimes", "--config", cfg])

The daemons are started and stopped with the pyspark package's `sbin/spark-daemon.sh` (pip's
pyspark has no start-master.sh). Pid files, logs and the worker's work folder live under
`root`; every port is a free one picked at start, and the master's REST submission server is
off, so nothing listens beyond 127.0.0.1 and nothing collides with other Spark processes.

Short-lived JVMs (a test's spark-submits, the cluster's executors and daemons) start quicker
with `quick_jvm(folder)`: the C1 compiler only, and a class data sharing archive of what a
Spark job loads, made once by a small warm-up application.
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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from riskradar.errors import RiskradarError
from riskradar.orchestration import job_path, spark_conf

HOST = "127.0.0.1"
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"
# Cold, short-lived JVMs on two shared cores spent about half of their time in the C2 compiler.
# The JIT tier cannot change a result: since Java 17 all floating point is strict (JEP 306).
C1_ONLY = "-XX:TieredStopAtLevel=1"
# support/ is the tests' package, not installed: the application puts the tests' folder on its
# path (without it the archive was never made, and every quick JVM ran C1 only).
WARM_UP_APP = '''"""Written by support.cluster.quick_jvm: loads what a job loads, then exits."""
import sys

sys.path.insert(0, {tests!r})

from support.cluster import warm_up

warm_up(sys.argv[1])
'''


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


@dataclass(frozen=True)
class QuickJvm:
    """JVM options for short-lived Spark JVMs, and the SPARK_CONF_DIR (an empty folder) those
    JVMs must have for the options' class archive to serve them (see `quick_jvm`)."""

    options: str
    conf_dir: Path

    def submit_env(self) -> dict[str, str]:
        """Variables for spark-submit: its driver's JVM starts with the options."""
        return {"SPARK_SUBMIT_OPTS": self.options, "SPARK_CONF_DIR": str(self.conf_dir)}

    def executor_conf(self) -> dict[str, str]:
        """spark-submit conf for an application on a LocalCluster made with these options: its
        executors start with them too (the worker gives them the same SPARK_CONF_DIR)."""
        return {"spark.executor.extraJavaOptions": self.options}


def quick_jvm(folder: Path, *, archive: bool = True, timeout: float = 300, niceness: int = 0) -> QuickJvm:
    """Options that start short-lived Spark JVMs quicker, for tests and benchmarks: C1 only, and
    `-XX:SharedArchiveFile`, a dynamic class data sharing archive (JDK 13+) of the classes a
    Spark job loads. Measured here, a warm-up job (Parquet, CSV, a window, a pandas UDF) took
    13 s with C1 only and 8 s with both; making the archive takes about 35 s, once per
    `folder`: it is kept there and reused. `archive=False`: C1 only, at once (the same conf
    folder, so a cluster started with these serves executors that use the archive later).
    `niceness`: the warm-up's scheduling priority.

    A JVM uses the archive only with the classpath it was made with: `conf_dir` (the folder's
    `conf`, empty) before the pyspark package's jars, so the JVMs must run with that
    SPARK_CONF_DIR. Any other JVM, or one that cannot map the archive, starts as usual. If the
    archive cannot be made, the options are C1 only and a warning says why."""
    folder = Path(folder)
    conf_dir = folder / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    if not archive:
        return QuickJvm(C1_ONLY, conf_dir)
    classes = folder / "spark-classes.jsa"
    if not classes.exists():
        failure = _dump_class_archive(classes, conf_dir, timeout, niceness)
        if failure is not None:
            warnings.warn(f"no class data sharing archive in {folder}, C1 only: {failure}", stacklevel=2)
            return QuickJvm(C1_ONLY, conf_dir)
    return QuickJvm(f"{C1_ONLY} -XX:SharedArchiveFile={classes}", conf_dir)


def _dump_class_archive(archive: Path, conf_dir: Path, timeout: float, niceness: int) -> str | None:
    """Run the warm-up application once with -XX:ArchiveClassesAtExit; the archive appears
    whole or not at all. Returns what went wrong, or None."""
    app, partial = archive.with_suffix(".warm_up.py"), archive.with_suffix(".partial")
    app.write_text(WARM_UP_APP.format(tests=str(Path(__file__).resolve().parents[1])))
    dump = f"{C1_ONLY} -XX:ArchiveClassesAtExit={partial} -Xlog:cds=off -Xlog:cds+dynamic=off"
    command = ["nice", "-n", str(niceness)] if niceness else []
    command += ["spark-submit", "--master", "local[2]", "--name", "riskradar-warm-up"]
    command += ["--conf", f"spark.driver.extraJavaOptions={dump}", "--conf", "spark.ui.enabled=false"]
    command += [str(app), str(archive.with_suffix(".scratch"))]
    env = {**client_env(), "SPARK_CONF_DIR": str(conf_dir)}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        failure = None if done.returncode == 0 and partial.exists() else done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        failure = f"the warm-up application did not end within {timeout:.0f} s"
    if failure is not None:
        partial.unlink(missing_ok=True)  # a JVM dumps its classes at exit, also after a failure
        return "\n".join(failure.splitlines()[-20:])
    partial.replace(archive)
    return None


def warm_up(scratch: str) -> None:
    """The warm-up application of `quick_jvm`: a session as every job starts it, Parquet
    and CSV written and read back, an aggregation, a window, a pandas UDF and frames to and
    from pandas through Arrow, so that the archive holds the classes of that work."""
    import pandas as pd
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from riskradar.spark import get_session

    spark = get_session("riskradar-warm-up", conf={"spark.sql.execution.arrow.pyspark.enabled": "true"})
    rows = spark.range(2000).select(
        "id", (F.col("id") % 7).alias("k"), F.sha2(F.col("id").cast("string"), 256).alias("s")
    )
    rows.write.mode("overwrite").partitionBy("k").parquet(f"{scratch}/parquet")
    rows.write.mode("overwrite").option("header", True).csv(f"{scratch}/csv")
    back = spark.read.parquet(f"{scratch}/parquet").unionByName(
        spark.read.option("header", True).schema(rows.schema).csv(f"{scratch}/csv")
    )
    ranked = back.withColumn("n", F.row_number().over(Window.partitionBy("k").orderBy("id")))
    doubled = ranked.mapInPandas(lambda frames: (f.assign(id=f["id"] * 2) for f in frames), ranked.schema)
    summary = doubled.groupBy("k").agg(F.count("*").alias("rows"), F.max("n").alias("n")).toPandas()
    spark.createDataFrame(pd.DataFrame(summary)).collect()
    spark.stop()


class LocalCluster:
    """A standalone master and one worker (`cores`, `memory`) on 127.0.0.1, as a context
    manager: entering starts both and waits until the worker has registered (ClusterError with
    the daemons' log tails after `timeout` seconds); leaving stops both, also after an error."""

    def __init__(
        self,
        root: Path,
        *,
        cores: int = 2,
        memory: str = "2g",
        timeout: float = 90.0,
        quick: QuickJvm | None = None,
        niceness: int = 0,
    ):
        self.root = Path(root)
        self.cores = cores
        self.memory = memory
        self.timeout = timeout
        self.quick = quick  # the daemons start with its options and conf folder
        # the daemons' scheduling priority (SPARK_NICENESS), which their executors inherit
        self.niceness = niceness
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
    def conf_dir(self) -> Path:
        """The daemons' SPARK_CONF_DIR, an empty folder (no spark-env.sh or spark-defaults.conf
        from the package): the quick options' folder, or one of the cluster's own."""
        return self.quick.conf_dir if self.quick else self.root / "conf"

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
                "SPARK_CONF_DIR": str(self.conf_dir),
                "SPARK_IDENT_STRING": "riskradar",
                # no REST submission server (port 6066); were it turned on, only on 127.0.0.1
                "SPARK_MASTER_OPTS": f"-Dspark.master.rest.enabled=false -Dspark.master.rest.host={HOST}",
                "SPARK_DAEMON_JAVA_OPTS": self.quick.options if self.quick else "",
                "SPARK_NICENESS": str(self.niceness),
            }
        )
        return env

    def _daemon(self, action: str, command: str, *args: str) -> None:
        """spark-daemon.sh start|stop. A started daemon's pid is recorded even when the start
        then fails, so that stop() ends it; a stop that fails is left to stop()'s kill."""
        self.conf_dir.mkdir(parents=True, exist_ok=True)
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
    niceness: int = 0,
) -> subprocess.CompletedProcess:
    """spark-submit jobs/<job>.py with `args` to `master` as the Airflow DAGs do (same
    application, name and conf; the driver's memory 1g unless `conf` says otherwise), at
    `niceness` (its driver's scheduling priority); a failure raises ClusterError with the end
    of the job's output."""
    merged = {**spark_conf(), "spark.driver.memory": "1g", **(conf or {})}
    command = ["nice", "-n", str(niceness)] if niceness else []
    command += ["spark-submit", "--master", master, "--name", f"riskradar-{job.replace('_', '-')}"]
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
