"""The block set: readers hold blocks; a retired block stays readable until the last lets go."""

from __future__ import annotations

import threading

import numpy as np
import polars as pl
import pytest

import tsdb_arrow as ta
from tsdb_arrow.blocks.blockset import BlockSet

HOUR = 3_600_000


def write_blocks(path, n: int) -> None:
    with ta.open(path) as db:
        for i in range(n):
            db.write(
                pl.DataFrame(
                    {
                        "timestamp": [i * 3 * HOUR, i * 3 * HOUR + 1],
                        "value": [i, -i],
                        "__name__": "m",
                    }
                )
            )
            db.flush()


def test_a_retired_block_is_readable_while_held_and_deleted_after(tmp_path):
    write_blocks(tmp_path / "db", 2)
    with ta.open(tmp_path / "db") as db:
        blockset: BlockSet = db._blockset
        first, second = blockset.blocks()
        lf = db.select("m")
        snapshot, release = db._snapshot()  # a reader holding both blocks
        assert blockset.retire([first.meta.id]) == [first]
        assert blockset.blocks() == (second,)
        assert (tmp_path / "db" / "blocks" / first.meta.id).is_dir()  # still held
        assert np.array_equal(first.decoded(0, "timestamps", db._cache), [0, 1])
        release()
        assert not (tmp_path / "db" / "blocks" / first.meta.id).exists()
        # A query started now reads only what is left.
        assert lf.collect()["value"].to_list() == [1.0, -1.0]
        assert len(snapshot.blocks) == 2


def test_release_is_idempotent_and_holds_count_per_reader(tmp_path):
    write_blocks(tmp_path / "db", 1)
    with ta.open(tmp_path / "db") as db:
        blockset: BlockSet = db._blockset
        (block,) = blockset.blocks()
        _, release_a = blockset.acquire()
        _, release_b = blockset.acquire()
        blockset.retire([block.meta.id])
        release_a()
        release_a()  # a second call changes nothing: b still holds it
        assert (tmp_path / "db" / "blocks" / block.meta.id).is_dir()
        release_b()
        assert not (tmp_path / "db" / "blocks" / block.meta.id).exists()


def test_a_block_whose_file_vanished_is_a_clear_error_for_a_new_reader(tmp_path):
    write_blocks(tmp_path / "db", 1)
    with ta.open(tmp_path / "db") as db:
        (block,) = db._blockset.blocks()
        (tmp_path / "db" / "blocks" / block.meta.id / "chunks.parquet").unlink()
        with pytest.raises(ta.CorruptBlockError, match="chunks.parquet"):
            db.select("m").collect()
        # The failed acquire left no hold behind.
        assert db._blockset._holds == {}
        db._blockset.retire([block.meta.id])


def test_flushes_run_on_the_background_thread_never_on_the_writer(tmp_path, monkeypatch):
    from tsdb_arrow.blocks import writer

    threads: list[str] = []
    real = writer.write_block

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "write_block", recording)
    config = ta.StorageConfig(head_max_bytes=2**16, buffer_rows=1024)
    with ta.open(tmp_path / "db", config=config) as db:
        for i in range(5):
            n = 3000
            db.write(
                pl.DataFrame(
                    {"timestamp": np.arange(n) + i * n, "value": np.ones(n), "__name__": "m"}
                )
            )
        assert db._background.wait_idle(timeout=60)
        during_writes = list(threads)
        assert db.select("m").collect().height == 5 * 3000
    assert during_writes and all(n.startswith("tsdb-arrow-background") for n in during_writes)
