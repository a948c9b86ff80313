"""The head's (series, timestamp) pair set: exact repeats, growth, and its use by ``write``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tsdb_arrow.ingest import pairs as pairs_mod
from tsdb_arrow.ingest.pairs import PairSet
from tsdb_arrow.model import Numbered

T0 = 1_795_543_910_000
INT64_MIN = np.iinfo(np.int64).min

_pairs = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 2**64 - 1]),
        st.sampled_from([INT64_MIN, -1, 0, 1, 5, 2**62]) | st.integers(-50, 50),
    ),
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_pairs, min_size=1, max_size=4), st.integers(0, 5000), st.lists(st.booleans()))
def test_repeats_match_a_python_set(batches, capacity, splits):
    """Repeats within and across batches, the pair that marks an empty slot, tables that grow;
    each batch inserted by one thread or (``splits``) by two, one per table. Pairs stay packed
    while every timestamp lies within the span from the first batch's base, and are unpacked,
    losing none, by the first batch reaching past it."""
    pairs = PairSet(capacity)
    seen: set[tuple[int, int]] = set()
    base = None
    with ThreadPoolExecutor(1) as pool, mock.patch.object(pairs_mod, "SPLIT_ROWS", 0):
        for k, batch in enumerate(batches):
            refs = np.array([r for r, _ in batch], dtype=np.uint64)
            ts = np.array([t for _, t in batch], dtype=np.int64)
            expected = []
            for pair in batch:
                expected.append(pair in seen)
                seen.add(pair)
            split = k < len(splits) and splits[k]
            assert pairs.add(refs, ts, pool if split else None).tolist() == expected
            assert len(pairs) == len(seen)
            if base is None and batch:
                base = max(min(ts.tolist()) - 2**40, INT64_MIN)
            packs = base is None or all(0 <= t - base < 2**42 for _, t in seen)
            assert pairs.packed == packs


@pytest.mark.parametrize("split", [False, True])
def test_many_series_in_no_order_are_numbered_and_packed(split):
    """30,000 series (the series numbers' table grows several times), their pairs in shuffled
    batches, then every pair again: all repeats, still packed."""
    rng = np.random.default_rng(5)
    refs = rng.integers(0, 2**64, size=30_000, dtype=np.uint64)
    rows_refs = np.repeat(refs, 4)
    rows_ts = np.tile(T0 + 1000 * np.arange(4, dtype=np.int64), len(refs))
    order = rng.permutation(len(rows_refs))
    pairs = PairSet()
    with ThreadPoolExecutor(1) as pool:
        for part in np.array_split(order, 7):
            assert not pairs.add(rows_refs[part], rows_ts[part], pool if split else None).any()
        again = pairs.add(rows_refs[order[::-1]], rows_ts[order[::-1]], pool if split else None)
    assert again.all() and len(pairs) == 120_000 and pairs.packed


def test_more_series_than_pack_are_unpacked_losing_none(monkeypatch):
    """Past ``MAX_PACKED_SERIES`` series the pairs are unpacked; earlier pairs still repeat."""
    monkeypatch.setattr(pairs_mod, "MAX_PACKED_SERIES", 100)
    pairs = PairSet()
    first = pairs.add(np.arange(80, dtype=np.uint64), np.full(80, T0, dtype=np.int64))
    assert not first.any() and pairs.packed
    refs = np.arange(40, 160, dtype=np.uint64)  # 40 repeat the first batch's series
    second = pairs.add(refs, np.full(len(refs), T0, dtype=np.int64))
    assert not pairs.packed
    assert second.tolist() == [True] * 40 + [False] * 80
    assert len(pairs) == 160
    third = pairs.add(np.arange(160, dtype=np.uint64), np.full(160, T0 + 1, dtype=np.int64))
    assert not third.any() and len(pairs) == 320


@pytest.mark.parametrize("split", [False, True])
def test_a_batch_larger_than_the_table_grows_it(split):
    """A batch far larger than the tables, by one thread or two (each growing its own)."""
    pairs = PairSet()
    refs = np.repeat(np.arange(50, dtype=np.uint64), 2000)
    ts = np.tile(np.arange(2000, dtype=np.int64), 50)
    with ThreadPoolExecutor(1) as pool:
        first = pairs.add(refs, ts, pool if split else None)
        again = pairs.add(refs[::7], ts[::7], pool if split else None)
        # the second half of the batch repeats the first, shuffled
        order = np.random.default_rng(2).permutation(len(refs))
        both = np.concatenate((refs, refs[order])), np.concatenate((ts + 5000, ts[order] + 5000))
        third = pairs.add(*both, pool if split else None)
    assert not first.any()
    assert again.all()
    assert third.tolist() == [False] * len(refs) + [True] * len(refs)
    assert len(pairs) == 200_000


def _frame(ts, values, names):
    return pl.DataFrame({"timestamp": ts, "value": values, "__name__": names})


def test_shuffled_batches_count_repeats_of_the_head_and_of_blocks(tmp_path):
    """Batches that reach back: repeats of head rows, of earlier rows, of flushed blocks."""
    rng = np.random.default_rng(3)
    names = np.array(["a", "b", "c"])
    seen: set[tuple[str, int]] = set()
    with ta.open(tmp_path / "db") as db:
        for i in range(12):
            ts = T0 + 1000 * rng.integers(0, 400, 500)
            nm = names[rng.integers(0, 3, 500)]
            expected = 0
            for pair in zip(nm.tolist(), ts.tolist()):
                expected += pair in seen
                seen.add(pair)
            assert db.write(_frame(ts, np.full(500, float(i)), nm)).replaced == expected
            if i in (4, 9):
                db.flush()
        db.flush()
        assert db.stats()["samples"] == len(seen)


def test_a_failed_count_leaves_no_pairs_of_rows_it_did_not_store(tmp_path, monkeypatch):
    """A write refused after its rows entered the pair set: they do not count as stored."""
    from tsdb_arrow.query import overlap

    with ta.open(tmp_path / "db") as db:
        db.write(_frame([T0 + 5000], [1.0], ["a"]))
        db.flush()  # a block: rows reaching back are looked up there too (stored_matches)
        db.write(_frame([T0, T0 + 1000], [1.0, 1.0], ["a", "a"]))  # reaches back: set built

        def fail(*args, **kwargs):
            raise OSError("disk gone")

        monkeypatch.setattr(overlap, "stored_matches", fail)
        with pytest.raises(OSError, match="disk gone"):
            db.write(_frame([T0 + 2000, T0 + 1000], [2.0, 2.0], ["a", "a"]))
        monkeypatch.undo()
        # T0+2000 was never stored; T0+1000 was.
        result = db.write(_frame([T0 + 2000, T0 + 1000], [3.0, 3.0], ["a", "a"]))
        assert result == ta.WriteResult(rows=2, replaced=1)
        got = db.select("a").collect()
        assert got["value"].to_list() == [1.0, 3.0, 3.0, 1.0]


def test_a_refused_write_adds_no_series(tmp_path, monkeypatch):
    """A batch refused while its replaced rows are counted leaves the series index as it was:
    its new series are not listed, nor counted."""
    from tsdb_arrow.query import overlap

    with ta.open(tmp_path / "db") as db:
        db.write(_frame([T0 + 5000], [1.0], ["a"]))
        db.flush()

        def fail(*args, **kwargs):
            raise ta.CorruptBlockError("chunks.parquet unreadable")

        monkeypatch.setattr(overlap, "stored_matches", fail)
        with pytest.raises(ta.CorruptBlockError):
            db.write(_frame([T0, T0 + 1000], [2.0, 2.0], ["a", "b"]))  # reaches back; b is new
        monkeypatch.undo()
        assert db.series()["__name__"].to_list() == ["a"]
        assert db.stats()["series"] == 1
        assert db.write(_frame([T0 + 1000], [3.0], ["b"])) == ta.WriteResult(rows=1, replaced=0)
        assert sorted(db.series()["__name__"].to_list()) == ["a", "b"]


def test_the_pair_of_an_empty_slot_survives_unpacking():
    """(0, INT64_MIN), packed like any pair, is kept aside once unpacked (where its bytes mark
    an empty slot), and still repeats."""
    pairs = PairSet()
    assert not pairs.add(np.zeros(1, np.uint64), np.array([INT64_MIN])).any()
    assert pairs.packed
    assert not pairs.add(np.ones(1, np.uint64), np.array([2**62])).any()  # past the span
    assert not pairs.packed and len(pairs) == 2
    assert pairs.add(np.array([0, 1, 0], np.uint64), np.array([INT64_MIN, 2**62, 0])).tolist() == [
        True,
        True,
        False,
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(0, 4) | st.just(2**64 - 1), st.integers(-20, 20)),
                     max_size=60),  # fmt: skip
            st.randoms(use_true_random=False),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_rows_given_their_series_numbers_repeat_as_without(batches):
    """``add`` with the rows' series numbers (any numbering, gaps too): the same repeats as a
    Python set, rows of few series or of many."""
    pairs = PairSet()
    seen: set[tuple[int, int]] = set()
    for rows, rnd in batches:
        distinct = list(dict.fromkeys(r for r, _ in rows))
        numbers = list(range(len(distinct) + rnd.randrange(3)))  # numbers no row holds too
        rnd.shuffle(numbers)
        number = dict(zip(distinct, numbers))
        expected = []
        for pair in rows:
            expected.append(pair in seen)
            seen.add(pair)
        refs = np.array([r for r, _ in rows], dtype=np.uint64)
        ts = np.array([T0 + t for _, t in rows], dtype=np.int64)
        row_sets = np.array([number[r] for r, _ in rows], dtype=np.int64)
        set_refs = np.arange(1000, 1000 + len(numbers), dtype=np.uint64)  # numbers no row holds
        for ref, k in number.items():
            set_refs[k] = ref
        assert pairs.add(refs, ts, None, Numbered(row_sets, set_refs)).tolist() == expected
        assert len(pairs) == len(seen) and pairs.packed
