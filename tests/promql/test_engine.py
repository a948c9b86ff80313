"""The evaluator on a real database: lookback, stale markers, offset, @, subqueries, limits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tsdb_arrow.errors import QueryError, QueryLimitError
from tsdb_arrow.promql.engine import QueryLimits, evaluate
from tsdb_arrow.promql.values import InstantVector, RangeVector, Scalar, Steps, String

STALE = np.array([0x7FF0000000000002], np.uint64).view(np.float64)[0]
S = 1000
M = 60_000


def write(db, name: str, points: list[tuple[int, float]], **labels: str) -> None:
    db.write(
        pl.DataFrame(
            {
                "__name__": [name] * len(points),
                **{k: [v] * len(points) for k, v in labels.items()},
                "timestamp": [t for t, _ in points],
                "value": np.array([v for _, v in points], np.float64),
            }
        )
    )


def at(db, expr: str, t: int, **kw) -> object:
    return evaluate(db, expr, Steps(t, t, 0), **kw)


def series(vec: InstantVector) -> dict[tuple, list[float | None]]:
    """``{label items: [value or None per step]}``."""
    out = {}
    for i, row in enumerate(vec.labels.iter_rows(named=True)) if vec.labels.width else []:
        key = tuple(sorted((k, v) for k, v in row.items() if v is not None))
        out[key] = [float(v) if p else None for v, p in zip(vec.values[i], vec.present[i])]
    if vec.labels.width == 0:
        for i in range(len(vec)):
            out[()] = [float(v) if p else None for v, p in zip(vec.values[i], vec.present[i])]
    return out


def test_lookback_window_is_left_open(db) -> None:
    write(db, "m", [(0, 1.0), (60 * S, 2.0)])
    steps = Steps(0, 6 * M, M)
    got = series(evaluate(db, "m", steps))
    # 2 is seen up to 60s + 5m - 1ms; at 6m = 360 s the window (60 s, 360 s] has no sample.
    assert got == {(("__name__", "m"),): [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, None]}
    got = series(evaluate(db, "m", steps, lookback=2 * M))
    assert got == {(("__name__", "m"),): [1.0, 2.0, 2.0, None, None, None, None]}


def test_stale_marker_ends_a_series_until_the_next_sample(db) -> None:
    write(db, "m", [(0, 1.0), (M, STALE), (2 * M, 3.0)])
    got = series(evaluate(db, "m", Steps(0, 3 * M, 30 * S)))
    assert got == {(("__name__", "m"),): [1.0, 1.0, None, None, 3.0, 3.0, 3.0]}


def test_range_selector_drops_stale_markers_and_the_left_edge(db) -> None:
    write(db, "m", [(0, 1.0), (M, STALE), (2 * M, 3.0), (3 * M, 4.0)])
    rv = at(db, "m[2m]", 3 * M)
    assert isinstance(rv, RangeVector)
    assert rv.range == 2 * M and rv.window_ends.tolist() == [3 * M]
    lo, hi = rv.offsets[0], rv.offsets[1]
    ts = rv.timestamps[lo:hi]
    window = ts[(ts > M) & (ts <= 3 * M)]
    assert window.tolist() == [2 * M, 3 * M]
    assert not np.isnan(rv.values[lo:hi]).any()


def test_offset_and_at(db) -> None:
    write(db, "m", [(i * M, float(i)) for i in range(10)])
    assert series(at(db, "m offset 3m", 5 * M)) == {(("__name__", "m"),): [2.0]}
    assert series(at(db, "m offset -2m", 5 * M)) == {(("__name__", "m"),): [7.0]}
    got = series(evaluate(db, "m @ 240", Steps(0, 2 * M, M)))
    assert got == {(("__name__", "m"),): [4.0, 4.0, 4.0]}
    got = series(evaluate(db, "m @ end() offset 1m", Steps(M, 3 * M, M)))
    assert got == {(("__name__", "m"),): [2.0, 2.0, 2.0]}
    got = series(evaluate(db, "m @ start()", Steps(M, 3 * M, M)))
    assert got == {(("__name__", "m"),): [1.0, 1.0, 1.0]}


def test_subquery_steps_align_to_absolute_multiples(db) -> None:
    write(db, "m", [(i * 10 * S, float(i)) for i in range(40)])
    rv = at(db, "m[1m:20s]", 95 * S)
    assert isinstance(rv, RangeVector)
    # Inner steps: multiples of 20 s in (35 s, 95 s]: 40, 60, 80 s.
    assert rv.timestamps.tolist() == [40 * S, 60 * S, 80 * S]
    assert rv.values.tolist() == [4.0, 6.0, 8.0]
    # The default subquery step is one minute.
    rv = at(db, "m[3m:]", 200 * S)
    assert rv.timestamps.tolist() == [60 * S, 120 * S, 180 * S]


def test_literals_and_strings(db) -> None:
    value = evaluate(db, "1 + 2 * 3 ^ 2", Steps(0, 2 * M, M))
    assert isinstance(value, Scalar) and value.values.tolist() == [19.0, 19.0, 19.0]
    value = at(db, '"text"', 0)
    assert isinstance(value, String) and value.value == "text"
    assert at(db, "-(2)", 0).values.tolist() == [-2.0]


def test_unary_minus_drops_the_name_and_detects_collisions(db) -> None:
    write(db, "a", [(0, 1.0)], job="x")
    write(db, "b", [(0, 2.0)], job="x")
    assert series(at(db, "-a", 0)) == {(("job", "x"),): [-1.0]}
    with pytest.raises(QueryError, match="same labelset"):
        at(db, '-{job="x"}', 0)


def test_errors(db) -> None:
    with pytest.raises(QueryError, match="parse error"):
        at(db, "sum(", 0)
    with pytest.raises(QueryError, match="range vector"):
        evaluate(db, "m[5m]", Steps(0, M, 30 * S))
    with pytest.raises(QueryError, match="unknown function with name 'nope'"):
        at(db, "nope(m)", 0)
    with pytest.raises(QueryError, match="comparisons between scalars must use BOOL"):
        evaluate(db, "1 > 2", Steps(0, 0, 0))


def test_limits(db) -> None:
    write(db, "m", [(i * S, 1.0) for i in range(100)])
    with pytest.raises(QueryLimitError, match="limit of 10"):
        at(db, "m[1m]", 100 * S, limits=QueryLimits(max_samples=10))
    assert isinstance(at(db, "m[1m]", 100 * S, limits=QueryLimits(max_samples=100)), RangeVector)
    # An instant selector counts its raw samples and its series x steps result cells.
    steps = Steps(0, 99 * S, S)
    with pytest.raises(QueryLimitError, match="loaded 200 samples"):
        evaluate(db, "m", steps, limits=QueryLimits(max_samples=199))
    assert isinstance(evaluate(db, "m", steps, limits=QueryLimits(max_samples=200)), InstantVector)
    with pytest.raises(QueryLimitError, match="timed out"):
        at(db, "m + m", 100 * S, limits=QueryLimits(timeout=-1.0))
