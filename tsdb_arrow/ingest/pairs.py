"""The (series, timestamp) pairs held by the head, as a hash set: which rows repeat one.

A batch that reaches back into the head's time range (shuffled or backfilled rows) must count
the rows that replace a sample already in the head. Reading and sorting the whole head for each
such batch costs a pass over the head per batch; this set costs one probe per row instead. It is
built from the head on first need and then kept up to date by every append.
"""

from __future__ import annotations

from concurrent.futures import Executor
from functools import partial

import numpy as np

from tsdb_arrow.ingest import split
from tsdb_arrow.ingest.labelsets import readonly
from tsdb_arrow.jit import njit
from tsdb_arrow.prefetch import prefetch

_MIN_SLOTS = 1 << 12
_MAX_LOAD = 0.6  # linear probing stays short below this
_QUADRUPLE_BELOW = 1 << 21  # slots (16 bytes each) of one of the two tables
#: Rows from which ``PairSet.add`` fills its two tables at once, when given a pool.
SPLIT_ROWS = 1 << 13
# An empty slot holds this pair; the real pair equal to it is kept aside (``state[1]``).
_EMPTY_REF = np.uint64(0)
_EMPTY_TS = np.uint64(1 << 63)  # INT64_MIN


#: How many rows ahead ``_add`` and ``_rehash`` ask for the slot a row will probe: a table of
#: millions of pairs misses the caches on nearly every probe, and this overlaps the misses.
_AHEAD = 16


@njit(cache=True, nogil=True, inline="always")
def _mixed(r, t):
    x = (r ^ (t * np.uint64(0x9E3779B97F4A7C15))) * np.uint64(0xBF58476D1CE4E5B9)
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _home(r, t, mask):
    return np.int64(_mixed(r, t) & np.uint64(mask))


@njit(cache=True, nogil=True, inline="always")
def _insert(keys, mask, r, t, x, room):
    """Probe ``keys`` for (r, t), whose hash is ``x``: 1 when there, else 0 once inserted
    (when ``room``), or -1."""
    slot = np.int64(x & np.uint64(mask))
    while True:
        kr = keys[slot, 0]
        kt = keys[slot, 1]
        if kr == r and kt == t:
            return 1
        if kr == _EMPTY_REF and kt == _EMPTY_TS:
            if not room:
                return -1
            keys[slot, 0] = r
            keys[slot, 1] = t
            return 0
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def _add(keys0, keys1, refs, ts, repeated, state, limits, which):
    """Insert each row's (ref, ts) into its table (``keys0`` or ``keys1``: the top bit of its
    hash, which no slot number uses) when that is table ``which`` (or ``which`` is 2: both);
    ``repeated[i]`` is set for a pair that was already there. Rows of the other table are left
    alone.

    A table holds (ref, ts) per slot side by side: one cache line per probe. ``state[h]`` is
    (pairs in table h, whether the pair equal to an empty slot is in it). Returns the row at
    which it stopped: ``len(refs)``, or earlier when a table reached its ``limits`` and must
    grow first.
    """
    mask0 = keys0.shape[0] - 1
    mask1 = keys1.shape[0] - 1
    # Counted here, stored at the end: two threads filling the two tables would otherwise
    # write to one cache line for every row.
    n0 = state[0, 0]
    n1 = state[1, 0]
    stop = refs.shape[0]
    for i in range(refs.shape[0]):
        if i + _AHEAD < refs.shape[0]:
            j = i + _AHEAD
            x = _mixed(refs[j], np.uint64(ts[j]))
            if x >> np.uint64(63) == 0:
                if which != 1:
                    prefetch(keys0, 2 * np.int64(x & np.uint64(mask0)))
            elif which != 0:
                prefetch(keys1, 2 * np.int64(x & np.uint64(mask1)))
        r = refs[i]
        t = np.uint64(ts[i])
        x = _mixed(r, t)
        h = np.int64(x >> np.uint64(63))
        if which != 2 and h != which:
            continue
        if r == _EMPTY_REF and t == _EMPTY_TS:
            repeated[i] = state[h, 1] == 1
            state[h, 1] = 1
            continue
        if h == 0:
            found = _insert(keys0, mask0, r, t, x, n0 < limits[0])
            n0 += found == 0
        else:
            found = _insert(keys1, mask1, r, t, x, n1 < limits[1])
            n1 += found == 0
        if found < 0:
            stop = i
            break
        if found == 1:
            repeated[i] = True
    if which != 1:
        state[0, 0] = n0
    if which != 0:
        state[1, 0] = n1
    return stop


@njit(cache=True, nogil=True)
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
    """Distinct (series ref, timestamp) pairs, open addressing with linear probing.

    The pairs are spread over two tables by a bit of their hash, so that two threads can
    insert a long batch at once, each into its own table (``add``'s ``pool``).
    """

    def __init__(self, capacity: int = 0) -> None:
        slots = _slots_for(capacity // 2)
        self._keys = [_empty_table(slots), _empty_table(slots)]
        self._state = np.zeros((2, 2), dtype=np.int64)

    def __len__(self) -> int:
        return int(self._state.sum())

    def add(
        self, refs: np.ndarray, timestamps: np.ndarray, pool: Executor | None = None
    ) -> np.ndarray:
        """Insert the rows' pairs; True for a row whose pair was in the set or on a row before.
        With a ``pool``, a batch of ``SPLIT_ROWS`` or more fills both tables at once."""
        # Read-only views: one compiled variant of ``_add`` whether the rows come from the
        # head's buffers or a batch's Arrow columns (a cold process loads one kernel, not two).
        refs, timestamps = readonly(refs.view()), readonly(timestamps.view())
        if pool is None or len(refs) < SPLIT_ROWS:
            repeated = np.zeros(len(refs), dtype=np.bool_)
            self._fill(2, refs, timestamps, repeated)
            return repeated
        # One answer array per thread: two threads setting bytes of one array would fight over
        # its cache lines.
        answers = (np.zeros(len(refs), dtype=np.bool_), np.zeros(len(refs), dtype=np.bool_))
        split.each(pool, [partial(self._fill, h, refs, timestamps, answers[h]) for h in (0, 1)])
        return answers[0] | answers[1]

    def _fill(
        self, which: int, refs: np.ndarray, timestamps: np.ndarray, repeated: np.ndarray
    ) -> None:
        """``_add`` the rows of table ``which`` (2: of both), growing a table when full."""
        done = 0
        while True:
            limits = np.array([int(len(keys) * _MAX_LOAD) for keys in self._keys])
            done += _add(*self._keys, refs[done:], timestamps[done:], repeated[done:],
                         self._state, limits, which)  # fmt: skip
            if done == len(refs):
                return
            for h in (0, 1) if which == 2 else (which,):
                keys = self._keys[h]
                if self._state[h, 0] < limits[h]:
                    continue
                # Grown 4x while small, 2x once large (32 MB): a rehash reinserts every pair,
                # so fewer of them matter as much as the probes. Room for half the rows left.
                factor = 4 if len(keys) < _QUADRUPLE_BELOW else 2
                room = int(self._state[h].sum()) + (len(refs) - done) // 2
                self._keys[h] = _rehash(keys, max(factor * len(keys), _slots_for(room)))


def _slots_for(pairs: int) -> int:
    slots = _MIN_SLOTS
    while slots * _MAX_LOAD <= pairs:
        slots *= 2
    return slots
