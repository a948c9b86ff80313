"""Where big Arrow allocations come from: memory in ordinary 4 KiB pages.

Arrow's default pool (mimalloc) asks for transparent huge pages on big blocks. A huge page that
is not free already must be assembled (memory compaction, and on a virtual machine the host
backing 2 MiB at once), which made a fresh process's first select-all 5-10x slower than later
ones and its first big write 2x slower. Buffers that the database allocates by the megabyte
(query outputs, WAL records) come from :func:`small_pool` instead.
"""

from __future__ import annotations

from functools import cache

import pyarrow as pa


@cache
def small_pool() -> pa.MemoryPool:
    """Arrow's jemalloc pool, else the system allocator's (both without huge pages)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()
