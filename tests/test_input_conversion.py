"""Input forms the write contract accepts are converted exactly; the rest raise InputError."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import tsdb_arrow as ta


def _ms(db, selector="m"):
    return db.select(selector).collect()["timestamp"].dt.epoch("ms").to_list()


def test_label_named_series_ref_is_refused_and_the_database_stays_usable(tmp_path):
    """A label called "series_ref" (the internal ref column's name) raises an InputError
    naming it; later writes, flushes, close and reopen work."""
    bad = pl.DataFrame(
        {"timestamp": [1, 2], "value": [1.0, 2.0], "__name__": "m", "series_ref": ["a", "b"]}
    )
    with ta.open(tmp_path / "db") as db:
        with pytest.raises(ta.InputError, match="'series_ref' is reserved"):
            db.write(bad)
        assert db.write(pl.DataFrame({"timestamp": [3], "value": [3.0], "__name__": "m"})).rows == 1
        db.flush()
        assert db.select().collect().height == 1
    with ta.open(tmp_path / "db") as again:
        assert _ms(again) == [3]


def test_pandas_nan_values_are_samples_not_nulls(db):
    """NaN and the stale marker in a pandas float column are stored bit for bit, not
    refused as nulls."""
    stale = np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0]
    values = np.array([1.0, np.nan, stale])
    db.write(pd.DataFrame({"timestamp": [1, 2, 3], "value": values, "__name__": "m"}))
    got = db.select("m").collect()["value"].to_numpy()
    assert got.view(np.uint64).tolist() == values.view(np.uint64).tolist()


@pytest.mark.parametrize(
    ("moment", "expected_ms"),
    [
        (dt.datetime(2024, 1, 1, 0, 0, 0, 123456), 1_704_067_200_123),
        (dt.datetime(1969, 12, 31, 23, 59, 59, 999500), -1),  # floored, as to_ms does
    ],
)
def test_sub_millisecond_datetimes_are_floored_to_ms(db, moment, expected_ms):
    """A microsecond datetime column with sub-ms digits is floored to its millisecond."""
    frame = pl.DataFrame({"timestamp": [moment], "value": [1.0], "__name__": "m"})
    db.write(frame.with_columns(pl.col("timestamp").dt.cast_time_unit("us")))
    assert _ms(db) == [expected_ms]


def test_pandas_nanosecond_timestamps_are_floored_to_ms(db):
    """A pandas nanosecond Timestamp is floored to its millisecond."""
    stamp = pd.Timestamp("2024-01-01T00:00:00.123456789")
    db.write(pd.DataFrame({"timestamp": [stamp], "value": [1.0], "__name__": "m"}))
    assert _ms(db) == [1_704_067_200_123]


@pytest.mark.parametrize("text", [" 1", "1_000"])
def test_value_strings_arrow_cannot_cast_raise_input_error_with_the_row(db, text):
    """Strings Python's float() accepts but Arrow's cast does not raise an InputError naming
    the row and the text, and store nothing."""
    table = pa.table({"timestamp": [1, 2], "value": ["2", text], "__name__": ["m", "m"]})
    with pytest.raises(ta.InputError, match=f"row 1: 'value' '{text}' is not a number"):
        db.write(table)
    assert db.stats()["samples"] == 0
