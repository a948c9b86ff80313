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


_durations = st.sampled_from([1, 7, 1000, 7_200_000, 2**40, 2**62])


def _expected_order(groups, refs, ts, duration, dense):
    """The stable sort ``in_series_order`` promises: by (window, ref, time) when the groups
    are numbered densely, else by (set number, time)."""
    if dense:
        return np.lexsort((ts, refs, cut_mod.window_starts(ts, duration)))
    return np.lexsort((ts, groups))


@settings(max_examples=400, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 6), _times), max_size=300),
    unused=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
    split=st.booleans(),
    duration=_durations,
    dense_min=st.sampled_from([0, 1 << 16]),
)
def test_rows_come_sorted_stably_as_a_flush_cuts_them_with_their_repeats(
    rows, unused, seed, split, duration, dense_min
):
    """Rows in any order, ties, the int64 limits, set numbers without a row, one window or
    many: the output is a stable sort by (window, ref, timestamp), or by (set number,
    timestamp) when there are too many windows, of refs, timestamps and value bits (NaN
    payloads and -0.0 kept), and the repeats are every row of a pair but one; None when each
    series' times already increase row by row."""
    rng = np.random.default_rng(seed)
    groups = np.array([g for g, _ in rows], dtype=np.int64)
    ts = np.array([t for _, t in rows], dtype=np.int64)
    n_sets = (int(groups.max()) + 1 if len(rows) else 0) + unused
    set_refs = rng.integers(0, 2**64, n_sets, dtype=np.uint64)
    refs = set_refs[groups]
    bits = rng.integers(0, 2**64, len(rows), dtype=np.uint64)
    bits[rng.random(len(rows)) < 0.2] = np.uint64(0x7FF0000000000002)
    bits[rng.random(len(rows)) < 0.2] = np.uint64(1 << 63)
    numbered = Numbered(groups, set_refs)
    with (
        ThreadPoolExecutor(1) as pool,
        mock.patch.object(cut_mod, "SPLIT_ROWS", 0),
        mock.patch.object(cut_mod, "_DENSE_MIN", dense_min),
    ):
        got = in_series_order(refs, ts, bits.view(np.float64), numbered, duration,
                              pool if split else None)  # fmt: skip
        dense = len(rows) > 0 and cut_mod.block_sorted(
            groups, set_refs, ts, bits, duration
        ) is not None
    if _increasing_per_series(groups, ts):
        assert got is None
        return
    assert got is not None
    order = _expected_order(groups, refs, ts, duration, dense)
    assert np.array_equal(got.refs, refs[order])
    assert np.array_equal(got.timestamps, ts[order])
    assert np.array_equal(got.values.view(np.uint64), bits[order])
    assert got.repeats == len(rows) - len(set(rows))


@settings(max_examples=200, deadline=None)
@given(
    ts=st.lists(_times, min_size=1, max_size=50),
    n_sets=st.integers(1, 40),
    duration=_durations,
)
def test_block_sorted_numbers_groups_densely_only_within_its_bound(ts, n_sets, duration):
    """``block_sorted`` gives up (None) exactly when the (window, series) groups would
    outnumber ``_DENSE_PER_ROW`` per row and ``_DENSE_MIN``, or the windows leave int64."""
    ts_arr = np.array(ts, dtype=np.int64)
    sets = np.arange(len(ts)) % n_sets
    set_refs = np.arange(n_sets, dtype=np.uint64)
    with mock.patch.object(cut_mod, "_DENSE_MIN", 0):
        got = cut_mod.block_sorted(sets, set_refs, ts_arr, ts_arr.view(np.uint64), duration)
    first = min(ts) - min(ts) % duration
    in_range = first >= INT64.min and max(ts) - first <= INT64.max
    windows = (max(ts) - first) // duration + 1
    assert (got is not None) == (in_range and windows * n_sets <= 2 * len(ts))
    if got is not None:
        assert got.bounds[-1] == len(ts) and len(got.bounds) == windows * n_sets + 1


def test_a_long_shuffled_batch_placed_by_two_threads_equals_the_stable_sort():
    """200,000 rows of 300 series over 2,000 times (three windows), shuffled: each half of
    the rows placed by its own thread (the second from the end back), then the groups sorted
    in two halves."""
    rng = np.random.default_rng(5)
    n = 200_000
    groups = rng.integers(0, 300, n)
    ts = T0 + 1000 * rng.integers(0, 2_000, n)
    duration = 800_000
    set_refs = rng.integers(0, 2**64, 300, dtype=np.uint64)
    values = rng.normal(size=n)
    with ThreadPoolExecutor(1) as pool:
        got = in_series_order(
            set_refs[groups], ts, values, Numbered(groups, set_refs), duration, pool
        )
    assert got is not None
    order = _expected_order(groups, set_refs[groups], ts, duration, True)
    assert len(np.unique(cut_mod.window_starts(ts, duration))) == 3
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


def test_a_shuffled_batch_over_several_windows_is_flushed_without_sorting_again(tmp_path):
    """A first batch spanning five block windows, shuffled, with repeated pairs: the head
    holds it in the order the flush cuts, so the flush places no row (``_scatter_columns``
    is not called), and every window's block holds each pair's later write, bit for bit."""
    frame = _shuffled_with_repeats(3, n=20_000).with_columns(
        pl.col("timestamp") * 1  # 400 s of times ...
    )
    frame = frame.with_columns(  # ... spread over five 1000 s windows
        (T0 + (pl.col("timestamp") - T0) * 12).alias("timestamp")
    )
    config = ta.StorageConfig(block_duration=1_000_000)
    with ta.open(tmp_path / "db", config=config) as db:
        result = db.write(frame)
        want = _last_writes(frame)
        assert result.replaced == frame.height - want.height
        with mock.patch.object(
            cut_mod, "_scatter_columns", wraps=cut_mod._scatter_columns
        ) as placed:
            db.flush()
        assert placed.call_count == 0
        assert db.stats()["blocks"] == len(np.unique(cut_mod.window_starts(
            frame["timestamp"].to_numpy(), config.block_duration)))  # fmt: skip
        assert db.stats()["samples"] == want.height
        assert _bit_equal(_stored(db), want)
    with ta.open(tmp_path / "db") as db:
        assert _bit_equal(_stored(db), want)
