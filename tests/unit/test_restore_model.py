"""benchmarks/restore_model.py rebuilds a model's code only from a commit that holds it."""

from __future__ import annotations

import pytest

from benchmarks.restore_model import rebuildable_commit

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
