"""Driving a real Airflow from a script: start `riskradar airflow` on a free port of 127.0.0.1 in
its own process group, log in to its REST API, call it, wait on it, stop it. Used by
scripts/airflow_weekly_run.py and benchmarks/share_latency.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def start_airflow(config: str, lake: str | None, home: Path, port: int, out) -> subprocess.Popen:
    """`riskradar airflow` on 127.0.0.1:`port` in its own process group, its output to `out`."""
    env = dict(os.environ)
    if lake:
        env["RISKRADAR_LAKE"] = lake
    command = [sys.executable, "-m", "riskradar.cli", "airflow", "--config", config]
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
