"""PromQL results as long Polars frames: ``db.query`` and ``db.query_range``.

One row per sample: a ``pl.String`` column per label (null where a series lacks it), then
``timestamp`` (Datetime ms UTC, as ``db.select``) and ``value`` (Float64; String for a string
result). Rows are sorted by series (label values), then time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql.engine import DEFAULT_LOOKBACK, QueryLimits, evaluate
from tsdb_arrow.promql.values import InstantVector, RangeVector, Scalar, Steps, String, Value
from tsdb_arrow.timeutil import parse_duration, to_ms

TIME_DTYPE = pl.Datetime("ms", "UTC")


def duration_ms(value: Any, *, name: str) -> int:
    """A step or lookback given as int ms, ``timedelta`` or a duration string (``"15s"``)."""
    if isinstance(value, timedelta):
        return round(value / timedelta(milliseconds=1))
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise QueryError(
        f"{name}={value!r} is not a duration: pass int milliseconds, a timedelta or a string "
        "such as '15s'"
    )


def instant_query(
    db: object,
    expr: str,
    time: Any = None,
    *,
    lookback: Any = DEFAULT_LOOKBACK,
    limits: QueryLimits | None = None,
) -> pl.DataFrame:
    """``expr`` evaluated at ``time`` (default now) as a long frame."""
    t = to_ms("now" if time is None else time, name="time")
    steps = Steps(t, t, 0)
    value = evaluate(
        db, expr, steps, lookback=duration_ms(lookback, name="lookback"), limits=limits
    )
    return to_frame(value, steps)


def range_query(
    db: object,
    expr: str,
    start: Any,
    end: Any,
    step: Any,
    *,
    lookback: Any = DEFAULT_LOOKBACK,
    limits: QueryLimits | None = None,
) -> pl.DataFrame:
    """``expr`` evaluated at ``start, start + step, ... <= end`` as a long frame."""
    lo, hi = to_ms(start, name="start"), to_ms(end, name="end")
    step_ms = duration_ms(step, name="step")
    if lo is None or hi is None:
        raise QueryError("query_range needs both start and end")
    if step_ms <= 0:
        raise QueryError(f"step={step!r} must be positive, e.g. '15s'")
    if hi < lo:
        raise QueryError("end is before start: swap them")
    steps = Steps(lo, hi, step_ms)
    value = evaluate(
        db, expr, steps, lookback=duration_ms(lookback, name="lookback"), limits=limits
    )
    return to_frame(value, steps)


def to_frame(value: Value, steps: Steps) -> pl.DataFrame:
    """The long frame of an evaluated value (a range vector gives its raw samples)."""
    times = steps.times
    if isinstance(value, String):
        return pl.DataFrame(
            {
                "timestamp": pl.Series(times[:1], dtype=pl.Int64).cast(TIME_DTYPE),
                "value": [value.value],
            }
        )
    if isinstance(value, Scalar):
        return _frame(pl.DataFrame(), np.zeros(times.size, np.int64), times, value.values)
    if isinstance(value, InstantVector):
        order = _series_order(value.labels, keep=value.present.shape[1] == 1)
        rows, cols = np.nonzero(value.present[order])
        rows = order[rows]
        return _frame(value.labels, rows, times[cols], value.values[rows, cols])
    if isinstance(value, RangeVector):
        end = int(value.window_ends[-1])
        order = _series_order(value.labels, keep=False)
        owner = np.repeat(np.arange(len(value)), np.diff(value.offsets))
        keep = (value.timestamps > end - value.range) & (value.timestamps <= end)
        # Samples regrouped series by series in label order; each series' samples stay sorted.
        rank = np.empty(len(value), np.int64)
        rank[order] = np.arange(len(value))
        picked = np.flatnonzero(keep)
        picked = picked[np.argsort(rank[owner[picked]], kind="stable")]
        return _frame(value.labels, owner[picked], value.timestamps[picked], value.values[picked])
    raise QueryError(f"cannot turn a {type(value).__name__} into a frame")


def _frame(
    labels: pl.DataFrame, rows: np.ndarray, timestamps: np.ndarray, values: np.ndarray
) -> pl.DataFrame:
    columns = sorted(labels.columns)
    picked = [labels[c][rows] for c in columns]
    return pl.DataFrame(
        [
            *picked,
            pl.Series("timestamp", timestamps.astype(np.int64)).cast(TIME_DTYPE),
            pl.Series("value", values.astype(np.float64)),
        ]
    )


def _series_order(labels: pl.DataFrame, *, keep: bool) -> np.ndarray:
    """Series in label order (nulls first), or as they are when ``keep`` (one step: the
    evaluator's order stands, e.g. ``topk`` or ``sort``)."""
    if keep or labels.width == 0 or labels.height <= 1:
        return np.arange(labels.height)
    columns = sorted(labels.columns)
    ranked = labels.with_row_index("_row").sort(columns, nulls_last=False, maintain_order=True)
    return ranked["_row"].to_numpy().astype(np.int64)
