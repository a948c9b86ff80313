"""Every step of a range query equals the instant query at that time (Prometheus' invariant),
on random data: the vectorised evaluation over steps changes nothing per step."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tsdb_arrow.promql.engine import evaluate
from tsdb_arrow.promql.values import InstantVector, Scalar, Steps

STALE = np.array([0x7FF0000000000002], np.uint64).view(np.float64)[0]
S = 1000
EXPRESSIONS = (
    "m",
    "m offset 20s",
    "m @ 50",
    "sum by (job) (m)",
    "avg without (i) (m)",
    "count(m) - 1",
    "topk(2, m)",
    "quantile(0.3, m)",
    "count_values('v', m)",
    "m > on(job, i) group_left m * 0.5",
    "m / on(job) group_left sum by (job) (m)",
    "m and on(job) m{i='0'}",
    "m unless m > 5",
    "-m or m",
    "max_over_time(m[40s:10s] offset 5s)",
    "sum(sum_over_time(m[30s:15s]))",
    "stddev by (job) (m)",
    "bottomk by (job) (1, m)",
    "max by (job) (m) * on(job) group_right m",
    "m != bool 0",
    "m @ 100 offset 1m",
    "limitk(1, m)",
    "limit_ratio(0.5, m)",
)
SAMPLE = st.one_of(
    st.none(), st.just("stale"), st.floats(-10, 10, allow_nan=False).map(lambda v: round(v, 1))
)


def rows_at(value: object, step: int) -> dict[tuple, float]:
    if isinstance(value, Scalar):
        return {(): float(value.values[step])}
    assert isinstance(value, InstantVector)
    labels = value.labels.to_dicts() if value.labels.width else [{}] * len(value)
    return {
        tuple(sorted((k, v) for k, v in row.items() if v is not None)): float(value.values[i, step])
        for i, row in enumerate(labels)
        if value.present[i, step]
    }


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


@pytest.mark.parametrize("expr", EXPRESSIONS)
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.lists(st.lists(SAMPLE, min_size=12, max_size=12), min_size=1, max_size=4))
def test_range_query_steps_are_instant_queries(tmp_path_factory, expr: str, data) -> None:
    rows = []
    for k, points in enumerate(data):
        for j, point in enumerate(points):
            if point is None:
                continue
            value = STALE if point == "stale" else float(point)
            rows.append(("ab"[k % 2], str(k), j * 10 * S, value))
    if not rows:
        return
    frame = pl.DataFrame(
        {
            "__name__": ["m"] * len(rows),
            "job": [r[0] for r in rows],
            "i": [r[1] for r in rows],
            "timestamp": [r[2] for r in rows],
            "value": np.array([r[3] for r in rows]),
        }
    )
    with ta.open(tmp_path_factory.mktemp("db")) as db:
        db.write(frame)
        steps = Steps(0, 130 * S, 13 * S)
        whole = evaluate(db, expr, steps, lookback=30 * S)
        for j, t in enumerate(steps.times.tolist()):
            alone = evaluate(db, expr, Steps(t, t, 0), lookback=30 * S)
            assert same(rows_at(whole, j), rows_at(alone, 0)), (expr, t)
