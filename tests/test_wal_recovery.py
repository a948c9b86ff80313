"""The database's write-ahead log: acknowledged writes survive SIGKILL, bit for bit."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import tsdb_arrow as ta
from tsdb_arrow.ingest.wal import WalCorruptionWarning

HOUR = 3_600_000
STALE = np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0]
PAYLOAD_NAN = np.array([0x7FF8DEADBEEF0001], dtype=np.uint64).view(np.float64)[0]

# The child writes the batches of batches(), then reports and waits for its SIGKILL.
CHILD = textwrap.dedent(
    """
    import signal, sys
    sys.path.insert(0, sys.argv[3])
    import tsdb_arrow as ta
    from test_wal_recovery import batches
    config = eval(sys.argv[2])
    db = ta.open(sys.argv[1], config=config)
    for i, frame in enumerate(batches()):
        db.write(frame)
        if i == 2:
            db.flush()  # some samples in blocks, the WAL truncated behind them
    print("written", flush=True)
    signal.pause()
    """
)


def batches() -> list[pl.DataFrame]:
    """Five writes: new series, repeats, samples reaching back, odd NaNs, and a second
    metric's new series shuffled with repeated pairs (the head and the log hold that batch
    sorted by series: its later rows of a pair must still win)."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(5):
        n = 500
        values = rng.normal(size=n)
        values[::97] = STALE
        values[5] = PAYLOAD_NAN
        values[6] = -0.0
        ts = i * HOUR + np.arange(n) * 1000
        if i == 3:
            ts = rng.integers(0, 6 * HOUR, n)
        elif i == 4:
            ts = i * HOUR + rng.integers(0, 150, n) * 1000
        out.append(
            pl.DataFrame(
                {
                    "timestamp": ts.astype(np.int64),
                    "value": values,
                    "__name__": "m" if i < 4 else "other",
                    "host": [f"h{(j + i) % 7}" for j in range(n)],
                }
            )
        )
    return out


def expected() -> pl.DataFrame:
    """The last write of every (series, timestamp), as a select returns it."""
    rows = pl.concat(batches()).with_row_index("order")
    last = rows.sort("order").group_by(["__name__", "host", "timestamp"]).last()
    return last.sort(["__name__", "host", "timestamp"]).select(
        "__name__", "host", "timestamp", "value"
    )


def stored(db: ta.Database) -> pl.DataFrame:
    got = db.select().collect()
    got = got.with_columns(pl.col("timestamp").dt.epoch("ms"))
    return got.sort(["__name__", "host", "timestamp"]).select(
        "__name__", "host", "timestamp", "value"
    )


