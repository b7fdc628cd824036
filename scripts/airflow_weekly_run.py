"""Run the weekly DAG through the real scheduler: start `riskradar airflow`, trigger the DAG
through the Airflow REST API, wait until the run ends, print every task's state, stop Airflow.

    .venv/bin/python scripts/airflow_weekly_run.py [--lake DIR] [--logical-date 2015-01-05]

Use a lake where the intake has run (e.g. after `make demo`, or `--lake` of one). The run's
logical date picks the week to score (the Monday of its week). Writes the outcome to
benchmarks/results/airflow_weekly_run.json. Airflow binds to 127.0.0.1 and is stopped when the
run ends, the script fails or it gets a TERM or INT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("airflow_weekly_run")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str):
        self.base, self.token = base, None

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.base}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {self.token}"} if self.token else {}),
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def wait(self, what: str, check, timeout: float, every: float = 5.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = check()
                if value:
                    return value
            except (urllib.error.URLError, OSError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(every)


DAG = "riskradar_weekly"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "conf" / "riskradar.yaml"))
    parser.add_argument("--lake", help="the lake root (default: the config's, or RISKRADAR_LAKE)")
    parser.add_argument("--logical-date", default="2015-01-05", help="the run's logical date (a Monday)")
    parser.add_argument("--timeout-min", type=float, default=120)
    return parser.parse_args()


def start_airflow(args: argparse.Namespace, home: Path, port: int, out) -> subprocess.Popen:
    """`riskradar airflow` on 127.0.0.1:`port` in its own process group, its output to `out`."""
    env = dict(os.environ)
    if args.lake:
        env["RISKRADAR_LAKE"] = args.lake
    command = [sys.executable, "-m", "riskradar.cli", "airflow", "--config", args.config]
    return subprocess.Popen(
        [*command, "--home", str(home), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def log_in(api: Api, home: Path) -> None:
    """Wait for the API server and the generated admin password; keep the access token."""
    api.wait("the API server", lambda: api.call("GET", "/api/v2/monitor/health"), 300)
    passwords = home / "simple_auth_manager_passwords.json.generated"
    password = api.wait("the admin password", lambda: json.loads(passwords.read_text())["admin"], 120, 2)
    api.token = api.call("POST", "/auth/token", {"username": "admin", "password": password})["access_token"]


def trigger(api: Api, args: argparse.Namespace) -> tuple[str, list[str]]:
    """(run id of the triggered run, the scheduler's own runs it stopped)."""
    api.wait("the weekly DAG to be parsed", lambda: api.call("GET", f"/api/v2/dags/{DAG}"), 300)
    body = {
        "logical_date": f"{args.logical_date}T12:00:00Z",
        "conf": {"config": str(Path(args.config).resolve())},
    }
    run_id = api.call("POST", f"/api/v2/dags/{DAG}/dagRuns", body)["dag_run_id"]
    api.call("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": False})
    # Unpausing makes the scheduler create the latest scheduled run too (today's week, with
    # no data in the bundled sample); this script is about its own run, so it stops that one.
    time.sleep(10)
    stopped = []
    for other in api.call("GET", f"/api/v2/dags/{DAG}/dagRuns")["dag_runs"]:
        if other["dag_run_id"] != run_id and other["state"] in ("queued", "running"):
            api.call("PATCH", f"/api/v2/dags/{DAG}/dagRuns/{other['dag_run_id']}", {"state": "failed"})
            stopped.append(other["dag_run_id"])
    return run_id, stopped


def wait_for_run(api: Api, run_id: str, timeout_s: float) -> dict:
    """The run's final state and its task instances, in the order they started."""

    def finished():
        state = api.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}")["state"]
        return state if state in ("success", "failed") else None

    state = api.wait("the DAG run", finished, timeout_s, 15)
    tasks = api.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {
        "run_id": run_id,
        "state": state,
        "tasks": [
            {
                "task": t["task_id"],
                "map_index": t["map_index"],
                "state": t["state"],
                "duration_s": round(t["duration"] or 0, 1),
                "tries": t["try_number"],
            }
            for t in sorted(tasks, key=lambda t: (t["start_date"] or "", t["map_index"]))
        ],
    }


def main() -> None:
    logging.basicConfig(
        format="%(asctime)s %(levelname)-5s airflow_weekly_run %(message)s",
        level=logging.INFO,
        stream=sys.stdout,  # beside the outcome, as the script always said it
    )
    args = parse_args()
    # A TERM (or an INT, even when started in the background) stops Airflow through `finally`.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    home = Path(tempfile.mkdtemp(prefix="riskradar-airflow-home-"))
    port = free_port()
    airflow_log = open(home / "airflow.log", "w")  # noqa: SIM115 (kept open while Airflow runs)
    started = time.monotonic()
    server = start_airflow(args, home, port, airflow_log)
    api = Api(f"http://127.0.0.1:{port}")
    result: dict = {"logical_date": args.logical_date, "airflow_home": str(home)}
    try:
        log_in(api, home)
        run_id, stopped = trigger(api, args)
        if stopped:
            result["stopped_runs"] = stopped
        log.info("triggered %s; waiting (Airflow log: %s)", run_id, home / "airflow.log")
        outcome = wait_for_run(api, run_id, args.timeout_min * 60)
        result.update(
            {
                "run_id": run_id,
                "state": outcome["state"],
                "wall_min": round((time.monotonic() - started) / 60, 1),
                "tasks": outcome["tasks"],
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    finally:
        stop(server)
        airflow_log.close()
    out = ROOT / "benchmarks" / "results" / "airflow_weekly_run.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # the script's output: the outcome
    if result.get("state") != "success":
        sys.exit(1)


if __name__ == "__main__":
    main()
