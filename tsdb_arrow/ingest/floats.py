"""The head's float samples: kept in write order in pooled record-batch buffers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tsdb_arrow.ingest.pool import ROW_BYTES, BufferPool, HeadBuffer

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from tsdb_arrow.ingest.pairs import PairSet
    from tsdb_arrow.model import Numbered


class FloatHead:
    """An ordered list of pooled buffers plus the time span and size of what they hold."""

    def __init__(self, pool: BufferPool) -> None:
        self.pool = pool
        self.buffers: list[HeadBuffer] = []
        self.rows = 0
        self.min_time = np.iinfo(np.int64).max
        self.max_time = np.iinfo(np.int64).min
        self._pairs: PairSet | None = None  # built on first need, then kept by every append

    @property
    def nbytes(self) -> int:
        return self.rows * ROW_BYTES

    def repeats(
        self,
        refs: np.ndarray,
        timestamps: np.ndarray,
        pool: Executor | None = None,
        numbered: Numbered | None = None,
    ) -> np.ndarray:
        """Which rows repeat a (ref, timestamp) pair of the head or of an earlier row.

        Records the rows' pairs: the caller appends these rows next, with ``noted=True`` (or
        calls ``forget_pairs`` if it does not). ``pool``, ``numbered``: see ``PairSet.add``.
        """
        if self._pairs is None:
            from tsdb_arrow.ingest.pairs import PairSet  # numba: only writes that reach back

            self._pairs = PairSet(self.rows + len(refs))
            for b in self.buffers:
                self._pairs.add(b.refs[: b.size], b.timestamps[: b.size], pool)
        return self._pairs.add(refs, timestamps, pool, numbered)

    def forget_pairs(self) -> None:
        """Drop the pair set (rebuilt from the rows on next need)."""
        self._pairs = None

    def append(
        self, refs: np.ndarray, timestamps: np.ndarray, values: np.ndarray, *, noted: bool = False
    ) -> None:
        """Copy samples in at the end, taking buffers from the pool as they fill.

        ``noted``: ``repeats`` already recorded these rows' pairs.
        """
        n = len(refs)
        if n == 0:
            return
        if self._pairs is not None and not noted:
            self._pairs.add(refs, timestamps)
        done = 0
        while done < n:
            if not self.buffers or self.buffers[-1].size == self.buffers[-1].capacity:
                self.buffers.append(self.pool.acquire())
            done += self.buffers[-1].append(refs[done:], timestamps[done:], values[done:])
        self.rows += n
        self.min_time = min(self.min_time, int(timestamps.min()))
        self.max_time = max(self.max_time, int(timestamps.max()))

    def parts(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each buffer's samples, in write order, as (refs, timestamps, values) views: valid
        while this head holds its buffers."""
        return [
            (b.refs[: b.size], b.timestamps[: b.size], b.values[: b.size]) for b in self.buffers
        ]

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All samples, in write order, as (refs, timestamps, values) copies."""
        if not self.buffers:
            return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.float64)
        parts = self.parts()
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]

    def followed_by(self, newer: FloatHead) -> FloatHead:
        """This head with ``newer``'s buffers appended after its own (write order kept)."""
        self.buffers.extend(newer.buffers)
        self._pairs = None
        self.rows += newer.rows
        if newer.rows:
            self.min_time = min(self.min_time, newer.min_time)
            self.max_time = max(self.max_time, newer.max_time)
        return self

    def release(self) -> None:
        """Hand every buffer back to the pool (reused once no reader pins it)."""
        for buf in self.buffers:
            self.pool.release(buf)
        self.buffers = []
        self.rows = 0
        self._pairs = None
