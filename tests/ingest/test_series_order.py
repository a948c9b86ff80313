"""A float batch that can only repeat its own rows is sorted by series and time as it is
written (``query.overlap.in_series_order``): the repeats it counts, and the order the head and
the log then hold, which must keep the later write of a repeated pair after the earlier."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tsdb_arrow.ingest import cut as cut_mod
from tsdb_arrow.model import Numbered
from tsdb_arrow.query.overlap import in_series_order

T0 = 1_795_392_000_000
INT64 = np.iinfo(np.int64)
_times = st.one_of(
    st.integers(0, 20),
    st.integers(-(2**40), 2**40),
    st.sampled_from([INT64.min, INT64.max, -1]),
)


def _increasing_per_series(groups: np.ndarray, ts: np.ndarray) -> bool:
    last: dict[int, int] = {}
    for g, t in zip(groups.tolist(), ts.tolist()):
        if g in last and t <= last[g]:
            return False
        last[g] = t
    return True


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 6), _times), max_size=300),
    unused=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
    split=st.booleans(),
)
def test_rows_come_sorted_stably_by_series_and_time_with_their_repeats(rows, unused, seed, split):
    """Rows in any order, ties, the int64 limits, set numbers without a row: the output is
    a stable sort by (set number, timestamp) of refs, timestamps and value bits (NaN payloads
    and -0.0 kept), and the repeats are every row of a pair but one; None when each series'
    times already increase row by row."""
    rng = np.random.default_rng(seed)
    groups = np.array([g for g, _ in rows], dtype=np.int64)
    ts = np.array([t for _, t in rows], dtype=np.int64)
    n_sets = (int(groups.max()) + 1 if len(rows) else 0) + unused
    set_refs = rng.integers(0, 2**64, n_sets, dtype=np.uint64)
    refs = set_refs[groups]
    bits = rng.integers(0, 2**64, len(rows), dtype=np.uint64)
    bits[rng.random(len(rows)) < 0.2] = np.uint64(0x7FF0000000000002)
    bits[rng.random(len(rows)) < 0.2] = np.uint64(1 << 63)
    with ThreadPoolExecutor(1) as pool, mock.patch.object(cut_mod, "SPLIT_ROWS", 0):
        got = in_series_order(refs, ts, bits.view(np.float64), Numbered(groups, set_refs),
                              pool if split else None)  # fmt: skip
    if _increasing_per_series(groups, ts):
        assert got is None
        return
    assert got is not None
    order = np.lexsort((ts, groups))  # stable: a repeated pair's rows stay in write order
    assert np.array_equal(got.refs, refs[order])
    assert np.array_equal(got.timestamps, ts[order])
    assert np.array_equal(got.values.view(np.uint64), bits[order])
    assert got.repeats == len(rows) - len(set(rows))


def test_a_long_shuffled_batch_placed_by_two_threads_equals_the_stable_sort():
    """200,000 rows of 300 series over 2,000 times, shuffled: each half of the rows placed by
    its own thread (the second from the end back), then the groups sorted in two halves."""
    rng = np.random.default_rng(5)
    n = 200_000
    groups = rng.integers(0, 300, n)
    ts = T0 + 1000 * rng.integers(0, 2_000, n)
    set_refs = rng.integers(0, 2**64, 300, dtype=np.uint64)
    values = rng.normal(size=n)
    with ThreadPoolExecutor(1) as pool:
        got = in_series_order(set_refs[groups], ts, values, Numbered(groups, set_refs), pool)
    assert got is not None
    order = np.lexsort((ts, groups))
    assert np.array_equal(got.refs, set_refs[groups][order])
    assert np.array_equal(got.timestamps, ts[order])
    assert np.array_equal(got.values, values[order])
    pairs = groups * 10**13 + ts
    assert got.repeats == n - len(np.unique(pairs))


def _shuffled_with_repeats(seed: int, n: int = 5_000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n)
    values[::53] = np.array([0x7FF8DEADBEEF0001], dtype=np.uint64).view(np.float64)[0]
    return pl.DataFrame(
        {
            "timestamp": T0 + 1000 * rng.integers(0, 400, n),
            "value": values,
            "__name__": [f"m{k}" for k in rng.integers(0, 3, n)],
            "host": [f"h{k}" for k in rng.integers(0, 5, n)],
        }
    )


def _last_writes(frame: pl.DataFrame) -> pl.DataFrame:
    keys = ["__name__", "host", "timestamp"]
    last = frame.with_row_index("order").group_by(keys).agg(pl.col("value").sort_by("order").last())
    return last.sort(keys).select(*keys, "value")


def _stored(db: ta.Database) -> pl.DataFrame:
    got = db.select().collect().with_columns(pl.col("timestamp").dt.epoch("ms"))
    return got.sort(["__name__", "host", "timestamp"]).select(
        "__name__", "host", "timestamp", "value"
    )


def _bit_equal(got: pl.DataFrame, want: pl.DataFrame) -> bool:
    return got.drop("value").equals(want.drop("value")) and np.array_equal(
        got["value"].to_numpy().view(np.uint64), want["value"].to_numpy().view(np.uint64)
    )


def test_a_first_shuffled_batch_reports_its_repeats_and_keeps_each_later_write(tmp_path):
    """Into an empty database and as new series beside stored ones: the write reports every
    repeated row, and the head, a flush and a reopen all return each pair's later write."""
    first, second = _shuffled_with_repeats(1), _shuffled_with_repeats(2)
    second = second.with_columns(pl.col("__name__") + "_b")  # new series only, same times
    with ta.open(tmp_path / "db") as db:
        result = db.write(first)
        want = _last_writes(first)
        assert (result.rows, result.replaced) == (first.height, first.height - want.height)
        assert _bit_equal(_stored(db), want)  # read from the head
        db.flush()
        result = db.write(second)
        want_second = _last_writes(second)
        assert result.replaced == second.height - want_second.height
        want = pl.concat([want, want_second]).sort(["__name__", "host", "timestamp"])
        assert _bit_equal(_stored(db), want)
        # the head counts rows as they came (docs: stats); a flush leaves each pair once
        assert db.stats()["head_samples"] == second.height
        db.flush()
        assert db.stats()["samples"] == want.height
    with ta.open(tmp_path / "db") as db:
        assert _bit_equal(_stored(db), want)
        assert db.stats()["samples"] == want.height