def assert_bit_equal(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.select("__name__", "host", "timestamp").equals(
        want.select("__name__", "host", "timestamp")
    )
    assert np.array_equal(
        got["value"].to_numpy().view(np.uint64), want["value"].to_numpy().view(np.uint64)
    )


def run_and_kill(path: Path, config: dict) -> None:
    """Run CHILD's writes in a process and SIGKILL it once they are acknowledged.

    Blocks of a day: the writes span 6 h, so with 2 h blocks the background flush would be
    due and could run before the kill (on a loaded machine), moving samples out of the WAL.
    """
    from tests.processes import kill_after  # here: the child imports this module alone

    config = {"block_duration": 24 * HOUR, **config}
    kill_after(
        [sys.executable, "-c", CHILD, str(path), repr(config), str(Path(__file__).parent)],
        "written",
    )


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
def test_sigkill_after_acknowledged_writes_loses_nothing(tmp_path, fsync):
    run_and_kill(tmp_path / "db", {"wal_fsync": fsync})
    with ta.open(tmp_path / "db") as db:
        stats = db.stats()
        assert stats["wal"]["replayed_samples"] == 2 * 500  # the writes after the flush
        assert_bit_equal(stored(db), expected())
    with ta.open(tmp_path / "db") as db:  # close flushed the replayed head: nothing twice
        assert db.stats()["wal"]["replayed_samples"] == 0
        assert db.stats()["samples"] == expected().height
        assert_bit_equal(stored(db), expected())


def test_kept_window_survives_through_the_checkpoint(tmp_path):
    """A flush due to the head's span keeps its newest window in the head: the WAL segments
    before the flush go, and that window lives on in a checkpoint."""
    path = tmp_path / "db"
    with ta.open(path) as db:
        db.write(pl.DataFrame({"timestamp": [0, HOUR], "value": [1.0, 2.0], "__name__": "m"}))
        db.write(pl.DataFrame({"timestamp": [3 * HOUR], "value": [3.0], "__name__": "k"}))
        assert db._background.wait_idle(timeout=60)
        stats = db.stats()
        assert stats["blocks"] == 1 and stats["head_samples"] == 1
        wal = path / "wal"
        checkpoints = sorted(p.name for p in wal.iterdir() if p.name.startswith("checkpoint."))
        assert len(checkpoints) == 1
        number = int(checkpoints[0].split(".")[1])
        assert all(int(p.stem) >= number for p in wal.glob("*.wal"))  # older segments gone
        # Simulate a crash: copy the directory as it is now (the lock is not copied).
        import shutil

        shutil.copytree(path, tmp_path / "crashed", ignore=shutil.ignore_patterns("LOCK"))
    with ta.open(tmp_path / "crashed") as db:
        assert db.stats()["wal"]["replayed_samples"] == 1
        got = db.select().collect().sort("timestamp")
        assert got["value"].to_list() == [1.0, 2.0, 3.0]
        assert got["__name__"].to_list() == ["m", "m", "k"]  # the series came back too


def test_a_torn_last_record_drops_that_batch_whole_and_keeps_the_rest(tmp_path):
    path = tmp_path / "db"
    run_and_kill(path, {"wal_fsync": "never"})
    segments = sorted((path / "wal").glob("*.wal"))
    last = max((p for p in segments if p.stat().st_size), key=lambda p: int(p.stem))
    size = last.stat().st_size
    with open(last, "r+b") as f:
        f.truncate(size - 10)  # the tail of the last batch's record never reached the disk
    with pytest.warns(WalCorruptionWarning, match=rf"{last.name} .* offset \d+") as warned:
        db = ta.open(path)
    assert len(warned) == 1
    with db:
        want = pl.concat(batches()[:4]).with_row_index("order")
        want = (
            want.sort("order")
            .group_by(["__name__", "host", "timestamp"])
            .last()
            .sort(["__name__", "host", "timestamp"])
            .select("__name__", "host", "timestamp", "value")
        )
        assert_bit_equal(stored(db), want)  # the fifth batch is absent, not in part
        assert "other" not in db.series()["__name__"].to_list()
    with ta.open(path) as db:  # repaired: opens without a warning
        assert_bit_equal(stored(db), want)


def test_wal_false_replays_a_log_left_behind_then_flushes_and_removes_it(tmp_path):
    path = tmp_path / "db"
    run_and_kill(path, {})
    with ta.open(path, config={"wal": False}) as db:
        assert db.stats()["wal"] == {
            "enabled": False,
            "fsync": None,
            "files": 0,
            "bytes": 0,
            "replayed_samples": 1000,
        }
        assert db.stats()["head_samples"] == 0  # flushed at once: nothing unlogged in the head
        assert_bit_equal(stored(db), expected())
    assert not (path / "wal").exists()


def test_a_wal_append_that_fails_stores_nothing_of_the_batch(tmp_path, monkeypatch):
    import tsdb_arrow.ingest.wal as wal

    with ta.open(tmp_path / "db") as db:
        db.write(pl.DataFrame({"timestamp": [1], "value": [1.0], "__name__": "m"}))
        real_write = os.write

        def disk_full(fd, data):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(wal.os, "write", disk_full)
        with pytest.raises(ta.TsdbError, match="No space left on device.*not stored") as err:
            db.write(pl.DataFrame({"timestamp": [2], "value": [2.0], "__name__": "new"}))
        assert "wal" in str(err.value)
        assert db.stats()["head_samples"] == 1
        assert db.series()["__name__"].to_list() == ["m"]  # the new series is not known
        monkeypatch.setattr(wal.os, "write", real_write)
        db.write(pl.DataFrame({"timestamp": [2], "value": [2.0], "__name__": "new"}))
        assert sorted(db.series()["__name__"].to_list()) == ["m", "new"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("wal_fsync", "sometimes", "must be one of 'always', 'interval', 'never'"),
        ("wal_fsync_interval", 0, "positive number of seconds"),
        ("wal", "yes", "True or False"),
        ("wal_segment_bytes", 10, ">= 65536"),
    ],
)
def test_bad_wal_settings_are_refused(field, value, message):
    with pytest.raises(ta.ConfigError, match=message):
        ta.StorageConfig(**{field: value})
