"""The (series, timestamp) pairs held by the head, as a hash set: which rows repeat one.

A batch that reaches back into the head's time range (shuffled or backfilled rows) must count
the rows that replace a sample already in the head. Reading and sorting the whole head for each
such batch costs a pass over the head per batch; this set costs one probe per row instead. It is
built from the head on first need and then kept up to date by every append.

A pair is kept in 8 bytes while it can be: its series numbered densely in order of first sight
(a small table of its own) and its timestamp as an offset from a base, packed into one word.
Half the bytes of the pair itself: half the memory to touch, rehash and miss the caches on
(the pairs of 41 shuffled batches of the real file: 0.125 s instead of 0.170 in one thread,
0.105 instead of 0.117 in two, and 64 MB less for a fresh process to fault in). A set holding
more than ``MAX_PACKED_SERIES`` series, or a timestamp outside ``PACKED_SPAN_MS`` of its base,
keeps the pairs themselves from then on, 16 bytes each.
"""

from __future__ import annotations

from concurrent.futures import Executor
from functools import partial

import numpy as np

from tsdb_arrow.ingest import split
from tsdb_arrow.ingest.labelsets import readonly
from tsdb_arrow.jit import njit
from tsdb_arrow.model import Numbered
from tsdb_arrow.prefetch import prefetch

_MIN_SLOTS = 1 << 12
_MAX_LOAD = 0.6  # linear probing stays short below this
_QUADRUPLE_BELOW = 32 << 20  # bytes of one of the two tables
#: Bits of a packed pair for its timestamp's offset from the set's base; the rest number the
#: series (from 1: a packed word is never 0, which marks an empty slot).
TIME_BITS = 42
PACKED_SPAN_MS = 1 << TIME_BITS  # 139 years
MAX_PACKED_SERIES = (1 << (64 - TIME_BITS)) - 1  # 4,194,303
#: How far before the oldest timestamp of its first batch a set's base lies: a set packs
#: backfills of up to 34 years before it, and timestamps up to 104 years after it.
_BACK_MS = 1 << 40
_NO_ID = np.int64(-1)
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


@njit(cache=True, nogil=True)
def _series_ids(table, id_refs, count, refs, out):
    """Each row's series number into ``out``: a ref seen before keeps its number, a new one
    takes the next (``id_refs[n]`` is the ref of number n). Returns (rows done, numbers now):
    it stops early when ``id_refs`` or half the ``table`` is full."""
    mask = table.shape[0] - 1
    for i in range(refs.shape[0]):
        r = refs[i]
        slot = _home(r, np.uint64(0), mask)
        while True:
            e = table[slot]
            if e < 0:
                if count >= id_refs.shape[0] or 2 * (count + 1) > table.shape[0]:
                    return i, count
                e = count
                table[slot] = e
                id_refs[e] = r
                count += 1
                break
            if id_refs[e] == r:
                break
            slot = (slot + 1) & mask
        out[i] = e
    return refs.shape[0], count


@njit(cache=True, nogil=True, inline="always")
def _spread(word):
    x = word * np.uint64(0xBF58476D1CE4E5B9)
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _insert_word(keys, mask, word, x, room):
    """``_insert`` for a packed table: 1 when ``word`` is there, else 0 once inserted (when
    ``room``), or -1."""
    slot = np.int64(x & np.uint64(mask))
    while True:
        k = keys[slot]
        if k == word:
            return 1
        if k == 0:
            if not room:
                return -1
            keys[slot] = word
            return 0
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def _add_packed(keys0, keys1, ids, ts, base, repeated, state, limits, which):
    """``_add`` for packed tables: row i's pair is the word ``(ids[i] + 1) << TIME_BITS |
    (ts[i] - base)`` (the caller checked that every row packs)."""
    mask0 = keys0.shape[0] - 1
    mask1 = keys1.shape[0] - 1
    n0 = state[0, 0]
    n1 = state[1, 0]
    stop = ids.shape[0]
    shift = np.uint64(TIME_BITS)
    for i in range(ids.shape[0]):
        if i + _AHEAD < ids.shape[0]:
            j = i + _AHEAD
            x = _spread((np.uint64(ids[j] + 1) << shift) | np.uint64(ts[j] - base))
            if x >> np.uint64(63) == 0:
                if which != 1:
                    prefetch(keys0, np.int64(x & np.uint64(mask0)))
            elif which != 0:
                prefetch(keys1, np.int64(x & np.uint64(mask1)))
        word = (np.uint64(ids[i] + 1) << shift) | np.uint64(ts[i] - base)
        x = _spread(word)
        h = np.int64(x >> np.uint64(63))
        if which != 2 and h != which:
            continue
        if h == 0:
            found = _insert_word(keys0, mask0, word, x, n0 < limits[0])
            n0 += found == 0
        else:
            found = _insert_word(keys1, mask1, word, x, n1 < limits[1])
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
def _rehash_packed(keys, slots):
    """The words of ``keys`` in a new packed table of ``slots`` slots."""
    out = np.zeros(slots, dtype=np.uint64)
    mask = slots - 1
    for s in range(keys.shape[0]):
        if s + _AHEAD < keys.shape[0]:
            prefetch(out, np.int64(_spread(keys[s + _AHEAD]) & np.uint64(mask)))
        word = keys[s]
        if word == 0:
            continue
        slot = np.int64(_spread(word) & np.uint64(mask))
        while out[slot] != 0:
            slot = (slot + 1) & mask
        out[slot] = word
    return out


