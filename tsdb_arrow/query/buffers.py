"""Output arrays of queries: memory in ordinary 4 KiB pages, recycled from one query to the next.

A query's outputs are large and short-lived (a select-all of 10 M samples writes 0.8 GB of
timestamps, values and label views). Memory fresh from the kernel costs a fault and a zeroing per
page on first touch, which took longer than decoding the samples. So big outputs live in
anonymous memory maps that return to a free list once Arrow and Polars release them (the user
dropped the frame) and are handed out again, already mapped, by the next query. At most
``KEEP_BYTES`` stay on the list, and a map unused for ``KEEP_SECONDS`` is let go at the next
query (as an allocator's decay would). A new map is faulted in with one call rather than a trap
per page.

Not numpy's allocator nor Arrow's default pool: both ask for transparent huge pages on big
blocks (see ``tsdb_arrow.memory``). Small outputs come from ``memory.small_pool``.
"""

from __future__ import annotations

import mmap
import threading
import time
import weakref

import numpy as np
import pyarrow as pa

from tsdb_arrow.memory import small_pool

#: Outputs from this size up come from recycled memory maps; smaller ones from the Arrow pool.
MIN_RECYCLED = 1 << 20
_CAN_RECYCLE = hasattr(mmap, "MAP_PRIVATE")  # not on Windows
#: Most bytes of free maps kept for later queries.
KEEP_BYTES = 1 << 30
#: A free map unused for this long is unmapped when the recycler is next used.
KEEP_SECONDS = 10.0


#: Linux's MADV_POPULATE_WRITE (5.14+; Python 3.11's mmap module has no name for it).
_MADV_POPULATE_WRITE = 23
_can_populate = hasattr(mmap.mmap, "madvise")


def _populate(region: mmap.mmap, nbytes: int) -> None:
    """Fault in the first ``nbytes`` of a new map in one call: the kernel maps and zeroes the
    pages in a batch, instead of one trap per page as the decoders first write to each (the
    first select-all of a process spent more time in those traps than in decoding)."""
    global _can_populate
    if not _can_populate:
        return
    length = -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE
    try:
        region.madvise(_MADV_POPULATE_WRITE, 0, length)
    except OSError:  # an older kernel, or not Linux: pages fault in as they are written
        _can_populate = False


def size_class(nbytes: int) -> int:
    """``nbytes`` rounded up to one of four sizes per power of two (at most 25 % more)."""
    top = 1 << (max(nbytes, 1) - 1).bit_length()
    step = max(top // 8, mmap.PAGESIZE)
    return -(-nbytes // step) * step


class Recycler:
    """Hands out anonymous memory maps as Arrow buffers and takes them back when released."""

    def __init__(self, keep_bytes: int = KEEP_BYTES, keep_seconds: float = KEEP_SECONDS) -> None:
        self.keep_bytes = keep_bytes
        self.keep_seconds = keep_seconds
        # Re-entrant: a view can be collected (and its map given back) by a garbage collection
        # that an allocation inside ``buffer`` sets off, in the thread holding the lock.
        self._lock = threading.RLock()
        # size class -> free maps with the time each came back, most recent last
        self._free: dict[int, list[tuple[float, mmap.mmap]]] = {}
        self._swept = time.monotonic()
        self.kept = 0  # bytes of the maps on the free lists
        self.reused = 0  # buffers served from a free list

    def buffer(self, nbytes: int) -> pa.Buffer:
        """A mutable buffer of ``nbytes`` (contents undefined) over a recycled or new map."""
        size = size_class(nbytes)
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            # the smallest free map that fits, up to twice the size (pages past ``nbytes`` are
            # not touched, so a bigger map costs address space only)
            fits = [c for c, free in list(self._free.items()) if free and size <= c <= 2 * size]
            region = None
            if fits:
                size = min(fits)
                region = self._free[size].pop()[1]
                self.kept -= size
                self.reused += 1
        if region is None:
            region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
            _populate(region, nbytes)
        view = np.frombuffer(region, dtype=np.uint8, count=nbytes)
        # The Arrow buffer holds ``view``; when its last user lets go, the map comes back.
        weakref.finalize(view, self._give_back, region, size).atexit = False
        return pa.py_buffer(view)

    def _give_back(self, region: mmap.mmap, size: int) -> None:
        with self._lock:
            if self.kept + size <= self.keep_bytes:
                self._free.setdefault(size, []).append((time.monotonic(), region))
                self.kept += size
        # else: unmapped once the last reference to ``region`` goes

    def _sweep(self, now: float) -> None:
        """Let go of the maps free for longer than ``keep_seconds`` (checked once a second)."""
        if now - self._swept < 1.0:
            return
        self._swept = now
        for size, free in list(self._free.items()):
            stale = sum(1 for freed, _ in free if now - freed > self.keep_seconds)
            if stale:
                del free[:stale]  # oldest first: each list is in the order maps came back
                self.kept -= stale * size

    def clear(self) -> None:
        """Let go of every free map."""
        with self._lock:
            self._free.clear()
            self.kept = 0


RECYCLER = Recycler()


def pool_buffer(nbytes: int) -> pa.Buffer:
    """A mutable buffer of ``nbytes`` for a query's output (contents undefined)."""
    if nbytes >= MIN_RECYCLED and _CAN_RECYCLE:
        return RECYCLER.buffer(nbytes)
    return pa.allocate_buffer(max(nbytes, 0), memory_pool=small_pool())


def pool_empty(n: int, dtype: type | np.dtype) -> np.ndarray:
    """An uninitialised writable 1-D numpy array of ``n`` items for a query's output."""
    dtype = np.dtype(dtype)
    return np.frombuffer(pool_buffer(n * dtype.itemsize), dtype=dtype, count=n)
