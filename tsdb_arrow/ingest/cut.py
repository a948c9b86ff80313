"""Cutting head samples into blocks: aligned time windows, sorted by (series, time), deduplicated.

A duplicate (series, timestamp) keeps the last write, so rows must arrive in write order.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

import numpy as np
import polars as pl

from tsdb_arrow.ingest import split
from tsdb_arrow.jit import njit


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


@njit(cache=True)
def _is_block_sorted(windows, refs, ts) -> bool:
    """Whether rows are sorted by (window, ref, timestamp), repeated pairs allowed (in write
    order, the stable sort leaves them as they are)."""
    for i in range(1, refs.shape[0]):
        if windows[i] != windows[i - 1]:
            if windows[i] < windows[i - 1]:
                return False
        elif refs[i] != refs[i - 1]:
            if refs[i] < refs[i - 1]:
                return False
        elif ts[i] < ts[i - 1]:
            return False
    return True


@njit(cache=True)
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


_FEW_WINDOWS = 16  # up to this many windows, a row finds its own by comparisons, not a division


@njit(inline="always")
def _wrapping_sub(a, b):
    """``a - b`` wrapping around (LLVM may assume that a signed ``a - b`` does not overflow and
    fold the overflow test away)."""
    return np.int64(np.uint64(a) - np.uint64(b))


@njit(cache=True, nogil=True)
def _window_starts(ts, duration, t_min, t_max):
    """``window_starts`` of ``ts`` (whose least and greatest are ``t_min``, ``t_max``): a few
    comparisons per row when the rows span few windows (a division costs tens of cycles)."""
    n = ts.shape[0]
    out = np.empty(n, dtype=np.int64)
    lowest = np.iinfo(np.int64).min
    first = _wrapping_sub(t_min, t_min % duration)
    # A first window starting below the int64 range (clamped) or a span that overflows: rare,
    # each row divides.
    if first <= t_min and (first >= 0 or t_max <= np.iinfo(np.int64).max + first):
        few = (t_max - first) // duration < _FEW_WINDOWS
    else:
        few = False
    if few:
        for i in range(n):
            w = first
            t = ts[i]
            while t - w >= duration:
                w += duration
            out[i] = w
        return out
    for i in range(n):
        t = ts[i]
        w = _wrapping_sub(t, t % duration)
        out[i] = lowest if w > t else w
    return out


_MIN_GROUP_TABLE = 1 << 12


@njit(cache=True, nogil=True)
def _group_ids(windows, refs, table, group_w, group_r, ids, n_groups):
    """Number each row's (window, ref) pair by first sight, after the ``n_groups`` pairs
    numbered already (earlier parts of the rows); returns how many pairs are numbered then,
    or -1 when ``table`` is too small.

    ``table`` is open addressing (-1 = empty) and may be at most half full. Rows of one
    series in a row cost one comparison with the row before.
    """
    n = refs.shape[0]
    mask = table.shape[0] - 1
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


#: Rows from which a flush places a head's samples with two threads, when given a pool.
SPLIT_ROWS = 1 << 16


def _scatter_columns(
    ids: np.ndarray,
    rank: np.ndarray,
    bounds: np.ndarray,
    parts: list[tuple[np.ndarray, np.ndarray]],
    pool: Executor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and 64-bit payloads ``bits`` (value bits, or row numbers), given in
    consecutive parts of (timestamps, bits) whose group ids ``ids`` are numbered over all of
    them, sorted by (group rank, timestamp), stable for equal timestamps (``_place`` and
    ``_sort_groups``). With a ``pool``, a long batch is placed in two halves of its rows at
    once (the second half's rows of a group after the first's), then sorted in two halves of
    its groups."""
    out_ts = np.empty(len(ids), dtype=np.int64)
    out_bits = np.empty(len(ids), dtype=np.uint64)
    n_groups = len(bounds) - 1
    if pool is None or len(ids) < SPLIT_ROWS or n_groups < 2:
        _place_parts(ids, rank, parts, out_ts, out_bits, bounds[:-1].copy())
        _sort_groups(bounds, out_ts, out_bits, 0, n_groups)
        return out_ts, out_bits
    half = len(ids) // 2
    first, second = _split_parts(parts, half)
    # the first half fills each group from its start, the second from its end backwards:
    # they meet where the group's first-half rows end, with no count of them needed
    split.each(pool, [
        partial(_place_parts, ids[:half], rank, first, out_ts, out_bits, bounds[:-1].copy()),
        partial(_place_parts, ids[half:], rank, second, out_ts, out_bits, bounds[1:].copy(),
                backwards=True),
    ])  # fmt: skip
    # halves of the rows, not of the groups: the first group past the middle row
    middle = int(np.searchsorted(bounds, half, side="right"))
    middle = min(max(middle, 1), n_groups - 1)
    split.each(pool, [partial(_sort_groups, bounds, out_ts, out_bits, lo, hi)
                      for lo, hi in ((0, middle), (middle, n_groups))])  # fmt: skip
    return out_ts, out_bits


