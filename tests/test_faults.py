"""Disk full and permission errors: a clear TsdbError naming the path, nothing acknowledged lost,
the database readable throughout and writable again once the cause is gone.

Faults are injected (an OSError at the block writer or the write-ahead log) and, where the
machine allows (root: ``mount -t tmpfs``, else a loop-mounted ext4 image), made real on a small
file system that fills up or is remounted read-only.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import tsdb_arrow as ta
import tsdb_arrow.ingest.journal as journal
import tsdb_arrow.ingest.wal as wal

STALE = 0x7FF0000000000002
ROWS = 500


def batch(i: int, rows: int = ROWS) -> pl.DataFrame:
    """Write ``i``: ``rows`` samples of 5 series at times of its own, one a stale marker."""
    bits = (i * 10_000 + np.arange(rows)).astype(np.float64).view(np.uint64)
    bits[7] = STALE
    return pl.DataFrame(
        {
            "timestamp": i * rows + np.arange(rows, dtype=np.int64),
            "value": bits.view(np.float64),
            "__name__": "m",
            "host": (np.arange(rows) % 5).astype(str),
        }
    )


def assert_holds(db: ta.Database, ids: list[int]) -> None:
    """``db`` holds exactly the writes ``ids``, bit for bit."""
    got = db.select().collect().sort("timestamp")
    want = pl.concat([batch(i) for i in ids]).sort("timestamp") if ids else None
    assert got.height == (want.height if want is not None else 0)
    if want is None:
        return
    assert got["timestamp"].dt.epoch("ms").to_list() == want["timestamp"].to_list()
    assert got["host"].to_list() == want["host"].to_list()
    assert np.array_equal(
        got["value"].to_numpy().view(np.uint64), want["value"].to_numpy().view(np.uint64)
    )


def tmp_dirs(path: Path) -> list[str]:
    return sorted(p.name for p in (path / "blocks").glob("*.tmp"))


# -- injected faults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "free space on that file system"),
        (errno.EDQUOT, "raise the disk quota"),
        (errno.EACCES, "give this process write permission on {blocks}"),
        (errno.EROFS, "remount it read-write"),
    ],
)
def test_a_failed_block_write_raises_storage_error_and_keeps_everything(
    tmp_path, monkeypatch, code, advice
):
    """The flush raises a StorageError naming the block directory, the cause and what to do;
    the half-written .tmp directory goes; the samples stay readable and the retry stores them."""
    from tsdb_arrow.blocks import writer

    path = tmp_path / "db"
    real = pq.write_table

    def fails_after_a_partial_file(table, where, *args, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PAR1 partial")  # what a full disk leaves behind
        raise OSError(code, os.strerror(code))

    with ta.open(path) as db:
        db.write(batch(0))
        monkeypatch.setattr(writer.pq, "write_table", fails_after_a_partial_file)
        with pytest.raises(ta.StorageError) as err:
            db.flush()
        message = str(err.value)
        blocks = str(path / "blocks")
        assert message.startswith(f"cannot write block b0000000001 in {blocks}: ")
        assert os.strerror(code) in message
        assert advice.format(blocks=blocks) in message
        assert "Nothing acknowledged is lost" in message
        assert isinstance(err.value, OSError) and err.value.errno == code
        assert tmp_dirs(path) == []  # its space is given back at once
        stats = db.stats()
        assert (stats["blocks"], stats["head_samples"]) == (0, ROWS)
        db.write(batch(1))  # still accepting writes
        assert_holds(db, [0, 1])
        monkeypatch.setattr(writer.pq, "write_table", real)
        assert db.flush() == ["b0000000002"]
    with ta.open(path) as db:
        assert_holds(db, [0, 1])


def test_a_wal_roll_that_fails_at_a_flush_loses_nothing(tmp_path, monkeypatch):
    """A flush whose new WAL segment cannot be created (disk full) raises WalError and leaves
    the head as it was: the next flush stores it, and its checkpoint cannot drop it."""
    path = tmp_path / "db"
    real_open = os.open

    def no_new_segment(name, flags, *args, **kwargs):
        if str(name).endswith(".wal") and flags & os.O_CREAT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(name, flags, *args, **kwargs)

    with ta.open(path) as db:
        db.write(batch(0))
        monkeypatch.setattr(wal.os, "open", no_new_segment)
        with pytest.raises(ta.WalError, match=rf"{path / 'wal'}.*No space left on device"):
            db.flush()
        monkeypatch.undo()
        assert db.stats()["head_samples"] == ROWS
        db.write(batch(1))
        db.flush()
        assert db.stats()["block_samples"] == 2 * ROWS
    with ta.open(path) as db:
        assert_holds(db, [0, 1])


def test_a_wal_checkpoint_that_fails_keeps_every_sample_once(tmp_path, monkeypatch):
    """A background flush whose WAL checkpoint fails (disk full) has written its block; the
    WAL keeps every segment, so a crash then replays writes that are in the block too, without
    doubling a sample; once space is back the next flush checkpoints."""
    path = tmp_path / "db"
    real_fsync = journal._fsync_path

    def disk_full(target):
        raise OSError(errno.ENOSPC, "No space left on device")

    with ta.open(path, config=ta.StorageConfig(block_duration=1000)) as db:
        monkeypatch.setattr(journal, "_fsync_path", disk_full)
        for i in range(3):  # 1.5 s: the first window goes to a block, the second stays
            db.write(batch(i))
        assert db._background.wait_idle(timeout=60)
        stats = db.stats()
        assert (stats["blocks"], stats["head_samples"]) == (1, ROWS)
        assert stats["flush_error"].startswith(f"cannot write the WAL checkpoint {path / 'wal'}")
        assert "No space left on device; the blocks are written" in stats["flush_error"]
        shutil.copytree(path, tmp_path / "crashed")  # a SIGKILL now
        monkeypatch.setattr(journal, "_fsync_path", real_fsync)
        db.write(batch(3))
        db.flush()
    with ta.open(path) as db:
        assert db.stats()["wal"]["replayed_samples"] == 0
        assert_holds(db, [0, 1, 2, 3])
    with ta.open(tmp_path / "crashed") as db:
        assert db.stats()["wal"]["replayed_samples"] == 3 * ROWS  # two of them in the block
        assert_holds(db, [0, 1, 2])
    with ta.open(tmp_path / "crashed") as db:
        assert db.stats()["samples"] == 3 * ROWS  # flushed once each
        assert_holds(db, [0, 1, 2])


# -- a real small file system ----------------------------------------------------------------


def _run(*argv: object) -> bool:
    try:
        done = subprocess.run([str(a) for a in argv], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[Path, int], None]]:
    """``mount(where, size)``: a file system of ``size`` bytes at ``where`` (tmpfs, else a
    loop-mounted ext4 image), unmounted after the test; skips the test where neither works."""
    mounted: list[Path] = []

    def mount(where: Path, size: int) -> None:
        where.mkdir(parents=True, exist_ok=True)
        if _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", where):
            mounted.append(where)
            return
        image = tmp_path / f"{where.name}.img"
        if (
            _run("truncate", "-s", size, image)
            and _run("mkfs.ext4", "-q", image)
            and _run("mount", "-o", "loop", image, where)
        ):
            mounted.append(where)
            (where / "lost+found").rmdir()  # blocks/ holds only blocks
            return
        pytest.skip("cannot mount a small file system here (needs root for mount)")

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(path: Path) -> None:
    """Write zeros to ``path`` until its file system has no byte left."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1):
            chunk = bytes(size)
            try:
                while True:
                    f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_blocks_on_a_full_file_system(tmp_path, small_fs):
    """blocks/ fills up, the WAL has room: writes are accepted while the head has room, the
    background flush fails (stats' flush_error says why and where), then writes are refused
    with BackpressureError; once space is back the background flush stores everything."""
    path = tmp_path / "db"
    small_fs(path / "blocks", 1 << 20)
    config = ta.StorageConfig(head_max_bytes=2**16, buffer_rows=1024, write_timeout=0.5)
    with ta.open(path, config=config) as db:
        fill(path / "blocks" / "filler")
        accepted: list[int] = []
        with pytest.raises(ta.BackpressureError) as err:
            for i in range(20):
                db.write(batch(i))
                accepted.append(i)
        assert len(accepted) >= 2**16 // (ROWS * 24)  # the head took what it had room for
        assert "No space left on device" in str(err.value)
        stats = db.stats()
        assert stats["blocks"] == 0 and stats["head_samples"] == ROWS * len(accepted)
        failure = stats["flush_error"]  # each retry tries the next block number
        assert re.match(rf"cannot write block b\d{{10}} in {path / 'blocks'}: No space", failure)
        assert "No space left on device; free space on that file system" in failure
        assert tmp_dirs(path) == []
        assert_holds(db, accepted)  # readable all along
        (path / "blocks" / "filler").unlink()
        wait_for(lambda: db.stats()["flush_error"] is None and db.stats()["blocks"] > 0)
        assert db.stats()["head_samples"] == 0
        db.write(batch(20))  # room again
        assert_holds(db, [*accepted, 20])
    with ta.open(path) as db:
        assert_holds(db, [*accepted, 20])


