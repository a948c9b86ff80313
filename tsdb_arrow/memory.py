"""Where big Arrow allocations come from: memory in ordinary 4 KiB pages.

Arrow's default pool (mimalloc) asks for transparent huge pages on big blocks. A huge page that
is not free already must be assembled (memory compaction, and on a virtual machine the host
backing 2 MiB at once), which made a fresh process's first select-all 5-10x slower than later
ones and its first big write 1.5-1.8x slower. Buffers that the database allocates by the megabyte
(query outputs, WAL records) come from :func:`small_pool` instead.
"""

from __future__ import annotations

import os
from functools import cache

import pyarrow as pa


@cache
def small_pool() -> pa.MemoryPool:
    """Arrow's jemalloc pool, else the system allocator's (both without huge pages)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()


def own_process_default() -> None:
    """Make :func:`small_pool` the default Arrow pool of a process tsdb-arrow runs (the
    ``tsdb-arrow`` command, ``serve``), unless ``ARROW_DEFAULT_MEMORY_POOL`` names one.

    Every Arrow allocation of such a process then avoids huge pages, the input files' too:
    ``tsdb-arrow load`` of 3.6 M samples took 4.4-5.7 s with mimalloc and 3.2-3.3 s with this.
    A library call never changes its caller's default pool.
    """
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(small_pool())
