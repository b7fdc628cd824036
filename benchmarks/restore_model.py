"""Benchmark: each champion restored in a new environment from what its registered version states.

    RISKRADAR_PSEUDONYM_KEY=... .venv/bin/python benchmarks/restore_model.py --lake L [--target T ...]

For each target's champion in the lake's MLflow store it reads the version's requirements.txt
and its training run's tags `riskradar.git_commit` and `riskradar.git_dirty` (a version trained
from uncommitted changes, or from no known commit, is refused: nothing could rebuild its code).
Then it makes a new virtual environment (`python3.11 -m venv`), installs riskradar from that
commit (`git archive`) and the stated requirements with pip from the package registries, and
in that environment, isolated (`python -I`, outside the source tree), loads the version with
the scikit-learn flavor (as `riskradar score` does) and as a pyfunc, and predicts the newest
week of the panel. Those predictions must equal the ones this environment makes. Writes
benchmarks/results/restore_model.json: the seconds to build each environment and, per target,
the version, its kind, the rows predicted and the largest difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "restore_model.json"

# Runs in the new environment: argv = tracking URI, model URI, input parquet, output parquet.
RESTORE = """
import sys, json, mlflow, pandas as pd, riskradar
uri, model_uri, source, target = sys.argv[1:]
mlflow.set_tracking_uri(uri)
X = pd.read_parquet(source)
out = pd.DataFrame({
    "sklearn": mlflow.sklearn.load_model(model_uri).predict(X),
    "pyfunc": mlflow.pyfunc.load_model(model_uri).predict(X),
})
out.to_parquet(target)
print(json.dumps({"riskradar": riskradar.__file__, "python": sys.version.split()[0]}))
"""


def rebuildable_commit(model: str, tags: dict[str, str]) -> str:
    """The commit whose code trained `model`, from its training run's tags; refused (SystemExit)
    when that code is not a commit: trained from uncommitted changes, or no commit recorded."""
    commit, dirty = tags.get("riskradar.git_commit", "unknown"), tags.get("riskradar.git_dirty", "unknown")
    if commit == "unknown" or dirty != "false":
        raise SystemExit(
            f"{model}: trained from commit {commit!r} with riskradar.git_dirty = {dirty!r}; "
            "expected a known commit and 'false': the code that trained it cannot be rebuilt"
        )
    return commit


def champion(client, target: str) -> dict:
    """The target's champion: name, version, kind, commit and the requirements it states."""
    import mlflow

    from riskradar.registry import champion_version, model_name

    name = model_name(target)
    version = champion_version(client, name)
    commit = rebuildable_commit(f"{name} v{version.version}", client.get_run(version.run_id).data.tags)
    model_uri = f"models:/{name}/{version.version}"
    requirements = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text(encoding="utf-8")
    return {
        "target": target,
        "model_uri": model_uri,
        "version": int(version.version),
        "kind": version.tags.get("kind", "learned"),  # a baseline's version is tagged kind=baseline
        "commit": commit,
        "requirements": requirements,
    }


def build_environment(work: Path, commit: str, requirements: str, python: str) -> tuple[Path, float]:
    """A new venv with riskradar at `commit` and `requirements`; its python and the seconds taken."""
    started = time.perf_counter()
    source, env = work / f"src-{commit[:12]}", work / f"env-{commit[:12]}"
    archive = work / f"{commit[:12]}.tar"
    try:
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), commit], check=True)
    except subprocess.CalledProcessError:
        raise SystemExit(
            f"commit {commit} is not in {ROOT}: fetch it to rebuild the code it trained"
        ) from None
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data")
    (work / "requirements.txt").write_text(requirements, encoding="utf-8")
    subprocess.run([python, "-m", "venv", str(env)], check=True)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, str(source), "-r", str(work / "requirements.txt")], check=True)
    return env / "bin" / "python", time.perf_counter() - started


def newest_week_inputs(spark, settings, lake, model_uri: str) -> pd.DataFrame:
    """The newest panel week's rows, the model's input columns as `riskradar score` passes them."""
    import mlflow
    from pyspark.sql import functions as F

    from riskradar.catalog import panel_weeks, read_panel

    columns = mlflow.models.get_model_info(model_uri).signature.inputs.input_names()
    week = panel_weeks(lake)[-1]
    rows = read_panel(spark, lake).where(F.col("week") == F.lit(week)).select(*columns).toPandas()
    return rows.astype(float)


def restore(env_python: Path, uri: str, row: dict, inputs: Path, work: Path) -> tuple[pd.DataFrame, dict]:
    """The predictions of the version loaded in the new environment, and where it loaded from."""
    output = work / f"restored-{row['target']}.parquet"
    done = subprocess.run(
        [str(env_python), "-I", "-c", RESTORE, uri, row["model_uri"], str(inputs), str(output)],
        cwd=work,
        env={"PATH": os.environ["PATH"], "HOME": str(work), "MLFLOW_DISABLE_TELEMETRY": "true"},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        said = [line[:400] for line in done.stderr.strip().splitlines()[-12:]]
        raise SystemExit(
            f"{row['model_uri']} did not load or predict in the new environment:\n" + "\n".join(said)
        )
    return pd.read_parquet(output), json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--target", action="append", help="default: every configured target")
    parser.add_argument("--work", type=Path, help="default: a new temporary folder")
    parser.add_argument("--python", default="python3.11")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ["RISKRADAR_LAKE"] = str(args.lake.resolve())
    work = (args.work or Path(tempfile.mkdtemp(prefix="restore-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)

    import mlflow
    from mlflow import MlflowClient

    from riskradar.audit import code_state
    from riskradar.config import load_settings
    from riskradar.lake import Lake
    from riskradar.registry import tracking_uri
    from riskradar.spark import get_session

    settings = load_settings()
    lake = Lake(settings.lake_root)
    uri = tracking_uri(settings, lake)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    rows = [champion(client, t) for t in args.target or list(settings.targets)]
    spark = get_session("restore-model", master="local[2]")
    environments: dict[tuple[str, str], tuple[Path, float]] = {}
    for row in rows:
        key = (row["commit"], row["requirements"])
        if key not in environments:
            environments[key] = build_environment(work, *key, args.python)
            print(f"environment for {row['commit'][:12]}: {environments[key][1]:.0f} s", flush=True)
        env_python, seconds = environments[key]
        X = newest_week_inputs(spark, settings, lake, row["model_uri"])
        inputs = work / f"inputs-{row['target']}.parquet"
        X.to_parquet(inputs)
        here = mlflow.sklearn.load_model(row["model_uri"]).predict(X)
        there, where = restore(env_python, uri, row, inputs, work)
        row.update(
            rows=len(X),
            environment_s=round(seconds, 1),
            riskradar_loaded_from=str(Path(where["riskradar"]).relative_to(work)),
            restored_python=where["python"],
            max_abs_difference={k: float(np.max(np.abs(there[k].to_numpy() - here))) for k in there},
            equal={k: bool(np.array_equal(there[k].to_numpy(), here)) for k in there},
        )
        print(json.dumps({k: v for k, v in row.items() if k != "requirements"}), flush=True)
    spark.stop()
    record = {
        "benchmark": "restore_model",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        # the environment the restored predictions are compared with
        "here": dict(zip(("git_commit", "git_dirty"), code_state(), strict=True)),
        "targets": rows,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if not all(all(r["equal"].values()) for r in rows):
        raise SystemExit("a restored model predicts differently: see " + str(args.out))


if __name__ == "__main__":
    main()
