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

import numpy as np

from tsdb_arrow.ingest.labelsets import readonly
from tsdb_arrow.jit import njit
from tsdb_arrow.model import Numbered

_MIN_SLOTS = 1 << 10
#: The floor of a series that has no sample at all.
NOTHING = np.iinfo(np.int64).min


@njit(cache=True, nogil=True, inline="always")
def _home(ref, mask):
    x = ref * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(29)
    return np.int64(x & np.uint64(mask))


@njit(cache=True, nogil=True)
def _advance(table, keys, newest, refs, ts, floor, count, enter_only):
    """Raise each row's series entry to the row's time, in row order (a new entry starts at
    ``floor``); ``enter_only``: make the entries, raise nothing. Entries are kept in the order
    they were made, ``table`` (-1: empty) holds their numbers: the entry after the previous
    row's is tried first, so that a feed sending its series in the same order each time reads
    them in sequence. Returns (rows done, entries now, whether every row was newer than its
    entry): it stops early when the entries or the table are full."""
    mask = table.shape[0] - 1
    forward = True
    last = -2
    for i in range(refs.shape[0]):
        ref = refs[i]
        e = last + 1
        if not (0 <= e < count and keys[e] == ref):
            slot = _home(ref, mask)
            while True:
                e = table[slot]
                if e < 0:
                    if count >= keys.shape[0] or 2 * (count + 1) > table.shape[0]:
                        return i, count, forward
                    e = count
                    table[slot] = e
                    keys[e] = ref
                    newest[e] = floor
                    count += 1
                    break
                if keys[e] == ref:
                    break
                slot = (slot + 1) & mask
        last = e
        if enter_only:
            continue
        if ts[i] > newest[e]:
            newest[e] = ts[i]
        else:
            forward = False
    return refs.shape[0], count, forward


@njit(cache=True, nogil=True)
def _rehash(keys, count, slots):
    """A table of ``slots`` slots numbering the first ``count`` entries."""
    table = np.full(slots, -1, dtype=np.int64)
    mask = slots - 1
    for e in range(count):
        slot = _home(keys[e], mask)
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = e
    return table


@njit(cache=True, nogil=True)
def _set_extents(row_sets, ts, n_sets):
    """Per series of a batch (``row_sets`` numbers the rows' series from 0): whether a row
    holds it, its first row's time, its newest time; and whether every series' times rise
    strictly in row order."""
    held = np.zeros(n_sets, dtype=np.bool_)
    first_ts = np.empty(n_sets, dtype=np.int64)
    newest = np.empty(n_sets, dtype=np.int64)
    last = np.empty(n_sets, dtype=np.int64)
    rising = True
    for i in range(row_sets.shape[0]):
        s = row_sets[i]
        t = ts[i]
        if not held[s]:
            held[s] = True
            first_ts[s] = t
            newest[s] = t
        else:
            if t <= last[s]:
                rising = False
            if t > newest[s]:
                newest[s] = t
        last[s] = t
    return held, first_ts, newest, rising


class SeriesNewest:
    """An upper bound of each written series' newest timestamp (series ref -> ms)."""

    def __init__(self) -> None:
        self.clear()

    def __len__(self) -> int:
        return self._count

    def enter(self, refs: np.ndarray, floor: int) -> None:
        """Give the series without an entry one at ``floor`` (``NOTHING`` for series new to the
        store: their first rows then count as newer than anything stored)."""
        self._run(refs, np.empty(0, dtype=np.int64), floor, enter_only=True)

    def advance(
        self,
        refs: np.ndarray,
        timestamps: np.ndarray,
        floor: int,
        numbered: Numbered | None = None,
    ) -> bool:
        """Raise the bounds to the rows written, in row order; a series without an entry starts
        at ``floor`` (a bound of everything stored). True when every row was newer than its
        series' bound when reached: then no row replaces a stored sample or an earlier row.

        Given the batch's series ``numbered`` (as a resolved batch has them), a batch of few
        series looks each series up once instead of each row: its rows move forward if their
        times rise and its first is newer than its bound (the same answer and bounds; 3.6 M
        shuffled rows of 512 series in 41 batches: 10 ms instead of 26)."""
        if numbered is None or not numbered.few_series:
            return self._run(refs, timestamps, floor, enter_only=False)
        _, timestamps = _columns(refs, timestamps)
        set_refs = numbered.set_refs
        held, first_ts, newest, rising = _set_extents(
            readonly(np.ascontiguousarray(numbered.row_sets, dtype=np.int64).view()),
            timestamps,
            len(set_refs),
        )
        # The series rows hold (a Flight part may number sets it has no row of): their first
        # rows against the bounds, then each bound raised to its series' newest row.
        set_refs = set_refs[held]
        forward = self._run(set_refs, first_ts[held], floor, enter_only=False)
        self._run(set_refs, newest[held], floor, enter_only=False)
        return forward and bool(rising)

    def _run(
        self, refs: np.ndarray, timestamps: np.ndarray, floor: int, *, enter_only: bool
    ) -> bool:
        refs, timestamps = _columns(refs, timestamps)
        done, forward = 0, True
        while done < len(refs):
            rows, self._count, ahead = _advance(
                self._table, self._keys, self._newest, refs[done:], timestamps[done:],
                np.int64(floor), self._count, enter_only,
            )  # fmt: skip
            done += rows
            forward &= ahead
            if done < len(refs):  # full: twice the room
                size = 2 * len(self._keys)
                self._keys = np.concatenate([self._keys, np.zeros_like(self._keys)])
                self._newest = np.concatenate([self._newest, np.zeros_like(self._newest)])
                self._table = _rehash(self._keys, self._count, 2 * size)
        return bool(forward)

    def clear(self) -> None:
        """Forget every bound (samples arrived another way: every series takes the floor)."""
        self._count = 0
        self._keys = np.zeros(_MIN_SLOTS // 2, dtype=np.uint64)
        self._newest = np.zeros(_MIN_SLOTS // 2, dtype=np.int64)
        self._table = np.full(_MIN_SLOTS, -1, dtype=np.int64)


def _columns(refs: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Read-only uint64 and int64 views: one compiled variant whatever the caller's arrays."""
    return (
        readonly(np.ascontiguousarray(refs, dtype=np.uint64).view()),
        readonly(np.ascontiguousarray(timestamps, dtype=np.int64).view()),
    )
