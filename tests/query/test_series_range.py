"""``Database.series(start=, end=)``: the series with samples in a range, head and blocks, as
Prometheus' series and label endpoints decide it (chunk time spans), deletions included."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import tsdb_arrow as ta
from tsdb_arrow.errors import TimeRangeError

T0 = 1_795_392_000_000
MIN = 60_000


def frame(name: str, host: str, ts) -> pl.DataFrame:
    ts = np.asarray(ts, np.int64)
    return pl.DataFrame(
        {"timestamp": ts, "value": np.arange(len(ts), dtype=np.float64), "__name__": name,
         "host": host}
    )  # fmt: skip


def hosts(db, selector=None, **kw) -> list[str]:
    got = db.series(selector, **kw)
    return sorted(got["host"].to_list()) if "host" in got.columns else []


def write_three(db) -> None:
    """a: minutes 0-9; b: minutes 0 and 50 (one chunk spanning the gap); c: minutes 30-39."""
    db.write(frame("m", "a", T0 + np.arange(10) * MIN))
    db.write(frame("m", "b", T0 + np.array([0, 50]) * MIN))
    db.write(frame("m", "c", T0 + np.arange(30, 40) * MIN))


@pytest.mark.parametrize("flushed", [False, True], ids=["head", "block"])
def test_series_in_a_range(tmp_path, flushed):
    with ta.open(tmp_path / "db") as db:
        write_three(db)
        if flushed:
            db.flush()
            assert db.stats()["blocks"] == 1
        assert hosts(db) == ["a", "b", "c"]
        assert hosts(db, start=T0 + 35 * MIN) == (["b", "c"])
        assert hosts(db, end=T0 + 5 * MIN) == ["a", "b"]
        assert hosts(db, start=T0 + 9 * MIN, end=T0 + 9 * MIN) == (
            ["a", "b"] if flushed else ["a"]  # b's chunk spans minute 9, the head is exact
        )
        assert hosts(db, start=T0 + 51 * MIN) == []
        assert hosts(db, 'm{host=~"a|c"}', start=T0 + 12 * MIN, end=T0 + 31 * MIN) == ["c"]
        assert db.series(start=T0 + 51 * MIN).columns == ["series_ref"]


def test_series_in_a_range_across_blocks_and_head(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(frame("m", "a", T0 + np.arange(3) * MIN))
        db.flush()
        db.write(frame("m", "b", T0 + 3 * 3_600_000 + np.arange(3) * MIN))
        db.flush()
        db.write(frame("m", "c", T0 + 6 * 3_600_000 + np.arange(3) * MIN))
        assert db.stats()["blocks"] == 2
        assert hosts(db, start=T0 + 3_600_000) == ["b", "c"]
        assert hosts(db, end=T0 + 4 * 3_600_000) == ["a", "b"]
        assert hosts(db, start=T0 + 3_600_000, end=T0 + 4 * 3_600_000) == ["b"]


def test_deleted_samples_do_not_count(tmp_path):
    with ta.open(tmp_path / "db") as db:
        write_three(db)
        db.flush()
        db.delete('m{host="c"}')
        db.delete('m{host="a"}', start=T0, end=T0 + 4 * MIN)
        assert hosts(db, start=T0 + 20 * MIN) == ["b"]  # c is deleted whole
        assert hosts(db, end=T0 + 3 * MIN) == ["b"]  # a's minutes 0-4 are deleted
        assert hosts(db, end=T0 + 6 * MIN) == ["a", "b"]
        db.write(frame("m", "c", [T0 + 45 * MIN]))  # written after the delete: it counts
        assert hosts(db, start=T0 + 20 * MIN) == ["b", "c"]


def test_histogram_series_count_by_block(tmp_path):
    hist = {
        "scale": 0, "count": 1, "zero_count": 0, "zero_threshold": 0.0, "positive_offset": 0,
        "positive_counts": [1], "negative_offset": 0, "negative_counts": [], "sum": 1.0,
        "min": 1.0, "max": 1.0,
    }  # fmt: skip
    table = pa.table(
        {
            "timestamp": pa.array([T0 + 40 * MIN], pa.int64()),
            "histogram": pa.array([hist]),
            "__name__": ["latency"],
            "host": ["h"],
        }
    )
    with ta.open(tmp_path / "db") as db:
        db.write(frame("m", "a", T0 + np.arange(3) * MIN))
        db.write(table)
        assert hosts(db, start=T0 + 30 * MIN) == ["h"]
        assert hosts(db, end=T0 + 30 * MIN) == ["a"]
        db.flush()
        assert hosts(db, start=T0 + 30 * MIN) == ["h"]
        assert hosts(db, start=T0 + 41 * MIN) == []
        db.delete("latency")
        assert hosts(db, start=T0 + 30 * MIN) == []


def test_a_bad_range_is_refused(tmp_path):
    with ta.open(tmp_path / "db") as db:
        write_three(db)
        with pytest.raises(TimeRangeError, match="lies after end"):
            db.series(start=T0 + MIN, end=T0)
        with pytest.raises(TimeRangeError):
            db.series(start="yesterday-ish")


def test_a_read_only_open_answers_the_same(tmp_path):
    with ta.open(tmp_path / "db") as db:
        write_three(db)
        db.flush()
        with ta.open(tmp_path / "db", read_only=True) as reader:
            assert hosts(reader, start=T0 + 35 * MIN) == ["b", "c"]


def test_whole_blocks_as_prometheus_label_endpoints_count_them(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(frame("m", "a", T0 + np.arange(3) * MIN))
        db.write(frame("m", "b", T0 + 100 * MIN + np.arange(3) * MIN))
        db.flush()  # one block: a at minutes 0-2, b at 100-102
        db.write(frame("m", "c", T0 + 6 * 3_600_000 + np.arange(3) * MIN))  # the head

        def blocks(**kw):
            got = db._series_between(None, kw.get("start"), kw.get("end"), whole_blocks=True)
            return sorted(got["host"].to_list()) if "host" in got.columns else []

        assert blocks(start=T0 + 50 * MIN, end=T0 + 60 * MIN) == ["a", "b"]
        assert hosts(db, start=T0 + 50 * MIN, end=T0 + 60 * MIN) == []
        assert blocks(start=T0 + 200 * MIN) == ["c"]
        assert blocks(start=T0 + 7 * 3_600_000) == []
        assert blocks(end=T0 - 1) == []
        assert blocks() == ["a", "b", "c"]
