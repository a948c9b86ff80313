"""Cutting head samples into blocks: aligned time windows, sorted by (series, time), deduplicated.

A duplicate (series, timestamp) keeps the last write, so rows must arrive in write order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import polars as pl


@dataclass(frozen=True)
class Window:
    """Samples of one aligned block window, sorted by (ref, timestamp), unique per pair."""

    start: int
    refs: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray

    def series_refs(self) -> np.ndarray:
        """The distinct refs of the window, ascending (samples are sorted by ref)."""
        return self.refs[run_starts(self.refs)]


@nb.njit(cache=True)
def _is_sorted_unique(windows, refs, ts) -> bool:
    for i in range(1, refs.shape[0]):
        if windows[i] != windows[i - 1]:
            if windows[i] < windows[i - 1]:
                return False
        elif refs[i] != refs[i - 1]:
            if refs[i] < refs[i - 1]:
                return False
        elif ts[i] <= ts[i - 1]:
            return False
    return True


@nb.njit(cache=True)
def keep_last(refs, ts) -> np.ndarray:
    """The rows to keep of samples sorted by (ref, timestamp) with ties in write order: a
    duplicate (ref, timestamp) keeps its last write. keep[i] is False when row i+1 has the same
    (ref, timestamp). Shared by the block cut and the read path (head and overlapping blocks)."""
    n = refs.shape[0]
    keep = np.ones(n, dtype=np.bool_)
    for i in range(n - 1):
        if refs[i] == refs[i + 1] and ts[i] == ts[i + 1]:
            keep[i] = False
    return keep


def run_starts(refs: np.ndarray) -> np.ndarray:
    """Indices where a run of equal consecutive refs starts (empty for no rows)."""
    return np.flatnonzero(np.diff(refs, prepend=refs[:1] ^ 1))


def last_writes(
    refs: np.ndarray, timestamps: np.ndarray, seqs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of several writes merged, last write wins: the order sorting them by (ref,
    timestamp, write sequence ``seqs``, row), and which rows of that order to keep."""
    order = (
        pl.DataFrame({"r": refs, "t": timestamps, "s": seqs})
        .with_row_index("i")
        .sort(["r", "t", "s"], maintain_order=True)["i"]
        .to_numpy()
    )
    return order, keep_last(refs[order], timestamps[order])


def window_starts(timestamps: np.ndarray, duration: int) -> np.ndarray:
    """The aligned start of each sample's block window (floor division, also for negatives).

    A window whose start lies below the int64 range (timestamps within one block of INT64_MIN)
    starts at INT64_MIN.
    """
    with np.errstate(over="ignore"):
        starts = timestamps - np.mod(timestamps, duration)
    return np.where(starts > timestamps, np.iinfo(np.int64).min, starts)


_MIN_GROUP_TABLE = 1 << 12


@nb.njit(cache=True, nogil=True)
def _group_ids(windows, refs, table, group_w, group_r, ids):
    """Number each row's (window, ref) pair by first sight; -1 when ``table`` is too small.

    ``table`` is open addressing (-1 = empty) and may be at most half full. Rows of one
    series in a row cost one comparison with the row before.
    """
    n = refs.shape[0]
    mask = table.shape[0] - 1
    n_groups = 0
    last_w = np.int64(0)
    last_r = np.uint64(0)
    last = -1
    for i in range(n):
        w = windows[i]
        r = refs[i]
        if last >= 0 and w == last_w and r == last_r:
            ids[i] = last
            continue
        x = (r ^ np.uint64(w)) * np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(32)
        slot = np.int64(x & np.uint64(mask))
        while True:
            g = table[slot]
            if g < 0 or (group_w[g] == w and group_r[g] == r):
                break
            slot = (slot + 1) & mask
        if g < 0:
            if 2 * (n_groups + 1) > table.shape[0]:
                return -1
            g = n_groups
            n_groups += 1
            table[slot] = g
            group_w[g] = w
            group_r[g] = r
        ids[i] = g
        last_w = w
        last_r = r
        last = g
    return n_groups


