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
        if len(self.refs) == 0:
            return self.refs
        return self.refs[np.flatnonzero(np.diff(self.refs, prepend=self.refs[:1] ^ 1))]


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


def window_starts(timestamps: np.ndarray, duration: int) -> np.ndarray:
    """The aligned start of each sample's block window (floor division, also for negatives).

    A window whose start lies below the int64 range (timestamps within one block of INT64_MIN)
    starts at INT64_MIN.
    """
    with np.errstate(over="ignore"):
        starts = timestamps - np.mod(timestamps, duration)
    return np.where(starts > timestamps, np.iinfo(np.int64).min, starts)


@nb.njit(cache=True)
def _run_starts(windows, refs, ts) -> np.ndarray:
    """Starts of runs of one (window, series) with strictly increasing timestamps."""
    n = refs.shape[0]
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        if i == 0 or windows[i] != windows[i - 1] or refs[i] != refs[i - 1] or ts[i] <= ts[i - 1]:
            out[k] = i
            k += 1
    return out[:k]


@nb.njit(cache=True)
def _runs_disjoint(windows, refs, first_ts, last_ts) -> bool:
    for i in range(1, refs.shape[0]):
        if (
            windows[i] == windows[i - 1]
            and refs[i] == refs[i - 1]
            and first_ts[i] <= last_ts[i - 1]
        ):
            return False
    return True


@nb.njit(cache=True)
def _ranges(starts: np.ndarray, lengths: np.ndarray, total: int) -> np.ndarray:
    out = np.empty(total, dtype=np.int64)
    k = 0
    for i in range(starts.shape[0]):
        for j in range(lengths[i]):
            out[k] = starts[i] + j
            k += 1
    return out


def _order(windows: np.ndarray, refs: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """A permutation sorting by (window, ref, ts) and whether it may leave duplicates.

    Samples usually arrive as runs of one series in time order; then sorting the runs suffices.
    Returns None when the input is already sorted without duplicates.
    """
    if _is_sorted_unique(windows, refs, ts):
        return None
    starts = _run_starts(windows, refs, ts)
    if len(starts) <= len(refs) // 8:
        lengths = np.diff(np.append(starts, len(refs)))
        last = starts + lengths - 1
        by = np.lexsort((ts[starts], refs[starts], windows[starts]))
        if _runs_disjoint(windows[starts][by], refs[starts][by], ts[starts][by], ts[last][by]):
            return _ranges(starts[by], lengths[by], len(refs))
    return (
        pl.DataFrame({"w": windows, "r": refs, "t": ts})
        .with_row_index("i")
        .sort(["w", "r", "t"], maintain_order=True, multithreaded=True)["i"]
        .to_numpy()
    )


def cut(
    refs: np.ndarray, timestamps: np.ndarray, values: np.ndarray, duration: int
) -> list[Window]:
    """Split samples given in write order into sorted, deduplicated aligned windows."""
    if len(refs) == 0:
        return []
    windows = window_starts(timestamps, duration)
    order = _order(windows, refs, timestamps)
    if order is not None:
        windows, refs, timestamps, values = (
            windows[order],
            refs[order],
            timestamps[order],
            values[order],
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
    order = _order(windows, refs, timestamps)
    if order is None:
        order = np.arange(len(refs))
    order = order[keep_last(refs[order], timestamps[order])]
    sorted_windows = windows[order]
    bounds = np.flatnonzero(np.diff(sorted_windows)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(order)]))
    return [(int(sorted_windows[s]), order[s:e]) for s, e in zip(starts, ends)]
