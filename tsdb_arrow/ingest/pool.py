"""A pool of preallocated head buffers, reused after flush once no reader pins them."""

from __future__ import annotations

import threading

import numpy as np

ROW_BYTES = 8 + 8 + 8  # series ref, timestamp, value


class HeadBuffer:
    """Fixed-capacity columns (ref, timestamp, value) filled front to back.

    Readers take zero-copy views of the filled prefix and hold a pin while they use them; the
    pool hands the buffer out again only when it is released and unpinned.
    """

    __slots__ = ("refs", "timestamps", "values", "size", "pins", "retired")

    def __init__(self, rows: int) -> None:
        self.refs = np.empty(rows, dtype=np.uint64)
        self.timestamps = np.empty(rows, dtype=np.int64)
        self.values = np.empty(rows, dtype=np.float64)
        self.size = 0
        self.pins = 0
        self.retired = False

    @property
    def capacity(self) -> int:
        return len(self.refs)

    def append(self, refs: np.ndarray, ts: np.ndarray, values: np.ndarray) -> int:
        """Copy as many leading rows as fit; return how many were taken."""
        take = min(self.capacity - self.size, len(refs))
        end = self.size + take
        self.refs[self.size : end] = refs[:take]
        self.timestamps[self.size : end] = ts[:take]
        self.values[self.size : end] = values[:take]
        self.size = end
        return take


class BufferPool:
    """Hands out ``HeadBuffer``s, reusing released ones; counts allocations and reuses."""

    def __init__(self, rows: int, max_free: int) -> None:
        self.rows = rows
        self.max_free = max_free
        self._free: list[HeadBuffer] = []
        self._lock = threading.Lock()
        self.allocated = 0
        self.reused = 0
        self.dropped = 0

    def acquire(self) -> HeadBuffer:
        with self._lock:
            if self._free:
                buf = self._free.pop()
                self.reused += 1
            else:
                buf = HeadBuffer(self.rows)
                self.allocated += 1
        buf.size = 0
        buf.retired = False
        return buf

    def pin(self, buf: HeadBuffer) -> None:
        with self._lock:
            buf.pins += 1

    def unpin(self, buf: HeadBuffer) -> None:
        with self._lock:
            buf.pins -= 1
            if buf.pins == 0 and buf.retired:
                self._put_locked(buf)

    def release(self, buf: HeadBuffer) -> None:
        """Give a buffer back; it becomes reusable once its last reader unpins it."""
        with self._lock:
            buf.retired = True
            if buf.pins == 0:
                self._put_locked(buf)

    def _put_locked(self, buf: HeadBuffer) -> None:
        buf.retired = False
        if len(self._free) < self.max_free:
            self._free.append(buf)
        else:
            self.dropped += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "buffer_rows": self.rows,
                "allocated": self.allocated,
                "reused": self.reused,
                "free": len(self._free),
                "dropped": self.dropped,
            }
