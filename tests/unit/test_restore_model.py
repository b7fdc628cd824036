"""benchmarks/restore_model.py rebuilds a model's code only from a commit that holds it."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.restore_model import build_environment, rebuildable_commit, restore

COMMIT = "88a1a7d9ceb4b2b3beede8d54dd0311381bafacd"


def test_a_clean_runs_commit_is_the_code_to_install():
    tags = {"riskradar.git_commit": COMMIT, "riskradar.git_dirty": "false", "riskradar.target": "burglary"}
    assert rebuildable_commit("riskradar-burglary v3", tags) == COMMIT


@pytest.mark.parametrize(
    ("tags", "said"),
    [
        ({"riskradar.git_commit": COMMIT, "riskradar.git_dirty": "true"}, "riskradar.git_dirty = 'true'"),
        # a version trained before the tag existed: whether its tree was clean is not known
        ({"riskradar.git_commit": COMMIT}, "riskradar.git_dirty = 'unknown'"),
        ({"riskradar.git_commit": "unknown", "riskradar.git_dirty": "unknown"}, "commit 'unknown'"),
    ],
)
def test_a_run_whose_code_is_not_a_commit_is_refused_by_name(tags, said):
    with pytest.raises(SystemExit) as refused:
        rebuildable_commit("riskradar-burglary v3", tags)
    message = str(refused.value)
    assert message.startswith("riskradar-burglary v3: ") and said in message
    assert "cannot be rebuilt" in message


def test_a_commit_the_checkout_lacks_is_named(tmp_path):
    missing = "0" * 40
    with pytest.raises(SystemExit, match=f"commit {missing} is not in .*: fetch it"):
        build_environment(tmp_path, missing, "mlflow==3.17.2\n", sys.executable)
    assert not (tmp_path / f"env-{missing[:12]}").exists()  # refused before any environment


def test_a_model_that_does_not_load_in_the_new_environment_says_so_with_its_error(tmp_path):
    row = {"target": "burglary", "model_uri": "models:/riskradar-burglary/7"}
    inputs = tmp_path / "inputs.parquet"
    pd.DataFrame({"hist_burglary_w4": [0.0, 2.0]}).to_parquet(inputs)
    store = f"sqlite:///{tmp_path / 'empty.db'}"  # a store without that model
    with pytest.raises(SystemExit) as failed:
        restore(Path(sys.executable), store, row, inputs, tmp_path)
    lines = str(failed.value).splitlines()
    assert lines[0] == "models:/riskradar-burglary/7 did not load or predict in the new environment:"
    assert "riskradar-burglary" in lines[-1] and 1 < len(lines) <= 13
