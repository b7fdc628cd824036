"""score on a synthetic panel with a trained champion: every study cell of the week scored in
Spark, equal to the registered model's own predictions, ranked and flagged, one partition per
(target, week) replaced on a rerun; clear errors without a champion or without features."""

from __future__ import annotations

import json
import re
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
from builders import ROOT
from mlflow import MlflowClient
from pyspark.sql import functions as F
from synthetic_panel import CELLS, FIRST, GOOD, WEEKS, WORSE, synthetic_settings, write_synthetic_panel

from features.panel import week_of
from intake.quality import run_suite
from jobs import evaluate_scores, export, score, show_scores, train
from models.baselines import baselines_for
from models.scoring import scores_by_area, shown_count
from reports.exports import screenshot
from riskradar.catalog import area_columns, score_columns
from riskradar.errors import NoChampion, NothingToDo, PublishRefused
from riskradar.lake import Lake
from riskradar.registry import tracking_uri

NEWEST = week_of(FIRST + WEEKS - 1)
EARLIER = week_of(FIRST + WEEKS - 3)


@pytest.fixture(scope="module")
def scored(scored_synthetic):
    s = scored_synthetic
    return s.settings, s.lake, s.trained, s.result


def _partition(lake: Lake, week) -> pd.DataFrame:
    return pd.read_parquet(lake.gold("scores") / "target=burglary" / f"week={week}")


def test_every_study_cell_of_the_newest_week_is_scored_by_the_champion(scored, spark):
    settings, lake, trained, result = scored
    assert result["week"] == NEWEST and result["version"] == trained["version"]
    out = _partition(lake, NEWEST)
    assert len(out) == CELLS and out["cell_id"].is_unique
    assert list(out.columns) == [c for c in score_columns(3) if c not in ("target", "week")]
    # the same numbers as the registered model predicting the panel rows on the driver
    mlflow.set_tracking_uri(tracking_uri(settings, lake))
    model = mlflow.sklearn.load_model("models:/riskradar-burglary@champion")
    panel = spark.read.parquet(str(lake.gold("features"))).where(f"week = '{NEWEST}'").toPandas()
    features = model.feature_names_in_
    expected = pd.Series(model.predict(panel[features]), index=panel["cell_id"])
    pd.testing.assert_series_equal(
        out.set_index("cell_id")["expected_count"].sort_index(),
        expected.sort_index().rename("expected_count"),
        check_names=False,
    )
    assert set(out["model_version"]) == {trained["version"]}
    assert set(out["model_run_id"]) == {trained["run_id"]}
    registered = MlflowClient().get_model_version("riskradar-burglary", str(trained["version"]))
    assert set(out["model_recipe"]) == {registered.tags["candidate"]}  # the winning candidate's name


def test_ranks_percentiles_and_hotspots(scored):
    _, lake, _, result = scored
    out = _partition(lake, NEWEST).sort_values("rank")
    assert out["rank"].tolist() == list(range(1, CELLS + 1))
    assert out["expected_count"].is_monotonic_decreasing
    assert out["percentile"].iloc[0] == 100.0 and out["percentile"].iloc[-1] == round(100 / CELLS, 2)
    flagged = round(0.03 * CELLS)
    assert out["hotspot"].tolist() == [True] * flagged + [False] * (CELLS - flagged)
    assert result["hotspots"] == flagged


def test_drivers_name_what_the_model_learnt_from(scored):
    _, lake, _, _ = scored
    top = _partition(lake, NEWEST).sort_values("rank").head(5)
    # the panel's only informative column is the (synthetic) rate, stored as hardship_index
    assert (top["driver_1"] == "hardship_index").all()
    assert top["driver_1_detail"].str.startswith("hardship index (area): ").all()
    assert top["driver_1_detail"].str.contains(r", \+\d").all()  # it raises the score


def test_geometry_of_a_cell_matches_its_id(scored):
    _, lake, _, _ = scored
    row = _partition(lake, NEWEST).set_index("cell_id").loc["7_0"]
    # synthetic cells lie on row iy = 0 of the grid; the centroid is inside the polygon
    ring = [tuple(map(float, p.split())) for p in row["polygon_wkt"][9:-2].split(", ")]
    lons, lats = zip(*ring, strict=True)
    assert len(ring) == 5 and ring[0] == ring[-1]
    assert min(lons) < row["lon"] < max(lons) and min(lats) < row["lat"] < max(lats)


