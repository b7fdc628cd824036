"""What a run records of the code it ran: the commit, and whether the checkout differed from it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from riskradar import audit
from riskradar.audit import audited_run, git_commit, git_dirty, read_audit
from riskradar.lake import Lake


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout with one commit of a module and a .gitignore that covers lake/."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "job.py").write_text("RATE = 1\n")
    (tmp_path / ".gitignore").write_text("lake/\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "first")
    return tmp_path


def test_a_clean_checkout_is_its_commit(repo):
    assert git_commit(repo) == _git(repo, "rev-parse", "HEAD")
    assert len(git_commit(repo)) == 40
    (repo / "lake").mkdir()
    (repo / "lake" / "scores.parquet").write_bytes(b"PAR1")  # ignored output is not code
    assert git_dirty(repo) is False


def test_a_changed_module_makes_the_checkout_dirty(repo):
    (repo / "job.py").write_text("RATE = 2\n")
    assert git_dirty(repo) is True
    assert git_commit(repo) == _git(repo, "rev-parse", "HEAD")  # the commit is still named


def test_an_added_module_makes_the_checkout_dirty(repo):
    (repo / "features.py").write_text("WINDOWS = [4]\n")
    assert git_dirty(repo) is True


def test_outside_a_checkout_neither_is_known(tmp_path):
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert (git_commit(outside), git_dirty(outside)) == (None, None)


def test_a_user_config_that_hides_untracked_files_does_not_hide_an_added_module(repo):
    _git(repo, "config", "status.showUntrackedFiles", "no")
    (repo / "features.py").write_text("WINDOWS = [4]\n")
    assert git_dirty(repo) is True


def test_code_inside_a_checkout_but_not_its_top_level_is_not_that_checkout(repo):
    """A copy of the code installed into the checkout's ignored .venv (a non-editable install)
    would otherwise be recorded as the checkout's commit."""
    installed = repo / "lake" / "site-packages"
    installed.mkdir(parents=True)
    assert (git_commit(installed), git_dirty(installed)) == (None, None)


def test_the_audit_record_holds_the_code_state_it_read(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "code_state", lambda: ("c0ffee", True))
    lake = Lake(tmp_path / "lake")
    with audited_run(lake, "train", {"target": "burglary"}):
        pass
    (record,) = read_audit(lake)
    assert (record["git_commit"], record["git_dirty"]) == ("c0ffee", True)
