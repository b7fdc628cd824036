"""Latency of the exchange: from a new police file in the landing area to updated packages in every
recipient's outbox, through the real scheduler (the daily intake run, then the weekly run its
published silver events trigger); and the time `share` adds to a weekly run.

    .venv/bin/python benchmarks/share_latency.py --lake L [--config conf/riskradar.yaml] [--rows 300]

L is a lake after `make demo` (every target scored and every example partner served once); the
run changes it, so use a copy. The script copies the config's landing area to a temporary folder
and writes a config that reads it (the vendored data stay as they are), starts `riskradar
airflow`, unpauses the weekly DAG (and stops the scheduled run unpausing creates: the bundled
data have no current week), then at t0 drops a new police file into the copy (`--rows` events of
the last complete week: copies of that week's rows under new ids) and unpauses the intake DAG,
whose daily run ingests it. Measured from t0: the intake run's end, the asset-triggered weekly
run's creation and end, each task's start and end, and the last share task's end, when every
outbox holds a new package (checked on the manifests). Writes benchmarks/results/share_latency.json.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import logging
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.airflow_api import Api, free_port, log_in, start_airflow, stop  # noqa: E402
from riskradar.config import load_settings  # noqa: E402
from riskradar.exchange import delivered_manifest  # noqa: E402
from riskradar.lake import Lake  # noqa: E402
from riskradar.sharing import load_agreements  # noqa: E402

log = logging.getLogger("share_latency")
INTAKE, WEEKLY = "riskradar_intake", "riskradar_weekly"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "conf" / "riskradar.yaml"))
    parser.add_argument("--lake", required=True, help="a lake after `make demo` (a copy: it is changed)")
    parser.add_argument("--feed", default="police_crimes", help="the feed the new file is delivered to")
    parser.add_argument("--rows", type=int, default=300, help="events in the new file")
    parser.add_argument("--timeout-min", type=float, default=120)
    parser.add_argument(
        "--shared-with", default="nothing", help="what else ran on the machine meanwhile (kept in the result)"
    )
    return parser.parse_args()


def bench_config(args: argparse.Namespace, tmp: Path) -> Path:
    """The config with its own landing copy and the lake of --lake, every path absolute."""
    import shutil

    settings = load_settings(args.config)
    landing = tmp / "landing"
    shutil.copytree(settings.partners.landing_root, landing)
    data = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    data["lake"]["root"] = str(Path(args.lake).resolve())
    data["partners"].update(landing_root=str(landing), contracts_dir=settings.partners.contracts_dir)
    data["expectations_dir"] = settings.expectations_dir
    data.setdefault("sharing", {})["agreements_dir"] = settings.sharing.agreements_dir
    path = tmp / "riskradar.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def new_delivery(config: Path, feed: str, rows: int) -> Path:
    """A new file of the feed: `rows` events of its newest complete week, copies of that week's
    rows with new ids and case numbers (the newest monthly file's header and format)."""
    settings = load_settings(config)
    contract = settings.contract(feed)
    folder = settings.landing_dir(contract)
    newest = sorted(folder.glob(contract.landing.pattern))[-1]
    with gzip.open(newest, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header, found = list(reader.fieldnames or []), list(reader)
    stamp = contract.events.timestamp
    times = [datetime.strptime(r[stamp.column], "%m/%d/%Y %I:%M:%S %p") for r in found]
    last = max(times).date()
    sunday = last if last.weekday() == 6 else last.fromordinal(last.toordinal() - last.weekday() - 1)
    week = [r for r, t in zip(found, times, strict=True) if 0 <= (sunday - t.date()).days < 7][:rows]
    id_column = contract.events.id_column
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for i, row in enumerate(week):
        writer.writerow({**row, id_column: str(90_000_000 + i), "Case Number": f"ZZ{900000 + i}"})
    path = folder / f"{newest.name.split('.')[0]}-late.csv.gz"
    path.write_bytes(gzip.compress(out.getvalue().encode(), mtime=0))
    return path


def _runs(api: Api, dag: str) -> list[dict]:
    return api.call("GET", f"/api/v2/dags/{dag}/dagRuns?limit=100")["dag_runs"]


def _stop_other_runs(api: Api, dag: str) -> list[str]:
    stopped = []
    for run in _runs(api, dag):
        if run["state"] in ("queued", "running"):
            api.call("PATCH", f"/api/v2/dags/{dag}/dagRuns/{run['dag_run_id']}", {"state": "failed"})
            stopped.append(run["dag_run_id"])
    return stopped


def _finished(api: Api, dag: str, run_id: str) -> dict | None:
    run = api.call("GET", f"/api/v2/dags/{dag}/dagRuns/{run_id}")
    return run if run["state"] in ("success", "failed") else None


def _seconds(iso: str | None, t0: float) -> float | None:
    return None if iso is None else round(datetime.fromisoformat(iso).timestamp() - t0, 1)


def _tasks(api: Api, dag: str, run_id: str, t0: float) -> list[dict]:
    found = api.call("GET", f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances?limit=200")["task_instances"]
    return [
        {
            "task": t["task_id"],
            "map_index": t["map_index"],
            "state": t["state"],
            "start_s": _seconds(t["start_date"], t0),
            "end_s": _seconds(t["end_date"], t0),
            "duration_s": round(t["duration"] or 0, 1),
        }
        for t in sorted(found, key=lambda t: (t["start_date"] or "", t["map_index"]))
    ]


def measure(api: Api, config: Path, args: argparse.Namespace, before: dict) -> dict:
    """Drop the file, let the scheduler run both DAGs, and time them from t0."""
    api.wait(
        "both DAGs to be parsed",
        lambda: [api.call("GET", f"/api/v2/dags/{d}") for d in (INTAKE, WEEKLY)],
        300,
    )
    api.call("PATCH", f"/api/v2/dags/{WEEKLY}", {"is_paused": False})
    time.sleep(15)
    stopped = _stop_other_runs(api, WEEKLY)
    known = {r["dag_run_id"] for r in _runs(api, WEEKLY)}
    t0 = time.time()
    dropped = new_delivery(config, args.feed, args.rows)
    api.call("PATCH", f"/api/v2/dags/{INTAKE}", {"is_paused": False})
    intake = api.wait("the intake run", lambda: (_runs(api, INTAKE) or [None])[0], 300, 2)
    intake = api.wait("the intake run's end", lambda: _finished(api, INTAKE, intake["dag_run_id"]), 3600, 5)

    def triggered():
        return next(
            (
                r
                for r in _runs(api, WEEKLY)
                if r["dag_run_id"] not in known and r["run_type"] == "asset_triggered"
            ),
            None,
        )

    weekly = api.wait("the asset-triggered weekly run", triggered, 600, 2)
    weekly = api.wait(
        "the weekly run's end",
        lambda: _finished(api, WEEKLY, weekly["dag_run_id"]),
        args.timeout_min * 60,
        10,
    )
    return {
        "new_file": dropped.name,
        "rows": args.rows,
        "stopped_scheduled_runs": stopped,
        "intake": {
            "run_id": intake["dag_run_id"],
            "state": intake["state"],
            "end_s": _seconds(intake["end_date"], t0),
        },
        "weekly": {
            "run_id": weekly["dag_run_id"],
            "state": weekly["state"],
            "created_s": _seconds(weekly.get("queued_at") or weekly["start_date"], t0),
            "start_s": _seconds(weekly["start_date"], t0),
            "end_s": _seconds(weekly["end_date"], t0),
        },
        "intake_tasks": _tasks(api, INTAKE, intake["dag_run_id"], t0),
        "weekly_tasks": _tasks(api, WEEKLY, weekly["dag_run_id"], t0),
    }


def summarise(result: dict, config: Path, before: dict) -> dict:
    """Every outbox's new delivery, and what share adds to the weekly run."""
    settings = load_settings(config)
    lake = Lake(settings.lake_root)
    tasks = result["weekly_tasks"]
    shares = [t for t in tasks if t["task"] == "recipient.share_package"]
    exports = [t for t in tasks if t["task"] == "target.export_reports"]
    others = [t for t in tasks if t["task"] != "recipient.share_package" and t["end_s"] is not None]
    after = {}
    for name in load_agreements(settings):
        week = max(p.name for p in lake.outbox(name).iterdir() if not p.name.startswith("_"))
        after[name] = {
            "week": week,
            "delivery_id": (delivered_manifest(lake, name, week) or {}).get("delivery_id"),
        }
    return {
        "packages_updated": {
            n: after[n]["delivery_id"] != before.get(n, {}).get("delivery_id") for n in after
        },
        "packages": after,
        "file_to_every_outbox_s": max(t["end_s"] for t in shares) if shares else None,
        "share_tasks_s": [t["duration_s"] for t in shares],
        "share_after_last_export_s": round(
            max(t["end_s"] for t in shares) - max(t["end_s"] for t in exports), 1
        )
        if shares and exports
        else None,
        "weekly_run_without_share_end_s": max(t["end_s"] for t in others),
    }


def main() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)-5s share_latency %(message)s", level=logging.INFO)
    args = parse_args()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    tmp = Path(tempfile.mkdtemp(prefix="riskradar-share-latency-"))
    config = bench_config(args, tmp)
    settings = load_settings(config)
    lake = Lake(settings.lake_root)
    before = {}
    for name in load_agreements(settings):
        weeks = (
            sorted(p.name for p in lake.outbox(name).iterdir() if not p.name.startswith("_"))
            if lake.outbox(name).exists()
            else []
        )
        before[name] = {
            "week": weeks[-1] if weeks else None,
            "delivery_id": (delivered_manifest(lake, name, weeks[-1]) or {}).get("delivery_id")
            if weeks
            else None,
        }
    home, port = tmp / "airflow", free_port()
    home.mkdir()
    airflow_log = open(home / "airflow.log", "w")  # noqa: SIM115 (kept open while Airflow runs)
    server = start_airflow(str(config), None, home, port, airflow_log)
    api = Api(f"http://127.0.0.1:{port}")
    try:
        log_in(api, home)
        result = measure(api, config, args, before)
    finally:
        stop(server)
        airflow_log.close()
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "shared_with": args.shared_with,
        "before": before,
        **result,
        **summarise(result, config, before),
    }
    out = ROOT / "benchmarks" / "results" / "share_latency.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_tasks")}, indent=2))
    if result["weekly"]["state"] != "success" or not all(result["packages_updated"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
