"""close() and failed flushes: every accepted sample is stored once, or the write is refused."""

from __future__ import annotations

import threading

import polars as pl
import pyarrow.parquet as pq
import pytest

import tsdb_arrow as ta
from tsdb_arrow.blocks import writer
from tsdb_arrow.query import scan
from tsdb_arrow.query.scan import Scan

from .conftest import synthetic

HOUR = 3_600_000


def frame(ts, values):
    return pl.DataFrame(
        {"timestamp": ts, "value": [float(v) for v in values], "__name__": ["m"] * len(ts)}
    )


def test_write_racing_close_is_refused_and_nothing_accepted_is_lost(tmp_path):
    """A write from another thread after close() has started (here: between its flush and
    marking the database closed) raises ClosedError; what was written before is stored."""
    db = ta.open(tmp_path / "db")
    db.write(frame([1], [1]))
    real_flush = db.flush
    outcome: list[object] = []

    def write_from_other_thread() -> None:
        try:
            outcome.append(db.write(frame([2], [2])))
        except ta.ClosedError as exc:
            outcome.append(exc)

    def flush_then_race():
        result = real_flush()
        thread = threading.Thread(target=write_from_other_thread)
        thread.start()
        thread.join()
        return result

    db.flush = flush_then_race
    db.close()
    assert len(outcome) == 1 and isinstance(outcome[0], ta.ClosedError)
    assert "closed or closing" in str(outcome[0])
    with ta.open(tmp_path / "db") as again:
        assert again.select("m").collect()["value"].to_list() == [1.0]


def test_close_that_fails_to_flush_keeps_the_head_for_a_retry(tmp_path, monkeypatch):
    """A close() whose flush fails (disk full) raises and leaves the database open with every
    sample in the head; a second close() stores them."""
    db = ta.open(tmp_path / "db")
    db.write(frame([1, 2], [1, 2]))
    real = writer.write_block

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write_block", disk_full)
    with pytest.raises(OSError, match="No space left"):
        db.close()
    assert db.stats()["head_samples"] == 2
    monkeypatch.setattr(writer, "write_block", real)
    db.close()  # the retry
    with ta.open(tmp_path / "db") as again:
        assert again.select("m").collect()["value"].to_list() == [1.0, 2.0]


def test_partly_failed_flush_does_not_write_a_window_twice(tmp_path, monkeypatch):
    """A flush of two windows whose second block write fails keeps the first block and puts
    only the second window back in the head: the retry writes it once."""
    real = writer.write_block
    calls = {"n": 0}

    def second_fails(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    with ta.open(tmp_path / "db") as db:
        db.write(frame([1000, 2 * HOUR + 1000], [1, 2]))  # two windows, no auto flush
        monkeypatch.setattr(writer, "write_block", second_fails)
        with pytest.raises(OSError, match="No space left"):
            db.flush()
        after_failure = db.stats()
        assert (after_failure["blocks"], after_failure["head_samples"]) == (1, 1)
        monkeypatch.setattr(writer, "write_block", real)
        db.flush()
        stats = db.stats()
        assert db.select("m").collect()["value"].to_list() == [1.0, 2.0]
        assert stats["blocks"] == 2
        assert stats["block_samples"] == 2
        assert stats["head_samples"] == 0


def test_close_during_a_streaming_read_raises_closed_error(tmp_path, monkeypatch):
    """A reader that still has row groups to decode when the database closes gets a
    ClosedError (not a bare RuntimeError from the shut-down thread pool)."""
    # Decode batches of 2^18 samples (a read without a row limit would take all 800,000 in one).
    monkeypatch.setattr(scan, "MAX_DECODE_BATCH", scan.MIN_DECODE_BATCH)
    db = ta.open(tmp_path / "db", config=ta.StorageConfig(cache_bytes=0))
    db.write(synthetic(40, 20_000, step=300))  # 800,000 samples in one 2 h window
    db.flush()
    (block,) = (tmp_path / "db" / "blocks").iterdir()
    assert pq.ParquetFile(block / "chunks.parquet").num_row_groups >= 3
    source = Scan(db.series(), None, None, db._snapshot, db._cache, db._pool_threads)
    batches = source(None, None, None, 2000)
    assert next(batches).height > 0
    db.close()
    with pytest.raises(ta.ClosedError, match="closed while this query was reading"):
        list(batches)
