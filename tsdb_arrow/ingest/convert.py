"""Turning what users hand to ``write`` into validated columns: timestamps, values, labels.

Accepts pyarrow Tables/RecordBatches, Polars and pandas DataFrames in long format. Everything is
checked before anything is stored, so a refused batch writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tsdb_arrow.errors import InputError
from tsdb_arrow.ingest.histograms import normalize_histograms
from tsdb_arrow.model import (
    HISTOGRAM,
    METRIC_NAME,
    METRIC_NAME_PATTERN,
    REF,
    TIMESTAMP,
    VALUE,
    is_label_name,
    metric_name_error,
)
from tsdb_arrow.timeutil import first_seconds_like, seconds_like_reason


@dataclass(frozen=True)
class SampleBatch:
    """One validated batch: parallel timestamp/value arrays and one large_string per label."""

    timestamps: np.ndarray  # int64 ms since the epoch
    values: np.ndarray | None  # float64; None for a batch of histogram samples
    labels: dict[str, pa.ChunkedArray]  # label name -> large_string, "" or null = absent
    histograms: pa.Table | None = None  # HISTOGRAM_FIELDS columns, one row per sample

    @property
    def num_rows(self) -> int:
        return len(self.timestamps)


def to_arrow(data: Any) -> pa.Table:
    """Convert a pyarrow, Polars or pandas frame to a pyarrow Table, or say what is accepted."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        import polars as pl

        if isinstance(data, pl.LazyFrame):
            data = data.collect()
        if isinstance(data, pl.DataFrame):
            # Newest layout: String columns stay zero-copy string_view arrays, which the
            # series resolver reads directly (the large_string conversion would cost more
            # than the whole resolve).
            return data.to_arrow(compat_level=pl.CompatLevel.newest())
    if module == "pandas" and hasattr(data, "columns"):
        _check_pandas_index(data)
        table = pa.Table.from_pandas(data, preserve_index=False)
        if VALUE in data.columns and data[VALUE].dtype.kind == "f":
            # from_pandas reads NaN as null; a NaN value is a sample, its bits kept.
            raw = pa.array(data[VALUE].to_numpy(dtype=np.float64), pa.float64())
            table = table.set_column(table.column_names.index(VALUE), VALUE, raw)
        return table
    raise InputError(
        f"write() takes a pyarrow Table or RecordBatch, or a Polars or pandas DataFrame in long "
        f"format (timestamp, value, __name__, labels...); got {type(data).__name__}"
    )


def _check_pandas_index(frame: Any) -> None:
    """Point at ``reset_index`` when a pandas frame keeps its times in the index."""
    import pandas as pd

    index = frame.index
    if TIMESTAMP in frame.columns:
        return
    if isinstance(index, pd.DatetimeIndex) or index.name == TIMESTAMP:
        raise InputError(
            f"missing column 'timestamp': this pandas frame holds its times in its index "
            f"({type(index).__name__} named {index.name!r}), which write() does not read; "
            "call frame.reset_index(names='timestamp') first"
        )


def normalize(data: Any, *, metric: str | None = None) -> SampleBatch:
    """Validate a long-format frame and split it into timestamps, values and label columns."""
    table = to_arrow(data)
    names = table.column_names
    if TIMESTAMP not in names:
        raise InputError(
            f"missing column 'timestamp': a batch needs 'timestamp', 'value' and label "
            f"columns; got columns {names}"
        )
    if VALUE not in names and HISTOGRAM not in names:
        raise InputError(
            f"missing column 'value': a batch needs 'timestamp', 'value' (or 'histogram') and "
            f"label columns; got columns {names}. A wide frame (one column per metric) "
            "becomes long with frame.unpivot(index='timestamp', variable_name='__name__', "
            "value_name='value') in Polars"
        )
    if VALUE in names and HISTOGRAM in names:
        raise InputError(
            "a batch holds either float samples ('value') or histogram samples ('histogram'), "
            "not both: write them as two batches"
        )
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"duplicate column names {dupes}: give each column a distinct name")
    _check_names([c for c in names if c not in (TIMESTAMP, VALUE, HISTOGRAM)], metric)
    n = table.num_rows
    if n == 0:
        # Nothing to store; an empty frame's columns often have no type (Polars' Null).
        return SampleBatch(np.empty(0, np.int64), np.empty(0, np.float64), {})
    timestamps = _timestamps(table.column(TIMESTAMP))
    values = _values(table.column(VALUE)) if VALUE in names else None
    histograms = normalize_histograms(table.column(HISTOGRAM)) if HISTOGRAM in names else None

    label_names = [c for c in names if c not in (TIMESTAMP, VALUE, HISTOGRAM)]
    labels: dict[str, pa.ChunkedArray] = {}
    for name in label_names:
        labels[name] = _label_column(name, table.column(name))
    if metric is not None:
        labels[METRIC_NAME] = _like(
            pa.repeat(pa.scalar(metric, pa.large_string()), n), table.column(TIMESTAMP)
        )
    return SampleBatch(timestamps, values, labels, histograms)


