"""The decoded-chunk LRU and the pooled head buffers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import tsdb_arrow as ta
from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.ingest.pool import BufferPool

from .conftest import synthetic


def test_repeated_query_is_served_from_cache_without_rereading_blocks(tmp_path, real_table):
    with ta.open(tmp_path / "db") as db:
        db.write(real_table)
        db.flush()
        first = db.select("node_network_receive_bytes_total").collect()
        after_first = db.stats()
        again = db.select("node_network_receive_bytes_total").collect()
        after_again = db.stats()
    assert first.equals(again)
    assert after_first["cache"]["misses"] > 0
    assert after_again["block_reads"] == after_first["block_reads"]  # no block file re-read
    assert after_again["cache"]["misses"] == after_first["cache"]["misses"]
    hits = after_again["cache"]["hits"] - after_first["cache"]["hits"]
    assert hits == after_first["cache"]["misses"]
    assert after_again["cache"]["hit_ratio"] == pytest.approx(0.5)


def test_cache_off_rereads_blocks(tmp_path):
    with ta.open(tmp_path / "db", config=ta.StorageConfig(cache_bytes=0)) as db:
        db.write(synthetic(5, 50))
        db.flush()
        db.select().collect()
        reads = db.stats()["block_reads"]
        db.select().collect()
        stats = db.stats()
    assert stats["block_reads"] == 2 * reads
    assert stats["cache"]["hits"] == 0 and stats["cache"]["entries"] == 0


def test_lru_evicts_least_recently_used_within_its_byte_bound():
    cache = ChunkCache(capacity_bytes=3 * 800)
    arrays = {k: np.full(100, i, dtype=np.float64) for i, k in enumerate("abcd")}  # 800 B each
    for k in "abc":
        cache.get_or_load(k, lambda k=k: arrays[k])
    cache.get_or_load("a", lambda: pytest.fail("a is cached"))  # a becomes most recent
    cache.get_or_load("d", lambda: arrays["d"])  # evicts b, the least recently used
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["evictions"], stats["entries"]) == (1, 4, 1, 3)
    assert stats["bytes"] == 2400
    loaded = []
    cache.get_or_load("b", lambda: loaded.append("b") or arrays["b"])
    assert loaded == ["b"]
    assert stats["hit_ratio"] == pytest.approx(1 / 5)
    cache.put("huge", np.zeros(1000))  # larger than the whole cache: not kept
    assert cache.stats()["entries"] == 3


def test_pool_reuse_removes_99_percent_of_buffer_allocations(tmp_path):
    config = ta.StorageConfig(buffer_rows=4096)
    with ta.open(tmp_path / "db", config=config) as db:
        chunk = synthetic(4, 2500, step=1000)  # 10,000 rows in one block window: three buffers
        for i in range(150):
            db.write(chunk.with_columns(pl.col("timestamp") + i * config.block_duration))
            db.flush()
        pool = db.stats()["pool"]
    acquired = pool["allocated"] + pool["reused"]
    assert acquired == 150 * 3  # without a pool every one of these would be an allocation
    assert pool["allocated"] <= 3
    assert 1 - pool["allocated"] / acquired >= 0.99


def test_pinned_buffer_is_not_reused_until_the_reader_lets_go():
    pool = BufferPool(rows=1024, max_free=4)
    buf = pool.acquire()
    buf.append(np.array([1], np.uint64), np.array([5], np.int64), np.array([2.5]))
    pool.pin(buf)
    view = buf.values[: buf.size]  # the zero-copy view a reader holds
    pool.release(buf)  # the head was flushed
    other = pool.acquire()
    assert other is not buf  # still pinned: a fresh buffer instead
    assert view.tolist() == [2.5]
    pool.unpin(buf)
    assert pool.acquire() is buf  # now reusable
    assert pool.stats()["allocated"] == 2 and pool.stats()["reused"] == 1


def test_query_pins_head_buffers_while_it_streams(tmp_path):
    with ta.open(tmp_path / "db", config=ta.StorageConfig(buffer_rows=1024)) as db:
        db.write(synthetic(2, 1000, step=1000))
        snapshot, release = db._snapshot()
        pinned = [buf for buf, _ in snapshot.head]
        assert pinned and all(buf.pins == 1 for buf in pinned)
        db.flush()  # the head is handed back to the pool but must not be reused yet
        free_before = db.stats()["pool"]["free"]
        assert free_before == 0
        release()
        assert all(buf.pins == 0 for buf in pinned)
        assert db.stats()["pool"]["free"] == len(pinned)