def _split_parts(
    parts: list[tuple[np.ndarray, np.ndarray]], at: int
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """Consecutive parts cut into the first ``at`` rows and the rest (views)."""
    first: list[tuple[np.ndarray, np.ndarray]] = []
    second: list[tuple[np.ndarray, np.ndarray]] = []
    lo = 0
    for ts, bits in parts:
        hi = lo + len(ts)
        if hi <= at:
            first.append((ts, bits))
        elif lo >= at:
            second.append((ts, bits))
        else:
            first.append((ts[: at - lo], bits[: at - lo]))
            second.append((ts[at - lo :], bits[at - lo :]))
        lo = hi
    return first, second


def _place_parts(ids: np.ndarray, rank: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray]],
                 out_ts: np.ndarray, out_bits: np.ndarray, cursor: np.ndarray,
                 backwards: bool = False) -> None:  # fmt: skip
    """Place consecutive parts' rows (group ids ``ids``) at their group's ``cursor``: from
    there on, or (``backwards``) from the last row back, each before its group's ``cursor``."""
    at = 0
    spans = []
    for ts, bits in parts:
        spans.append((ids[at : at + len(ts)], ts, bits))
        at += len(ts)
    for part_ids, ts, bits in reversed(spans) if backwards else spans:
        place = _place_back if backwards else _place
        place(part_ids, rank, ts, bits, out_ts, out_bits, cursor)


@njit(cache=True, nogil=True)
def _place(ids, rank, ts, bits, out_ts, out_bits, cursor):
    """Place each row at its group's ``cursor`` in ``out_ts``/``out_bits`` (which moves on),
    in row order.

    The samples themselves move: one sequential pass places them group by group, and a group
    out of time order is then sorted where it lies (``_sort_groups``), so no pass gathers rows
    from all over the batch (shuffled rows would miss the cache on every one).
    """
    for i in range(ids.shape[0]):
        k = rank[ids[i]]
        p = cursor[k]
        out_ts[p] = ts[i]
        out_bits[p] = bits[i]
        cursor[k] = p + 1


@njit(cache=True, nogil=True)
def _place_back(ids, rank, ts, bits, out_ts, out_bits, cursor):
    """``_place`` from the last row to the first, each row just before its group's
    ``cursor`` (which moves back): the rows keep their order within the group."""
    for i in range(ids.shape[0] - 1, -1, -1):
        k = rank[ids[i]]
        p = cursor[k] - 1
        out_ts[p] = ts[i]
        out_bits[p] = bits[i]
        cursor[k] = p


@njit(cache=True, nogil=True)
def _sort_groups(bounds, out_ts, out_bits, lo, hi):
    """Sort each placed group ranked ``lo:hi`` by timestamp where it lies, stably for equal
    timestamps (the later write of a duplicate stays last)."""
    longest = 0
    for k in range(lo, hi):
        longest = max(longest, bounds[k + 1] - bounds[k])
    tmp_ts = np.empty(longest, dtype=np.int64)
    tmp_bits = np.empty(longest, dtype=np.uint64)
    count = np.empty((1 << _RUN_MAX_WIDTH) + 1, dtype=np.int64)
    for k in range(lo, hi):
        a = bounds[k]
        b = bounds[k + 1]
        for p in range(a + 1, b):
            if out_ts[p] < out_ts[p - 1]:
                _sort_run(out_ts[a:b], out_bits[a:b], tmp_ts, tmp_bits, count)
                break


_RUN_INSERTION = 32  # runs this short: an insertion sort
_RUN_MAX_WIDTH = 11  # radix digits of at most 11 bits: the counts stay in L1
_RADIX_MAX_BITS = 48  # wider time spans (a rare series) take the comparison sort