def _check_names(label_names: list[str], metric: str | None) -> None:
    """Label column names and the metric argument, checked before any row (an empty batch
    with a bad name is refused like a full one)."""
    for name in label_names:
        if name == REF:
            raise InputError(
                f"{REF!r} is reserved for tsdb-arrow's series ids; rename that label column"
            )
        if not is_label_name(name):
            raise InputError(
                f"invalid label name {name!r}: label names must match [a-zA-Z_][a-zA-Z0-9_]*; "
                "rename or drop that column"
            )
    if metric is not None:
        if METRIC_NAME in label_names:
            raise InputError(
                "the batch has a '__name__' column and write() was given metric=...; use one"
            )
        if not isinstance(metric, str) or not metric:
            raise InputError(f"metric must be a non-empty string, got {metric!r}")
        if not re.match(METRIC_NAME_PATTERN, metric):
            raise InputError(metric_name_error(metric))
    elif METRIC_NAME not in label_names:
        raise InputError(
            "no metric name: add a '__name__' column or call write(frame, metric='name')"
        )


def _first_true(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))[0])


_PER_MS = {"s": None, "ms": 1, "us": 1000, "ns": 1_000_000}


def _timestamps(col: pa.ChunkedArray) -> np.ndarray:
    typ = col.type
    if col.null_count:
        row = _first_true(pc.is_null(col))
        raise InputError(f"row {row}: 'timestamp' is null; every sample needs a timestamp")
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        col = _parse_times(col.cast(pa.large_string()))
        typ = col.type
    if pa.types.is_timestamp(typ):
        raw = _to_numpy(col.cast(pa.int64()), np.int64)
        per_ms = _PER_MS[typ.unit]
        if per_ms is None:
            return raw * 1000
        # Finer than a millisecond: floor, so -0.5 ms is -1 ms (as timeutil.to_ms does).
        return raw if per_ms == 1 else np.floor_divide(raw, per_ms)
    if pa.types.is_date(typ):
        return _to_numpy(col.cast(pa.date64()).cast(pa.int64()), np.int64)
    if pa.types.is_integer(typ):
        if pa.types.is_uint64(typ) and len(col) and pc.max(col).as_py() > 2**63 - 1:
            raise InputError("'timestamp' holds values above the int64 range; use int64 ms")
        ms = _to_numpy(col.cast(pa.int64()), np.int64)
        if (row := first_seconds_like(ms)) is not None:
            reason = seconds_like_reason(int(ms[row]))
            raise InputError(f"row {row}: 'timestamp' {ms[row]}: {reason}")
        return ms
    raise InputError(
        f"'timestamp' has type {typ}: use int64 milliseconds since the Unix epoch, a datetime "
        "column, or RFC 3339 text"
    )


def _parse_times(col: pa.ChunkedArray) -> pa.Array:
    """RFC 3339 / ISO 8601 text as UTC nanoseconds: with a 'Z' or an offset, or none for UTC."""
    flat = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    zoned = pc.match_substring_regex(flat, r"(Z|z|[+-]\d\d:?\d\d)$")
    out = np.empty(len(flat), dtype=np.int64)
    for mask, target in (
        (zoned, pa.timestamp("ns", tz="UTC")),
        (pc.invert(zoned), pa.timestamp("ns")),
    ):
        part = flat.filter(mask)
        if len(part) == 0:
            continue
        try:
            parsed = part.cast(target)
        except pa.ArrowInvalid:
            rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            for row, text in zip(rows, part.to_pylist()):
                try:
                    pa.array([text]).cast(target)
                except pa.ArrowInvalid:
                    raise InputError(
                        f"row {row}: 'timestamp' {text!r} is not an RFC 3339 time (e.g. "
                        "2026-11-25T12:00:00Z or 2026-11-25T13:00:00.250+01:00) nor a number"
                    ) from None
            raise
        out[mask.to_numpy(zero_copy_only=False)] = parsed.cast(pa.int64()).to_numpy()
    return pa.array(out, pa.timestamp("ns", tz="UTC"))