def test_rescoring_a_week_replaces_only_its_partition(scored, spark):
    settings, lake, _, _ = scored
    score.main(["--target", "burglary", "--week", str(EARLIER)], settings=settings, spark=spark)
    newest_files = sorted(
        p.name for p in (lake.gold("scores") / "target=burglary" / f"week={NEWEST}").iterdir()
    )
    first = _partition(lake, EARLIER)
    score.main(["--target", "burglary", "--week", str(EARLIER)], settings=settings, spark=spark)
    again = _partition(lake, EARLIER)
    assert len(again) == CELLS  # replaced, not appended
    assert again["scored_at"].iloc[0] > first["scored_at"].iloc[0]
    assert sorted(p.name for p in (lake.gold("scores") / "target=burglary" / f"week={NEWEST}").iterdir()) == (
        newest_files
    )
    weeks = sorted(p.name for p in (lake.gold("scores") / "target=burglary").iterdir())
    assert weeks == [f"week={EARLIER}", f"week={NEWEST}"]
    pd.testing.assert_frame_equal(
        first.drop(columns="scored_at").sort_values("cell_id").reset_index(drop=True),
        again.drop(columns="scored_at").sort_values("cell_id").reset_index(drop=True),
    )


def test_the_gate_report_and_the_audit_record_are_written(scored):
    _, lake, trained, _ = scored
    report = json.loads((lake.reports("scores", "burglary") / f"{NEWEST}-validation.json").read_text())
    assert report["result"]["success"] and report["counts"]["cells"] == CELLS
    audits = [json.loads(p.read_text()) for p in lake.audit.glob("date=*/*-score-*.json")]
    assert any(
        a["status"] == "succeeded"
        and {"model": "riskradar-burglary", "version": trained["version"], "model_run_id": trained["run_id"]}
        in a["inputs"]
        for a in audits
    )


def test_a_week_without_features_is_a_clear_error(scored, spark):
    settings, _, _, _ = scored
    with pytest.raises(
        NothingToDo, match=r"no features for the week of 2030-01-07 in gold.features \(it holds"
    ):
        score.main(["--target", "burglary", "--week", "2030-01-07"], settings=settings, spark=spark)


def test_a_week_that_is_not_a_monday_is_refused(scored, spark, capsys):
    settings, _, _, _ = scored
    with pytest.raises(SystemExit):
        score.main(["--target", "burglary", "--week", "2013-08-07"], settings=settings, spark=spark)
    assert "2013-08-07 is a Wednesday; weeks start on Monday" in capsys.readouterr().err


def test_scoring_without_a_registered_model_says_to_train(spark, tmp_path):
    settings = synthetic_settings(tmp_path, **{"training.candidates": GOOD})
    write_synthetic_panel(spark, Lake(settings.lake_root))
    with pytest.raises(
        NoChampion, match=r"no model 'riskradar-burglary' is registered: run `riskradar train`"
    ):
        score.main(["--target", "burglary"], settings=settings, spark=spark)


def test_without_a_better_learned_model_the_best_baseline_serves_as_champion(spark, tmp_path):
    settings = synthetic_settings(tmp_path, **{"training.candidates": WORSE})
    lake = Lake(settings.lake_root)
    write_synthetic_panel(spark, lake)
    worse = train.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    assert worse["alias"] == "challenger"
    assert "does not beat the best baseline" in worse["reason"]
    results = worse["results"]
    best_baseline = max((r for r in results.values() if r.kind == "baseline"), key=lambda r: r.mean("pai_3"))
    client = MlflowClient(tracking_uri(settings, lake))
    champion = client.get_model_version_by_alias("riskradar-burglary", "champion")
    assert champion.version == worse["champion_version"] != worse["version"]
    assert champion.tags["kind"] == "baseline" and champion.tags["candidate"] == best_baseline.name
    assert f"the best baseline {best_baseline.name} is registered as v{champion.version}" in worse["reason"]
    card = mlflow.artifacts.load_text(f"runs:/{worse['run_id']}/model_card.md")
    assert "**The champion is a baseline**" in card and f"v{champion.version}" in card

    # score runs it like any model: the baseline's own rate, explained by its one column
    scored = score.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    assert scored["version"] == int(champion.version)
    out = pd.read_parquet(lake.gold("scores") / "target=burglary" / f"week={NEWEST}")
    panel = pd.read_parquet(lake.gold("features") / f"week={NEWEST}")
    baseline = baselines_for("burglary", [1, 2, 4, 8, 13, 26, 52], [1, 4])[best_baseline.name]
    expected = pd.Series(baseline.predict(panel), index=panel["cell_id"]).reindex(out["cell_id"])
    np.testing.assert_allclose(out["expected_count"], expected.to_numpy())
    assert set(out["driver_1"].dropna()) <= {baseline.column}
    assert set(out["model_recipe"]) == {f"baseline {best_baseline.name}"}  # analysts see what serves
    assert len(out) == CELLS

    # a learned model that beats the baseline by the margin then takes over
    better = train.main(
        ["--target", "burglary"],
        settings=synthetic_settings(tmp_path, **{"training.candidates": GOOD}),
        spark=spark,
    )["burglary"]
    assert better["alias"] == "champion", better["reason"]
    assert client.get_model_version_by_alias("riskradar-burglary", "champion").version == better["version"]


