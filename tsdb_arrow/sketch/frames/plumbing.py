"""Polars frame plumbing of the aggregations: argument checks, the lazy projection of the
values, eager or deferred runs, and the result frames."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from tsdb_arrow.errors import ConfigError, SketchError
from tsdb_arrow.sketch.ddsketch.search import check_quantiles


def quantile_columns(qs: Sequence[float]) -> tuple[np.ndarray, list[str]]:
    """The checked quantiles and their result column names (``q0.5``, ``q0.99``)."""
    arr = check_quantiles(qs)
    names = [f"q{q:g}" for q in arr]
    if len(set(names)) != len(names):
        raise SketchError(f"quantiles {list(arr)} give duplicate column names {names}")
    return arr, names


def group_columns(by: Sequence[str] | str | None, every: str | timedelta | None) -> list[str]:
    """The group columns: ``by``, then ``timestamp`` when ``every`` is given."""
    cols = [by] if isinstance(by, str) else list(by or [])
    if len(set(cols)) != len(cols):
        raise ConfigError(f"by lists a column twice: {cols}")
    if every is not None:
        if "timestamp" in cols:
            raise ConfigError("by names 'timestamp' and every is given: use one of them")
        cols.append("timestamp")
    return cols


def check_every(every: str | timedelta | None) -> None:
    """``ConfigError`` unless ``every`` is None or a window length ``dt.truncate`` accepts."""
    if every is None:
        return
    try:
        pl.select(pl.lit(datetime(2000, 1, 1)).dt.truncate(every))
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"every={every!r} is not a window length (use a duration such as '5m')"
        ) from exc


def as_lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """``frame`` as a LazyFrame; ``ConfigError`` if it is not a Polars frame."""
    if not isinstance(frame, (pl.DataFrame, pl.LazyFrame)):
        raise ConfigError(f"expected a Polars DataFrame or LazyFrame, got {type(frame).__name__}")
    return frame.lazy()


def check_columns(schema: pl.Schema, needed: Sequence[str], what: str) -> None:
    """``ConfigError`` naming the ``needed`` columns missing from ``schema``."""
    missing = [c for c in needed if c not in schema]
    if missing:
        raise ConfigError(f"{what} has no column(s) {missing}; it has {list(schema)}")


def prepare_values(
    frame: pl.DataFrame | pl.LazyFrame,
    by: Sequence[str] | str | None,
    every: str | timedelta | None,
) -> tuple[pl.LazyFrame, list[str], dict[str, pl.DataType]]:
    """The lazy projection (group columns, windowed timestamp, Float64 value) and its groups."""
    lf = as_lazy(frame)
    cols = group_columns(by, every)
    check_every(every)
    schema = lf.collect_schema()
    check_columns(schema, [*cols, "value"], "frame")
    if not schema["value"].is_numeric():
        raise ConfigError(f"column 'value' must be numeric, got {schema['value']}")
    if every is not None and not schema["timestamp"].is_temporal():
        raise ConfigError(f"every needs a temporal 'timestamp' column, got {schema['timestamp']}")
    exprs = [pl.col(c) for c in cols]
    if every is not None:
        exprs[-1] = pl.col("timestamp").dt.truncate(every)
    lf = lf.select(*exprs, pl.col("value").cast(pl.Float64))
    return lf, cols, {c: schema[c] for c in cols}


def run_eager_or_lazy(
    frame: pl.DataFrame | pl.LazyFrame,
    lf: pl.LazyFrame,
    compute: Callable[[pl.DataFrame], pl.DataFrame],
    schema: dict[str, pl.DataType],
) -> pl.DataFrame | pl.LazyFrame:
    """Eager for a DataFrame; for a LazyFrame, deferred until the result is collected."""
    if isinstance(frame, pl.DataFrame):
        return compute(lf.collect())
    return lf.map_batches(compute, schema=schema)


def with_quantiles(groups: pl.DataFrame, values: np.ndarray, names: list[str]) -> pl.DataFrame:
    """``groups`` with one Float64 column per quantile, NaN (empty groups) as null."""
    return with_columns(
        groups,
        [
            pl.Series(name, values[:, j], dtype=pl.Float64, nan_to_null=True)
            for j, name in enumerate(names)
        ],
    )


def with_columns(groups: pl.DataFrame, columns: list[pl.Series]) -> pl.DataFrame:
    """``groups`` with ``columns`` added; just ``columns`` when there are no group columns."""
    return groups.with_columns(columns) if groups.width else pl.DataFrame(columns)
