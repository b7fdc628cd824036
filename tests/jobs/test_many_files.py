"""A delivery of many small files is read as one plan per CSV dialect, in bounded memory, with
progress every 100 files; each row keeps its own file and record number; and the staged copies a
stopped run left are removed by the next run that takes any lock of the lake."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pandas as pd
from builders import write_config
from data.bad_deliveries.make_corpus import police, police_row

from jobs import ingest, validate
from riskradar.config import load_settings
from riskradar.lake import Lake, lock

FILES = 250


def _landing(tmp_path: Path) -> Path:
    """FILES one-row files and three of five rows: every row its own id."""
    folder = tmp_path / "landing" / "police_crimes"
    folder.mkdir(parents=True)
    for i in range(FILES):
        (folder / f"one_{i:04d}.csv.gz").write_bytes(gzip.compress(police([police_row(i)]), mtime=0))
    for k in range(3):
        rows = [police_row(1000 + 5 * k + j) for j in range(5)]
        (folder / f"five_{k}.csv.gz").write_bytes(gzip.compress(police(rows), mtime=0))
    return tmp_path / "landing"


def test_many_small_files_land_with_their_own_lineage_and_progress(spark, tmp_path, capsys):
    settings = load_settings(write_config(tmp_path, landing=_landing(tmp_path), enabled=["police_crimes"]))
    summary = ingest.main(["--partner", "police_crimes"], settings=settings, spark=spark)["police_crimes"]
    assert len(summary["files"]) == FILES + 3 and summary["rows"] == FILES + 15
    bronze = pd.read_parquet(Lake(settings.lake_root).bronze("police_crimes"))
    ones = bronze[bronze["source_file"].str.startswith("one_")]
    assert len(ones) == FILES and ones["source_file"].is_unique and set(ones["source_row"]) == {1}
    fives = bronze[bronze["source_file"].str.startswith("five_")].sort_values(["source_file", "source_row"])
    assert fives.groupby("source_file")["source_row"].apply(list).tolist() == [[1, 2, 3, 4, 5]] * 3
    # the record number follows the file's order: row j of five_k is event 1000 + 5k + j
    xs = fives["X Coordinate"].tolist()
    assert xs == [str(1170000 + 37 * (1000 + i)) for i in range(15)]
    lines = [line for line in capsys.readouterr().out.splitlines() if ": file " in line]
    assert [re.search(r"file (\d+)/(\d+)", line).groups() for line in lines] == [
        ("100", "253"),
        ("200", "253"),
        ("253", "253"),
    ]
    silver = validate.main(["--partner", "police_crimes"], settings=settings, spark=spark)["police_crimes"]
    assert silver[0]["rows_in"] == FILES + 15


def test_the_scratch_of_a_stopped_run_goes_with_the_next_lock_of_any_job(tmp_path):
    lake = Lake(tmp_path / "lake")
    dead = lake.scratch("ingest", "police_crimes", "deadrun00001")
    dead.mkdir(parents=True)
    (dead / "raw.delivered").write_bytes(b"ID,Case Number\n1,JB1\n")
    with lock(lake, "intake.weather", run_id="alive0000001", job="validate") as notes:
        alive = lake.scratch("validate", "weather", "alive0000001")
        alive.mkdir(parents=True)
        with lock(lake, "bronze.sanitation_311", run_id="other0000001", job="ingest") as inner:
            assert alive.exists()  # a run that holds its lock keeps its scratch
            assert inner == []
    assert not dead.exists()
    assert notes == ["removed the scratch a stopped run left: _scratch/ingest/police_crimes/deadrun00001"]