@njit(cache=True, nogil=True)
def _unpack(keys, id_refs, base, wide0, wide1, state):
    """Put the pairs of a packed table into the two unpacked tables (by their hash's top bit,
    as ``_add`` spreads them), counting them in ``state``."""
    mask0 = wide0.shape[0] - 1
    mask1 = wide1.shape[0] - 1
    low = np.uint64((1 << TIME_BITS) - 1)
    for s in range(keys.shape[0]):
        word = keys[s]
        if word == 0:
            continue
        r = id_refs[np.int64(word >> np.uint64(TIME_BITS)) - 1]
        t = np.uint64(base + np.int64(word & low))
        if r == _EMPTY_REF and t == _EMPTY_TS:
            state[np.int64(_mixed(r, t) >> np.uint64(63)), 1] = 1
            continue
        x = _mixed(r, t)
        if x >> np.uint64(63) == 0:
            state[0, 0] += 1 - _insert(wide0, mask0, r, t, x, True)
        else:
            state[1, 0] += 1 - _insert(wide1, mask1, r, t, x, True)


def _empty_words(slots: int) -> np.ndarray:
    # Zeroed here, in order: ``np.zeros`` would leave the pages to the first random probes,
    # and a page the system hands over on a random probe cost several times more.
    words = np.empty(slots, dtype=np.uint64)
    words.fill(0)
    return words


def _empty_table(slots: int) -> np.ndarray:
    keys = np.empty((slots, 2), dtype=np.uint64)
    keys[:, 0] = _EMPTY_REF
    keys[:, 1] = _EMPTY_TS
    return keys


