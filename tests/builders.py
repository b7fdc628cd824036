"""Builders of test configs and landing folders, shared by every test folder."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "chicago"
TEST_KEY = "test-key-0123456789abcdef-not-a-secret"


def write_config(tmp_path: Path, *, landing: Path, enabled: list[str], **overrides) -> Path:
    """A copy of the committed config with its own lake and landing, for one test."""
    import yaml

    data = yaml.safe_load((ROOT / "conf" / "riskradar.yaml").read_text())
    data["lake"]["root"] = str(tmp_path / "lake")
    data["partners"]["landing_root"] = str(landing)
    data["partners"]["contracts_dir"] = str(ROOT / "conf" / "partners")
    data["partners"]["enabled"] = enabled
    data["expectations_dir"] = str(ROOT / "expectations")
    # A role must name an enabled feed: a test city without that feed has no such role.
    data["roles"] = {role: spec for role, spec in data["roles"].items() if spec and spec["feed"] in enabled}
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path = tmp_path / "conf" / "riskradar.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def landing_with(tmp_path: Path, feed_folder: str, files: dict[str, bytes]) -> Path:
    """A landing root holding `files` (name -> bytes) in the folder of one feed."""
    root = tmp_path / "landing"
    folder = root / feed_folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return root


def copy_sample(tmp_path: Path, feed_folder: str, names: list[str]) -> Path:
    root = tmp_path / "landing"
    (root / feed_folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(SAMPLE / feed_folder / name, root / feed_folder / name)
    return root
