"""The (series, timestamp) pairs held by the head, as a hash set: which rows repeat one.

A batch that reaches back into the head's time range (shuffled or backfilled rows) must count
the rows that replace a sample already in the head. Reading and sorting the whole head for each
such batch costs a pass over the head per batch; this set costs one probe per row instead. It is
built from the head on first need and then kept up to date by every append.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from tsdb_arrow.ingest.labelsets import readonly
from tsdb_arrow.prefetch import prefetch

_MIN_SLOTS = 1 << 12
_MAX_LOAD = 0.6  # linear probing stays short below this
_QUADRUPLE_BELOW = 1 << 22  # slots (16 bytes each)
# An empty slot holds this pair; the real pair equal to it is kept aside (``state[1]``).
_EMPTY_REF = np.uint64(0)
_EMPTY_TS = np.uint64(1 << 63)  # INT64_MIN


#: How many rows ahead ``_add`` and ``_rehash`` ask for the slot a row will probe: a table of
#: millions of pairs misses the caches on nearly every probe, and this overlaps the misses.
_AHEAD = 16


@nb.njit(cache=True, nogil=True, inline="always")
def _home(r, t, mask):
    x = (r ^ (t * np.uint64(0x9E3779B97F4A7C15))) * np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(31)
    return np.int64(x & np.uint64(mask))


@nb.njit(cache=True, nogil=True)
def _add(keys, refs, ts, repeated, state, limit):
    """Insert each row's (ref, ts); ``repeated[i]`` says whether the pair was already there.

    ``keys`` holds (ref, ts) per slot side by side: one cache line per probe. ``state`` is
    (pairs in the table, whether the pair equal to an empty slot is in the set). Returns the row
    at which it stopped: ``len(refs)``, or earlier when the table must grow first.
    """
    mask = keys.shape[0] - 1
    n = state[0]
    for i in range(refs.shape[0]):
        if i + _AHEAD < refs.shape[0]:
            j = i + _AHEAD
            prefetch(keys, 2 * _home(refs[j], np.uint64(ts[j]), mask))
        r = refs[i]
        t = np.uint64(ts[i])
        if r == _EMPTY_REF and t == _EMPTY_TS:
            repeated[i] = state[1] == 1
            state[1] = 1
            continue
        slot = _home(r, t, mask)
        while True:
            kr = keys[slot, 0]
            kt = keys[slot, 1]
            if kr == r and kt == t:
                repeated[i] = True
                break
            if kr == _EMPTY_REF and kt == _EMPTY_TS:
                if n >= limit:
                    state[0] = n
                    return i
                keys[slot, 0] = r
                keys[slot, 1] = t
                repeated[i] = False
                n += 1
                break
            slot = (slot + 1) & mask
    state[0] = n
    return refs.shape[0]


@nb.njit(cache=True, nogil=True)
def _rehash(keys, slots):
    """The pairs of ``keys`` in a new table of ``slots`` slots."""
    out = np.empty((slots, 2), dtype=np.uint64)
    out[:, 0] = _EMPTY_REF
    out[:, 1] = _EMPTY_TS
    mask = slots - 1
    for s in range(keys.shape[0]):
        if s + _AHEAD < keys.shape[0]:
            prefetch(out, 2 * _home(keys[s + _AHEAD, 0], keys[s + _AHEAD, 1], mask))
        r = keys[s, 0]
        t = keys[s, 1]
        if r == _EMPTY_REF and t == _EMPTY_TS:
            continue
        slot = _home(r, t, mask)
        while not (out[slot, 0] == _EMPTY_REF and out[slot, 1] == _EMPTY_TS):
            slot = (slot + 1) & mask
        out[slot, 0] = r
        out[slot, 1] = t
    return out


def _empty_table(slots: int) -> np.ndarray:
    keys = np.empty((slots, 2), dtype=np.uint64)
    keys[:, 0] = _EMPTY_REF
    keys[:, 1] = _EMPTY_TS
    return keys


class PairSet:
    """Distinct (series ref, timestamp) pairs, open addressing with linear probing."""

    def __init__(self, capacity: int = 0) -> None:
        self._keys = _empty_table(_slots_for(capacity))
        self._state = np.zeros(2, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._state[0] + self._state[1])

    def add(self, refs: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """Insert the rows' pairs; True for a row whose pair was in the set or on a row before."""
        # Read-only views: one compiled variant of ``_add`` whether the rows come from the
        # head's buffers or a batch's Arrow columns (a cold process loads one kernel, not two).
        refs, timestamps = readonly(refs.view()), readonly(timestamps.view())
        repeated = np.empty(len(refs), dtype=np.bool_)
        done = 0
        while True:
            limit = int(len(self._keys) * _MAX_LOAD)
            done += _add(
                self._keys, refs[done:], timestamps[done:], repeated[done:], self._state, limit
            )
            if done == len(refs):
                return repeated
            # Grown 4x while small, 2x once large (64 MB): a rehash reinserts every pair, so
            # fewer of them matter as much as the probes. Room for every row left, too.
            factor = 4 if len(self._keys) < _QUADRUPLE_BELOW else 2
            slots = max(factor * len(self._keys), _slots_for(len(self) + len(refs) - done))
            self._keys = _rehash(self._keys, slots)


def _slots_for(pairs: int) -> int:
    slots = _MIN_SLOTS
    while slots * _MAX_LOAD <= pairs:
        slots *= 2
    return slots