@njit(cache=True, nogil=True)
def _sort_run(ts, bits, tmp_ts, tmp_bits, count):
    """Sort ``ts`` (carrying ``bits`` along) in place, stably: LSD radix on ``ts - min`` with
    digits about as wide as the run is long, an insertion sort for a short run."""
    m = ts.shape[0]
    if m <= _RUN_INSERTION:
        for i in range(1, m):
            t = ts[i]
            b = bits[i]
            j = i
            while j > 0 and ts[j - 1] > t:
                ts[j] = ts[j - 1]
                bits[j] = bits[j - 1]
                j -= 1
            ts[j] = t
            bits[j] = b
        return
    t_min = ts[0]
    t_max = ts[0]
    for i in range(m):
        t_min = min(t_min, ts[i])
        t_max = max(t_max, ts[i])
    span = np.uint64(t_max) - np.uint64(t_min)  # exact, also for spans past INT64_MAX
    if span >= np.uint64(1) << np.uint64(_RADIX_MAX_BITS):
        order = np.argsort(ts, kind="mergesort")
        sorted_ts = ts[order]
        sorted_bits = bits[order]
        ts[:] = sorted_ts
        bits[:] = sorted_bits
        return
    needed = 1
    while (span >> np.uint64(needed)) > 0:
        needed += 1
    width = 6
    while width < _RUN_MAX_WIDTH and (1 << width) < m:
        width += 1
    passes = (needed + width - 1) // width
    width = (needed + passes - 1) // passes
    digits = 1 << width
    mask = np.uint64(digits - 1)
    base = np.uint64(t_min)
    src_ts, src_bits = ts, bits
    dst_ts, dst_bits = tmp_ts[:m], tmp_bits[:m]
    shift = np.uint64(0)
    for _ in range(passes):
        count[: digits + 1] = 0
        for i in range(m):
            count[np.int64(((np.uint64(src_ts[i]) - base) >> shift) & mask) + 1] += 1
        for d in range(digits):
            count[d + 1] += count[d]
        for i in range(m):
            d = np.int64(((np.uint64(src_ts[i]) - base) >> shift) & mask)
            p = count[d]
            count[d] = p + 1
            dst_ts[p] = src_ts[i]
            dst_bits[p] = src_bits[i]
        src_ts, dst_ts = dst_ts, src_ts
        src_bits, dst_bits = dst_bits, src_bits
        shift += np.uint64(width)
    if passes % 2 == 1:  # the sorted run is in the scratch arrays
        ts[:] = src_ts
        bits[:] = src_bits


@dataclass(frozen=True)
class _Groups:
    """Rows grouped by (window, ref): each row's group, each group's rank in (window, ref)
    order, and per rank its window, ref, and rows (``bounds``: where each rank's rows start)."""

    ids: np.ndarray
    rank: np.ndarray
    windows: np.ndarray  # each group's window, in sorted order
    refs: np.ndarray  # each group's ref, in sorted order
    counts: np.ndarray  # each group's rows, in sorted order
    bounds: np.ndarray


