"""Review: accepted samples lost or duplicated around close() and failed flushes."""

from __future__ import annotations

import threading

import polars as pl
import pytest

import tsdb_arrow as ta
from tsdb_arrow.blocks import writer
from tsdb_arrow.query.scan import Scan

from .conftest import synthetic

HOUR = 3_600_000


def frame(ts, values):
    return pl.DataFrame(
        {"timestamp": ts, "value": [float(v) for v in values], "__name__": ["m"] * len(ts)}
    )


def test_review_write_racing_close_is_stored_or_refused(tmp_path):
    # close() flushes, then marks itself closed: a write from another thread in between is
    # accepted (returns 1) and silently dropped.
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
    with ta.open(tmp_path / "db") as again:
        stored = again.select("m").collect()["value"].to_list()
    if outcome == [1]:
        assert stored == [1.0, 2.0]
    else:
        assert isinstance(outcome[0], ta.ClosedError) and stored == [1.0]


def test_review_close_that_fails_to_flush_loses_nothing(tmp_path, monkeypatch):
    # A disk-full during close() marks the database closed anyway: the head can no longer be
    # flushed and every unflushed sample is gone after reopening.
    db = ta.open(tmp_path / "db")
    db.write(frame([1, 2], [1, 2]))
    real = writer.write_block

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write_block", disk_full)
    with pytest.raises(OSError):
        db.close()
    monkeypatch.setattr(writer, "write_block", real)
    db.close()  # the retry
    with ta.open(tmp_path / "db") as again:
        assert again.select("m").collect()["value"].to_list() == [1.0, 2.0]


def test_review_partly_failed_flush_does_not_write_a_window_twice(tmp_path, monkeypatch):
    # Two windows; the second block write fails. The first window's block stays on disk, yet
    # its samples are put back into the head too, so the retry writes them a second time.
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
        with pytest.raises(OSError):
            db.flush()
        monkeypatch.setattr(writer, "write_block", real)
        db.flush()
        stats = db.stats()
        assert db.select("m").collect().height == 2
        assert stats["blocks"] == 2
        assert stats["block_samples"] == 2


def test_review_close_during_a_streaming_read_raises_closed_error(tmp_path):
    # A reader that is mid-stream when the database closes gets a bare RuntimeError
    # ("cannot schedule new futures after shutdown") instead of a TsdbError.
    db = ta.open(tmp_path / "db", config=ta.StorageConfig(cache_bytes=0))
    db.write(synthetic(40, 2000))
    db.flush()
    source = Scan(db.series(), None, None, db._snapshot, db._cache, db._pool_threads)
    batches = source(None, None, None, 2000)
    next(batches)
    db.close()
    try:
        for _ in batches:
            pass
    except ta.TsdbError:
        pass
