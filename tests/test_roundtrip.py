"""Writing samples and reading them back: exact, bit for bit, in every input form."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import tsdb_arrow as ta

from .conftest import canonical, synthetic

STALE_NAN = np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0]


def bits(frame: pl.DataFrame) -> np.ndarray:
    return frame["value"].to_numpy().view(np.uint64)


def test_real_data_round_trips_exactly_after_flush_and_reopen(tmp_path, real_table):
    with ta.open(tmp_path / "db") as db:
        assert db.write(real_table).rows == real_table.num_rows
        db.flush()
        stats = db.stats()
        assert stats["series"] == 512
        assert stats["samples"] == 460_800
        assert stats["blocks"] == 1
    with ta.open(tmp_path / "db") as db:
        got = canonical(db.select().collect())
    want = canonical(pl.from_arrow(real_table).select(got.columns))
    assert got.drop("value").equals(want.drop("value"))
    np.testing.assert_array_equal(bits(got), bits(want))


def test_select_before_flush_reads_the_head(db):
    frame = synthetic(5, 10)
    db.write(frame)
    assert db.stats()["head_samples"] == 50
    assert canonical(db.select().collect()).equals(canonical(frame))


def test_every_float_bit_pattern_survives(db):
    specials = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            5e-324,
            -5e-324,
            2.2250738585072014e-308,
            1 / 3,
            3.3e-300,
            np.finfo(np.float64).max,
            STALE_NAN,
        ],
        dtype=np.float64,
    )
    payload_nans = (np.uint64(0x7FF8000000000000) | np.arange(1, 6, dtype=np.uint64)).view(
        np.float64
    )
    neg_nan = np.array([0xFFF8000000000001], dtype=np.uint64).view(np.float64)
    values = np.concatenate([specials, payload_nans, neg_nan])
    frame = pl.DataFrame({"timestamp": np.arange(len(values)) * 1000, "value": values})
    db.write(frame, metric="weird")
    db.flush()
    got = db.select("weird").collect()
    np.testing.assert_array_equal(got["value"].to_numpy().view(np.uint64), values.view(np.uint64))


def test_extreme_timestamps_round_trip(db):
    ts = np.array([-(2**62), -1, 0, 1, 2**40, 2**62], dtype=np.int64)
    db.write(pa.table({"timestamp": ts, "value": np.ones(len(ts))}), metric="t")
    db.flush()
    got = db.select("t").collect()
    np.testing.assert_array_equal(got["timestamp"].dt.epoch("ms").to_numpy(), ts)


@pytest.mark.parametrize("kind", ["arrow", "batch", "polars", "pandas"])
def test_input_forms(db, kind):
    frame = synthetic(3, 4)
    data = {
        "arrow": frame.to_arrow(),
        "batch": frame.to_arrow().to_batches()[0],
        "polars": frame,
        "pandas": frame.to_pandas(),
    }[kind]
    assert db.write(data).rows == 12
    assert canonical(db.select().collect()).equals(canonical(frame))


def test_datetime_timestamps_and_metric_argument(db):
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    frame = pl.DataFrame(
        {
            "timestamp": pl.datetime_range(
                start, start + dt.timedelta(seconds=4), "1s", eager=True, time_unit="us"
            ),
            "value": [1, 2, 3, 4, 5],
            "host": ["a"] * 5,
        }
    )
    db.write(frame, metric="load")
    got = db.select('load{host="a"}').collect()
    assert got["timestamp"].dtype == pl.Datetime("ms", "UTC")
    assert (
        got["timestamp"].to_list()
        == frame["timestamp"]
        .dt.replace_time_zone(None)
        .dt.cast_time_unit("ms")
        .dt.replace_time_zone("UTC")
        .to_list()
    )
    assert got["value"].to_list() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert got.columns == ["timestamp", "value", "__name__", "host"]


def test_pandas_naive_datetime_is_utc(db):
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-01-01 00:00:00", "2026-01-01 00:00:01"]),
            "value": [1.0, 2.0],
            "__name__": ["m", "m"],
        }
    )
    db.write(frame)
    got = db.select("m").collect()
    assert got["timestamp"].dt.epoch("ms").to_list() == [1767225600000, 1767225601000]


def test_output_schema_sorting_and_absent_labels(db):
    frame = pl.DataFrame(
        {
            "__name__": ["m", "m", "m", "m"],
            "a": ["x", "x", None, ""],
            "b": [None, None, "y", "y"],
            "timestamp": [2000, 1000, 5, 6],
            "value": [2.0, 1.0, 3.0, 4.0],
        }
    )
    db.write(frame)
    got = db.select("m").collect()
    assert got.schema == pl.Schema(
        {
            "timestamp": pl.Datetime("ms", "UTC"),
            "value": pl.Float64,
            "__name__": pl.String,
            "a": pl.String,
            "b": pl.String,
        }
    )
    # "" and null both mean "label absent": rows 3 and 4 are one series {__name__="m", b="y"}.
    assert db.series("m").height == 2
    rows = got.with_columns(pl.col("timestamp").dt.epoch("ms")).rows()
    by_series = {}
    for ts, value, _, a, b in rows:
        by_series.setdefault((a, b), []).append((ts, value))
    assert by_series == {("x", None): [(1000, 1.0), (2000, 2.0)], (None, "y"): [(5, 3.0), (6, 4.0)]}
    # Sorted by series, then time: each series is one contiguous, time-ordered run.
    keys = [(a, b) for _, _, _, a, b in rows]
    assert keys == sorted(keys, key=keys.index)


def test_nothing_matching_is_an_empty_frame_not_an_error(db):
    db.write(synthetic(2, 3))
    got = db.select('nope{job="x"}').collect()
    assert got.height == 0
    # The labels the selector requires, as a found series would have them.
    assert got.columns == ["timestamp", "value", "__name__", "job"]
    empty = db.select("temp", start=0, end=1).collect()
    assert empty.height == 0
    assert "job" in empty.columns


def test_time_range_is_inclusive_and_accepts_datetimes(db):
    frame = pl.DataFrame({"timestamp": [1000, 2000, 3000, 4000], "value": [1.0, 2.0, 3.0, 4.0]})
    db.write(frame, metric="m")
    db.flush()
    assert db.select("m", start=2000, end=3000).collect()["value"].to_list() == [2.0, 3.0]
    start = dt.datetime(1970, 1, 1, 0, 0, 3, tzinfo=dt.timezone.utc)
    assert db.select("m", start=start).collect()["value"].to_list() == [3.0, 4.0]
    assert db.select("m", end="1970-01-01T00:00:01Z").collect()["value"].to_list() == [1.0]
    with pytest.raises(ta.TimeRangeError):
        db.select("m", start=3000, end=2000)


def test_series_lists_label_sets(db):
    db.write(synthetic(6, 2))
    series = db.series('{job="api"}')
    assert series.height == 3
    assert set(series["job"].to_list()) == {"api"}
    assert db.series().height == 6


def test_selector_operators(db):
    db.write(synthetic(6, 2))
    assert db.series("temp").height == 2
    assert db.series('{__name__=~"temp|up"}').height == 4
    assert db.series('requests_total{instance!="host-0"}').height == 1
    assert db.series('{__name__=~".+", instance!~"host-[0-2]"}').height == 3
    with pytest.raises(ta.SelectorError, match="no matcher that requires a non-empty value"):
        db.series('{instance!~"host-[0-2]"}')  # Prometheus refuses it too
    assert db.series('{instance=~"host-1"}').height == 1
    assert db.series('{instance=~"host-"}').height == 0  # regexes are fully anchored
    with pytest.raises(ta.SelectorError):
        db.series("rate(up[5m])")


def test_rfc3339_text_timestamps(db):
    frame = pl.DataFrame(
        {
            "timestamp": [
                "2026-01-01T00:00:00Z",
                "2026-01-01T01:00:00.250+01:00",
                "2026-01-01T00:00:01",
            ],
            "value": [1.0, 2.0, 3.0],
        }
    )
    db.write(frame, metric="m")
    got = db.select("m").collect()["timestamp"].dt.epoch("ms").to_list()
    assert got == [1767225600000, 1767225600250, 1767225601000]
