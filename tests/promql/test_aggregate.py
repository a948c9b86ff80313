"""Aggregations over a real database, with exact values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql import annotations
from tsdb_arrow.promql.aggregate import format_value
from tsdb_arrow.promql.engine import evaluate
from tsdb_arrow.promql.values import Steps

M = 60_000


@pytest.fixture
def loaded(db):
    """x{job, inst}: a/0=1, a/1=2, a/2=NaN, b/0=4, b/1=8 at time 0."""
    rows = [
        ("a", "0", 1.0),
        ("a", "1", 2.0),
        ("a", "2", math.nan),
        ("b", "0", 4.0),
        ("b", "1", 8.0),
    ]
    db.write(
        pl.DataFrame(
            {
                "__name__": ["x"] * len(rows),
                "job": [r[0] for r in rows],
                "inst": [r[1] for r in rows],
                "timestamp": [0] * len(rows),
                "value": [r[2] for r in rows],
            }
        )
    )
    return db


def result(db, expr: str) -> dict[tuple, float]:
    vec = evaluate(db, expr, Steps(0, 0, 0))
    rows = vec.labels.to_dicts() if vec.labels.width else [{}] * len(vec)
    out = {}
    for i, row in enumerate(rows):
        if vec.present[i, 0]:
            out[tuple(sorted((k, v) for k, v in row.items() if v is not None))] = float(
                vec.values[i, 0]
            )
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


def test_reducers(loaded) -> None:
    assert same(
        result(loaded, 'sum by (job) (x{inst!="2"})'), {(("job", "a"),): 3.0, (("job", "b"),): 12.0}
    )
    assert same(result(loaded, "sum(x)"), {(): math.nan})
    assert result(loaded, "count without (inst) (x)") == {
        (("job", "a"),): 3.0,
        (("job", "b"),): 2.0,
    }
    assert result(loaded, 'avg(x{job="b"})') == {(): 6.0}
    assert result(loaded, "min(x)") == {(): 1.0}  # NaN loses against numbers
    assert result(loaded, "max by (job) (x)") == {(("job", "a"),): 2.0, (("job", "b"),): 8.0}
    assert result(loaded, "group by (job) (x)") == {(("job", "a"),): 1.0, (("job", "b"),): 1.0}
    assert result(loaded, 'stdvar(x{job="b"})') == {(): 4.0}
    assert result(loaded, 'stddev(x{job="b"})') == {(): 2.0}
    assert result(loaded, "sum by (nothing) (x{job='b'})") == {(): 12.0}


def test_sum_is_compensated(db) -> None:
    db.write(
        pl.DataFrame(
            {
                "__name__": ["v"] * 3,
                "i": ["0", "1", "2"],
                "timestamp": [0] * 3,
                "value": [1e100, 1.0, -1e100],
            }
        )
    )
    assert result(db, "sum(v)") == {(): 1.0}
    assert result(db, "avg(v)") == {(): 1.0 / 3}


def test_topk_bottomk_order_and_nan(loaded) -> None:
    vec = evaluate(loaded, "topk(3, x)", Steps(0, 0, 0))
    assert vec.labels["inst"].to_list() == ["1", "0", "1"]
    assert vec.values[:, 0].tolist() == [8.0, 4.0, 2.0]
    vec = evaluate(loaded, 'bottomk(5, x{job="a"})', Steps(0, 0, 0))
    assert vec.values[:2, 0].tolist() == [1.0, 2.0] and math.isnan(vec.values[2, 0])
    assert result(loaded, "topk by (job) (1, x)") == {
        (("__name__", "x"), ("inst", "1"), ("job", "a")): 2.0,
        (("__name__", "x"), ("inst", "1"), ("job", "b")): 8.0,
    }
    assert result(loaded, "topk(0, x)") == {}
    with pytest.raises(QueryError, match="Parameter value is NaN"):
        result(loaded, "topk(NaN, x)")


def test_quantile_and_warnings(loaded) -> None:
    assert result(loaded, 'quantile(0.5, x{job="a", inst!="2"})') == {(): 1.5}
    assert result(loaded, 'quantile by (job) (0.25, x{job="b"})') == {(("job", "b"),): 5.0}
    with annotations.collect() as notes:
        assert result(loaded, 'quantile(2, x{job="b"})') == {(): math.inf}
    assert notes.warnings == [
        "PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"
    ]


def test_count_values(loaded) -> None:
    assert result(loaded, 'count_values("v", x{inst!="2"})') == {
        (("v", "1"),): 1.0,
        (("v", "2"),): 1.0,
        (("v", "4"),): 1.0,
        (("v", "8"),): 1.0,
    }
    assert result(loaded, 'count_values("job", x{inst="0"})') == {
        (("job", "1"),): 1.0,
        (("job", "4"),): 1.0,
    }
    with pytest.raises(QueryError, match='invalid label name "a-b"'):
        result(loaded, 'count_values("a-b", x)')
    assert [format_value(v) for v in (1.0, 0.1, 1e21, -0.0, math.inf, math.nan, 2.5e-7)] == [
        "1",
        "0.1",
        "1000000000000000000000",
        "-0",
        "+Inf",
        "NaN",
        "0.00000025",
    ]


def test_count_values_tells_negative_zero_apart(db) -> None:
    db.write(
        pl.DataFrame(
            {"__name__": ["z", "z"], "i": ["0", "1"], "timestamp": [0, 0], "value": [-0.0, 0.0]}
        )
    )
    assert result(db, 'count_values("v", z)') == {(("v", "-0"),): 1.0, (("v", "0"),): 1.0}


def test_limitk_and_limit_ratio(loaded) -> None:
    assert len(result(loaded, "limitk by (job) (1, x)")) == 2
    everything = result(loaded, "x")
    assert result(loaded, "limit_ratio(1, x)").keys() == everything.keys()
    low = result(loaded, "limit_ratio(0.5, x)").keys()
    high = result(loaded, "limit_ratio(-0.5, x)").keys()
    assert set(low) | set(high) == set(everything) and not set(low) & set(high)
    with pytest.raises(QueryError, match="Ratio value is NaN"):
        result(loaded, "limit_ratio(NaN, x)")


def test_aggregation_over_steps(db) -> None:
    db.write(
        pl.DataFrame(
            {
                "__name__": ["c"] * 4,
                "i": ["0", "0", "1", "1"],
                "timestamp": [0, M, 0, 3 * M],
                "value": [1.0, 2.0, 10.0, 20.0],
            }
        )
    )
    vec = evaluate(db, "sum(c)", Steps(0, 3 * M, M))
    assert vec.values[0].tolist() == [11.0, 12.0, 12.0, 22.0]
    vec = evaluate(db, "count(c) by (i)", Steps(0, 7 * M, M))
    present = dict(zip(vec.labels["i"].to_list(), vec.present.tolist()))
    assert present["0"] == [True] * 6 + [False] * 2  # 1m + 5m lookback - 1ms
    assert np.array_equal(present["1"], [True] * 8)