def test_scoring_when_the_champion_alias_was_removed_names_the_aliases(spark, tmp_path):
    settings = synthetic_settings(tmp_path, **{"training.candidates": WORSE})
    lake = Lake(settings.lake_root)
    write_synthetic_panel(spark, lake)
    train.main(["--target", "burglary"], settings=settings, spark=spark)
    # a reviewer takes the alias away (the MLflow UI does the same)
    MlflowClient(tracking_uri(settings, lake)).delete_registered_model_alias("riskradar-burglary", "champion")
    with pytest.raises(
        NoChampion, match=r"has 2 version\(s\) but none is the champion \(aliases: challenger\)"
    ):
        score.main(["--target", "burglary"], settings=settings, spark=spark)
    assert not (lake.gold("scores")).exists()
    # what the weekly DAG runs: reported and skipped, the audit says why, nothing published
    assert (
        score.main(["--target", "burglary", "--skip-without-champion"], settings=settings, spark=spark) == {}
    )
    assert export.main(["--target", "burglary", "--skip-missing"], settings=settings, spark=spark) == {}
    assert not (lake.gold("scores")).exists()
    audits = [json.loads(p.read_text()) for p in lake.audit.glob("date=*/*-score-*.json")]
    assert any(a["status"] == "succeeded" and a["notes"][0].startswith("skipped: model") for a in audits)


def test_exports_hold_every_cell_and_the_report_is_self_contained(scored, spark):
    settings, lake, trained, _ = scored
    files = export.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    assert {p.name for p in files.values()} == {
        f"burglary_{NEWEST}.{ext}" for ext in ("csv", "geojson", "html")
    } | {f"burglary_{NEWEST}_areas.csv"}  # the synthetic cells lie in areas
    published = _partition(lake, NEWEST).sort_values("rank").reset_index(drop=True)

    csv = pd.read_csv(files["csv"])
    assert csv["cell_id"].tolist() == published["cell_id"].tolist()
    assert csv["expected_count"].tolist() == pytest.approx(published["expected_count"].tolist())

    collection = json.loads(files["geojson"].read_text())
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == CELLS
    top = collection["features"][0]
    ring = top["geometry"]["coordinates"][0]
    assert top["id"] == published["cell_id"][0] and ring[0] == ring[-1] and len(ring) == 5
    assert top["properties"]["rank"] == 1 and top["properties"]["week"] == str(NEWEST)
    assert "polygon_wkt" not in top["properties"]

    page = files["html"].read_text()
    # offline: nothing to fetch (the only URL is the SVG namespace), no scripts
    assert re.findall(r"https?://[^\"']+", page) == ["http://www.w3.org/2000/svg"]
    assert "<script" not in page and "url(" not in page and "<link" not in page
    assert page.count('<rect class="hot"') == round(0.03 * CELLS)
    assert page.count("<tr><td class=num>") == 20  # the top-N table (scoring.report_top_n)
    assert f"Model riskradar-burglary version {trained['version']}" in page
    assert "Intended use" in page and "Not for individuals" in page  # the model card summary