def _groups(parts: list[tuple[np.ndarray, np.ndarray]], duration: int) -> _Groups | None:
    """The (window, ref) groups of rows given as consecutive non-empty parts of (refs,
    timestamps); None when the rows are sorted by (window, ref, ts) already (repeated pairs
    in write order, as the sort leaves them).

    Whatever the row order (series runs, time order, shuffled), rows are grouped by
    (window, series) with a hash table and the few groups sorted: linear in the rows. Each
    part's windows are worked out where it lies and dropped (no array of them all).
    """
    last = None
    for refs, ts in parts:  # rows out of order show within the first part, as a rule
        windows = _windows(ts, duration)
        first = (int(windows[0]), int(refs[0]), int(ts[0]))
        if (last is not None and first < last) or not _is_block_sorted(windows, refs, ts):
            break
        last = (int(windows[-1]), int(refs[-1]), int(ts[-1]))
    else:
        return None
    n = sum(len(refs) for refs, _ in parts)
    ids = np.empty(n, dtype=np.int32 if n < 2**31 else np.int64)
    size = _MIN_GROUP_TABLE
    n_groups = -1
    while n_groups < 0:
        table = np.full(size, -1, dtype=np.int64)
        group_w = np.empty(size // 2, dtype=np.int64)
        group_r = np.empty(size // 2, dtype=np.uint64)
        n_groups, at = 0, 0
        for refs, ts in parts:
            part_ids = ids[at : at + len(refs)]
            windows = _windows(ts, duration)
            n_groups = _group_ids(windows, refs, table, group_w, group_r, part_ids, n_groups)
            if n_groups < 0:
                size *= 8  # more (window, series) pairs than expected: start again with room
                break
            at += len(refs)
    by_key = np.lexsort((group_r[:n_groups], group_w[:n_groups]))
    rank = np.empty(n_groups, dtype=np.int64)
    rank[by_key] = np.arange(n_groups)
    counts = np.bincount(ids, minlength=n_groups)[by_key]
    bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return _Groups(ids, rank, group_w[:n_groups][by_key], group_r[:n_groups][by_key],
                   counts, bounds)  # fmt: skip


def count_repeats(groups: np.ndarray, timestamps: np.ndarray, pool: Executor | None = None) -> int:
    """How many rows repeat the (group, timestamp) of another row (all but one of each pair's
    rows: what a flush drops). ``groups`` numbers each row's group (its series) from 0,
    densely for the least work."""
    if len(groups) == 0:
        return 0
    ts, _, bounds = group_sorted(groups, timestamps, timestamps.view(np.uint64), pool)
    return sorted_repeats(ts, bounds)


def group_sorted(
    groups: np.ndarray,
    timestamps: np.ndarray,
    bits: np.ndarray,
    pool: Executor | None = None,
    n_groups: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Timestamps and 64-bit payloads ``bits`` of rows sorted by (group, timestamp), stably
    (a repeated pair's later row stays last), and each group's bounds in them. ``groups``
    numbers each row's group densely from 0 (``n_groups`` at least, some maybe without rows).
    The rows are placed group by group and each group sorted where it lies, as a flush sorts
    them: linear in the rows, where sorting the whole batch is not (``pool``: see
    ``_scatter_columns``)."""
    counts = np.bincount(groups, minlength=n_groups)
    bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    rank = np.arange(len(counts), dtype=np.int64)
    ts, out = _scatter_columns(groups, rank, bounds, [(timestamps, bits)], pool)
    return ts, out, bounds


#: The most (window, series) groups ``block_sorted`` numbers densely, per row of the batch
#: (and at least ``_DENSE_MIN``): past that the rows span so many windows that most groups
#: would be empty.
_DENSE_PER_ROW = 2
_DENSE_MIN = 1 << 16
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class BlockSorted:
    """Rows sorted as a flush cuts them: by (aligned window, ref, timestamp), stably (a
    repeated pair's later row stays last). ``bounds``: where each (window, series) group's
    rows start, groups in that order (one more at the end)."""

    refs: np.ndarray
    timestamps: np.ndarray
    bits: np.ndarray
    bounds: np.ndarray


def block_sorted(
    sets: np.ndarray,
    set_refs: np.ndarray,
    timestamps: np.ndarray,
    bits: np.ndarray,
    duration: int,
    pool: Executor | None = None,
) -> BlockSorted | None:
    """The rows (``sets``: each row's series numbered densely from 0, ``set_refs``: each
    number's ref; ``bits``: 64-bit payloads carried along) sorted as a flush cuts them, so
    that a head holding them is cut without sorting again; None when they span too many
    windows to number the (window, series) groups densely (``_DENSE_PER_ROW``).

    Each row's group is its window's number times the series count plus its series' rank by
    ref, worked out in one pass; the rows are then placed and sorted as ``_scatter_columns``
    does (``pool``: see there).
    """
    n = len(timestamps)
    n_sets = len(set_refs)
    t_min, t_max = int(timestamps.min()), int(timestamps.max())
    first = t_min - t_min % duration  # floor, as window_starts
    if first < _INT64_MIN or t_max - first > _INT64_MAX:
        return None
    n_windows = (t_max - first) // duration + 1
    n_groups = n_windows * n_sets
    if n_groups > max(_DENSE_PER_ROW * n, _DENSE_MIN):
        return None
    by_ref = np.argsort(set_refs, kind="stable")
    ref_rank = np.empty(n_sets, dtype=np.int64)
    ref_rank[by_ref] = np.arange(n_sets)
    groups = np.empty(n, dtype=np.int32 if n_groups < 2**31 else np.int64)
    _window_groups(sets, ref_rank, timestamps, first, duration, n_sets,
                   n_windows <= _FEW_WINDOWS, groups)  # fmt: skip
    counts = np.bincount(groups, minlength=n_groups)
    bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    rank = np.arange(n_groups, dtype=np.int64)
    ts, out = _scatter_columns(groups, rank, bounds, [(timestamps, bits)], pool)
    refs = np.repeat(np.tile(set_refs[by_ref], n_windows), counts)
    return BlockSorted(refs, ts, out, bounds)


@njit(cache=True, nogil=True)
def _window_groups(sets, ref_rank, ts, first, duration, n_sets, few, out):
    """Each row's (window, series) group: its window's number from ``first`` times
    ``n_sets``, plus its series' rank. Few windows are found by subtraction (a division costs
    tens of cycles); ``ts - first`` fits in int64 (the caller checks)."""
    for i in range(ts.shape[0]):
        d = ts[i] - first
        if few:
            w = 0
            while d >= duration:
                d -= duration
                w += 1
        else:
            w = d // duration
        out[i] = w * n_sets + ref_rank[sets[i]]


def sorted_repeats(timestamps: np.ndarray, bounds: np.ndarray) -> int:
    """Rows of ``group_sorted`` output that repeat the timestamp of the row before in their
    group."""
    n = len(timestamps)
    same = timestamps[1:] == timestamps[:-1]
    starts = bounds[1:-1]
    same[starts[(starts > 0) & (starts < n)] - 1] = False  # across groups: no repeat
    return int(np.count_nonzero(same))


def _windows(timestamps: np.ndarray, duration: int) -> np.ndarray:
    """``window_starts`` of a non-empty array, by the kernel."""
    return _window_starts(timestamps, duration, timestamps.min(), timestamps.max())


def cut(
    refs: np.ndarray,
    timestamps: np.ndarray,
    values: np.ndarray,
    duration: int,
    pool: Executor | None = None,
) -> list[Window]:
    """Split samples given in write order into sorted, deduplicated aligned windows (placing
    them with two threads of ``pool``, if given). The windows hold new arrays."""
    return cut_parts([(refs, timestamps, values)], duration, pool)


def cut_parts(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    duration: int,
    pool: Executor | None = None,
) -> list[Window]:
    """``cut`` of samples given in write order as consecutive parts of (refs, timestamps,
    values), such as the head's buffers: read where they lie, with no copy of them all first
    (a cold flush faults in every page it writes to for the first time)."""
    parts = [part for part in parts if len(part[0])]
    if not parts:
        return []
    groups = _groups([(refs, ts) for refs, ts, _ in parts], duration)
    if groups is None:
        refs, timestamps, values = (np.concatenate([part[i] for part in parts]) for i in range(3))
        keep = keep_last(refs, timestamps)
        if not keep.all():  # repeated pairs, in write order: the last stays
            refs, timestamps, values = refs[keep], timestamps[keep], values[keep]
        starts, edges = _row_edges(_windows(timestamps, duration))
    else:
        # Refs are constant per group: repeated, not gathered row by row. Values move as their
        # bits (every NaN payload kept).
        timestamps, bits = _scatter_columns(
            groups.ids,
            groups.rank,
            groups.bounds,
            [(ts, values.view(np.uint64)) for _, ts, values in parts],
            pool,
        )
        refs = np.repeat(groups.refs, groups.counts)
        values = bits.view(np.float64)
        keep = keep_last(refs, timestamps)
        starts, edges = _group_edges(groups, keep)
        if edges[-1] < len(refs):  # rows were dropped
            refs, timestamps, values = refs[keep], timestamps[keep], values[keep]
    return [
        Window(int(w), refs[s:e], timestamps[s:e], values[s:e])
        for w, s, e in zip(starts, edges[:-1], edges[1:])
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
    groups = _groups([(refs, timestamps)], duration)
    if groups is None:
        order = np.flatnonzero(keep_last(refs, timestamps))  # repeats: the last write stays
        starts, edges = _row_edges(_windows(timestamps[order], duration))
    else:  # the row numbers travel as the payload of the samples' sort
        rows = np.arange(len(refs), dtype=np.int64).view(np.uint64)
        sorted_ts, rows = _scatter_columns(
            groups.ids, groups.rank, groups.bounds, [(timestamps, rows)]
        )
        keep = keep_last(np.repeat(groups.refs, groups.counts), sorted_ts)
        order = rows.view(np.int64)[keep]
        starts, edges = _group_edges(groups, keep)
    return [(int(w), order[s:e]) for w, s, e in zip(starts, edges[:-1], edges[1:])]


def _row_edges(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each window's start and the rows where windows begin and end (one more), for rows
    sorted by window."""
    bounds = np.flatnonzero(np.diff(windows)) + 1
    starts = windows[np.concatenate(([0], bounds))]
    return starts, np.concatenate(([0], bounds, [len(windows)]))


def _group_edges(groups: _Groups, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_row_edges`` of the groups' sorted rows once those ``keep`` is False are dropped,
    found among the groups (windows change only between two) rather than the rows."""
    changes = np.flatnonzero(np.diff(groups.windows)) + 1
    edges = groups.bounds[np.concatenate(([0], changes, [len(groups.windows)]))]
    dropped = len(keep) - int(np.count_nonzero(keep))
    if dropped:
        # A group keeps its last row, so no window empties; each edge moves back by the rows
        # dropped before it.
        before = np.concatenate(([0], np.cumsum(~keep)))
        edges = edges - before[edges]
    return groups.windows[np.concatenate(([0], changes))], edges
