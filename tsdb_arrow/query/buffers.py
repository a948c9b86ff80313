"""Output arrays allocated from an Arrow memory pool that maps memory in ordinary 4 KiB pages.

A query's outputs are large and short-lived (a select-all of 10 M samples writes 0.8 GB). numpy
and Arrow's default pool (mimalloc) ask the kernel for transparent huge pages on big blocks; a
huge page that is not already free must be assembled first (memory compaction, and on a virtual
machine the host backing 2 MiB at once), which made a first select-all 5-10x slower than later
ones (seconds of system time). Arrow's jemalloc pool, or the system allocator where pyarrow has
no jemalloc, use small pages: the first touch of each page costs a plain fault, as it does for
Polars' own reads.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pyarrow as pa


@cache
def output_pool() -> pa.MemoryPool:
    """Arrow's jemalloc pool, else the system allocator's (both without huge pages)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()


def pool_buffer(nbytes: int) -> pa.Buffer:
    """A mutable buffer of ``nbytes`` from :func:`output_pool` (contents undefined)."""
    return pa.allocate_buffer(max(nbytes, 0), memory_pool=output_pool())


def pool_empty(n: int, dtype: type | np.dtype) -> np.ndarray:
    """An uninitialised writable 1-D numpy array of ``n`` items living in an Arrow buffer."""
    dtype = np.dtype(dtype)
    return np.frombuffer(pool_buffer(n * dtype.itemsize), dtype=dtype, count=n)
