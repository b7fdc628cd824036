"""The bulk of a delivery, which a stray date is measured from: its days split at long gaps, the
part with the most rows."""

from __future__ import annotations

from datetime import date, timedelta

from intake.conform import bulk_end


def _days(first: date, n: int, rows: int = 100) -> list[tuple[date, int]]:
    return [(first + timedelta(days=i), rows) for i in range(n)]


def test_two_years_without_a_gap_end_on_their_last_day():
    days = _days(date(2013, 1, 1), 730)
    assert bulk_end(days, 62) == date(2014, 12, 31)


def test_a_stray_far_after_the_data_is_not_the_bulk():
    days = [*_days(date(2013, 3, 1), 9, rows=4), (date(2026, 11, 30), 1)]
    assert bulk_end(days, 62) == date(2013, 3, 9)


def test_an_old_correction_before_the_data_does_not_move_the_bulk():
    days = [(date(2001, 5, 1), 2), *_days(date(2015, 1, 1), 31)]
    assert bulk_end(days, 62) == date(2015, 1, 31)


def test_a_short_pause_is_no_gap():
    days = [*_days(date(2015, 1, 1), 20), *_days(date(2015, 3, 1), 20)]
    assert bulk_end(days, 62) == date(2015, 3, 20)
    assert bulk_end(days, 30) == date(2015, 3, 20)  # two parts of as many rows: the later one
