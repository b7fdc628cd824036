"""Where a Spark application's time goes, from its event log.

    .venv/bin/python benchmarks/spark_profile.py <event log folder> [--top 8]

For each application in the folder (one per pipeline stage in the scale benchmark): its wall
time, the share of it spent inside Spark jobs, and the call sites (the line of our code that
started the job) with the most job time. Time outside jobs is driver work: Python, file
listing, MLflow, model fitting.

The scale benchmark turns event logs on for its synthetic city only: a plan holds the
pseudonymisation key's padded form as a literal, and that city's key is a benchmark key.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def _lines(log: Path):
    """The events of a log: one file, or (Spark 4's rolling logs) a folder of `events_*` files."""
    files = sorted(log.glob("events_*"), key=lambda p: int(p.name.split("_")[1])) if log.is_dir() else [log]
    for path in files:
        if path.suffix == ".zstd":  # Spark 4 compresses event logs with zstd by default
            import pyarrow as pa

            try:
                with pa.input_stream(str(path), compression="zstd") as stream:
                    data = stream.read()
            except OSError:  # an application still running: its last frame is not closed yet
                return
            yield from data.decode("utf-8").splitlines()
        else:
            with path.open(encoding="utf-8") as fh:
                yield from fh


def profile(log: Path) -> dict:
    """{app, wall_s, jobs_s, sites: [(call site, seconds, jobs)]} of one event log file."""
    app, start, end = log.name, None, None
    job_start: dict[int, tuple[int, str]] = {}
    sites: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for line in _lines(log):
        event = json.loads(line)
        kind = event.get("Event")
        if kind == "SparkListenerApplicationStart":
            app, start = event.get("App Name", app), event["Timestamp"]
        elif kind == "SparkListenerApplicationEnd":
            end = event["Timestamp"]
        elif kind == "SparkListenerJobStart":
            props = event.get("Properties") or {}
            stages = event.get("Stage Infos") or [{}]
            site = props.get("callSite.short") or stages[-1].get("Stage Name") or "?"
            job_start[event["Job ID"]] = (event["Submission Time"], site)
        elif kind == "SparkListenerJobEnd" and event["Job ID"] in job_start:
            submitted, site = job_start.pop(event["Job ID"])
            sites[site][0] += (event["Completion Time"] - submitted) / 1000
            sites[site][1] += 1
    ranked = sorted(((s, round(t, 1), n) for s, (t, n) in sites.items()), key=lambda x: -x[1])
    wall = (end - start) / 1000 if start and end else None
    return {"app": app, "wall_s": wall, "jobs_s": round(sum(t for _, t, _ in ranked), 1), "sites": ranked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    for log in sorted(args.folder.iterdir()):
        p = profile(log)
        wall = f"{p['wall_s']:.1f} s" if p["wall_s"] else "unfinished"
        print(f"\n{p['app']} ({log.name}): wall {wall}, inside Spark jobs {p['jobs_s']} s")
        for site, seconds, jobs in p["sites"][: args.top]:
            print(f"  {seconds:8.1f} s  {jobs:3d} job(s)  {site}")


if __name__ == "__main__":
    main()
