"""`riskradar airflow`: Airflow standalone (API server, scheduler, DAG processor, triggerer)
on 127.0.0.1 with this project's DAGs and config, for operators to see and trigger runs.

    riskradar airflow [--config conf/riskradar.yaml] [--home .airflow] [--port 8080]

Log in at http://127.0.0.1:8080 as `admin`, with the password Airflow writes to
`<home>/simple_auth_manager_passwords.json.generated`. Stop it with Ctrl-C (or
`kill -TERM -- -<its process group>`: a TERM to the main PID alone leaves its children running).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from riskradar.config import DEFAULT_CONFIG, load_settings

ROOT = Path(__file__).resolve().parents[1]


def airflow_env(config: Path, home: Path, port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment Airflow runs in: our DAGs, no examples, bound to 127.0.0.1, four task
    processes at most (AIRFLOW__CORE__PARALLELISM overrides), local Spark unless a
    `spark_default` connection is given."""
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "RISKRADAR_CONFIG": str(config),
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.setdefault("AIRFLOW__CORE__PARALLELISM", "4")  # the default 32 starts 32 workers
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
        from jobs.demo import demo_key_file

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
    os.execvpe("airflow", ["airflow", "standalone"], env)


if __name__ == "__main__":
    main()
