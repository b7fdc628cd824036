"""Fixtures of the unit tests shared by more than one module."""

from __future__ import annotations

import pytest

from benchmarks import synth


@pytest.fixture
def crime_chunk_sizes(monkeypatch) -> list[int]:
    """The size of every chunk of crime events the synthetic generators draw, in order, as they
    draw them (synth's chunk function wrapped for the test)."""
    sizes: list[int] = []
    real = synth._crime_chunk

    def spy(rng, city, n, first_day, n_days):
        sizes.append(n)
        return real(rng, city, n, first_day, n_days)

    monkeypatch.setattr(synth, "_crime_chunk", spy)
    return sizes