class PairSet:
    """Distinct (series ref, timestamp) pairs, open addressing with linear probing.

    The pairs are spread over two tables by a bit of their hash, so that two threads can
    insert a long batch at once, each into its own table (``add``'s ``pool``). Packed (8 bytes
    a pair, see the module) until a pair does not pack, then unpacked (16 bytes).
    """

    def __init__(self, capacity: int = 0) -> None:
        slots = _slots_for(capacity // 2)
        self._keys = [_empty_words(slots), _empty_words(slots)]
        self._state = np.zeros((2, 2), dtype=np.int64)
        self._packed = True
        self._base: int | None = None  # set by the first batch
        self._id_table = np.full(_MIN_SLOTS, _NO_ID, dtype=np.int64)
        self._id_refs = np.zeros(_MIN_SLOTS // 2, dtype=np.uint64)
        self._ids = 0

    def __len__(self) -> int:
        return int(self._state.sum())

    @property
    def packed(self) -> bool:
        """Whether the pairs are still kept packed, 8 bytes each."""
        return self._packed

    def add(
        self,
        refs: np.ndarray,
        timestamps: np.ndarray,
        pool: Executor | None = None,
        numbered: Numbered | None = None,
    ) -> np.ndarray:
        """Insert the rows' pairs; True for a row whose pair was in the set or on a row before.
        With a ``pool``, a batch of ``SPLIT_ROWS`` or more fills both tables at once. Given the
        batch's series ``numbered``, each series gets its number here once, not each row."""
        # Read-only views: one compiled variant of each kernel whether the rows come from the
        # head's buffers or a batch's Arrow columns (a cold process loads one kernel, not two).
        refs, timestamps = readonly(refs.view()), readonly(timestamps.view())
        if len(refs) == 0:
            return np.zeros(0, dtype=np.bool_)
        rows = refs
        if self._packed:
            ids = self._row_series(refs, numbered)
            if self._packs(timestamps):
                rows = readonly(ids)
            else:
                self._unpack()
        if pool is None or len(refs) < SPLIT_ROWS:
            repeated = np.zeros(len(refs), dtype=np.bool_)
            self._fill(2, rows, timestamps, repeated)
            return repeated
        # One answer array per thread: two threads setting bytes of one array would fight over
        # its cache lines.
        answers = (np.zeros(len(refs), dtype=np.bool_), np.zeros(len(refs), dtype=np.bool_))
        split.each(pool, [partial(self._fill, h, rows, timestamps, answers[h]) for h in (0, 1)])
        return answers[0] | answers[1]

    def _row_series(self, refs: np.ndarray, numbered: Numbered | None) -> np.ndarray:
        """Each row's series number: through the batch's numbering when its rows are of a few
        series."""
        if numbered is None or not numbered.few_series:
            return self._series_of(refs)
        return self._series_of(readonly(numbered.set_refs.view()))[numbered.row_sets]

    def _series_of(self, refs: np.ndarray) -> np.ndarray:
        """Each row's series number (new refs numbered as they come), growing the table."""
        out = np.empty(len(refs), dtype=np.int64)
        done = 0
        while True:
            rows, self._ids = _series_ids(self._id_table, self._id_refs, self._ids,
                                          refs[done:], out[done:])  # fmt: skip
            done += rows
            if done == len(refs):
                return out
            known = self._id_refs[: self._ids]
            self._id_refs = np.zeros(2 * len(self._id_refs), dtype=np.uint64)
            self._id_table = np.full(2 * len(self._id_table), _NO_ID, dtype=np.int64)
            # Numbered again in the same order: every ref keeps its number.
            _, self._ids = _series_ids(self._id_table, self._id_refs, 0, readonly(known),
                                       np.empty(len(known), dtype=np.int64))  # fmt: skip

    def _packs(self, timestamps: np.ndarray) -> bool:
        """Whether every series number so far and these timestamps pack (the first batch sets
        the base)."""
        if self._ids > MAX_PACKED_SERIES:
            return False
        lo, hi = int(timestamps.min()), int(timestamps.max())
        if self._base is None:
            self._base = max(lo - _BACK_MS, int(np.iinfo(np.int64).min))
        return lo >= self._base and hi - self._base < PACKED_SPAN_MS

    def _unpack(self) -> None:
        """Keep the pairs themselves from now on: every packed pair moves to unpacked tables."""
        slots = _slots_for(int(self._state[:, 0].sum()))
        wide = [_empty_table(slots), _empty_table(slots)]
        state = np.zeros((2, 2), dtype=np.int64)
        assert self._base is not None  # set by the batch that did not pack
        base = np.int64(self._base)
        for keys in self._keys:
            _unpack(keys, self._id_refs, base, wide[0], wide[1], state)
        self._keys, self._state, self._packed = wide, state, False

    def _fill(
        self, which: int, rows: np.ndarray, timestamps: np.ndarray, repeated: np.ndarray
    ) -> None:
        """Add the rows of table ``which`` (2: of both), growing a table when full. ``rows``:
        the rows' series numbers when packed, else their refs."""
        done = 0
        width = 8 if self._packed else 16
        while True:
            limits = np.array([int(len(keys) * _MAX_LOAD) for keys in self._keys])
            if self._packed:
                done += _add_packed(*self._keys, rows[done:], timestamps[done:],
                                    np.int64(self._base), repeated[done:], self._state, limits,
                                    which)  # fmt: skip
            else:
                done += _add(*self._keys, rows[done:], timestamps[done:], repeated[done:],
                             self._state, limits, which)  # fmt: skip
            if done == len(rows):
                return
            for h in (0, 1) if which == 2 else (which,):
                keys = self._keys[h]
                if self._state[h, 0] < limits[h]:
                    continue
                # Grown 4x while small, 2x once large (32 MB): a rehash reinserts every pair,
                # so fewer of them matter as much as the probes. Room for half the rows left.
                factor = 4 if len(keys) * width < _QUADRUPLE_BELOW else 2
                room = int(self._state[h].sum()) + (len(rows) - done) // 2
                slots = max(factor * len(keys), _slots_for(room))
                rehash = _rehash_packed if self._packed else _rehash
                self._keys[h] = rehash(keys, slots)


def _slots_for(pairs: int) -> int:
    """Slots of a table holding ``pairs`` pairs below the load limit."""
    slots = _MIN_SLOTS
    while slots * _MAX_LOAD <= pairs:
        slots *= 2
    return slots
