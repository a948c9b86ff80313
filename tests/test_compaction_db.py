"""Compaction and retention through the Database: same content, fewer and smaller blocks."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

import tsdb_arrow as ta

HOUR = 3_600_000
T0 = 1_795_392_000_000  # 2026-11-22T00:00Z, a multiple of every compaction range
STALE = np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0]


def data(n_series: int = 20, hours: int = 30, step: int = 60_000, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    per = hours * HOUR // step
    values = np.round(rng.normal(size=n_series * per), 2)
    values[::101] = STALE
    values[7] = -0.0
    return pl.DataFrame(
        {
            "timestamp": T0 + np.tile(np.arange(per) * step, n_series).astype(np.int64),
            "value": values,
            "__name__": "m",
            "host": np.repeat([f"h{i}" for i in range(n_series)], per),
        }
    )


def bits(db: ta.Database) -> tuple[list, np.ndarray]:
    got = db.select().collect().sort(["host", "timestamp"])
    return (
        list(zip(got["host"].to_list(), got["timestamp"].dt.epoch("ms").to_list())),
        got["value"].to_numpy().view(np.uint64),
    )


def write_shuffled(db: ta.Database, frame: pl.DataFrame, batches: int) -> None:
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=5)
    size = -(-shuffled.height // batches)
    for i in range(batches):
        db.write(shuffled.slice(i * size, size))
        db.flush()  # every batch its own blocks: they overlap


def test_compact_merges_overlapping_blocks_bit_exact_and_smaller(tmp_path):
    frame = data()
    with ta.open(tmp_path / "db", config={"compaction_interval": 3600}) as db:
        write_shuffled(db, frame, 8)
        before = db.stats()
        keys, values = bits(db)
        assert before["blocks"] > 8
        done = db.compact()
        after = db.stats()
        assert bits(db)[0] == keys and np.array_equal(bits(db)[1], values)
        assert after["samples"] == before["samples"] == frame.height
        assert after["blocks"] < before["blocks"]
        assert after["bytes_on_disk"] < before["bytes_on_disk"]
        assert sum(len(m["sources"]) for m in done["merged"]) == before["blocks"]
        assert done["expired"] == []
        assert db.compact()["merged"] == []  # nothing left to do
    with ta.open(tmp_path / "db") as db:  # the sources are gone from disk
        assert db.stats()["blocks"] == after["blocks"]
        assert bits(db)[0] == keys and np.array_equal(bits(db)[1], values)


def test_one_call_load_and_shuffled_batches_compact_to_the_same_bytes(tmp_path):
    """Once its ranges are complete (a sample three days later), 12 h of data ends as one
    block whether it came in one call or in shuffled batches, byte for byte."""
    frame = data(hours=12)
    later = pl.DataFrame({"timestamp": [T0 + 72 * HOUR], "value": [1.0], "__name__": "late"})
    payloads = []
    for name, batches in (("one", 0), ("shuffled", 10)):
        with ta.open(tmp_path / name, config={"compaction_interval": 3600}) as db:
            if batches:
                write_shuffled(db, frame, batches)
            else:
                db.write(frame)
            db.write(later)
            db.flush()
            db.compact()
            blocks = [b for b in db._blockset.blocks() if b.meta.min_time < T0 + 72 * HOUR]
            assert len(blocks) == 1
            path = tmp_path / name / "blocks" / blocks[0].meta.id
            payloads.append(
                ((path / "chunks.parquet").read_bytes(), (path / "series.parquet").read_bytes())
            )
    assert payloads[0] == payloads[1]


def test_the_background_thread_compacts_by_itself(tmp_path):
    config = {"compaction_interval": 0.2}
    with ta.open(tmp_path / "db", config=config) as db:
        write_shuffled(db, data(hours=4), 5)
        deadline = time.monotonic() + 60
        while db.stats()["blocks"] > 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert db.stats()["blocks"] <= 2
        assert db.stats()["samples"] == data(hours=4).height


def test_compaction_removes_deleted_samples_and_forgets_the_tombstones(tmp_path):
    with ta.open(tmp_path / "db", config={"compaction_interval": 3600}) as db:
        db.write(data(hours=6))
        db.flush()
        db.delete('m{host=~"h1|h2"}', start=T0 + HOUR, end=T0 + 2 * HOUR)
        keys, values = bits(db)
        assert (tmp_path / "db" / "tombstones.parquet").exists()
        db.compact()
        assert not (tmp_path / "db" / "tombstones.parquet").exists()
        assert db._tombstones is None
        assert bits(db)[0] == keys and np.array_equal(bits(db)[1], values)
        assert db.stats()["samples"] == len(keys)
        stored = sum(b.meta.num_samples for b in db._blockset.blocks())
        assert stored == len(keys)  # physically gone


def test_retention_by_age_and_by_bytes(tmp_path):
    config = {"retention": timedelta(hours=10), "compaction_interval": 3600}
    with ta.open(tmp_path / "db", config=config) as db:
        db.write(data(hours=30))
        db.flush()
        done = db.compact()
        assert done["expired"]
        newest = T0 + 30 * HOUR - 60_000
        cutoff = newest - 10 * HOUR
        assert all(b.meta.max_time >= cutoff for b in db._blockset.blocks())
        got = db.select().collect()["timestamp"].dt.epoch("ms")
        recent = data(hours=30).filter(pl.col("timestamp") >= cutoff).height
        assert got.filter(got >= cutoff).len() == recent  # nothing newer than the cutoff went
        assert got.min() < cutoff  # whole blocks: the oldest kept one reaches back past it
    with ta.open(tmp_path / "bytes", config={"compaction_interval": 3600}) as db:
        db.write(data(hours=30))
        db.flush()
        total = db.stats()["bytes_on_disk"]
    config = {"retention_bytes": total // 2, "compaction_interval": 3600}
    with ta.open(tmp_path / "bytes", config=config) as db:
        db.compact()
        assert db.stats()["bytes_on_disk"] <= total // 2
        assert db.stats()["blocks"] >= 1


def test_a_reader_during_compaction_sees_each_sample_once(tmp_path):
    with ta.open(tmp_path / "db", config={"compaction_interval": 3600}) as db:
        write_shuffled(db, data(hours=4), 5)
        reader = ta.open(tmp_path / "db", read_only=True)
        keys, values = bits(reader)
        lf = reader.select()
        snapshot, release = reader._snapshot()  # a query in flight on the old blocks
        db.compact()
        assert lf.collect().height == len(keys)  # finds its blocks gone, refreshes
        release()
        reader.refresh()
        assert bits(reader)[0] == keys and np.array_equal(bits(reader)[1], values)
        assert reader.stats()["blocks"] == db.stats()["blocks"]
        with pytest.raises(ta.ReadOnlyError):
            reader.compact()
        reader.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"compaction_levels": (3 * HOUR,)}, "multiple"),
        ({"retention": -5}, "retention"),
        ({"retention_bytes": 0}, "retention_bytes"),
        ({"compaction_interval": 0}, "compaction_interval"),
    ],
)
def test_bad_compaction_settings_are_refused(config, message):
    with pytest.raises(ta.ConfigError, match=message):
        ta.StorageConfig(**config)
