"""The cut's kernels against numpy references: window starts, and the scatter that sorts the
samples themselves by (window, ref, timestamp), on random rows with ties and duplicates."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.ingest import cut as cut_mod
from tsdb_arrow.ingest.cut import (
    _windows,
    count_repeats,
    cut,
    cut_parts,
    cut_rows,
    window_starts,
)

INT64 = np.iinfo(np.int64)
_times = st.one_of(
    st.integers(-(2**40), 2**40),
    st.integers(INT64.min, INT64.min + 2**30),
    st.integers(INT64.max - 2**30, INT64.max),
    st.sampled_from([INT64.min, INT64.max, 0, -1, 1]),
)
_durations = st.sampled_from([1, 7, 1000, 7_200_000, 2**36, 2**62, INT64.max])


@settings(max_examples=300, deadline=None)
@given(ts=st.lists(_times, min_size=1, max_size=200), duration=_durations)
def test_window_starts_by_the_kernel_equal_the_division(ts, duration):
    """Few windows (found by comparisons) or many (divided), near INT64_MIN (clamped) or not."""
    arr = np.array(ts, dtype=np.int64)
    assert _windows(arr, duration).tolist() == window_starts(arr, duration).tolist()


def _reference(refs, ts, values, duration):
    """A stable lexsort by (window, ref, timestamp), the last write of a duplicate kept."""
    windows = window_starts(ts, duration)
    order = np.lexsort((ts, refs, windows))
    r, t, v, w = refs[order], ts[order], values[order], windows[order]
    last = np.ones(len(r), dtype=bool)
    last[:-1] = (r[1:] != r[:-1]) | (t[1:] != t[:-1]) | (w[1:] != w[:-1])
    return w[last], r[last], t[last], v[last], order[last]


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    n_refs=st.integers(1, 40),
    span=st.sampled_from([0, 3, 5000, 7_200_000 * 3, 2**50]),
    duration=st.sampled_from([7_200_000, 2**62, 4096]),
    split=st.booleans(),
    n_parts=st.integers(1, 4),
)
def test_cut_equals_a_stable_lexsort(data, n_refs, span, duration, split, n_parts):
    """Random rows (groups long and short, in and out of order, equal timestamps of one series
    kept in write order): the cut's refs, timestamps and value bits (NaN payloads, -0.0) equal
    the reference window by window; ``cut_rows`` picks the same rows. A short ``duration``
    puts repeated pairs in several windows; ``split`` places the rows with two threads. Rows
    come as written, in time order, series after series or in block order (with repeats or
    without: the cut keeps rows already in block order where they are), in one
    array or in ``n_parts`` consecutive parts (some maybe empty) as the head's buffers hold them."""
    n = data.draw(st.integers(1, 3000))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    refs = rng.integers(0, n_refs, n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    ts = 1_700_000_000_000 + rng.integers(0, span, n, endpoint=True)
    order = data.draw(st.sampled_from(["written", "time", "series", "block"]))
    if order == "time":  # some series in time order, as appended
        ts = np.sort(ts)
    elif order in ("series", "block"):  # series after series, each in time order (as most
        # exports), or window after window so (as a shuffled batch is written to the head)
        by = np.lexsort((ts, refs, window_starts(ts, duration) if order == "block" else 0 * ts))
        refs, ts = refs[by], ts[by]
        if data.draw(st.booleans()):  # unique pairs
            first = np.ones(n, dtype=bool)
            first[1:] = (refs[1:] != refs[:-1]) | (ts[1:] != ts[:-1])
            refs, ts = refs[first], ts[first]
            n = len(refs)
    bits = rng.integers(0, 2**64, n, dtype=np.uint64)
    bits[rng.random(n) < 0.1] = np.uint64(0x7FF0000000000002)  # stale markers
    bits[rng.random(n) < 0.1] = np.uint64(1 << 63)  # -0.0
    values = bits.view(np.float64)
    with ThreadPoolExecutor(1) as pool, mock.patch.object(cut_mod, "SPLIT_ROWS", 0):
        if n_parts == 1:
            got = cut(refs, ts, values, duration, pool if split else None)
        else:
            cuts = sorted(data.draw(st.lists(st.integers(0, n), min_size=n_parts - 1,
                                             max_size=n_parts - 1)))  # fmt: skip
            bounds = [0, *cuts, n]
            parts = [(refs[a:b], ts[a:b], values[a:b]) for a, b in zip(bounds, bounds[1:])]
            got = cut_parts(parts, duration, pool if split else None)
    w, r, t, v, rows = _reference(refs, ts, values, duration)
    assert [x.start for x in got] == np.unique(w).tolist()
    assert np.array_equal(np.concatenate([x.refs for x in got]), r)
    assert np.array_equal(np.concatenate([x.timestamps for x in got]), t)
    got_bits = np.concatenate([x.values for x in got]).view(np.uint64)
    assert np.array_equal(got_bits, v.view(np.uint64))
    for window in got:
        inside = w == window.start
        assert np.array_equal(window.refs, r[inside])
        assert np.array_equal(window.timestamps, t[inside])
    picked = cut_rows(refs, ts, duration)
    assert [start for start, _ in picked] == np.unique(w).tolist()
    for start, idx in picked:
        assert np.array_equal(idx, rows[w == start])


def test_parts_each_sorted_whose_join_repeats_a_pair_keep_the_later_write():
    """Each part is sorted and unique, but the second starts with the first's last pair (or
    goes back in time): the cut sorts across parts, and the later write of the pair wins."""
    ref = np.uint64(7)
    first = (np.array([ref, ref]), np.array([1, 2]), np.array([1.0, 2.0]))
    again = (np.array([ref, ref]), np.array([2, 3]), np.array([20.0, 30.0]))
    (window,) = cut_parts([first, again], 7_200_000)
    assert window.timestamps.tolist() == [1, 2, 3]
    assert window.values.tolist() == [1.0, 20.0, 30.0]
    back = (np.array([ref]), np.array([0]), np.array([-1.0]))
    (window,) = cut_parts([first, back], 7_200_000)
    assert window.timestamps.tolist() == [0, 1, 2]
    assert window.values.tolist() == [-1.0, 1.0, 2.0]
    (window,) = cut_parts([first, (np.array([ref]), np.array([3]), np.array([3.0]))], 7_200_000)
    assert window.timestamps.tolist() == [1, 2, 3]
    assert cut_parts([], 7_200_000) == []
    assert cut_parts([(first[0][:0], first[1][:0], first[2][:0])], 7_200_000) == []


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 6), _times | st.integers(0, 20)), max_size=300),
    missing=st.sets(st.integers(0, 6)),
)
def test_count_repeats_counts_every_row_but_one_of_each_pair(rows, missing):
    """Groups in any order, some numbers unused, times with ties, far apart, at the int64
    limits: every row whose (group, timestamp) another row has, all but one."""
    rows = [(g, t) for g, t in rows if g not in missing] or rows
    groups = np.array([g for g, _ in rows], dtype=np.int64)
    ts = np.array([t for _, t in rows], dtype=np.int64)
    assert count_repeats(groups, ts) == len(rows) - len(set(rows))


def test_count_repeats_of_a_shuffled_batch_many_rows_long():
    rng = np.random.default_rng(11)
    groups = rng.integers(0, 300, 200_000)
    ts = 1_795_392_000_000 + 1000 * rng.integers(0, 2_000, 200_000)
    pairs = groups.astype(np.int64) * 10**13 + ts
    assert count_repeats(groups, ts) == len(pairs) - len(np.unique(pairs))
    assert count_repeats(np.zeros(0, np.int64), np.zeros(0, np.int64)) == 0
