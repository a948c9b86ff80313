"""``db.query`` and ``db.query_range``: long Polars frames like ``db.select``."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from tsdb_arrow.errors import ClosedError, QueryError, TimeRangeError

T0 = 1_700_000_000_000
TIME = pl.Datetime("ms", "UTC")


@pytest.fixture
def up(db):
    db.write(
        pl.DataFrame(
            {
                "__name__": ["up"] * 8,
                "job": ["a"] * 4 + ["b"] * 4,
                "timestamp": [T0 + i * 15_000 for i in range(4)] * 2,
                "value": [1.0, 2, 3, 4, 5, 6, 7, 8],
            }
        )
    )
    return db


def test_instant_query(up) -> None:
    frame = up.query("up", T0 + 30_000)
    assert frame.schema == pl.Schema(
        {"__name__": pl.String, "job": pl.String, "timestamp": TIME, "value": pl.Float64}
    )
    assert frame.rows() == [
        ("up", "a", dt.datetime(2023, 11, 14, 22, 13, 50, tzinfo=dt.UTC), 3.0),
        ("up", "b", dt.datetime(2023, 11, 14, 22, 13, 50, tzinfo=dt.UTC), 7.0),
    ]
    assert up.query("sum(up)", dt.datetime(2023, 11, 14, 22, 14, 10, tzinfo=dt.UTC))[
        "value"
    ].to_list() == [12.0]
    assert up.query("nothing", T0).height == 0


def test_range_query(up) -> None:
    frame = up.query_range("up * 2", T0, T0 + 60_000, "15s")
    assert frame.columns == ["job", "timestamp", "value"]
    assert frame["job"].to_list() == ["a"] * 5 + ["b"] * 5
    assert frame["value"].to_list() == [2.0, 4, 6, 8, 8, 10, 12, 14, 16, 16]
    assert frame["timestamp"].dt.epoch("ms").to_list()[:5] == [T0 + i * 15_000 for i in range(5)]
    same = up.query_range("up * 2", T0, T0 + 60_000, dt.timedelta(seconds=15))
    assert same.equals(frame)
    scalar = up.query_range("time()", T0, T0 + 30_000, 15_000)
    assert scalar.columns == ["timestamp", "value"]
    assert scalar["value"].to_list() == [T0 / 1000, T0 / 1000 + 15, T0 / 1000 + 30]


def test_range_selector_and_string(up) -> None:
    frame = up.query("up[30s]", T0 + 45_000)
    assert frame["value"].to_list() == [3.0, 4.0, 7.0, 8.0]  # (t-30s, t]: the left edge is out
    text = up.query('"hi"', T0)
    assert text["value"].to_list() == ["hi"]


def test_query_errors(up) -> None:
    with pytest.raises(QueryError, match="range vector"):
        up.query_range("up[1m]", T0, T0 + 60_000, "15s")
    with pytest.raises(QueryError, match='"string" for range query'):
        up.query_range('"text"', T0, T0 + 60_000, "15s")
    with pytest.raises(QueryError, match="step"):
        up.query_range("up", T0, T0 + 60_000, 0)
    with pytest.raises(QueryError, match="end is before start"):
        up.query_range("up", T0 + 60_000, T0, "15s")
    with pytest.raises(TimeRangeError):
        up.query_range("up", T0, T0 + 60_000, "fifteen")
    with pytest.raises(QueryError, match="parse error"):
        up.query("up{", T0)
    up.close()
    with pytest.raises(ClosedError):
        up.query("up", T0)
