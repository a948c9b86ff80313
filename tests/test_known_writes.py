"""Writes that repeat admitted label sets take the remembered refs: same samples, same WAL
guarantees, and nothing is remembered of a refused batch."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import tsdb_arrow as ta
from tsdb_arrow.errors import InputError, WalError
from tsdb_arrow.ingest import journal
from tsdb_arrow.ingest.wal import Replay

STALE = np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0]
PAYLOAD_NAN = np.array([0x7FF8DEADBEEF0001], dtype=np.uint64).view(np.float64)[0]
T0 = 1_795_392_000_000


def batch(step: int, n: int = 300, names: list[str] | None = None) -> pa.Table:
    """``n`` series of one sample each at T0 + step s; odd NaN payloads and -0.0 among them."""
    values = np.arange(n, dtype=np.float64) + step / 8
    values[::7] = STALE
    values[3] = PAYLOAD_NAN
    values[4] = -0.0
    return pa.table(
        {
            "timestamp": pa.array(np.full(n, T0 + step * 1000), pa.timestamp("ms", tz="UTC")),
            "value": values,
            "__name__": pa.array(names or ["m", "other"] * (n // 2), pa.large_string()),
            "host": pa.array([f"h{i % 17}" for i in range(n)], pa.large_string()),
            "id": pa.array([f"s{i}" if i > 2 else None for i in range(n)], pa.large_string()),
        }
    )


def stored(db: ta.Database) -> pl.DataFrame:
    frame = db.select().collect()
    return frame.sort("__name__", "host", "id", "timestamp", nulls_last=True)


def expected(tables: list[pa.Table]) -> pl.DataFrame:
    frame = pl.concat([pl.from_arrow(t) for t in tables], how="diagonal_relaxed")
    frame = frame.with_columns(pl.col("id").replace("", None))
    return frame.select(stored_columns := ["timestamp", "value", "__name__", "host", "id"]).sort(
        *stored_columns[2:], "timestamp", nulls_last=True
    )


def assert_bit_equal(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.height == want.height
    for name in ("__name__", "host", "id"):
        assert got[name].to_list() == want[name].to_list()
    assert got["timestamp"].cast(pl.Int64).to_list() == want["timestamp"].cast(pl.Int64).to_list()
    assert (
        got["value"].to_numpy().view(np.uint64) == want["value"].to_numpy().view(np.uint64)
    ).all()


def series_entries(path) -> list[int]:
    """Rows of the SERIES entry of each WAL record, in order (0: the record has none)."""
    out = []
    for _, record in Replay(path / journal.WAL_DIR):
        out.append(sum(t.num_rows for kind, t in record if kind == journal.SERIES))
    return out


def test_repeated_label_sets_hit_and_store_the_same_bits(tmp_path):
    tables = [batch(step) for step in range(4)]
    with ta.open(tmp_path / "db") as db:
        results = [db.write(t) for t in tables]
        known = db._known.stats()
        assert (known["hits"], known["series"]) == (3, 300)
        assert [r.rows for r in results] == [300] * 4
        assert [r.replaced for r in results] == [0] * 4
        assert db.stats()["series"] == 300
        assert series_entries(tmp_path / "db") == [300, 0, 0, 0]
        assert_bit_equal(stored(db), expected(tables))
    with ta.open(tmp_path / "db", read_only=True) as db:
        assert_bit_equal(stored(db), expected(tables))


def test_a_hit_counts_replaced_rows_as_the_full_path_does(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(batch(0))
        again = db.write(batch(0))  # every (series, time) again: the last write wins
        assert db._known.stats()["hits"] == 1
        assert (again.rows, again.replaced) == (300, 300)
        assert_bit_equal(stored(db), expected([batch(0)]))


def test_a_new_series_among_known_ones_is_logged_and_remembered(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(batch(0, 300))
        db.write(batch(1, 302))  # two series more
        db.write(batch(2, 302))
        assert db._known.stats()["hits"] == 1
        assert db.stats()["series"] == 302
        assert series_entries(tmp_path / "db") == [300, 2, 0]
        want = expected([batch(0, 300), batch(1, 302), batch(2, 302)])
        assert_bit_equal(stored(db), want)
    with ta.open(tmp_path / "db") as db:  # replayed: blocks after the close
        assert_bit_equal(stored(db), want)


def test_a_refused_batch_remembers_nothing(tmp_path):
    bad_names = ["m"] * 299 + ["0bad"]  # one invalid metric name: the batch is refused whole
    with ta.open(tmp_path / "db") as db:
        for _ in range(2):
            with pytest.raises(InputError, match="row 299"):
                db.write(batch(0, names=bad_names))
        assert len(db._known) == 0 and db.stats()["series"] == 0
        db.write(batch(1))
        assert len(db._known) == 300


def test_a_batch_the_wal_refused_is_not_remembered_and_logs_its_series_later(tmp_path, monkeypatch):
    with ta.open(tmp_path / "db") as db:
        db.write(batch(0, 300))
        real = db._journal.append

        def disk_full(record):
            raise WalError("disk full (injected)")

        monkeypatch.setattr(db._journal, "append", disk_full)
        with pytest.raises(WalError):
            db.write(batch(1, 310))  # ten new series, refused
        monkeypatch.setattr(db._journal, "append", real)
        assert db.stats()["series"] == 300 and len(db._known) == 300
        db.write(batch(2, 310))
        assert series_entries(tmp_path / "db") == [300, 10]
        want = expected([batch(0, 300), batch(2, 310)])
        assert_bit_equal(stored(db), want)
    with ta.open(tmp_path / "db", read_only=True) as db:
        assert_bit_equal(stored(db), want)


def test_a_crash_after_hits_replays_every_acknowledged_sample(tmp_path):
    tables = [batch(step) for step in range(3)]
    db = ta.open(tmp_path / "db")
    for t in tables:
        db.write(t)
    assert db._known.stats()["hits"] == 2
    db._journal.close()  # as a SIGKILL leaves it: logged, never flushed
    db._lockfile.release()
    with ta.open(tmp_path / "db") as reopened:
        assert reopened.replayed_samples == 900
        assert_bit_equal(stored(reopened), expected(tables))


def test_histogram_batches_hit_too(tmp_path):
    from tsdb_arrow.model import HISTOGRAM_FIELDS

    def hist_batch(step: int) -> pa.Table:
        n = 4
        fields = {
            "scale": pa.array([0] * n, pa.int8()),
            "count": pa.array([step + 1] * n, pa.uint64()),
            "zero_count": pa.array([0] * n, pa.uint64()),
            "zero_threshold": pa.array([0.0] * n),
            "positive_offset": pa.array([0] * n, pa.int32()),
            "positive_counts": pa.array([[step + 1]] * n, pa.large_list(pa.uint64())),
            "negative_offset": pa.array([0] * n, pa.int32()),
            "negative_counts": pa.array([[]] * n, pa.large_list(pa.uint64())),
            "sum": pa.array([1.5 * step] * n),
            "min": pa.array([1.0] * n),
            "max": pa.array([1.5] * n),
        }
        hist = pa.StructArray.from_arrays(
            [fields[f.name].cast(f.type) for f in HISTOGRAM_FIELDS], fields=HISTOGRAM_FIELDS
        )
        return pa.table(
            {
                "timestamp": pa.array(np.full(n, T0 + step * 1000), pa.timestamp("ms", tz="UTC")),
                "__name__": pa.array(["h"] * n, pa.large_string()),
                "pod": pa.array([f"p{i}" for i in range(n)], pa.large_string()),
                "histogram": hist,
            }
        )

    with ta.open(tmp_path / "db") as db:
        for step in range(3):
            db.write(hist_batch(step))
        assert db._known.stats()["hits"] == 2
        got = db.select_histograms().collect().sort("pod", "timestamp")
        assert got.height == 12
        assert got["histogram"].struct.field("count").to_list() == [1, 2, 3] * 4


def test_a_hit_with_a_series_twice_counts_its_repeats(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(batch(0))
        twice = pa.concat_tables([batch(1), batch(1)])
        result = db.write(twice)
        assert db._known.stats()["hits"] == 1
        assert (result.rows, result.replaced) == (600, 300)
        assert_bit_equal(stored(db), expected([batch(0), batch(1)]))


def test_a_hit_reaching_back_into_blocks_counts_what_it_replaces(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(batch(0))
        db.write(batch(1))
        db.flush()
        result = db.write(batch(0))  # every sample of the first batch again, now in a block
        assert db._known.stats()["hits"] == 2
        assert (result.rows, result.replaced) == (300, 300)
        db.flush()
        assert db.stats()["samples"] == 600
        assert_bit_equal(stored(db), expected([batch(0), batch(1)]))