def _values(col: pa.ChunkedArray) -> np.ndarray:
    typ = col.type
    if col.null_count:
        row = _first_true(pc.is_null(col))
        raise InputError(
            f"row {row}: 'value' is null; send NaN for a missing value or drop the row"
        )
    if pa.types.is_floating(typ) or pa.types.is_integer(typ) or pa.types.is_boolean(typ):
        return _to_numpy(col.cast(pa.float64()), np.float64)
    if pa.types.is_decimal(typ):
        return _to_numpy(col.cast(pa.float64()), np.float64)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        col = col.cast(pa.large_string())
        try:
            return _to_numpy(col.cast(pa.float64()), np.float64)
        except pa.ArrowInvalid:
            flat = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            for row, text in enumerate(flat.to_pylist()):
                try:
                    pa.array([text]).cast(pa.float64())
                except pa.ArrowInvalid:
                    raise InputError(
                        f"row {row}: 'value' {text!r} is not a number; values must be "
                        "castable to float64 (digits, '.', 'e', 'nan', 'inf'; no spaces)"
                    ) from None
            raise
    raise InputError(f"'value' has type {typ}, which cannot be cast to float64")


def _to_numpy(col: pa.ChunkedArray, dtype: type) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return np.ascontiguousarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def _like(arr: pa.Array, template: pa.ChunkedArray) -> pa.ChunkedArray:
    """``arr`` split into chunks of the same lengths as ``template``'s (zero-copy slices)."""
    bounds = np.cumsum([0] + [len(c) for c in template.chunks])
    return pa.chunked_array(
        [arr.slice(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])], type=arr.type
    )


def _label_column(name: str, col: pa.ChunkedArray) -> pa.ChunkedArray:
    typ = col.type
    if pa.types.is_dictionary(typ):
        col = col.cast(typ.value_type)
        typ = col.type
    if pa.types.is_null(typ):
        col = col.cast(pa.large_string())
    elif pa.types.is_string(typ):
        col = col.cast(pa.large_string())
    elif not (pa.types.is_large_string(typ) or pa.types.is_string_view(typ)):
        raise InputError(
            f"label column {name!r} has type {typ}: label values must be strings; cast the "
            "column to string or drop it"
        )
    return col


def check_metric_names(series: pa.Table, row_refs: np.ndarray) -> None:
    """Refuse a batch in which some row has no metric name or an invalid one, naming the row.

    Metric names match ``[a-zA-Z_:][a-zA-Z0-9_:]*`` as in Prometheus, so that a selector can
    name every stored metric. Checked on the batch's distinct label sets (every row repeats
    one of them).
    """
    names = series.column(METRIC_NAME)
    missing = pc.fill_null(pc.equal(names, ""), True).to_numpy(zero_copy_only=False)
    if missing.any():
        row = _first_row(series, row_refs, missing)
        raise InputError(f"row {row}: '__name__' is empty; every sample needs a metric name")
    valid = pc.match_substring_regex(names, METRIC_NAME_PATTERN)
    invalid = np.asarray(pc.invert(valid).to_numpy(zero_copy_only=False), dtype=bool)
    if invalid.any():
        row = _first_row(series, row_refs, invalid)
        name = names.filter(pa.array(invalid))[0].as_py()
        raise InputError(f"row {row}: {metric_name_error(name)}")


def _first_row(series: pa.Table, row_refs: np.ndarray, bad_series: np.ndarray) -> int:
    bad = series.column(REF).to_numpy()[bad_series]
    return int(np.flatnonzero(np.isin(row_refs, bad))[0])


def check_utf8(series: pa.Table) -> None:
    """Refuse label values that are not valid UTF-8.

    Called on a batch's distinct label sets: every other row repeats one of them byte for byte,
    so checking these covers the whole batch at a fraction of the cost.
    """
    for name in series.column_names:
        col = series.column(name)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            continue
        try:
            col.validate(full=True)
        except pa.ArrowInvalid:
            for value in col.cast(pa.large_binary()).to_pylist():
                if value is not None:
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise InputError(
                            f"label column {name!r} holds a value that is not valid UTF-8 "
                            f"({value[:40]!r}: {exc.reason}); fix the encoding of that column"
                        ) from None
            raise
