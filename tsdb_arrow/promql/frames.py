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
import pyarrow as pa

from tsdb_arrow.errors import QueryError
from tsdb_arrow.model import HISTOGRAM
from tsdb_arrow.promql.engine import DEFAULT_LOOKBACK, QueryLimits, evaluate
from tsdb_arrow.promql.native import NativeHistograms, to_struct
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
        if value.has_histograms:
            return _histogram_frame(value, order, times)
        rows, cols = np.nonzero(value.present[order])
        rows = order[rows]
        return _frame(value.labels, rows, times[cols], value.values[rows, cols])
    if isinstance(value, RangeVector) and value.hists is not None:
        return _histogram_range_frame(value)
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


def _histogram_frame(value: InstantVector, order: np.ndarray, times: np.ndarray) -> pl.DataFrame:
    """The long frame of a vector with histogram samples: ``value`` null and ``histogram``
    set at those, ``histogram`` null at the float samples."""
    assert value.hist is not None and value.pool is not None
    is_h = value.hist[order] >= 0
    rows, cols = np.nonzero(value.present[order] | is_h)
    h = is_h[rows, cols]
    rows = order[rows]
    return _with_histograms(
        _frame(value.labels, rows, times[cols], value.values[rows, cols]), h,
        value.hist[rows, cols], value.pool,
    )


def _histogram_range_frame(value: RangeVector) -> pl.DataFrame:
    """The raw float and histogram samples of a range vector's last window, series by
    series in label order, each series' samples in time order."""
    h = value.hists
    assert h is not None
    end = int(value.window_ends[-1])
    n = len(value)
    f_owner = np.repeat(np.arange(n), np.diff(value.offsets))
    h_owner = np.repeat(np.arange(n), np.diff(h.offsets))
    f_keep = np.flatnonzero((value.timestamps > end - value.range) & (value.timestamps <= end))
    h_keep = np.flatnonzero((h.timestamps > end - value.range) & (h.timestamps <= end))
    owner = np.r_[f_owner[f_keep], h_owner[h_keep]]
    stamps = np.r_[value.timestamps[f_keep], h.timestamps[h_keep]].astype(np.int64)
    values = np.r_[value.values[f_keep], np.full(h_keep.size, np.nan)]
    hist = np.r_[np.full(f_keep.size, -1, np.int64), h.rows[h_keep]]
    rank = np.empty(n, np.int64)
    rank[_series_order(value.labels, keep=False)] = np.arange(n)
    pick = np.lexsort((stamps, rank[owner]))
    frame = _frame(value.labels, owner[pick], stamps[pick], values[pick])
    return _with_histograms(frame, hist[pick] >= 0, hist[pick], h.pool)


def _with_histograms(
    frame: pl.DataFrame, is_h: np.ndarray, rows: np.ndarray, pool: NativeHistograms
) -> pl.DataFrame:
    """``frame`` with ``value`` null where ``is_h`` and a ``histogram`` column (pool rows
    ``rows`` there, null elsewhere)."""
    where = np.flatnonzero(is_h)
    take = np.zeros(is_h.size, np.int64)
    take[where] = np.arange(where.size)
    index = pa.array(take, mask=~np.asarray(is_h, bool))
    column = pl.Series(HISTOGRAM, to_struct(pool, rows[where]).to_arrow().take(index))
    mask = pl.Series(is_h)
    return frame.with_columns(
        pl.when(mask).then(None).otherwise(pl.col("value")).alias("value"), column
    )


def _series_order(labels: pl.DataFrame, *, keep: bool) -> np.ndarray:
    """Series in label order (nulls first), or as they are when ``keep`` (one step: the
    evaluator's order stands, e.g. ``topk`` or ``sort``)."""
    if keep or labels.width == 0 or labels.height <= 1:
        return np.arange(labels.height)
    columns = sorted(labels.columns)
    ranked = labels.with_row_index("_row").sort(columns, nulls_last=False, maintain_order=True)
    return ranked["_row"].to_numpy().astype(np.int64)
