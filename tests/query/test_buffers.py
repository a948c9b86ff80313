"""Output buffers: writable, exactly sized, from a pool that does not use huge pages."""

from __future__ import annotations

import numpy as np

from tsdb_arrow.query.buffers import output_pool, pool_buffer, pool_empty


def test_output_pool_is_not_mimalloc() -> None:
    # mimalloc maps big blocks in transparent huge pages: first selects paid seconds for them
    assert output_pool().backend_name in ("jemalloc", "system")


def test_pool_empty_is_writable_and_sized() -> None:
    before = output_pool().bytes_allocated()
    a = pool_empty(1000, np.float64)
    assert a.shape == (1000,) and a.dtype == np.float64 and a.flags.writeable
    a[:] = np.arange(1000)
    assert a.sum() == 499500
    assert output_pool().bytes_allocated() >= before + 8000
    assert pool_buffer(0).size == 0 and pool_buffer(-5).size == 0
