"""Several threads writing and reading one Database; one owner per data directory."""

from __future__ import annotations

import subprocess
import sys
import threading

import polars as pl
import pytest

import tsdb_arrow as ta

from .conftest import synthetic

T0 = 1_700_000_000_000  # Nov 2023, in ms


def test_concurrent_writers_and_readers_lose_nothing(tmp_path):
    config = ta.StorageConfig(buffer_rows=1024, head_max_bytes=2**18)
    errors: list[BaseException] = []
    with ta.open(tmp_path / "db", config=config) as db:

        def writer(w: int) -> None:
            try:
                for i in range(20):
                    frame = synthetic(5, 50, seed=w * 100 + i).with_columns(
                        pl.lit(f"w{w}").alias("writer"),
                        pl.col("timestamp") + i * 10**8,
                    )
                    db.write(frame)
                    if i % 7 == 0:
                        db.flush()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        def reader() -> None:
            try:
                for _ in range(15):
                    got = db.select('{writer=~"w.*"}').collect()
                    # Whatever a reader sees is consistent: no duplicates, sorted per series.
                    assert got.select(pl.exclude("value")).is_duplicated().sum() == 0
                    db.stats()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        got = db.select().collect()
        assert got.height == 4 * 20 * 250
        assert got.group_by("writer").len().sort("writer")["len"].to_list() == [5000] * 4
        assert db.stats()["series"] == 4 * 5


def _files_bytes(directories) -> int:
    return sum(f.stat().st_size for d in directories for f in d.rglob("*") if f.is_file())


def test_stats_while_another_thread_flushes_sees_only_whole_blocks(tmp_path):
    """stats() runs while flushes write and rename block directories: it never fails, and its
    counts and bytes only grow, from whole visible blocks."""
    rounds = 40
    seen: list[dict] = []
    errors: list[BaseException] = []
    started, done = threading.Event(), threading.Event()
    with ta.open(tmp_path / "db") as db:

        def watch() -> None:
            try:
                while not done.is_set():
                    seen.append(db.stats())
                    started.set()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
            finally:
                started.set()

        watcher = threading.Thread(target=watch)
        watcher.start()
        started.wait()
        try:
            for i in range(rounds):
                db.write(synthetic(10, 100, start=T0 + i * 2 * 3_600_000, step=1000, seed=i))
                db.flush()
        finally:
            done.set()
            watcher.join()
        final = db.stats()
    assert not errors, errors
    assert len(seen) >= 1
    blocks = [s["blocks"] for s in seen]
    on_disk = [s["bytes_on_disk"] for s in seen]
    assert blocks == sorted(blocks) and on_disk == sorted(on_disk)
    assert all((s["bytes_on_disk"] > 0) == (s["blocks"] > 0) for s in seen)
    assert all(s["block_samples"] == s["blocks"] * 1000 for s in seen)
    assert final["blocks"] == rounds
    block_dirs = [d for d in (tmp_path / "db" / "blocks").iterdir() if d.is_dir()]
    assert len(block_dirs) == rounds
    assert final["bytes_on_disk"] == _files_bytes(block_dirs)


def test_stats_does_not_count_a_directory_being_written(tmp_path):
    """A ``.tmp`` block directory (a flush in progress) is not part of bytes_on_disk."""
    with ta.open(tmp_path / "db") as db:
        db.write(synthetic(5, 50))
        db.flush()
        blocks = [d for d in (tmp_path / "db" / "blocks").iterdir() if d.is_dir()]
        in_progress = tmp_path / "db" / "blocks" / "b9999999999.tmp"
        in_progress.mkdir()
        (in_progress / "chunks.parquet").write_bytes(b"x" * 100_000)
        stats = db.stats()
    assert stats["blocks"] == 1
    assert stats["bytes_on_disk"] == _files_bytes(blocks) > 0


def test_second_open_of_a_directory_fails_clearly(tmp_path):
    db = ta.open(tmp_path / "db")
    with pytest.raises(ta.LockedError, match="already open"):
        ta.open(tmp_path / "db")
    db.close()
    with ta.open(tmp_path / "db") as again:  # reopening after close works
        assert again.stats()["series"] == 0


def test_another_process_cannot_open_an_owned_directory(tmp_path):
    with ta.open(tmp_path / "db"):
        code = (
            "import sys, tsdb_arrow as ta\n"
            "try:\n    ta.open(sys.argv[1])\nexcept ta.LockedError as e:\n"
            "    print(e); sys.exit(3)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "db")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 3, done.stderr
    assert "already open" in done.stdout


def test_a_file_is_not_a_data_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ta.DataDirectoryError, match="cannot use .* as a data directory"):
        ta.open(tmp_path / "file")