def test_a_full_data_directory_refuses_writes_then_recovers(tmp_path, small_fs):
    """The whole directory on a full file system: a write is refused with WalError (nothing of
    it stored), a flush with StorageError, both naming the path; reads go on; after freeing
    space writes and flushes succeed and everything acknowledged is there."""
    small_fs(tmp_path / "fs", 4 << 20)
    path = tmp_path / "fs" / "db"
    with ta.open(path) as db:
        db.write(batch(0))
        db.flush()
        db.write(batch(1))  # in the head and the WAL
        fill(tmp_path / "fs" / "filler")
        with pytest.raises(ta.WalError) as err:
            for i in range(2, 6):  # a record may still fit in a segment's last page
                db.write(batch(i))
        accepted = list(range(i))
        refused = i
        assert str(path / "wal") in str(err.value)
        assert "No space left on device" in str(err.value) and "not stored" in str(err.value)
        with pytest.raises(ta.TsdbError, match=f"{path}.*No space left on device"):
            db.flush()
        assert tmp_dirs(path) == []
        assert_holds(db, accepted)
        (tmp_path / "fs" / "filler").unlink()
        db.write(batch(refused))  # the refused write, retried
        db.flush()
        assert db.stats()["head_samples"] == 0
    with ta.open(path) as db:
        assert_holds(db, [*accepted, refused])


