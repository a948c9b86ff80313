"""When and how the head becomes blocks: aligned windows, last write wins, out-of-order data."""

from __future__ import annotations

import json
import time

import numpy as np
import polars as pl
import pytest

import tsdb_arrow as ta

HOUR = 3_600_000


def frame(ts, values, name="m", **labels):
    data = {
        "timestamp": np.asarray(ts, dtype=np.int64),
        "value": np.asarray(values, dtype=float),
        "__name__": [name] * len(ts),
    }
    data.update({k: [v] * len(ts) for k, v in labels.items()})
    return pl.DataFrame(data)


def values_of(db, selector="m", **kw):
    got = db.select(selector, **kw).collect()
    return list(zip(got["timestamp"].dt.epoch("ms").to_list(), got["value"].to_list()))


def block_metas(path):
    return sorted(
        (json.loads(p.read_text()) for p in (path / "blocks").glob("*/meta.json")),
        key=lambda m: m["seq"],
    )


def test_blocks_are_aligned_to_block_duration(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(frame([HOUR, 2 * HOUR - 1, 2 * HOUR, 5 * HOUR + 7], [1, 2, 3, 4]))
        assert db.flush() and db.stats()["head_samples"] == 0
    metas = block_metas(tmp_path / "db")
    # 2 h windows: [0, 2h) holds two samples, [2h, 4h) one, [4h, 6h) one.
    assert [(m["min_time"], m["max_time"], m["num_samples"]) for m in metas] == [
        (HOUR, 2 * HOUR - 1, 2),
        (2 * HOUR, 2 * HOUR, 1),
        (5 * HOUR + 7, 5 * HOUR + 7, 1),
    ]
    assert all(m["format"] == "tsdb-arrow-block" and m["version"] == 1 for m in metas)
    assert all("timestamp" in m["codecs"] and "value" in m["codecs"] for m in metas)


def settled(db: ta.Database) -> dict:
    """``db.stats()`` once the background thread has done what the writes asked of it."""
    assert db._background.wait_idle(timeout=60)
    return db.stats()


def test_head_flushes_itself_when_it_spans_more_than_a_block(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(frame(np.arange(0, 2 * HOUR, 60_000), np.arange(120)))
        assert settled(db)["blocks"] == 0
        db.write(frame([2 * HOUR + 1000], [999]))
        stats = settled(db)
        # The complete window [0, 2h) was written; the newest window stays in the head.
        assert stats["blocks"] == 1
        assert stats["head_samples"] == 1
        assert len(values_of(db)) == 121


def test_head_flushes_itself_when_it_exceeds_head_max_bytes(tmp_path):
    config = ta.StorageConfig(head_max_bytes=2**16, buffer_rows=1024)
    with ta.open(tmp_path / "db", config=config) as db:
        n = 2**16 // 24 + 1
        db.write(frame(np.arange(n), np.arange(n)))
        stats = settled(db)
        assert stats["blocks"] == 1 and stats["head_samples"] == 0
        assert len(values_of(db)) == n


def test_duplicates_keep_the_last_write_in_head_and_across_blocks(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(frame([1000, 2000, 1000], [1, 2, 3]))  # same batch: the later row wins
        assert values_of(db) == [(1000, 3.0), (2000, 2.0)]
        db.flush()
        db.write(frame([2000], [20]))  # head over block
        assert values_of(db) == [(1000, 3.0), (2000, 20.0)]
        db.flush()  # a second block overlapping the first: the newer block wins
        assert values_of(db) == [(1000, 3.0), (2000, 20.0)]
        assert db.stats()["blocks"] == 2
    with ta.open(tmp_path / "db") as db:
        assert values_of(db) == [(1000, 3.0), (2000, 20.0)]


def test_out_of_order_samples_go_into_a_new_block_and_merge(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(frame(np.arange(10) * 1000 + 10 * HOUR, np.arange(10)))
        db.flush()
        db.write(frame([500, 10 * HOUR + 4500, 10 * HOUR + 3000], [-1, -2, -3]))
        db.flush()
        got = values_of(db)
    assert [t for t, _ in got] == sorted(t for t, _ in got)
    assert len(got) == 12
    assert got[0] == (500, -1.0)
    assert (10 * HOUR + 4500, -2.0) in got and (10 * HOUR + 3000, -3.0) in got
    assert (10 * HOUR + 3000, 3.0) not in got


def test_interrupted_flush_leaves_no_visible_block(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(frame([1, 2], [1, 2]))
    leftover = tmp_path / "db" / "blocks" / "b0000000009.tmp"
    leftover.mkdir()
    (leftover / "chunks.parquet").write_bytes(b"half a file")
    with ta.open(tmp_path / "db") as db:
        assert values_of(db) == [(1, 1.0), (2, 2.0)]
        assert db.stats()["blocks"] == 1
    assert not leftover.exists()


def test_close_flushes_and_reopen_continues_block_numbering(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(frame([1], [1]))
    with ta.open(tmp_path / "db") as db:
        db.write(frame([2], [2]))
    assert [m["seq"] for m in block_metas(tmp_path / "db")] == [1, 2]


def test_a_failed_flush_loses_nothing_and_can_be_retried(tmp_path, monkeypatch):
    from tsdb_arrow.blocks import writer  # flushes import write_block from here

    real_write_block = writer.write_block

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with ta.open(tmp_path / "db") as db:
        db.write(frame([1000, 2000], [1, 2]))
        monkeypatch.setattr(writer, "write_block", disk_full)
        with pytest.raises(OSError, match="No space left"):
            db.flush()
        db.write(frame([2000, 3000], [20, 3]))  # newer samples still win over the retried ones
        assert values_of(db) == [(1000, 1.0), (2000, 20.0), (3000, 3.0)]
        assert db.stats()["head_samples"] == 4
        monkeypatch.setattr(writer, "write_block", real_write_block)
        db.flush()
        assert db.stats()["blocks"] == 1
    with ta.open(tmp_path / "db") as db:
        assert values_of(db) == [(1000, 1.0), (2000, 20.0), (3000, 3.0)]


def test_a_failed_background_flush_keeps_the_samples_and_is_retried(tmp_path, monkeypatch):
    from tsdb_arrow.blocks import writer  # flushes import write_block from here

    real_write_block = writer.write_block

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with ta.open(tmp_path / "db") as db:
        monkeypatch.setattr(writer, "write_block", disk_full)
        result = db.write(frame([0, 3 * HOUR], [1, 2]))  # spans more than a block: flush due
        assert result.rows == 2  # the write itself never runs the flush
        stats = settled(db)
        assert stats["blocks"] == 0 and stats["head_samples"] == 2
        assert "No space left on device" in stats["flush_error"]
        assert values_of(db) == [(0, 1.0), (3 * HOUR, 2.0)]
        monkeypatch.setattr(writer, "write_block", real_write_block)
        db._background.request()  # the retry after the pause, without waiting for it
        deadline = time.monotonic() + 60
        while db.stats()["blocks"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = settled(db)
        assert stats["blocks"] == 1 and stats["head_samples"] == 1  # newest window kept
        assert stats["flush_error"] is None
    with ta.open(tmp_path / "db") as db:
        assert values_of(db) == [(0, 1.0), (3 * HOUR, 2.0)]


def test_a_full_head_makes_write_wait_then_refuse_the_whole_batch(tmp_path, monkeypatch):
    from tsdb_arrow.blocks import writer

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    config = ta.StorageConfig(head_max_bytes=2**16, buffer_rows=1024, write_timeout=0.3)
    with ta.open(tmp_path / "db", config=config) as db:
        monkeypatch.setattr(writer, "write_block", disk_full)
        n = 2**16 // 24 + 1
        db.write(frame(np.arange(n), np.arange(n)))  # fills the head past its bound
        settled(db)
        started = time.monotonic()
        with pytest.raises(ta.BackpressureError, match="retry the batch later") as err:
            db.write(frame([10 * n, 10 * n + 1], [1, 2]))
        assert time.monotonic() - started >= 0.3
        message = str(err.value)
        assert "No space left on device" in message and "none of the 2 rows" in message
        assert db.stats()["head_samples"] == n  # nothing of the refused batch
        monkeypatch.undo()
        db.flush()
        db.write(frame([10 * n, 10 * n + 1], [1, 2]))  # room again: accepted
        assert len(values_of(db)) == n + 2


def test_a_head_exactly_at_its_bound_is_flushed_not_waited_on(tmp_path):
    """``write`` waits while the head holds ``head_max_bytes`` or more, so a head of exactly
    that size is due for a flush: the next write gets room at once instead of timing out."""
    rows = 4096  # 24 bytes a row: exactly head_max_bytes
    config = ta.StorageConfig(head_max_bytes=24 * rows, buffer_rows=1024, write_timeout=5.0)
    with ta.open(tmp_path / "db", config=config) as db:
        db.write(frame(np.arange(rows), np.arange(rows)))
        started = time.monotonic()
        db.write(frame([rows], [-1.0]))
        assert time.monotonic() - started < 4.0
        stats = settled(db)
        assert stats["blocks"] == 1 and stats["head_samples"] == 1
        assert values_of(db)[-2:] == [(rows - 1, rows - 1.0), (rows, -1.0)]
        assert len(values_of(db)) == rows + 1


def test_sample_at_int64_min_does_not_pin_the_head(tmp_path):
    """A sample at the smallest int64 timestamp gets its own window: it is flushed when a later
    window arrives, and the newest window stays in the head instead of flushing each write."""
    with ta.open(tmp_path / "db") as db:
        db.write(frame([-(2**63)], [1]))
        for i in range(10):
            db.write(frame([10 * HOUR + i], [i]))
        stats = settled(db)
        assert stats["blocks"] == 1
        assert stats["head_samples"] == 10
        assert values_of(db)[0] == (-(2**63), 1.0)
        assert len(values_of(db)) == 11


def test_a_pass_holding_windows_asks_for_another_once_they_are_quiet(tmp_path, monkeypatch):
    """Every write lands before the background's first pass (a loaded machine): that pass holds
    the window the writes just reached and writes nothing, and asks for a pass once it is
    quiet, so the database settles with it written instead of waiting for the next write."""
    with ta.open(tmp_path / "db") as db:
        monkeypatch.setattr(db._background, "request", lambda: None)
        db.write(frame([-(2**63)], [1]))
        for i in range(10):
            db.write(frame([10 * HOUR + i], [i]))
        monkeypatch.undo()
        db._background.request()
        stats = settled(db)
        assert stats["blocks"] == 1
        assert stats["head_samples"] == 10
        assert len(values_of(db)) == 11


def test_close_closes_every_block_file(tmp_path):
    """Closing the database closes the chunk files of its blocks: no descriptor outlives it."""
    import psutil

    def open_chunk_files() -> int:
        me = psutil.Process()
        return sum(f.path.endswith("chunks.parquet") for f in me.open_files())

    db = ta.open(tmp_path / "db")
    for i in range(3):
        db.write(
            pl.DataFrame(
                {"timestamp": [1_700_000_000_000 + i * 3 * HOUR], "value": [1.0], "__name__": "m"}
            )
        )
        db.flush()
    assert db.stats()["blocks"] == 3
    assert open_chunk_files() == 0  # no reader holds a block: no file is open
    _, release = db._snapshot()  # what a query holds while it reads
    assert open_chunk_files() == 3
    release()
    assert open_chunk_files() == 0
    db._snapshot()  # a reader that never lets go
    db.close()
    assert open_chunk_files() == 0


def test_stats_during_a_flush_count_each_sample_once(tmp_path, monkeypatch):
    """A flush writing several windows publishes their blocks as it drops the head: stats and
    queries between two windows see the samples in the head only, never in both."""
    import threading

    from tsdb_arrow.blocks import writer

    real_write_block = writer.write_block
    calls: list[int] = []
    second = threading.Event()
    go_on = threading.Event()

    def write_block(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the first window's block is written: hold the second
            second.set()
            assert go_on.wait(60)
        return real_write_block(*args, **kwargs)

    # two windows of 2 h, a head spanning 3 s: no background flush is due, only ours runs
    ts = [2 * HOUR - 2000, 2 * HOUR - 1000, 2 * HOUR, 2 * HOUR + 1000]
    with ta.open(tmp_path / "db") as db:
        db.write(frame(ts, [1, 2, 3, 4]))
        monkeypatch.setattr(writer, "write_block", write_block)
        flushing = threading.Thread(target=db.flush)
        flushing.start()
        try:
            assert second.wait(60)
            stats = db.stats()
            assert (stats["samples"], stats["blocks"], stats["head_samples"]) == (4, 0, 4)
            assert values_of(db) == list(zip(ts, [1.0, 2.0, 3.0, 4.0]))
        finally:
            go_on.set()
            flushing.join(60)
        stats = db.stats()
        assert (stats["samples"], stats["blocks"], stats["head_samples"]) == (4, 2, 0)
