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
    each batch inserted by one thread or (``splits``) by two, one per table."""
    pairs = PairSet(capacity)
    seen: set[tuple[int, int]] = set()
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
