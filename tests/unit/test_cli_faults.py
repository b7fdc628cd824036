"""Operational faults end in one line on stderr that names the cause and the path, with exit code
1 or 2 and no traceback (unless --verbose): a full disk, a read-only lake (the run's own error,
not the audit record's), a lake root that is a file, a corrupt or locked MLflow store."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
from builders import POLICE, write_agreements, write_config

from riskradar.cli import main


def _config(tmp_path: Path, **overrides) -> str:
    return str(write_config(tmp_path, landing=tmp_path, enabled=["police_crimes"], **overrides))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.strip()


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    out = tmp_path / "register.csv"
    write = Path.write_text

    def full(self, *args, **kwargs):
        if self == out:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert main(["disclosures", "--config", _config(tmp_path), "--csv", str(out)]) == 1
    assert _one_line(capsys) == (
        f"riskradar disclosures: error: no space left on the disk of {out} (--verbose shows the traceback)"
    )
    with pytest.raises(OSError, match="No space left"):
        main(["disclosures", "--config", _config(tmp_path), "--csv", str(out), "--verbose"])


def test_a_read_only_lake_shows_the_runs_own_error_not_the_audit_records(tmp_path, capsys, monkeypatch):
    config = _config(tmp_path)
    out = tmp_path / "lake" / "register.csv"
    write = Path.write_text

    def read_only(self, *args, **kwargs):
        if tmp_path / "lake" in self.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only)
    assert main(["disclosures", "--config", config, "--csv", str(out)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    assert f"error: {out} is on a read-only file system" in captured.err
    assert "the audit record of disclosures" in captured.out and "could not be written" in captured.out


def test_a_lake_root_that_is_a_file_is_a_config_error(tmp_path, capsys, monkeypatch):
    config = _config(tmp_path)
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("RISKRADAR_LAKE", str(tmp_path / "not-a-folder"))
    assert main(["disclosures", "--config", config]) == 2
    assert _one_line(capsys).endswith("not-a-folder': a file, not a folder: the lake root must be a folder")


@pytest.fixture
def sharing(tmp_path):
    folder = write_agreements(tmp_path / "sharing", police=POLICE)
    return _config(tmp_path, **{"sharing.agreements_dir": str(folder)})


def test_a_corrupt_mlflow_store_is_named(spark, tmp_path, capsys, sharing):
    store = tmp_path / "lake" / "mlflow" / "mlflow.db"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not a database" * 100)
    assert main(["share", "--recipient", "police", "--config", sharing]) == 1
    assert "error: the MLflow store is corrupt" in _one_line(capsys)


def test_a_locked_mlflow_store_is_named_after_a_bounded_wait(spark, tmp_path, capsys, sharing):
    from mlflow import MlflowClient

    store = tmp_path / "lake" / "mlflow" / "mlflow.db"
    store.parent.mkdir(parents=True)
    MlflowClient(f"sqlite:///{store}").search_experiments(max_results=1)  # the store, made
    capsys.readouterr()  # MLflow's own lines as it made the store
    holder = sqlite3.connect(store)
    holder.execute("BEGIN EXCLUSIVE")  # another run in the middle of a write
    try:
        assert main(["share", "--recipient", "police", "--config", sharing]) == 1
    finally:
        holder.rollback()
        holder.close()
    assert "error: the MLflow store is locked by another run" in _one_line(capsys)
