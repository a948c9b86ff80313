"""Running totals that turn delta-temporality points into cumulative series.

OTLP sums and histograms may be sent as deltas (each point counts what happened since the
previous one). Prometheus-style queries (``rate``, ``increase``, ``histogram_quantile`` over
``_bucket`` series) expect cumulative counters, so each delta series is summed up here, as the
OpenTelemetry specification asks a cumulative-only backend to do: a point's stored value is the
series' running total including it. Series are keyed by their series ref (the hash of their
final label set).

What a restart does: the totals live in memory only. After a restart, the next delta of a series
starts a new running total from 0: the stored series drops to a small value, which queries read
as a counter reset (``rate`` and ``increase`` handle it). A non-monotonic delta sum (a gauge
once summed up) restarts from 0 instead, and so does any series evicted when more than
``max_series`` series are tracked (the least recently updated go first).

Exponential histograms are not summed: a delta histogram is stored as it comes (merging the
histograms of a window, as ``ta.sketch.histogram_quantiles`` does, then gives that window's
distribution).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from tsdb_arrow.jit import njit

_EMPTY = np.uint64(0)
_MIN_TABLE = 1024


@dataclass(frozen=True)
class DeltaChange:
    """What one request added to the running totals, so that ``DeltaState.undo`` can take it
    back when the request's samples could not be stored."""

    refs: np.ndarray  # uint64 series refs
    amounts: np.ndarray  # float64, what was added to each


@njit(cache=True, nogil=True)
def _slot(keys, used, ref):
    mask = keys.shape[0] - 1
    h = ref * np.uint64(0x9E3779B97F4A7C15)
    slot = np.int64((h >> np.uint64(20)) & np.uint64(mask))
    while used[slot] and keys[slot] != ref:
        slot = (slot + 1) & mask
    return slot


@njit(cache=True, nogil=True)
def _accumulate(keys, used, sums, last, refs, timestamps, values, out, n_used, changed, amounts):
    """Add rows (sorted by ref, then time) to the totals; ``out`` gets each row's total.

    NaN values (stale markers included) are passed through and not added. Each distinct ref
    and what was added to it go to ``changed`` and ``amounts``. Returns (used slots, distinct
    refs).
    """
    n_changed = 0
    for i in range(refs.shape[0]):
        ref = refs[i]
        if i == 0 or ref != refs[i - 1]:
            changed[n_changed] = ref
            amounts[n_changed] = 0.0
            n_changed += 1
        slot = _slot(keys, used, ref)
        if not used[slot]:
            used[slot] = True
            keys[slot] = ref
            sums[slot] = 0.0
            last[slot] = timestamps[i]
            n_used += 1
        v = values[i]
        if np.isnan(v):
            out[i] = v
            continue
        total = sums[slot] + v
        sums[slot] = total
        amounts[n_changed - 1] += v
        out[i] = total
        if timestamps[i] > last[slot]:
            last[slot] = timestamps[i]
    return n_used, n_changed


@njit(cache=True, nogil=True)
def _subtract(keys, used, sums, refs, amounts):
    for i in range(refs.shape[0]):
        slot = _slot(keys, used, refs[i])
        if used[slot]:
            sums[slot] -= amounts[i]


@njit(cache=True, nogil=True)
def _insert_all(keys, used, sums, last, old_keys, old_sums, old_last):
    for i in range(old_keys.shape[0]):
        slot = _slot(keys, used, old_keys[i])
        used[slot] = True
        keys[slot] = old_keys[i]
        sums[slot] = old_sums[i]
        last[slot] = old_last[i]


class DeltaState:
    """Per-series running totals of delta points; shared by a server's requests, thread-safe.

    Parameters
    ----------
    max_series
        The most series tracked; beyond it the least recently updated are forgotten (their next
        delta starts from 0 again, read as a counter reset).
    """

    def __init__(self, max_series: int = 1_000_000) -> None:
        self.max_series = max_series
        self._lock = threading.Lock()
        self._reset(_MIN_TABLE)

    def _reset(self, size: int) -> None:
        self._keys = np.zeros(size, dtype=np.uint64)
        self._used = np.zeros(size, dtype=np.bool_)
        self._sums = np.zeros(size, dtype=np.float64)
        self._last = np.zeros(size, dtype=np.int64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def accumulate(
        self, refs: np.ndarray, timestamps: np.ndarray, values: np.ndarray
    ) -> tuple[np.ndarray, DeltaChange]:
        """Cumulative values of delta rows (series ``refs``, int64 ms ``timestamps``).

        Rows of one series are summed in time order. Returns the totals (in the rows' order)
        and the change, for ``undo``.
        """
        n = len(refs)
        order = np.lexsort((timestamps, refs))
        sorted_out = np.empty(n, dtype=np.float64)
        changed = np.empty(n, dtype=np.uint64)
        amounts = np.empty(n, dtype=np.float64)
        with self._lock:
            self._make_room(n)
            self._n, n_changed = _accumulate(
                self._keys, self._used, self._sums, self._last, refs[order],
                timestamps[order], values[order], sorted_out, self._n, changed, amounts,
            )  # fmt: skip
            if self._n > self.max_series:
                self._evict()
        out = np.empty(n, dtype=np.float64)
        out[order] = sorted_out
        return out, DeltaChange(changed[:n_changed], amounts[:n_changed])

    def undo(self, change: DeltaChange) -> None:
        """Take back what ``accumulate`` added (the request was not stored after all)."""
        with self._lock:
            _subtract(self._keys, self._used, self._sums, change.refs, change.amounts)

    def _make_room(self, rows: int) -> None:
        """Grow the table (caller holds the lock) so that ``rows`` new series keep it half
        empty."""
        size = len(self._keys)
        if 2 * (self._n + rows) <= size:
            return
        while 2 * (self._n + rows) > size:
            size *= 2
        self._rehash(size, self._used)

    def _evict(self) -> None:
        """Keep the ``max_series`` most recently updated series (caller holds the lock)."""
        last = self._last[self._used]
        cutoff = np.sort(last)[len(last) - self.max_series]
        keep = self._used & (self._last >= cutoff)
        if keep.sum() > self.max_series:  # ties at the cutoff: keep the first ones
            extra = np.flatnonzero(keep & (self._last == cutoff))
            keep[extra[: keep.sum() - self.max_series]] = False
        self._rehash(len(self._keys), keep)

    def _rehash(self, size: int, keep: np.ndarray) -> None:
        keys, sums, last = self._keys[keep], self._sums[keep], self._last[keep]
        self._reset(size)
        _insert_all(self._keys, self._used, self._sums, self._last, keys, sums, last)
        self._n = len(keys)
