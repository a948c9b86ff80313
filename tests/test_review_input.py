"""Review: input that the contract says is accepted (or refused with an InputError) but is not."""

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


def test_review_label_named_series_ref_does_not_poison_the_database(tmp_path):
    # A label called "series_ref" is a valid label name; it must be refused with an InputError
    # naming it, or stored. Today it is accepted and replaces the internal ref column, after
    # which every write, flush and close fails with a numpy TypeError.
    bad = pl.DataFrame(
        {"timestamp": [1, 2], "value": [1.0, 2.0], "__name__": "m", "series_ref": ["a", "b"]}
    )
    db = ta.open(tmp_path / "db")
    try:
        try:
            accepted = db.write(bad)
        except ta.InputError as exc:
            assert "series_ref" in str(exc)
            accepted = 0
        db.write(pl.DataFrame({"timestamp": [3], "value": [3.0], "__name__": "m"}))
        assert db.select().collect().height == accepted + 1
    finally:
        db.close()  # flushes: fails today as well
    with ta.open(tmp_path / "db") as again:
        assert again.select().collect().height == accepted + 1


def test_review_pandas_nan_values_are_samples_not_nulls(db):
    # pandas users send NaN (and the stale marker) like everyone else; pa.Table.from_pandas
    # turns NaN into null and write() then refuses it with "send NaN for a missing value".
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
def test_review_sub_millisecond_datetimes_are_converted(db, moment, expected_ms):
    # "timestamp ... any Arrow/Polars/pandas datetime, converted": a us/ns datetime with
    # sub-ms digits raises pyarrow.ArrowInvalid ("would lose data") today.
    frame = pl.DataFrame({"timestamp": [moment], "value": [1.0], "__name__": "m"})
    db.write(frame.with_columns(pl.col("timestamp").dt.cast_time_unit("us")))
    assert _ms(db) == [expected_ms]


def test_review_pandas_nanosecond_timestamps_are_converted(db):
    stamp = pd.Timestamp("2024-01-01T00:00:00.123456789")
    db.write(pd.DataFrame({"timestamp": [stamp], "value": [1.0], "__name__": "m"}))
    assert _ms(db) == [1_704_067_200_123]


@pytest.mark.parametrize("text", [" 1", "1_000"])
def test_review_unparseable_value_strings_raise_input_error(db, text):
    # Strings Python's float() accepts but Arrow's cast does not escape as pyarrow.ArrowInvalid,
    # without the row number, instead of an InputError (or being parsed).
    table = pa.table({"timestamp": [1, 2], "value": ["2", text], "__name__": ["m", "m"]})
    try:
        db.write(table)
    except ta.InputError as exc:
        assert "row 1" in str(exc)
    else:
        assert db.select("m").collect().height == 2
