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
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project's packages come from its checkout

from benchmarks.airflow_api import Api, free_port, log_in, start_airflow, stop  # noqa: E402

log = logging.getLogger("airflow_weekly_run")


DAG = "riskradar_weekly"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "conf" / "riskradar.yaml"))
    parser.add_argument("--lake", help="the lake root (default: the config's, or RISKRADAR_LAKE)")
    parser.add_argument("--logical-date", default="2015-01-05", help="the run's logical date (a Monday)")
    parser.add_argument("--timeout-min", type=float, default=120)
    return parser.parse_args()


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
    server = start_airflow(args.config, args.lake, home, port, airflow_log)
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