def test_a_read_only_blocks_directory(tmp_path, small_fs):
    """blocks/ remounted read-only: flush and close raise StorageError saying so (the database
    stays open and readable); a directory whose blocks/ is read-only still opens (a crash's
    leftover .tmp left for later) and takes writes into the WAL; once writable, all is stored."""
    path = tmp_path / "db"
    blocks = path / "blocks"
    small_fs(blocks, 4 << 20)

    def expect_read_only_error(action: Callable[[], object]) -> None:
        with pytest.raises(ta.StorageError) as err:
            action()
        assert re.match(rf"cannot write block b\d{{10}} in {blocks}: Read-only", str(err.value))
        assert "the file system is mounted read-only: remount it read-write" in str(err.value)
        assert err.value.errno == errno.EROFS

    db = ta.open(path)
    db.write(batch(0))
    db.flush()
    db.write(batch(1))
    assert _run("mount", "-o", "remount,ro", blocks)
    expect_read_only_error(db.flush)
    expect_read_only_error(db.close)
    assert_holds(db, [0, 1])
    assert _run("mount", "-o", "remount,rw", blocks)
    db.close()

    (blocks / "b0000000009.tmp").mkdir()  # a flush a crash cut short
    assert _run("mount", "-o", "remount,ro", blocks)
    try:
        db = ta.open(path)
        assert_holds(db, [0, 1])
        db.write(batch(2))
        expect_read_only_error(db.flush)
        assert_holds(db, [0, 1, 2])
    finally:
        assert _run("mount", "-o", "remount,rw", blocks)
    db.close()
    with ta.open(path) as db:
        assert tmp_dirs(path) == []
        assert_holds(db, [0, 1, 2])
