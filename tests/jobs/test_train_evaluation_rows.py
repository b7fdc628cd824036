"""The backtest's evaluation rows written once to scratch and read a block at a time: read back,
they are the frame `toPandas()` gives, in its order; the backtest, the tuning, the blends, the
importances, the final model and the strata come out the same to the bit as from the frame held
in memory; the driver never holds more than one block of them; and `max_evaluate_rows` bounds
one read, not every week."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pytest
from synthetic_panel import CELLS, GOOD, synthetic_settings, write_synthetic_panel

from jobs import train
from riskradar.errors import ConfigError
from riskradar.lake import Lake
from riskradar.weekly_rows import WeeklyRows, write_weekly_rows

TARGET, LABEL = "burglary", "label_burglary_h1"
# 4 backtest weeks refitted every 2; one tuning on the 2 weeks before the first origin.
TUNING = {"validation_weeks": 2, "every_weeks": 4, "grid": [{}, {"max_iter": 5}], "blend_weights": [0.5, 1.0]}
BLOCK_ROWS = 2 * CELLS


@pytest.fixture(scope="module")
def panel(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluation-rows")
    candidates = {"hgb_poisson": GOOD["hgb_poisson"]}  # the grid's points are its hyperparameters
    settings = synthetic_settings(tmp, **{"training.candidates": candidates, "training.tuning": TUNING})
    write_synthetic_panel(spark, Lake(settings.lake_root))
    return tmp, settings, spark.read.parquet(str(Lake(settings.lake_root).gold("features")))


def _frames(spark, settings, panel, scratch=None):
    baselines = train.target_baselines(settings, TARGET, panel.columns)
    frames, _ = train.read_frames(
        spark, settings, panel, TARGET, LABEL, 1, baselines=baselines, scratch=scratch
    )
    return frames, baselines


def test_the_rows_read_back_are_the_frame_topandas_gives_in_its_order(spark, panel):
    tmp, settings, df = panel
    features = ["hardship_index", "hist_burglary_w1", "hist_burglary_w4"]
    _, held, held_before, origins = train.load_frames(df, features, LABEL, 1, settings.training)
    _, rows, before, _ = train.load_frames(
        df, features, LABEL, 1, settings.training, scratch=tmp / "read-back"
    )
    assert isinstance(rows, WeeklyRows) and isinstance(before, WeeklyRows)
    # Spark collects the weeks' files by size, not by week: the order is the frame's own.
    assert not held["week_idx"].is_monotonic_increasing
    assert rows.weeks() == origins and len(rows) == len(held) == 4 * CELLS
    pd.testing.assert_frame_equal(rows.read(origins), held, check_exact=True)
    pd.testing.assert_frame_equal(before.read(before.weeks()), held_before, check_exact=True)
    pd.testing.assert_frame_equal(rows.head(500), held.head(500), check_exact=True)
    block = origins[2:]
    pd.testing.assert_frame_equal(
        rows.read(block), held[held["week_idx"].isin(block)].reset_index(drop=True), check_exact=True
    )
    # The ids, the features (float32, as held) and the label: nothing else of the panel.
    assert rows.columns == ["cell_id", "week_idx", "area_code", *features, LABEL]
    assert (held[features].dtypes == np.float32).all()


def _same_results(a, b) -> None:
    assert [r.name for r in a] == [r.name for r in b]
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x.predictions, y.predictions, check_exact=True)
        pd.testing.assert_frame_equal(x.weekly, y.weekly, check_exact=True)
        assert repr(x.summary) == repr(y.summary)  # floats to the bit (NaN too)
        if x.importances is None:
            assert y.importances is None
        else:
            pd.testing.assert_frame_equal(x.importances, y.importances, check_exact=True)


def test_the_backtest_is_the_same_to_the_bit_held_or_read_a_block_at_a_time(spark, panel, tmp_path):
    _, settings, df = panel
    training = settings.training
    held, baselines = _frames(spark, settings, df)
    read, _ = _frames(spark, settings, df, scratch=tmp_path / "scratch")
    assert isinstance(held.evaluate, pd.DataFrame) and isinstance(read.evaluate, WeeklyRows)
    results, _, runs = train.backtest_all(TARGET, held, training, baselines, None)
    again, _, runs_again = train.backtest_all(TARGET, read, training, baselines, None)
    _same_results(results, again)
    assert set(runs) == {"hgb_poisson"}
    assert repr({n: r.choices for n, r in runs.items()}) == repr(
        {n: r.choices for n, r in runs_again.items()}
    )
    assert {r.name for r in results} >= {"hgb_poisson", "hgb_poisson_blend", "prior_1w"}
    best = max((r for r in results if r.kind == "candidate"), key=lambda r: r.mean("pai_3"))
    final = train.final_model(best.name, held, training, baselines)
    final_again = train.final_model(best.name, read, training, baselines)
    assert (final.params, final.inputs, final.blend) == (
        final_again.params,
        final_again.inputs,
        final_again.blend,
    )
    cells = held.evaluate[final.inputs]
    np.testing.assert_array_equal(final.model.predict(cells), final_again.model.predict(cells))
    pd.testing.assert_frame_equal(
        train.cell_strata(held, settings), train.cell_strata(read, settings), check_exact=True
    )


def test_the_driver_never_holds_more_than_one_block_of_evaluation_rows(spark, panel, tmp_path, monkeypatch):
    """Every read of whole rows is tracked until its frame is freed: at no read are more rows
    alive than one refit block (2 weeks x the study cells; the tuning's span is as long). The
    reads of every week take a few columns only (a baseline's ids, label and map; the areas)."""
    _, settings, df = panel
    frames, baselines = _frames(spark, settings, df, scratch=tmp_path / "scratch")
    alive: dict[int, int] = {}
    held_at_reads, narrow = [], []
    read = WeeklyRows.read

    def tracked(self, weeks, columns=None):
        frame = read(self, weeks, columns)
        if columns is not None and len(columns) <= 4:
            narrow.append(columns)
            return frame
        gc.collect()  # what nothing refers to any more is not held
        alive[id(frame)] = len(frame)
        weakref.finalize(frame, alive.pop, id(frame))
        held_at_reads.append(sum(alive.values()))
        return frame

    monkeypatch.setattr(WeeklyRows, "read", tracked)
    results, _, _ = train.backtest_all(TARGET, frames, settings.training, baselines, None)
    train.final_model("hgb_poisson_blend", frames, settings.training, baselines)
    train.cell_strata(frames, settings)
    frames.evaluate.head(1000)
    assert len(frames.evaluate) + len(frames.before) == 6 * CELLS  # three blocks' worth
    # the tuning's weeks, two blocks, the importances' block, the final's tuning, the head's weeks
    assert len(held_at_reads) >= 8
    assert max(held_at_reads) == BLOCK_ROWS
    baseline_reads = [c for c in narrow if LABEL in c]
    assert len(baseline_reads) == len([r for r in results if r.kind == "baseline"])
    assert all(c[:3] == ["cell_id", "week_idx", LABEL] and len(c) == 4 for c in baseline_reads)


def test_max_evaluate_rows_bounds_one_read_not_every_week(panel, tmp_path):
    _, settings, df = panel

    def load(scratch, bound, validation_weeks=2):
        tuning = settings.training.tuning.model_copy(update={"validation_weeks": validation_weeks})
        training = settings.training.model_copy(update={"max_evaluate_rows": bound, "tuning": tuning})
        return train.load_frames(df, ["hardship_index"], LABEL, 1, training, scratch=scratch)

    # One block (and the tuning's 2 weeks) of 300 cells fits 600; the 6 weeks together do not.
    _, rows, before, _ = load(tmp_path / "fits", BLOCK_ROWS)
    assert len(rows) + len(before) == 6 * CELLS
    with pytest.raises(
        ConfigError, match=r"backtest frame has 1800 rows .* training.max_evaluate_rows = 600"
    ):
        load(None, BLOCK_ROWS)
    with pytest.raises(
        ConfigError,
        match=r"reads up to 600 rows at once \(training.refit_every_weeks = 2 weeks x study cells\), "
        r"more than training.max_evaluate_rows = 599; lower training.refit_every_weeks",
    ):
        load(tmp_path / "block", BLOCK_ROWS - 1)
    with pytest.raises(
        ConfigError, match=r"reads up to 900 rows .*training.tuning.validation_weeks = 3 weeks"
    ):
        load(tmp_path / "span", BLOCK_ROWS, validation_weeks=3)


def test_the_scratch_refuses_a_frame_with_its_own_columns_and_an_empty_folder(spark, tmp_path):
    frame = spark.createDataFrame([(1, 7, 0.5)], ["week_idx", "scratch_row", "x"])
    with pytest.raises(ValueError, match=r"columns \['scratch_row'\] are the scratch's own"):
        write_weekly_rows(frame, tmp_path / "taken")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no rows under .*empty"):
        WeeklyRows.open(tmp_path / "empty")
