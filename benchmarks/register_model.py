"""Benchmark: registering a model version with its requirements stated vs inferred by MLflow.

    .venv/bin/python benchmarks/register_model.py [--repeats 3]

Fits the boosted-trees candidate on 2,000 random rows of 20 columns and logs it as a registered
version, in a new SQLite store in a temporary folder, `--repeats` times each way:
`riskradar.registry.register_model` as training calls it (requirements stated:
registry.MODEL_REQUIREMENTS), and the same call with no requirements given (MLflow infers them:
it loads the model in a subprocess and lists what that process imported). Writes
benchmarks/results/register_model.json with the seconds per version and each way's
requirements.txt.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import mlflow
    import numpy as np
    import pandas as pd

    from models.estimators import make_candidates
    from riskradar import registry

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((2000, 20)), columns=[f"x{i}" for i in range(20)])
    model = make_candidates({"hgb_poisson": {"max_iter": 30, "random_state": 0}})["hgb_poisson"]
    model.fit(frame, rng.poisson(1.0 + frame["x0"]))

    def stated(name: str) -> str:
        return registry.register_model(model, "model", frame.head(50), name)

    def inferred(name: str) -> str:
        """The same call, with no requirements given (pip_requirements=None): MLflow infers them."""
        own = registry.model_requirements
        registry.model_requirements = lambda: None
        try:
            return stated(name)
        finally:
            registry.model_requirements = own

    ways = {"stated": stated, "inferred": inferred}
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        mlflow.set_tracking_uri(f"sqlite:///{Path(folder) / 'mlflow.db'}")
        mlflow.create_experiment(
            "register-benchmark", artifact_location=(Path(folder) / "artifacts").as_uri()
        )
        mlflow.set_experiment("register-benchmark")
        for way, register in ways.items():
            seconds, requirements = [], None
            for _ in range(args.repeats):
                with mlflow.start_run():
                    start = time.perf_counter()
                    version = register(f"bench-{way}")
                    seconds.append(time.perf_counter() - start)
                local = mlflow.artifacts.download_artifacts(f"models:/bench-{way}/{version}", dst_path=folder)
                requirements = (Path(local) / "requirements.txt").read_text().split()
            results[way] = {
                "seconds": [round(s, 2) for s in seconds],
                "median_s": round(statistics.median(seconds), 2),
                "requirements": requirements,
            }
            print(f"{way}: median {results[way]['median_s']} s per version; requirements {requirements}")
    out = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "repeats": args.repeats,
        **results,
    }
    path = ROOT / "benchmarks" / "results" / "register_model.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
