"""The per-series newest-time bounds: exact against a dict, across growth, at the key limits."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.ingest.newest import NOTHING, SeriesNewest

U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def arrays(rows: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([r for r, _ in rows], dtype=np.uint64),
        np.array([t for _, t in rows], dtype=np.int64),
    )


def model_reaches_back(model: dict[int, int], rows: list[tuple[int, int]], floor: int) -> bool:
    return any(t <= model.get(r, floor) for r, t in rows)


def model_note(model: dict[int, int], rows: list[tuple[int, int]], floor: int) -> None:
    for r, t in rows:
        model[r] = max(model.get(r, floor), t)


_refs = st.one_of(st.integers(0, 40), st.sampled_from([0, 1, U64_MAX, 2**63]))
_times = st.one_of(st.integers(-5, 60), st.sampled_from([I64_MIN, I64_MAX]))
_rows = st.lists(st.tuples(_refs, _times), max_size=25)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_rows, _times, st.booleans()), max_size=12), _rows, _times)
def test_bounds_match_a_dict(steps, probe, probe_floor):
    newest, model = SeriesNewest(), {}
    for rows, floor, clear in steps:
        if clear:
            newest.clear()
            model.clear()
        assert newest.reaches_back(*arrays(rows), floor) == model_reaches_back(model, rows, floor)
        newest.note(*arrays(rows), floor)
        model_note(model, rows, floor)
        assert len(newest) == len(model)
    got = newest.reaches_back(*arrays(probe), probe_floor)
    assert got == model_reaches_back(model, probe, probe_floor)


def test_growth_keeps_every_bound():
    """Far more series than the first table holds: every bound survives the rehashes."""
    refs = (np.arange(50_000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(7)
    times = np.arange(50_000, dtype=np.int64) * 3
    newest = SeriesNewest()
    newest.note(refs[:20_000], times[:20_000], NOTHING)
    newest.note(refs, times, 10**9)  # the first 20,000 keep their own bound, the rest the floor
    assert len(newest) == 50_000
    assert not newest.reaches_back(refs[:20_000], times[:20_000] + 1, NOTHING)
    assert newest.reaches_back(refs[:20_000], times[:20_000], NOTHING)
    assert not newest.reaches_back(refs[20_000:], np.full(30_000, 10**9 + 1), NOTHING)
    assert newest.reaches_back(refs[-1:], np.array([10**9]), NOTHING)
    # A series without an entry takes the floor given to the call.
    other = np.array([U64_MAX], dtype=np.uint64)
    assert newest.reaches_back(other, np.array([5]), 5)
    assert not newest.reaches_back(other, np.array([6]), 5)


def test_empty_batches_and_any_array_layout():
    newest = SeriesNewest()
    empty = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    assert not newest.reaches_back(*empty, I64_MAX)
    newest.note(*empty, 0)
    assert len(newest) == 0
    # Strided int64 refs and int32 times are taken as uint64 / int64 values.
    refs = np.arange(10, dtype=np.int64)[::2]
    newest.note(refs, np.arange(5, dtype=np.int32), NOTHING)
    assert len(newest) == 5
    assert newest.reaches_back(np.array([8], np.uint64), np.array([4]), NOTHING)
    assert not newest.reaches_back(np.array([8], np.uint64), np.array([5]), NOTHING)
