"""Review: int64 extremes and one series larger than the read batch."""

from __future__ import annotations

import tracemalloc

import numpy as np
import polars as pl

import tsdb_arrow as ta
from tsdb_arrow.query.scan import Scan

HOUR = 3_600_000


def test_review_sample_at_int64_min_does_not_pin_the_head(tmp_path):
    # window_starts(INT64_MIN) overflows to a huge positive window start, so the "newest
    # window" kept in the head is the oldest sample's, and every later write flushes a block.
    with ta.open(tmp_path / "db") as db:
        db.write(pl.DataFrame({"timestamp": [-(2**63)], "value": [1.0], "__name__": "m"}))
        for i in range(10):
            db.write(
                pl.DataFrame({"timestamp": [10 * HOUR + i], "value": [float(i)], "__name__": "m"})
            )
        stats = db.stats()
        assert stats["blocks"] == 1
        assert stats["head_samples"] == 10
        assert db.select("m").collect().height == 11


def test_review_one_long_series_streams_in_bounded_memory(tmp_path):
    # Batches are cut only at series boundaries: a series with more samples than batch_size is
    # decoded and assembled whole before the first batch_size slice is yielded.
    n = 2_000_000
    config = ta.StorageConfig(block_duration=10**12, cache_bytes=0)
    with ta.open(tmp_path / "db", config=config) as db:
        ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 1000
        db.write(pl.DataFrame({"timestamp": ts, "value": np.arange(n) / 7, "__name__": "big"}))
        db.flush()
        source = Scan(db.series(), None, None, db._snapshot, db._cache, db._pool_threads)
        tracemalloc.start()
        try:
            batches = source(None, None, None, 10_000)
            first = next(batches)
            _, peak = tracemalloc.get_traced_memory()
            batches.close()
        finally:
            tracemalloc.stop()
    assert first.height == 10_000
    # The whole series is 2 M x 24 B = 46 MiB decoded; a 10 k-row batch must not need that.
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MiB to produce one 10,000-row batch"
