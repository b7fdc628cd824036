"""The Dutch example deployment runs the whole pipeline with its config alone: a BVH-style police
export (';', Windows-1252, day-first dates, RD New with decimal commas, mixed line ends), the
municipality's workbook, CBS buurten as a GeoPackage and CBS key figures with decimal commas."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml
from builders import ROOT
from pyspark.sql import functions as F

from jobs import build_features, export, ingest, score, share, train, validate
from models.scoring import shown_count
from reports.sharing import read_gpkg, read_package_csv, shown_count_regex
from riskradar.catalog import read_quarantine, read_silver
from riskradar.config import load_settings
from riskradar.exchange import read_register
from riskradar.lake import Lake

CONFIG = ROOT / "conf" / "examples" / "nl" / "riskradar.yaml"
LANDING = ROOT / "data" / "examples" / "nl"
TARGET = "burglary"


def _police_rows() -> list[dict[str, str]]:
    rows = []
    for path in sorted((LANDING / "politie").glob("*.csv")):
        text = path.read_bytes().decode("cp1252")
        rows += list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    return rows


def _agreements_for(target: str, folder: Path) -> Path:
    """The example's agreements (politie per cel, gemeente per buurt, veiligheidsregio per wijk),
    each cut to the one target this test trains."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((CONFIG.parent / "sharing").glob("*.yaml")):
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
        (folder / path.name).write_text(yaml.safe_dump({**body, "targets": [target]}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def nl(spark, tmp_path_factory):
    """The example run as an operator runs it: every step with `--config` the example's file, the
    lake elsewhere (RISKRADAR_LAKE); then each partner of the chain gets its package."""
    tmp = tmp_path_factory.mktemp("nl")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RISKRADAR_LAKE", str(tmp / "lake"))
        settings = load_settings(CONFIG)
        args = ["--config", str(CONFIG)]
        run = {
            "ingest": ingest.main(["--all", *args], settings=settings, spark=spark),
            "validate": validate.main(["--all", *args], settings=settings, spark=spark),
            "features": build_features.main(args, settings=settings, spark=spark),
            "train": train.main(["--target", TARGET, *args], settings=settings, spark=spark),
            "score": score.main(["--target", TARGET, *args], settings=settings, spark=spark),
            "export": export.main(["--target", TARGET, *args], settings=settings, spark=spark),
        }
        sharing = settings.sharing.model_copy(
            update={"agreements_dir": str(_agreements_for(TARGET, tmp / "sharing"))}
        )
        settings = settings.model_copy(update={"sharing": sharing})
        # a day the example agreements are in force, long after the week's embargo
        run["share"] = share.main(["--all", "--as-of", "2027-01-04", *args], settings=settings, spark=spark)
    return settings, Lake(settings.lake_root), run


def test_the_example_config_is_dutch(nl):
    settings, lake, _ = nl
    assert (settings.timezone, settings.project_crs, settings.grid.cell_size_m) == (
        "Europe/Amsterdam",
        "EPSG:28992",
        125.0,
    )
    assert lake.root != ROOT / "lake-nl"  # the test's own lake


def test_every_police_row_is_published_or_quarantined_and_read_as_delivered(nl, spark):
    settings, lake, run = nl
    delivered = _police_rows()
    (summary,) = run["validate"]["politie_bvh"]
    missing_xy = sum(1 for r in delivered if not r["X-coördinaat"])
    assert summary["rows_in"] == len(delivered) == run["ingest"]["politie_bvh"]["rows"]
    assert (summary["new"], summary["quarantined_by_rule"]) == (
        len(delivered) - missing_xy,
        {"missing_coordinates": missing_xy},
    )
    # A registration: its time read day-first in Dutch time, its RD coordinates with decimal commas.
    first = next(r for r in delivered if r["X-coördinaat"])
    events = read_silver(spark, settings, lake, "events", feeds=["politie_bvh"])
    assert events.count() == summary["new"]
    local = datetime.strptime(first["Pleegdatum begin"], "%d-%m-%Y %H:%M").replace(
        tzinfo=ZoneInfo("Europe/Amsterdam")
    )
    x, y = (float(first[c].replace(",", ".")) for c in ("X-coördinaat", "Y-coördinaat"))
    match = events.where(
        (F.col("occurred_at") == local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None))
        & (F.abs(F.col("x") - x) < 0.01)
        & (F.abs(F.col("y") - y) < 0.01)
    )
    assert match.count() == 1
    # A free-text place that holds a line end is one record, its text kept whole.
    assert events.where(F.col("subcategory").contains("\n(achterzijde)")).count() == sum(
        1 for r in delivered if "\n(achterzijde)" in r["Pleeglocatie"] and r["X-coördinaat"]
    )


def test_the_workbook_and_the_cbs_files_are_read(nl, spark):
    settings, lake, run = nl
    reports = read_silver(spark, settings, lake, "events", feeds=["gemeente_meldingen"])
    assert reports.count() == run["ingest"]["gemeente_meldingen"]["rows"] > 1000
    assert {r[0] for r in reports.select("category").distinct().collect()} == {
        "waste_report",
        "lighting_report",
        "nuisance_report",
    }
    buurten = read_silver(spark, settings, lake, "boundaries")
    codes = [r[0] for r in buurten.select("area_code").collect()]
    assert len(codes) == 30 and all(re.fullmatch(r"BU0344\d{4}", c) for c in codes)
    figures = read_silver(spark, settings, lake, "areas")
    assert sorted(r[0] for r in figures.select("area_code").collect()) == sorted(codes)
    low_income = [r[0] for r in figures.select("pct_low_income").collect()]
    assert all(3 <= v <= 25 for v in low_income)  # decimal commas read as such (not 125 or 1250)
    (total,) = read_quarantine(spark, lake, "cbs_kerncijfers").collect()
    assert (total["quarantine_rule"], total["Codering"]) == ("not_an_area", "GM0344")


def test_the_panel_has_dutch_weeks_cells_and_holidays(nl, spark):
    settings, lake, run = nl
    panel = spark.read.parquet(str(lake.gold("features")))
    assert run["features"]["cells"] * run["features"]["weeks_written"] == panel.count()
    holidays = {
        r["week"].isoformat() for r in panel.where("holiday_week").select("week").distinct().collect()
    }
    # Koningsdag (Thursday 27 April 2023), Hemelvaartsdag (18 May), Eerste Kerstdag (25 December).
    assert {"2023-04-24", "2023-05-15", "2023-12-25"} <= holidays
    assert "2023-04-17" not in holidays
    areas = {r[0] for r in panel.select("area_code").distinct().collect()}
    assert {a for a in areas if a} <= set(
        r[0] for r in read_silver(spark, settings, lake, "boundaries").select("area_code").collect()
    )


def test_the_week_is_scored_rolled_up_by_buurt_and_exported(nl):
    settings, lake, run = nl
    week = run["score"][TARGET]["week"].isoformat()
    folder = lake.reports("scores", TARGET, week)
    cells = (folder / f"{TARGET}_{week}.csv").read_text()
    areas = list(csv.DictReader(io.StringIO((folder / f"{TARGET}_{week}_areas.csv").read_text())))
    assert cells.count("\n") - 1 == run["features"]["cells"]
    assert {a["area_code"] for a in areas} - {""} <= {f"BU0344{n:04d}" for n in range(10000)}
    assert sum(int(a["hotspot_cells"]) for a in areas) == run["score"][TARGET]["hotspots"]
    html = (folder / f"{TARGET}_{week}.html").read_text()
    assert "Absent parts" in html and "weather" in html  # the card says which role was absent


def test_each_partner_of_the_chain_gets_its_package_at_its_granularity(nl):
    """politie: every 125 m cell; gemeente: buurten only, k = 10; veiligheidsregio: wijken (made
    of whole buurten), after its week of embargo. Each package holds exactly its agreed columns,
    and the register one delivery per partner."""
    settings, lake, run = nl
    week = str(run["score"][TARGET]["week"])
    assert {r: v["delivered"] for r, v in run["share"].items()} == dict.fromkeys(
        ["gemeente", "politie", "veiligheidsregio"], True
    )
    agreed = {
        p.stem: yaml.safe_load(p.read_text()) for p in Path(settings.sharing.agreements_dir).glob("*.yaml")
    }
    packages = {r: read_package_csv((lake.outbox(r) / week / f"{r}_{week}.csv").read_text()) for r in agreed}
    for recipient, table in packages.items():
        columns = [c for c in agreed[recipient]["columns"] if c != "drivers"]
        assert [c for c in table.columns if not c.startswith("driver_")] == ["target", "week", *columns]
    assert len(packages["politie"]) == run["features"]["cells"]
    buurten = packages["gemeente"]
    assert buurten["area_code"].str.fullmatch(r"BU0344\d{4}").all() and "cell_id" not in buurten
    assert buurten["expected_count"].str.match(shown_count_regex(10)).all()
    # a wijk's figures are its buurten's: gold.scores_by_area grouped by the wijk in the code
    rolled = pd.read_parquet(lake.gold("scores_by_area") / f"target={TARGET}" / f"week={week}")
    rolled = rolled[rolled["area_code"].notna()].assign(wijk=lambda d: "WK" + d["area_code"].str[2:8])
    expected = rolled.groupby("wijk").agg(expected=("expected_count", "sum"), hot=("hotspot_cells", "sum"))
    wijken = packages["veiligheidsregio"].set_index("area_code").sort_index()
    assert wijken.index.tolist() == expected.index.tolist()
    assert wijken["hotspot_cells"].astype(int).tolist() == expected["hot"].tolist()
    assert wijken["expected_count"].tolist() == [shown_count(v, 5) for v in expected["expected"]]
    outlines = read_gpkg(lake.outbox("veiligheidsregio") / week / f"veiligheidsregio_{week}.gpkg")[TARGET]
    assert len(outlines) == len(wijken) and outlines["geometry"].str.startswith("MULTIPOLYGON").all()
    assert sorted((r["recipient"], r["week"]) for r in read_register(lake)) == [
        (r, week) for r in sorted(agreed)
    ]


def test_no_registration_number_or_address_leaves_the_police_file(nl, spark):
    """Every text and every Parquet value in the lake (MLflow's artifacts included), searched for
    what looks like a registration number, a postcode or a street and number, and compared with
    the police file's own."""
    _, lake, _ = nl
    delivered = _police_rows()
    secrets = {r["Registratienummer"] for r in delivered} | {r["Postcode"] for r in delivered}
    secrets |= {f"{r['Straat']} {r['Huisnummer']}" for r in delivered}
    suffixes = (".json", ".md", ".csv", ".html", ".txt", ".yaml", ".geojson")
    texts = [
        p.read_text(errors="replace")
        for p in lake.root.rglob("*")
        if p.suffix in suffixes or p.name == "MLmodel"
    ]
    for folder in {p.parent for p in lake.root.rglob("*.parquet")}:
        df = spark.read.parquet(str(folder))
        strings = [f.name for f in df.schema.fields if f.dataType.simpleString() == "string"]
        if strings:  # a number cannot hold a registration number, a postcode or an address
            texts += [
                r[0] for r in df.select(F.concat_ws("|", *[F.col(f"`{c}`") for c in strings])).collect()
            ]
    blob = "\n".join(texts)
    assert len(blob) > 100_000
    streets = "|".join(re.escape(s) for s in {r["Straat"] for r in delivered})
    found = set(re.findall(r"PL\d{4}-\d+", blob)) | set(re.findall(r"\b\d{4} [A-Z]{2}\b", blob))
    found |= set(re.findall(rf"(?:{streets}) \d+", blob))
    assert sorted(found & secrets) == []
    assert "PL0900-" not in blob