@pytest.mark.skipif(
    not shutil.which("chromium"), reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_the_report_renders_in_headless_chromium_with_the_map(scored, spark, tmp_path):
    settings, _, _, _ = scored
    files = export.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    png = screenshot(files["html"], tmp_path / "report.png", width=1000, height=900)
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    # the hotspot red (#c8102e) of the map is on screen, in the left (map) half of the page
    red = (
        (abs(image[:, :, 0] - 0xC8) < 8) & (abs(image[:, :, 1] - 0x10) < 8) & (abs(image[:, :, 2] - 0x2E) < 8)
    )
    assert red.sum() > 20
    assert np.nonzero(red)[1].mean() < image.shape[1] / 2


def test_the_terminal_table_lists_the_top_cells(scored, capsys):
    settings, lake, _, _ = scored
    top = show_scores.main(["--target", "burglary", "--top", "5"], settings=settings)
    out = capsys.readouterr().out
    published = _partition(lake, NEWEST).sort_values("rank").head(5)
    assert top["cell_id"].tolist() == published["cell_id"].tolist()
    lines = out.splitlines()
    assert lines[0].startswith(f"burglary, week of {NEWEST}: top 5 of {CELLS} cells")
    assert (
        f"v{top['model_version'].iloc[0]}, {top['model_recipe'].iloc[0]};" in lines[0]
    )  # which model serves
    assert [line.split()[1] for line in lines[2:]] == published["cell_id"].tolist()


@pytest.mark.parametrize(
    ("top", "says"),
    [
        ("0", "0 is not allowed: give 1 or more"),
        ("-1", "-1 is not allowed"),
        ("x", "'x' is not a whole number"),
    ],
)
def test_the_terminal_table_refuses_a_count_of_no_cells(scored, capsys, top, says):
    settings, _, _, _ = scored
    with pytest.raises(SystemExit) as refused:
        show_scores.main(["--target", "burglary", "--top", top], settings=settings)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and f"argument --top: {says}" in err and "Traceback" not in err


def test_evaluating_a_passed_week_logs_realised_metrics_to_mlflow(scored, spark):
    settings, lake, trained, _ = scored
    score.main(["--target", "burglary", "--week", str(EARLIER)], settings=settings, spark=spark)
    result = evaluate_scores.main(["--week", str(EARLIER)], settings=settings, spark=spark)["burglary"]
    published = _partition(lake, EARLIER)
    panel = spark.read.parquet(str(lake.gold("features"))).where(f"week = '{EARLIER}'").toPandas()
    y = published.merge(panel[["cell_id", "label_burglary_h1"]], on="cell_id")
    hits = y.loc[y["hotspot"], "label_burglary_h1"].sum()
    assert result["hit_rate"] == pytest.approx(hits / y["label_burglary_h1"].sum())
    assert result["pai"] == pytest.approx(result["hit_rate"] / (y["hotspot"].sum() / CELLS))
    client = MlflowClient(tracking_uri(settings, lake))
    run = client.get_run(result["run_id"])
    assert run.data.metrics["realised_pai"] == pytest.approx(result["pai"])
    assert run.data.tags["riskradar.model_version"] == str(trained["version"])
    assert run.data.tags["riskradar.week"] == str(EARLIER)
    assert np.isfinite(result["backtest_low"]) and result["backtest_low"] < result["backtest_high"]
    version = client.get_model_version("riskradar-burglary", str(trained["version"]))
    assert float(version.tags[f"realised_pai_{EARLIER}"]) == pytest.approx(result["pai"], abs=1e-4)
    # a rerun updates the same run instead of adding one
    again = evaluate_scores.main(["--week", str(EARLIER)], settings=settings, spark=spark)["burglary"]
    assert again["run_id"] == result["run_id"]


def test_a_week_that_has_not_passed_cannot_be_evaluated(scored, spark):
    settings, _, _, _ = scored
    with pytest.raises(NothingToDo, match=rf"the week of {NEWEST} has not passed for 'burglary'"):
        evaluate_scores.main(["--week", str(NEWEST)], settings=settings, spark=spark)


def test_a_realised_pai_below_the_backtest_interval_raises_an_alert(scored, spark, tmp_path, capsys):
    settings, lake, _, _ = scored
    score.main(["--target", "burglary", "--week", str(EARLIER)], settings=settings, spark=spark)
    # a copy of the lake where that week's incidents all happened outside the hotspots
    shutil.copytree(lake.root, tmp_path / "lake")
    copy_settings = synthetic_settings(tmp_path, **{"training.candidates": GOOD})
    copy = Lake(copy_settings.lake_root)
    hot = set(_partition(copy, EARLIER).query("hotspot")["cell_id"])
    part = copy.gold("features") / f"week={EARLIER}"
    frame = pd.read_parquet(part)
    frame["label_burglary_h1"] = [0.0 if c in hot else 1.0 for c in frame["cell_id"]]
    shutil.rmtree(part)
    part.mkdir()
    frame.to_parquet(part / "part-0.parquet", index=False)
    result = evaluate_scores.main(["--week", str(EARLIER)], settings=copy_settings, spark=spark)["burglary"]
    assert result["pai"] == 0.0
    assert result["alert"].startswith(
        f"burglary week of {EARLIER}: realised PAI 0.00 is below the backtest interval"
    )
    assert "WARNING: burglary week of" in capsys.readouterr().out
    audits = [json.loads(p.read_text()) for p in copy.audit.glob("date=*/*-evaluate_scores-*.json")]
    assert any(result["alert"] in a["notes"] for a in audits)


def test_exporting_a_week_that_was_not_scored_names_the_scored_weeks(scored, spark):
    settings, _, _, _ = scored
    with pytest.raises(
        NothingToDo, match=rf"no scores for 'burglary' in the week of 2030-01-07 \(scored weeks: .*{NEWEST}"
    ):
        export.main(["--target", "burglary", "--week", "2030-01-07"], settings=settings, spark=spark)


# --------------------------------------------------------------------------- roll-up by area


def _areas(lake: Lake, week) -> pd.DataFrame:
    return pd.read_parquet(lake.gold("scores_by_area") / "target=burglary" / f"week={week}")


def test_the_roll_up_by_area_sums_the_cells_of_each_area(scored):
    _, lake, trained, result = scored
    assert result["areas_partition"] == f"target=burglary/week={NEWEST}"
    cells = _partition(lake, NEWEST)
    areas = _areas(lake, NEWEST).set_index("area_code").sort_index()
    assert list(areas.reset_index().columns) == [c for c in area_columns() if c not in ("target", "week")]
    by_area = cells.groupby("area_code").agg(
        cells=("cell_id", "size"), expected=("expected_count", "sum"), hot=("hotspot", "sum")
    )
    assert areas.index.tolist() == [1, 2, 3, 4, 5] == by_area.index.tolist()
    assert areas["cells"].tolist() == by_area["cells"].tolist() == [CELLS // 5] * 5
    np.testing.assert_allclose(areas["expected_count"], by_area["expected"], rtol=1e-12)
    assert areas["hotspot_cells"].tolist() == by_area["hot"].tolist()
    assert areas["share_of_hotspots"].tolist() == pytest.approx(
        (by_area["hot"] / by_area["hot"].sum()).tolist()
    )
    assert areas["expected_count_shown"].tolist() == [shown_count(v, 5) for v in areas["expected_count"]]
    assert set(areas["model_version"]) == {trained["version"]}
    report = json.loads((lake.reports("scores", "burglary") / f"{NEWEST}-areas-validation.json").read_text())
    assert report["result"]["success"] and report["counts"]["areas"] == 5


def test_the_roll_up_rows_of_cells_outside_the_areas_and_small_counts(spark):
    """Cells without an area make one row of their own; a sum below k is published as '<k',
    and the suite refuses a small count shown as a number."""
    rows = [
        ("1_0", 1, "North", 3.0, True),
        ("2_0", 1, "North", 4.5, True),
        ("3_0", 2, "South", 0.5, False),
        ("4_0", None, None, 1.25, True),
        ("5_0", None, None, 0.25, False),
    ]
    cells = spark.createDataFrame(
        rows, "cell_id string, area_code int, area_name string, expected_count double, hotspot boolean"
    ).withColumns(
        {
            "model_name": F.lit("riskradar-burglary"),
            "model_version": F.lit(3),
            "model_run_id": F.lit("r1"),
            "model_recipe": F.lit("hgb_poisson"),
            "features_version": F.lit("f1"),
            "scored_at": F.current_timestamp(),
            "target": F.lit("burglary"),
            "week": F.lit(NEWEST),
        }
    )
    areas = scores_by_area(cells, min_count_shown=5).select(*area_columns())
    got = {
        r["area_code"]: (r["area_name"], r["cells"], r["expected_count"], r["expected_count_shown"])
        + (r["hotspot_cells"], r["share_of_hotspots"])
        for r in areas.collect()
    }
    assert got == {
        1: ("North", 2, 7.5, "7.5", 2, 2 / 3),
        2: ("South", 1, 0.5, "<5", 0, 0.0),
        None: (None, 2, 1.5, "<5", 1, 1 / 3),
    }
    suite = ROOT / "expectations" / "gold_scores_by_area.json"
    assert run_suite(areas, suite, run_name="areas-ok")["success"]
    leaked = areas.withColumn("expected_count_shown", F.lit("1.5"))
    assert not run_suite(leaked, suite, run_name="areas-leak")["success"]


def test_an_area_roll_up_that_fails_its_suite_publishes_nothing(scored, spark, tmp_path):
    settings, lake, _, _ = scored
    suites = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", suites)
    strict = json.loads((suites / "gold_scores_by_area.json").read_text())
    strict["expectations"][0]["kwargs"]["min_value"] = 1000  # more rows than there are areas
    (suites / "gold_scores_by_area.json").write_text(json.dumps(strict))
    strict_settings = settings.model_copy(update={"expectations_dir": str(suites)})
    week = week_of(FIRST + WEEKS - 2)
    with pytest.raises(PublishRefused, match=r"gold.scores_by_area: .*expect_table_row_count"):
        score.main(["--target", "burglary", "--week", str(week)], settings=strict_settings, spark=spark)
    assert not (lake.gold("scores") / "target=burglary" / f"week={week}").exists()
    assert not (lake.gold("scores_by_area") / "target=burglary" / f"week={week}").exists()


def test_scores_that_fail_their_suite_leave_the_published_week_unchanged(scored, spark, tmp_path):
    """Write-audit-publish: the suite runs on the staged scores; when it fails, the scores and
    the roll-up published before for that week stay visible and unchanged, and the error
    names the report of the refused publication."""
    settings, lake, _, _ = scored
    score.main(["--target", "burglary", "--week", str(EARLIER)], settings=settings, spark=spark)
    before, areas_before = _partition(lake, EARLIER), _areas(lake, EARLIER)
    files = sorted(p.name for p in (lake.gold("scores") / "target=burglary" / f"week={EARLIER}").iterdir())
    suites = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", suites)
    strict = json.loads((suites / "gold_scores.json").read_text())
    strict["expectations"][0]["kwargs"]["min_value"] = 10 * CELLS  # more rows than there are cells
    (suites / "gold_scores.json").write_text(json.dumps(strict))
    strict_settings = settings.model_copy(update={"expectations_dir": str(suites)})
    report = lake.reports("scores", "burglary") / f"{EARLIER}-publish.json"
    with pytest.raises(
        PublishRefused, match=rf"gold.scores: .*expect_table_row_count.*\(report {re.escape(str(report))}\)"
    ):
        score.main(["--target", "burglary", "--week", str(EARLIER)], settings=strict_settings, spark=spark)
    written = json.loads(report.read_text())
    assert written["published"] is False and written["tables"] == ["scores", "scores_by_area"]
    assert written["checks"]["gold.scores_by_area"] == "passed"
    assert written["checks"]["gold.scores"].startswith("expect_table_row_count_to_be_between")
    assert (
        sorted(p.name for p in (lake.gold("scores") / "target=burglary" / f"week={EARLIER}").iterdir())
        == files
    )
    pd.testing.assert_frame_equal(_partition(lake, EARLIER), before)
    pd.testing.assert_frame_equal(_areas(lake, EARLIER), areas_before)


def test_the_areas_are_exported_with_small_counts_suppressed(scored, spark):
    settings, lake, _, _ = scored
    files = export.main(["--target", "burglary"], settings=settings, spark=spark)["burglary"]
    areas = _areas(lake, NEWEST).sort_values("expected_count", ascending=False)
    csv = pd.read_csv(files["areas_csv"], dtype={"expected_count": str})
    assert list(csv.columns) == [
        "area_code",
        "area_name",
        "cells",
        "expected_count",
        "hotspot_cells",
        "share_of_hotspots",
        "target",
        "week",
        "model_name",
        "model_version",
    ]
    assert csv["area_code"].tolist() == areas["area_code"].tolist()
    assert csv["expected_count"].tolist() == [shown_count(v, 5) for v in areas["expected_count"]]
    assert all(c == "<5" or float(c) >= 5 for c in csv["expected_count"])
    page = files["html"].read_text()
    section = page.split("Top 5 of 5 areas (census_areas)</h2>", 1)[1].split("</table>", 1)[0]
    shown = re.findall(r"<tr><td>[^<]*</td><td class=num>([^<]*)</td>", section)
    assert shown == [v.replace("<", "&lt;") for v in csv["expected_count"]]  # one row per area, ranked
