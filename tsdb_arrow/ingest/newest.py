"""The newest timestamp written per series: which batches cannot replace a stored sample.

A row newer than every stored sample of its series and every earlier row of its batch replaces
nothing, so a batch made only of such rows (a feed whose series each move forward: OTLP
exporters, scrapes) needs neither the head's pair set, nor a look into the blocks, nor a sort
of its own rows to count its replacements. Each entry is an upper
bound of its series' newest sample: writes raise it, nothing lowers it (a delete or retention
leave it high, which only sends later rows to the full check). A series without an entry takes
the caller's bound for everything stored (``floor``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from tsdb_arrow.ingest.labelsets import readonly

_MIN_SLOTS = 1 << 10
_MAX_LOAD = 0.5
#: The floor of a series that has no sample at all.
NOTHING = np.iinfo(np.int64).min


@nb.njit(cache=True, nogil=True)
def _slot(keys, used, ref):
    """The slot holding ``ref``, or the empty slot where it would go."""
    mask = keys.shape[0] - 1
    x = ref * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(29)
    slot = np.int64(x & np.uint64(mask))
    while used[slot] and keys[slot] != ref:
        slot = (slot + 1) & mask
    return slot


@nb.njit(cache=True, nogil=True)
def _advance(keys, newest, used, refs, ts, floor, count, limit, enter_only):
    """Raise each row's series entry to the row's time, in row order (a new entry starts at
    ``floor``); ``enter_only``: make the entries, raise nothing. Returns (rows done, entries
    now, whether every row was newer than its entry): it stops early when a new entry would
    pass ``limit``."""
    forward = True
    for i in range(refs.shape[0]):
        slot = _slot(keys, used, refs[i])
        if not used[slot]:
            if count >= limit:
                return i, count, forward
            used[slot] = True
            keys[slot] = refs[i]
            newest[slot] = floor
            count += 1
        if enter_only:
            continue
        if ts[i] > newest[slot]:
            newest[slot] = ts[i]
        else:
            forward = False
    return refs.shape[0], count, forward


@nb.njit(cache=True, nogil=True)
def _rehash(keys, newest, used, slots):
    """The entries in new tables of ``slots`` slots."""
    k = np.zeros(slots, dtype=np.uint64)
    v = np.zeros(slots, dtype=np.int64)
    u = np.zeros(slots, dtype=np.bool_)
    for s in range(keys.shape[0]):
        if used[s]:
            slot = _slot(k, u, keys[s])
            u[slot] = True
            k[slot] = keys[s]
            v[slot] = newest[s]
    return k, v, u


class SeriesNewest:
    """An upper bound of each written series' newest timestamp (series ref -> ms)."""

    def __init__(self) -> None:
        self._count = 0
        self._tables(_MIN_SLOTS)

    def _tables(self, slots: int) -> None:
        self._keys = np.zeros(slots, dtype=np.uint64)
        self._newest = np.zeros(slots, dtype=np.int64)
        self._used = np.zeros(slots, dtype=np.bool_)

    def __len__(self) -> int:
        return self._count

    def enter(self, refs: np.ndarray, floor: int) -> None:
        """Give the series without an entry one at ``floor`` (``NOTHING`` for series new to the
        store: their first rows then count as newer than anything stored)."""
        self._run(refs, np.empty(0, dtype=np.int64), floor, enter_only=True)

    def advance(self, refs: np.ndarray, timestamps: np.ndarray, floor: int) -> bool:
        """Raise the bounds to the rows written, in row order; a series without an entry starts
        at ``floor`` (a bound of everything stored). True when every row was newer than its
        series' bound when reached: then no row replaces a stored sample or an earlier row."""
        return self._run(refs, timestamps, floor, enter_only=False)

    def _run(
        self, refs: np.ndarray, timestamps: np.ndarray, floor: int, *, enter_only: bool
    ) -> bool:
        refs, timestamps = _columns(refs, timestamps)
        done, forward = 0, True
        while done < len(refs):
            limit = int(len(self._keys) * _MAX_LOAD)
            rows, self._count, ahead = _advance(
                self._keys, self._newest, self._used, refs[done:], timestamps[done:],
                np.int64(floor), self._count, limit, enter_only,
            )  # fmt: skip
            done += rows
            forward &= ahead
            if done < len(refs):
                self._keys, self._newest, self._used = _rehash(
                    self._keys, self._newest, self._used, 2 * len(self._keys)
                )
        return bool(forward)

    def clear(self) -> None:
        """Forget every bound (samples arrived another way: every series takes the floor)."""
        self._count = 0
        self._tables(_MIN_SLOTS)


def _columns(refs: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Read-only uint64 and int64 views: one compiled variant whatever the caller's arrays."""
    return (
        readonly(np.ascontiguousarray(refs, dtype=np.uint64).view()),
        readonly(np.ascontiguousarray(timestamps, dtype=np.int64).view()),
    )
