"""benchmarks/shifted_grid.py puts a shifted grid's forecasts back onto the published cells by area."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks.shifted_grid import put_back


def _cells(pairs, week=7):
    return pd.DataFrame({"cell_id": [f"{a}_{b}" for a, b in pairs], "week_idx": week})


def test_a_shifted_cells_forecast_is_shared_by_the_published_cells_it_overlaps():
    # events moved by -50 m on 150 m cells: shifted cell (0, 0) lies over published columns
    # 0 (100 m of it) and 1 (50 m), rows alike
    published = _cells([(a, b) for a in range(3) for b in range(3)])
    shifted = _cells([(a, b) for a in range(-1, 3) for b in range(-1, 3)]).assign(mu=0.0)
    shifted.loc[shifted["cell_id"] == "0_0", "mu"] = 9.0
    got = pd.Series(put_back(published, shifted, 50.0, 150.0), index=published["cell_id"])
    two, one = 2 / 3, 1 / 3
    expected = {"0_0": two * two, "1_0": one * two, "0_1": two * one, "1_1": one * one}
    assert got.to_dict() == pytest.approx({c: 9.0 * expected.get(c, 0.0) for c in got.index})
    assert got.sum() == pytest.approx(9.0)  # the forecast is moved, not made or lost


def test_an_even_risk_stays_even_and_cells_outside_the_study_area_leave_their_share_out():
    published = _cells([(0, 0), (5, 5)])
    # (5, 5) overlaps shifted (4..5, 4..5), of which only (5, 5) is a study cell
    shifted = _cells([(-1, -1), (-1, 0), (0, -1), (0, 0), (5, 5)]).assign(mu=[2.0, 2.0, 2.0, 2.0, 3.0])
    assert put_back(published, shifted, 75.0, 150.0) == pytest.approx([2.0, 3.0])


def test_weeks_are_kept_apart_and_a_cell_with_no_shifted_neighbour_is_an_error():
    published = pd.concat([_cells([(0, 0)], week=1), _cells([(0, 0)], week=2)], ignore_index=True)
    shifted = pd.concat(
        [_cells([(0, 0)], week=1).assign(mu=1.0), _cells([(0, 0)], week=2).assign(mu=4.0)], ignore_index=True
    )
    assert put_back(published, shifted, 75.0, 150.0) == pytest.approx([1.0, 4.0])
    with pytest.raises(ValueError, match="1 published cell-weeks overlap no shifted cell"):
        put_back(_cells([(9, 9)]), shifted, 75.0, 150.0)


@pytest.mark.parametrize("shift", ["0", "150", "-10"])
def test_a_shift_of_no_cell_or_a_whole_one_is_refused_before_any_work(shift, tmp_path, monkeypatch):
    from benchmarks import shifted_grid

    argv = ["shifted_grid.py", "--lake", str(tmp_path / "lake"), "--work", str(tmp_path / "work")]
    monkeypatch.setattr("sys.argv", [*argv, "--shift-m", shift, "--out", str(tmp_path / "out.json")])
    monkeypatch.setenv("RISKRADAR_LAKE", str(tmp_path / "lake"))
    with pytest.raises(
        SystemExit,
        match=f"--shift-m {float(shift):g}: expected more than 0 and less than the cell size 150 m",
    ):
        shifted_grid.main()
    assert not (tmp_path / "work").exists()
