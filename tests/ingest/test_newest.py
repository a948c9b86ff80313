"""The per-series newest-time bounds: exact against a dict, across growth, at the key limits."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.ingest.newest import NOTHING, SeriesNewest
from tsdb_arrow.model import Numbered

U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def arrays(rows: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([r for r, _ in rows], dtype=np.uint64),
        np.array([t for _, t in rows], dtype=np.int64),
    )


def model_advance(model: dict[int, int], rows: list[tuple[int, int]], floor: int) -> bool:
    forward = True
    for r, t in rows:
        if t > model.setdefault(r, floor):
            model[r] = t
        else:
            forward = False
    return forward


_refs = st.one_of(st.integers(0, 40), st.sampled_from([0, 1, U64_MAX, 2**63]))
_times = st.one_of(st.integers(-5, 60), st.sampled_from([I64_MIN, I64_MAX]))
_rows = st.lists(st.tuples(_refs, _times), max_size=25)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["advance", "enter", "clear"]), _rows, _times)))
def test_bounds_match_a_dict(steps):
    newest, model = SeriesNewest(), {}
    for op, rows, floor in steps:
        if op == "clear":
            newest.clear()
            model.clear()
        elif op == "enter":
            newest.enter(arrays(rows)[0], floor)
            for r, _ in rows:
                model.setdefault(r, floor)
        else:
            assert newest.advance(*arrays(rows), floor) == model_advance(model, rows, floor)
        assert len(newest) == len(model)
    assert_bounds(newest, model)


def assert_bounds(newest: SeriesNewest, model: dict[int, int]) -> None:
    """Every bound, read back: a row at the bound is not newer, one past it is."""
    for r, bound in model.items():
        ref = np.array([r], dtype=np.uint64)
        if bound < I64_MAX:
            assert newest.advance(ref, np.array([bound + 1]), 0)
            assert not newest.advance(ref, np.array([bound + 1]), 0)


def test_growth_keeps_every_bound():
    """Far more series than the first table holds: every bound survives the rehashes."""
    refs = (np.arange(50_000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(7)
    times = np.arange(50_000, dtype=np.int64) * 3
    newest = SeriesNewest()
    newest.enter(refs[:20_000], NOTHING)
    assert newest.advance(refs[:20_000], times[:20_000], 0)  # from NOTHING: all newer
    assert not newest.advance(refs, times, 10**9)  # the first 20,000 repeat their times
    assert len(newest) == 50_000
    assert newest.advance(refs[:20_000], times[:20_000] + 1, NOTHING)
    assert not newest.advance(refs[20_000:], np.full(30_000, 10**9), NOTHING)  # the floor
    assert newest.advance(refs[20_000:], np.full(30_000, 10**9 + 1), NOTHING)
    # A series without an entry takes the floor given to the call.
    other = np.array([U64_MAX], dtype=np.uint64)
    assert not newest.advance(other, np.array([5]), 5)
    assert newest.advance(other, np.array([6]), 5)


def test_rows_of_one_batch_must_each_move_forward():
    newest = SeriesNewest()
    refs = np.array([1, 2, 1], dtype=np.uint64)
    assert newest.advance(refs, np.array([10, 10, 11]), NOTHING)
    assert not newest.advance(refs, np.array([12, 12, 12]), NOTHING)  # 1 repeats 12
    assert not newest.advance(refs[:1], np.array([12]), NOTHING)  # raised all the same


def test_empty_batches_and_any_array_layout():
    newest = SeriesNewest()
    empty = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    assert newest.advance(*empty, I64_MAX)
    newest.enter(empty[0], 0)
    assert len(newest) == 0
    # Strided int64 refs and int32 times are taken as uint64 / int64 values.
    refs = np.arange(10, dtype=np.int64)[::2]
    assert newest.advance(refs, np.arange(5, dtype=np.int32), NOTHING)
    assert len(newest) == 5
    assert not newest.advance(np.array([8], np.uint64), np.array([4]), NOTHING)
    assert newest.advance(np.array([8], np.uint64), np.array([5]), NOTHING)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(0, 3) | st.just(U64_MAX), _times), max_size=120),
            _times,
            st.randoms(use_true_random=False),
        ),
        max_size=5,
    )
)
def test_series_numbered_rows_give_the_row_by_row_answer_and_bounds(batches):
    """``advance`` given the rows' series numbers (any numbering, gaps too, as a resolved batch
    has them): the same answer and the same bounds as row by row, whichever path it takes."""
    newest, model = SeriesNewest(), {}
    for rows, floor, rnd in batches:
        distinct = list(dict.fromkeys(r for r, _ in rows))
        numbers = list(range(len(distinct) + rnd.randrange(3)))  # numbers no row holds too
        rnd.shuffle(numbers)
        number = dict(zip(distinct, numbers))
        row_sets = np.array([number[r] for r, _ in rows], dtype=np.int64)
        set_refs = numbered_refs(number, len(numbers))
        expected = model_advance(model, rows, floor)
        assert newest.advance(*arrays(rows), floor, Numbered(row_sets, set_refs)) == expected
        assert len(newest) == len(model)
    assert_bounds(newest, model)


def numbered_refs(number: dict[int, int], count: int) -> np.ndarray:
    """Each number's ref; a number no row holds gets a ref no row has (1000 and up)."""
    set_refs = np.arange(1000, 1000 + count, dtype=np.uint64)
    for ref, k in number.items():
        set_refs[k] = ref
    return set_refs


def test_a_batch_of_few_series_is_looked_up_a_series_at_a_time(monkeypatch):
    """Many rows of few series: the rows' series are looked up once each, not row by row."""
    from tsdb_arrow.ingest import newest as newest_mod

    looked_up = []
    real = newest_mod._advance

    def counting(table, keys, bounds, refs, *rest):
        looked_up.append(len(refs))
        return real(table, keys, bounds, refs, *rest)

    monkeypatch.setattr(newest_mod, "_advance", counting)
    refs = np.tile(np.array([7, 9, 11], dtype=np.uint64), 100)
    ts = np.repeat(np.arange(100, dtype=np.int64), 3)
    newest = SeriesNewest()
    numbering = np.tile(np.array([2, 0, 1]), 100), np.array([9, 11, 7], dtype=np.uint64)
    assert newest.advance(refs, ts, NOTHING, Numbered(*numbering))
    assert looked_up == [3, 3]
    assert not newest.advance(refs[:1], np.array([99]), NOTHING)  # the bound is the newest
