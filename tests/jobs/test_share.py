"""share on the scored synthetic lake: each recipient gets exactly what its agreement allows
(rows, columns, granularity, k, embargo, validity), checked before anything is visible, with a
record of every delivery in the register whose sha256 match the delivered files; every refusal
leaves the previous package as it was and names why."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from builders import CITY, POLICE, write_agreements
from synthetic_panel import CELLS, FIRST, WEEKS, scored_copy

import reports.sharing
from features.panel import week_of
from jobs import disclosures, share
from reports.sharing import read_gpkg, read_package_csv, shown_count_regex
from riskradar.errors import AgreementNotInForce, ConfigError, EmbargoNotPassed, NoChampion, PublishRefused
from riskradar.exchange import read_register

NEWEST = week_of(FIRST + WEEKS - 1)
AS_OF = (NEWEST + timedelta(days=1)).isoformat()


@pytest.fixture
def exchange(scored_synthetic, tmp_path):
    """A copy of the scored lake with two agreements: police (cells) and city (areas, k = 10)."""
    folder = write_agreements(tmp_path / "sharing", police=POLICE, city=CITY)
    settings, lake = scored_copy(scored_synthetic, tmp_path, **{"sharing.agreements_dir": str(folder)})
    return settings, lake, folder


def run(settings, spark, *argv: str):
    return share.main([*argv, "--as-of", AS_OF], settings=settings, spark=spark)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_each_recipient_gets_exactly_its_agreements_columns_rows_and_k(exchange, spark):
    settings, lake, _ = exchange
    results = run(settings, spark, "--all")
    assert {r: v["delivered"] for r, v in results.items()} == {"city": True, "police": True}
    police = lake.outbox("police") / str(NEWEST)
    layers = read_gpkg(police / f"police_{NEWEST}.gpkg")
    cell_columns = ["target", "week", "cell_id", "geometry", "rank", "hotspot", "expected_count"] + [
        f"driver_{i}{s}" for i in (1, 2, 3) for s in ("", "_detail")
    ]
    assert list(layers) == ["burglary"]
    assert sorted(layers["burglary"].columns) == sorted(cell_columns)
    assert len(layers["burglary"]) == CELLS
    csv = read_package_csv((police / f"police_{NEWEST}.csv").read_text())
    assert list(csv.columns) == cell_columns and len(csv) == CELLS
    assert csv["expected_count"].str.match(shown_count_regex(5)).all()

    city = lake.outbox("city") / str(NEWEST)
    areas = read_package_csv((city / f"city_{NEWEST}.csv").read_text())
    assert list(areas.columns) == ["target", "week", *CITY["columns"]]
    assert sorted(areas["area_code"]) == ["1", "2", "3", "4", "5"]
    assert areas["expected_count"].str.match(shown_count_regex(10)).all()
    assert not areas["expected_count"].str.fullmatch(r"[0-9](\.[0-9])?").any()  # nothing under 10
    area_layer = read_gpkg(city / f"city_{NEWEST}.gpkg")["burglary"]
    assert "cell_id" not in area_layer.columns and len(area_layer) == 5
    assert area_layer["geometry"].str.startswith("MULTIPOLYGON").all()
    page = (city / f"city_{NEWEST}.html").read_text()
    assert "_0</td>" not in page and "<th>area_name</th>" in page

    manifest = json.loads((city / "manifest.json").read_text())
    assert manifest["agreement"]["version"] == 1 and manifest["week"] == str(NEWEST)
    assert manifest["models"]["burglary"]["model_name"] == "riskradar-burglary"
    for entry in manifest["files"]:
        assert _sha(city / entry["name"]) == entry["sha256"]


def test_the_register_holds_one_record_per_delivery_matching_the_files(exchange, spark, tmp_path, capsys):
    settings, lake, _ = exchange
    run(settings, spark, "--all")
    again = run(settings, spark, "--all")  # the same packages: nothing new is disclosed
    assert {r: v["delivered"] for r, v in again.items()} == {"city": False, "police": False}
    records = read_register(lake)
    assert sorted((r["recipient"], r["week"], r["kind"]) for r in records) == [
        ("city", str(NEWEST), "delivery"),
        ("police", str(NEWEST), "delivery"),
    ]
    for record in records:
        folder = lake.outbox(record["recipient"]) / record["week"]
        assert {f["name"]: f["sha256"] for f in record["files"]} == {
            f.name: _sha(f) for f in folder.iterdir()
        }
        assert record["agreement"]["sha256"] == _sha(
            Path(settings.sharing.agreements_dir) / f"{record['recipient']}.yaml"
        )
    out = tmp_path / "register.csv"
    capsys.readouterr()
    disclosures.main(["--recipient", "city", "--csv", str(out), "--quiet"], settings=settings)
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["recorded", "(UTC)", "kind", "recipient"]
    assert (
        table[1].split()[1:5] == ["delivery", "city", "city", "v1"] and len(table) == 6
    )  # a line per file (4)
    assert "police" not in "\n".join(table)
    exported = pd.read_csv(out, dtype=str)
    assert set(exported["recipient"]) == {"city"}
    assert set(exported["sha256"]) == {_sha(f) for f in (lake.outbox("city") / str(NEWEST)).iterdir()}


def test_an_embargoed_week_is_not_delivered_early(exchange, spark):
    settings, lake, folder = exchange
    write_agreements(folder, city={**CITY, "embargo_days": 7})
    with pytest.raises(EmbargoNotPassed, match=rf"may be delivered from {NEWEST + timedelta(days=7)}"):
        run(settings, spark, "--recipient", "city", "--week", str(NEWEST))
    skipped = run(settings, spark, "--recipient", "city", "--skip-undeliverable")
    assert skipped["city"]["delivered"] is False and "embargo" in skipped["city"]["reason"]
    assert not lake.outbox("city").exists()
    later = share.main(
        ["--recipient", "city", "--as-of", str(NEWEST + timedelta(days=7))], settings=settings, spark=spark
    )
    assert later["city"]["week"] == NEWEST and (lake.outbox("city") / str(NEWEST) / "manifest.json").exists()


def test_an_expired_agreement_delivers_nothing_and_withdraws_what_was_served(exchange, spark):
    settings, lake, folder = exchange
    run(settings, spark, "--recipient", "city")
    write_agreements(folder, city={**CITY, "valid_until": str(NEWEST)})
    with pytest.raises(
        AgreementNotInForce, match=r"city.yaml is expired: valid until .*: nothing delivered; withdrawn"
    ):
        share.main(
            ["--recipient", "city", "--as-of", str(NEWEST + timedelta(days=2))],
            settings=settings,
            spark=spark,
        )
    assert not (lake.outbox("city") / str(NEWEST)).exists()
    kinds = [r["kind"] for r in read_register(lake, recipient="city")]
    assert kinds == ["delivery", "withdrawal"]


def test_an_agreement_for_a_target_without_a_champion_delivers_nothing(scored_synthetic, tmp_path, spark):
    folder = write_agreements(
        tmp_path / "sharing", police={**POLICE, "targets": ["burglary", "robbery_assault"]}
    )
    targets = {"burglary": {"categories": ["burglary"]}, "robbery_assault": {"categories": ["robbery"]}}
    settings, lake = scored_copy(
        scored_synthetic, tmp_path, **{"sharing.agreements_dir": str(folder), "targets": targets}
    )
    with pytest.raises(NoChampion, match=r"agrees on target 'robbery_assault', which has no champion"):
        run(settings, spark, "--recipient", "police")
    assert not lake.outbox("police").exists() and read_register(lake) == []


def test_a_package_whose_check_fails_leaves_the_previous_one(exchange, spark, monkeypatch):
    settings, lake, _ = exchange
    run(settings, spark, "--recipient", "police")
    before = _snapshot(lake.outbox("police"))
    cut = reports.sharing.cell_table

    def leaky(*args, **kwargs):
        table = cut(*args, **kwargs)
        table.loc[0, "expected_count"] = "3"  # a count under k
        return table

    monkeypatch.setattr(share, "cell_table", leaky)
    with pytest.raises(PublishRefused, match=r"suite of police_.*\.gpkg.*expected_count.*report"):
        run(settings, spark, "--recipient", "police")
    assert _snapshot(lake.outbox("police")) == before
    assert len(read_register(lake)) == 1


def test_a_column_the_agreement_does_not_name_is_refused(exchange, spark, monkeypatch):
    settings, lake, folder = exchange
    cut = reports.sharing.cell_table
    monkeypatch.setattr(share, "cell_table", lambda *a, **k: cut(*a, **k).assign(percentile=50.0))
    with pytest.raises(PublishRefused, match=r"expect_table_columns_to_match_set"):
        run(settings, spark, "--recipient", "police")
    assert not lake.outbox("police").exists() and read_register(lake) == []
    write_agreements(folder, police={**POLICE, "columns": [*POLICE["columns"], "event_id"]})
    with pytest.raises(
        ConfigError, match=r"police.yaml: key '\(top level\)'.*'event_id'.*cannot be delivered"
    ):
        run(settings, spark, "--recipient", "police")


class Crash(BaseException):
    """A run killed in the middle of its delivery."""


def test_a_delivery_cut_short_is_on_record_exactly_when_it_was_made(exchange, spark, monkeypatch):
    """Killed after the package was served but before its record entered the register: the next
    run puts the record in (and delivers nothing twice). Killed before it was served: the next run
    drops the pending record and delivers."""
    settings, lake, _ = exchange

    def crash(*args, **kwargs):
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr("riskradar.exchange._finalise", crash)
        with pytest.raises(Crash):
            run(settings, spark, "--recipient", "police")
    served = json.loads((lake.outbox("police") / str(NEWEST) / "manifest.json").read_text())
    assert read_register(lake) == [] and len(list((lake.disclosures / "_pending").glob("*.json"))) == 1
    again = run(settings, spark, "--recipient", "police")
    assert again["police"]["delivered"] is False  # the same package was delivered
    (record,) = read_register(lake)
    assert record["delivery_id"] == served["delivery_id"] and "recorded on recovery" in record["note"]

    rename = Path.rename

    def crash_when_serving(self, target):
        if self.parent == lake.root / "outbox" / "_staging" / "city":  # the staged package goes live
            raise Crash
        return rename(self, target)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "rename", crash_when_serving)
        with pytest.raises(Crash):
            run(settings, spark, "--recipient", "city")
    assert not (lake.outbox("city") / str(NEWEST)).exists()
    assert len(list((lake.disclosures / "_pending").glob("*.json"))) == 1
    run(settings, spark, "--recipient", "city")
    records = read_register(lake, recipient="city")
    assert len(records) == 1 and "note" not in records[0]
    assert (
        records[0]["delivery_id"]
        == json.loads((lake.outbox("city") / str(NEWEST) / "manifest.json").read_text())["delivery_id"]
    )
    assert not list((lake.disclosures / "_pending").glob("*.json"))
