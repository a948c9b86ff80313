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
def _keep_last(refs, ts) -> np.ndarray:
    """keep[i] is False when row i+1 has the same (ref, timestamp): the later write wins."""
    n = refs.shape[0]
    keep = np.ones(n, dtype=np.bool_)
    for i in range(n - 1):
        if refs[i] == refs[i + 1] and ts[i] == ts[i + 1]:
            keep[i] = False
    return keep


def window_starts(timestamps: np.ndarray, duration: int) -> np.ndarray:
    """The aligned start of each sample's block window (floor division, also for negatives)."""
    return (timestamps // duration) * duration


def cut(refs: np.ndarray, timestamps: np.ndarray, values: np.ndarray, duration: int) -> list[Window]:
    """Split samples given in write order into sorted, deduplicated aligned windows."""
    if len(refs) == 0:
        return []
    windows = window_starts(timestamps, duration)
    if not _is_sorted_unique(windows, refs, timestamps):
        order = (
            pl.DataFrame({"w": windows, "r": refs, "t": timestamps})
            .with_row_index("i")
            .sort(["w", "r", "t"], maintain_order=True, multithreaded=True)["i"]
            .to_numpy()
        )
        windows, refs, timestamps, values = (
            windows[order], refs[order], timestamps[order], values[order]
        )
        keep = _keep_last(refs, timestamps)
        if not keep.all():
            windows, refs, timestamps, values = (
                windows[keep], refs[keep], timestamps[keep], values[keep]
            )
    bounds = np.flatnonzero(np.diff(windows)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(refs)]))
    return [
        Window(int(windows[s]), refs[s:e], timestamps[s:e], values[s:e])
        for s, e in zip(starts, ends)
    ]