@nb.njit(cache=True, nogil=True)
def _scatter_sort(ids, rank, bounds, ts):
    """The permutation sorting rows by (group rank, timestamp), stable for equal timestamps.

    Rows are placed group by group in write order; a group whose timestamps do not increase
    is then sorted by timestamp (a stable merge sort: the later write of a duplicate stays
    last).
    """
    n = ids.shape[0]
    cursor = bounds[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        k = rank[ids[i]]
        order[cursor[k]] = i
        cursor[k] += 1
    for k in range(bounds.shape[0] - 1):
        lo = bounds[k]
        hi = bounds[k + 1]
        for p in range(lo + 1, hi):
            if ts[order[p]] < ts[order[p - 1]]:
                _sort_segment(order, lo, hi, ts)
                break
    return order


_RADIX_MAX_BITS = 48  # wider time spans (a rare series) take the comparison sort
_RADIX_MIN_ROWS = 512  # below, the digit counts cost more than a comparison sort


@nb.njit(cache=True, nogil=True)
def _radix_segment(order, lo, hi, ts, t_min, bits):
    """Sort ``order[lo:hi]`` by ``ts - t_min`` (< 2**bits): LSD radix, stable, so equal
    timestamps stay in write order. A few linear passes instead of a comparison sort."""
    m = hi - lo
    passes = (bits + 11) // 12
    width = (bits + passes - 1) // passes
    digits = 1 << width
    src = order[lo:hi].copy()
    dst = np.empty(m, dtype=np.int64)
    key = np.empty(m, dtype=np.int64)
    for q in range(m):
        key[q] = ts[src[q]] - t_min
    key_dst = np.empty(m, dtype=np.int64)
    count = np.empty(digits + 1, dtype=np.int64)
    shift = 0
    for _ in range(passes):
        count[:] = 0
        for q in range(m):
            count[((key[q] >> shift) & (digits - 1)) + 1] += 1
        for d in range(digits):
            count[d + 1] += count[d]
        for q in range(m):
            d = (key[q] >> shift) & (digits - 1)
            p = count[d]
            count[d] = p + 1
            dst[p] = src[q]
            key_dst[p] = key[q]
        src, dst = dst, src
        key, key_dst = key_dst, key
        shift += width
    order[lo:hi] = src


@nb.njit(cache=True, nogil=True)
def _sort_segment(order, lo, hi, ts):
    """Sort ``order[lo:hi]`` by timestamp, equal timestamps kept in write order."""
    seg = order[lo:hi].copy()
    t_min = ts[seg[0]]
    t_max = t_min
    for q in range(seg.shape[0]):
        t_min = min(t_min, ts[seg[q]])
        t_max = max(t_max, ts[seg[q]])
    m = seg.shape[0]
    span = t_max - t_min
    if span >= 0 and m >= _RADIX_MIN_ROWS and span < (1 << _RADIX_MAX_BITS):
        bits = 1
        while (span >> bits) > 0:
            bits += 1
        _radix_segment(order, lo, hi, ts, t_min, bits)
    elif span >= 0 and span < (2**62) // m:
        # Unique keys (time, then position) sort faster than a stable argsort.
        keys = np.empty(m, dtype=np.int64)
        for q in range(m):
            keys[q] = (ts[seg[q]] - t_min) * m + q
        keys.sort()
        for q in range(m):
            order[lo + q] = seg[keys[q] % m]
    else:
        by_time = np.argsort(ts[seg], kind="mergesort")
        for q in range(m):
            order[lo + q] = seg[by_time[q]]


@dataclass(frozen=True)
class _Sorted:
    """A stable permutation sorting rows by (window, ref, ts), and its (window, ref) groups."""

    order: np.ndarray
    windows: np.ndarray  # each group's window, in sorted order
    refs: np.ndarray  # each group's ref, in sorted order
    counts: np.ndarray  # each group's rows


def _order(windows: np.ndarray, refs: np.ndarray, ts: np.ndarray) -> _Sorted | None:
    """A stable permutation sorting by (window, ref, ts); None when already sorted and unique.

    Whatever the row order (series runs, time order, shuffled), rows are grouped by
    (window, series) with a hash table, the few groups sorted, and the rows placed group by
    group: linear in the rows, plus a sort of the timestamps of groups that arrive out of order.
    """
    if _is_sorted_unique(windows, refs, ts):
        return None
    n = len(refs)
    size = _MIN_GROUP_TABLE
    while True:
        table = np.full(size, -1, dtype=np.int64)
        group_w = np.empty(size // 2, dtype=np.int64)
        group_r = np.empty(size // 2, dtype=np.uint64)
        ids = np.empty(n, dtype=np.int64)
        n_groups = _group_ids(windows, refs, table, group_w, group_r, ids)
        if n_groups >= 0:
            break
        size *= 8  # more (window, series) pairs than expected: start again with room
    by_key = np.lexsort((group_r[:n_groups], group_w[:n_groups]))
    rank = np.empty(n_groups, dtype=np.int64)
    rank[by_key] = np.arange(n_groups)
    counts = np.bincount(ids, minlength=n_groups)[by_key]
    bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    order = _scatter_sort(ids, rank, bounds, ts)
    return _Sorted(order, group_w[:n_groups][by_key], group_r[:n_groups][by_key], counts)


def cut(
    refs: np.ndarray, timestamps: np.ndarray, values: np.ndarray, duration: int
) -> list[Window]:
    """Split samples given in write order into sorted, deduplicated aligned windows."""
    if len(refs) == 0:
        return []
    windows = window_starts(timestamps, duration)
    done = _order(windows, refs, timestamps)
    if done is not None:
        # Refs and windows are constant per group: repeated, not gathered row by row.
        windows, refs, timestamps, values = (
            np.repeat(done.windows, done.counts),
            np.repeat(done.refs, done.counts),
            timestamps[done.order],
            values[done.order],
        )
        keep = keep_last(refs, timestamps)
        if not keep.all():
            windows, refs, timestamps, values = (
                windows[keep],
                refs[keep],
                timestamps[keep],
                values[keep],
            )
    bounds = np.flatnonzero(np.diff(windows)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(refs)]))
    return [
        Window(int(windows[s]), refs[s:e], timestamps[s:e], values[s:e])
        for s, e in zip(starts, ends)
    ]


def cut_rows(
    refs: np.ndarray, timestamps: np.ndarray, duration: int
) -> list[tuple[int, np.ndarray]]:
    """Row indices of each aligned window, sorted by (ref, timestamp), the last write kept.

    The same cut as ``cut``, for samples that are not floats (histograms): the caller takes the
    rows it needs with the indices.
    """
    if len(refs) == 0:
        return []
    windows = window_starts(timestamps, duration)
    done = _order(windows, refs, timestamps)
    order = np.arange(len(refs)) if done is None else done.order
    order = order[keep_last(refs[order], timestamps[order])]
    sorted_windows = windows[order]
    bounds = np.flatnonzero(np.diff(sorted_windows)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(order)]))
    return [(int(sorted_windows[s]), order[s:e]) for s, e in zip(starts, ends)]
