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
    # A role must name an enabled feed: a test city without that feed has no such role; and a
    # target's categories must come from an enabled feed: a city without them has no such target.
    data["roles"] = {role: spec for role, spec in data["roles"].items() if spec and spec["feed"] in enabled}
    produced = set()
    for feed in enabled:
        contract = ROOT / "conf" / "partners" / f"{feed}.yaml"
        if contract.exists():
            events = yaml.safe_load(contract.read_text()).get("events") or {}
            produced |= set(events.get("category", {}).get("map", {}).values())
    data["targets"] = {name: t for name, t in data["targets"].items() if set(t["categories"]) <= produced}
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    governance = data.get("governance") or {}
    if governance.get("target_names"):  # the registers' names of the targets this city keeps
        governance["target_names"] = {
            t: names for t, names in governance["target_names"].items() if t in (data.get("targets") or {})
        }
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


# Two data-sharing agreements for the synthetic scored lake (areas 1..5 of community_area):
# the police get the cells of burglary, the city its areas with k = 10.
POLICE = {
    "recipient": {"organisation": "Police (test)", "contact_role": "analyst"},
    "version": 1,
    "purpose": "patrol planning",
    "legal_basis": "test basis",
    "valid_from": "2013-01-01",
    "valid_until": "2030-12-31",
    "targets": ["burglary"],
    "granularity": "cell",
    "min_count_shown": 5,
    "columns": ["cell_id", "geometry", "rank", "hotspot", "expected_count", "drivers"],
    "formats": ["gpkg", "csv", "html"],
}
CITY = {
    **POLICE,
    "recipient": {"organisation": "City (test)", "contact_role": "coordinator"},
    "granularity": "area",
    "area_level": "community_area",
    "min_count_shown": 10,
    "columns": ["area_code", "area_name", "geometry", "rank", "expected_count", "share_of_hotspots"],
}


def write_agreements(folder: Path, **agreements: dict) -> Path:
    """An agreements folder holding `agreements` (recipient -> its YAML body)."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for name, body in agreements.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return folder


# What two builds of one feed from the same deliveries may differ in: when they ran.
RUN_TIMES = frozenset({"ingested_at", "superseded_at"})


def intake_tables(spark, settings, feed: str, table: str, *, drop=frozenset({"superseded_at"})) -> dict:
    """A feed's rows in silver `table`, its history and its quarantine, each sorted and without
    the columns `drop`, and its batches' statuses: what two builds from the same deliveries
    (or a lake before and after a replay) must share."""
    from riskradar.catalog import read_history, read_quarantine, read_silver
    from riskradar.lake import FeedState, Lake

    lake = Lake(settings.lake_root)
    frames = {
        "silver": read_silver(spark, settings, lake, table, feeds=[feed]),
        "history": read_history(spark, settings, lake, table, feeds=[feed]),
        "quarantine": read_quarantine(spark, lake, feed),
    }
    out: dict = {
        name: sorted(
            tuple(sorted((k, str(v)) for k, v in r.asDict().items() if k not in drop)) for r in df.collect()
        )
        if df is not None
        else []
        for name, df in frames.items()
    }
    out["statuses"] = {b: r["status"] for b, r in FeedState.read(lake, feed).batches.items()}
    return out
