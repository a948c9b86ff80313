"""Histogram samples stored next to float samples: exact round trips, merges, refused input."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta

HOUR = 3_600_000
floats = st.floats(allow_nan=True, allow_infinity=False, width=64)
counts = st.lists(st.integers(0, 2**40), max_size=6)


@st.composite
def histograms(draw):
    pos, neg, zero = draw(counts), draw(counts), draw(st.integers(0, 1000))
    lo, hi = sorted([draw(floats.filter(lambda x: not math.isnan(x))) for _ in range(2)])
    return {
        "scale": draw(st.integers(-10, 20)),
        "count": zero + sum(pos) + sum(neg),
        "zero_count": zero,
        "zero_threshold": draw(st.sampled_from([0.0, 1e-9, 0.5])),
        "positive_offset": draw(st.integers(-1000, 1000)),
        "positive_counts": pos,
        "negative_offset": draw(st.integers(-1000, 1000)),
        "negative_counts": neg,
        "sum": draw(floats),
        "min": lo if draw(st.booleans()) else math.nan,
        "max": hi,
    }


def batch(hists, ts, job="a"):
    return pa.table(
        {
            "timestamp": pa.array(ts, pa.int64()),
            "histogram": pa.array(hists),
            "__name__": ["latency"] * len(ts),
            "job": [job] * len(ts),
        }
    )


def same(a: dict, b: dict) -> bool:
    """Equal field by field, floats compared bit for bit (so NaN payloads count)."""
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float):
            if np.float64(x).view(np.uint64) != np.float64(y).view(np.uint64):
                return False
        elif x != y:
            return False
    return True


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(histograms(), min_size=1, max_size=20))
def test_histograms_round_trip_exactly_through_blocks(tmp_path_factory, hists):
    path = tmp_path_factory.mktemp("h") / "db"
    ts = (np.arange(len(hists)) * 600_000).tolist()  # spans several block windows
    with ta.open(path) as db:
        assert db.write(batch(hists, ts)).rows == len(hists)
        in_head = db.select_histograms().collect()["histogram"].to_list()
    with ta.open(path) as db:
        got = db.select_histograms().collect()
        assert db.stats()["histogram_samples"] == len(hists)
    assert got["timestamp"].dt.epoch("ms").to_list() == ts
    for want, head_row, block_row in zip(hists, in_head, got["histogram"].to_list()):
        assert same(want, head_row) and same(want, block_row)


def test_last_write_wins_and_floats_live_alongside(tmp_path):
    h1 = {"scale": 1, "count": 1, "positive_counts": [1]}
    h2 = {"scale": 2, "count": 2, "zero_count": 2}
    with ta.open(tmp_path / "db") as db:
        db.write(batch([h1, h1], [1000, 2000]))
        db.write(
            pl.DataFrame(
                {
                    "timestamp": [1000, 2000],
                    "value": [0.5, 0.7],
                    "__name__": ["latency_avg"] * 2,
                    "job": ["a"] * 2,
                }
            )
        )
        db.flush()
        db.write(batch([h2], [2000]))  # newer sample for an existing (series, timestamp)
        got = db.select_histograms('latency{job="a"}').collect()
        assert [h["scale"] for h in got["histogram"].to_list()] == [1, 2]
        db.flush()
        assert db.stats()["blocks"] == 2
        assert [h["count"] for h in db.select_histograms().collect()["histogram"].to_list()] == [
            1,
            2,
        ]
        assert db.select("latency_avg").collect()["value"].to_list() == [0.5, 0.7]
        assert db.select("latency").collect().height == 0  # no float samples in that series
        lazy = db.select_histograms(start=1500).filter(pl.col("job") == "a").select("timestamp")
        assert lazy.collect()["timestamp"].dt.epoch("ms").to_list() == [2000]


def test_histograms_flush_by_themselves_and_keep_the_newest_window(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(batch([{"scale": 0, "count": 0}] * 3, [0, HOUR, 2 * HOUR + 1]))
        assert db._background.wait_idle(timeout=60)
        stats = db.stats()
        assert stats["blocks"] == 1 and stats["histogram_samples"] == 3
        assert db.select_histograms().collect().height == 3


BAD = [
    ({"scale": 0, "count": 1, "positive_counts": [-1, 2]}, "negative count"),
    ({"scale": 0, "count": 3, "positive_counts": [1]}, "differs from zero_count plus the bucket"),
    ({"scale": 21, "count": 0}, "outside -10..20"),
    ({"scale": 0, "count": 0, "zero_threshold": float("nan")}, "zero_threshold must be finite"),
    ({"scale": 0, "count": 0, "min": 2.0, "max": 1.0}, "greater than max"),
    ({"count": 0}, "'scale' is required"),
    ({"scale": 0, "count": 1, "positive_counts": [0.5, 0.5]}, "not a whole number"),
]


@pytest.mark.parametrize(("bad", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_histograms_are_refused_and_nothing_is_stored(tmp_path, bad, message):
    with ta.open(tmp_path / "db") as db:
        db.write(batch([{"scale": 0, "count": 0}], [1]))
        good = {"scale": 0, "count": 0}
        with pytest.raises(ta.InputError, match=message) as err:
            db.write(batch([good, bad], [2, 3], job="new"))
        assert "row 1" in str(err.value)
        assert db.stats()["histogram_samples"] == 1
        assert db.stats()["series"] == 1


def test_unknown_histogram_fields_are_refused_by_name(tmp_path):
    with ta.open(tmp_path / "db") as db:
        good = {"scale": 0, "count": 0}
        with pytest.raises(ta.InputError, match=r"'histogram' has unknown fields \['buckets'\]"):
            db.write(batch([good, {**good, "buckets": [1]}], [2, 3]))
        assert db.stats()["histogram_samples"] == 0
        assert db.stats()["series"] == 0


def test_value_and_histogram_in_one_batch_is_refused(tmp_path):
    with ta.open(tmp_path / "db") as db:
        table = batch([{"scale": 0, "count": 0}], [1]).append_column("value", pa.array([1.0]))
        with pytest.raises(ta.InputError, match="not both"):
            db.write(table)
        with pytest.raises(ta.InputError, match="must be a struct"):
            db.write(pa.table({"timestamp": [1], "histogram": [1.0], "__name__": ["x"]}))
