"""`riskradar airflow`: Airflow on one machine (API server, scheduler, DAG processor,
triggerer: what `airflow standalone` starts) on 127.0.0.1 with this project's DAGs and config,
for operators to see and trigger runs.

The components are started one by one rather than by `airflow standalone`, because standalone's
scheduler and triggerer also start Airflow's log server, which listens on every interface
(its host is hard-coded); with the local executor the API server reads the task logs from disk,
so they run with `--skip-serve-logs` and nothing listens beyond 127.0.0.1.

    riskradar airflow [--config conf/riskradar.yaml] [--home .airflow] [--port 8080]

Log in at http://127.0.0.1:8080 as `admin`, with the password Airflow writes to
`<home>/simple_auth_manager_passwords.json.generated`. Stop it with Ctrl-C or a TERM to this
command's process: it stops the components it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from riskradar.config import DEFAULT_CONFIG, demo_key_file, load_settings

ROOT = Path(__file__).resolve().parents[1]


def airflow_env(config: Path, home: Path, port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment Airflow runs in: our DAGs, no examples, bound to 127.0.0.1 (the API
    server, and the scheduler's health check server should one turn it on), four task processes
    at most (AIRFLOW__CORE__PARALLELISM overrides), local Spark unless a `spark_default`
    connection is given."""
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            # tasks report to the API server: it is on this port, not the default 8080
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "RISKRADAR_CONFIG": str(config),
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.setdefault("AIRFLOW__CORE__PARALLELISM", "4")  # the default 32 starts 32 workers
    # The scheduler's health check server, if turned on, listens on every interface by default.
    env.setdefault("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST", "127.0.0.1")
    env.setdefault("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[*]"}')
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    return env


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="riskradar airflow", description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="pipeline config (default: %(default)s)"
    )
    parser.add_argument("--home", default=str(ROOT / ".airflow"), help="AIRFLOW_HOME (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(list(argv) if argv is not None else None)
    config = Path(args.config).resolve()
    settings = load_settings(config)  # a broken config fails here, not in the first task
    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(config, home, args.port)
    key_env = settings.pseudonymisation.key_env
    if not env.get(key_env):
        key_file = demo_key_file(settings)
        if key_file.exists():
            env[key_env] = key_file.read_text().strip()
            print(f"riskradar airflow: using the demo pseudonymisation key in {key_file} (set {key_env})")
        else:
            print(f"riskradar airflow: warning: {key_env} is not set; the intake tasks will refuse to run")
    print(
        f"riskradar airflow: http://127.0.0.1:{args.port} (user admin, password in "
        f"{home / 'simple_auth_manager_passwords.json.generated'}); lake {settings.lake_root}; "
        "Ctrl-C stops it"
    )
    run_components(env, args.port)


COMPONENTS = [
    ["api-server", "--host", "127.0.0.1", "--port", "{port}"],
    ["scheduler", "--skip-serve-logs"],
    ["dag-processor"],
    ["triggerer", "--skip-serve-logs"],
]


def run_components(env: dict[str, str], port: int) -> None:
    """Migrate the metadata database, start the components, and stop all of them when one
    exits or this process is asked to stop."""
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    procs = [
        subprocess.Popen([airflow, *(a.format(port=port) for a in cmd)], env=env, start_new_session=True)
        for cmd in COMPONENTS
    ]

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        failed = [" ".join(cmd[:1]) for cmd, p in zip(COMPONENTS, procs, strict=True) if p.poll() is not None]
        print(f"riskradar airflow: {', '.join(failed)} exited; stopping the others", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        for p in procs:
            try:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
