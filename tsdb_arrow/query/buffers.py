"""Output arrays allocated from Arrow's memory pool instead of numpy's allocator.

A query's outputs are large and short-lived. numpy takes big arrays straight from the operating
system, which zeroes every page on first touch; Arrow's pool (mimalloc or jemalloc) reuses freed
memory, so filling an array costs one write instead of a fault, a zeroing and a write.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def pool_buffer(nbytes: int) -> pa.Buffer:
    """A mutable buffer of ``nbytes`` from Arrow's default memory pool (contents undefined)."""
    return pa.allocate_buffer(max(nbytes, 0))


def pool_empty(n: int, dtype: type | np.dtype) -> np.ndarray:
    """An uninitialised writable 1-D numpy array of ``n`` items living in an Arrow buffer."""
    dtype = np.dtype(dtype)
    return np.frombuffer(pool_buffer(n * dtype.itemsize), dtype=dtype, count=n)
