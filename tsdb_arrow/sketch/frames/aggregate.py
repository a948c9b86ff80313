"""Quantiles of Polars frames through DDSketch, grouped by labels and time windows.

The pipeline, with no Python loop per group or per value:

1. groups: ``rle_id`` over the group columns finds runs of equal keys (one run per group when
   rows are sorted by series and time, as ``db.select`` returns them), and a dense rank over
   the runs' keys numbers the groups in key order. Rows in no useful order are grouped by a
   64-bit hash of their keys instead (numba hash table, then a counting sort of the values by
   group); a hash shared by two groups is detected by counting distinct keys, and then the
   run-wise grouping is used;
2. keys and buckets: numpy's ``log``, then one numba pass per group gives every value its
   sign and DDSketch key (exactly ``ddsketch``'s; see ``ddsketch.mapping``) and counts (sign, key)
   into buckets with a dense counter over the group's key range (a sort when that range is
   too wide);
3. ranks: ``ddsketch.search.search_quantiles`` finds every (group, quantile) rank at once with
   ``np.searchsorted`` over running counts.

Steps 1 and 2 are ``groups.sketch_groups`` (its numba passes in ``kernels``), the frame
plumbing is in ``plumbing``.

Bucket rows (``sketches``, ``merge_sketches``, ``from_sketch_column``) are a long frame, one row
per (group, sign, key); their layout is in ``bucket_rows``. The relative accuracy is not a
column: pass the same one to every call.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.errors import ConfigError, SketchError
from tsdb_arrow.sketch.ddsketch.codec import decode_arrays, encode_arrays
from tsdb_arrow.sketch.ddsketch.mapping import LogarithmicMapping
from tsdb_arrow.sketch.ddsketch.search import search_quantiles
from tsdb_arrow.sketch.ddsketch.sketch import DEFAULT_RELATIVE_ACCURACY
from tsdb_arrow.sketch.frames.bucket_rows import (
    BUCKET_SCHEMA,
    arrays_from_rows,
    bucket_rows,
    prepare_buckets,
)
from tsdb_arrow.sketch.frames.groups import sketch_groups
from tsdb_arrow.sketch.frames.plumbing import (
    group_columns,
    prepare_values,
    quantile_columns,
    run_eager_or_lazy,
    with_columns,
    with_quantiles,
)

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

DEFAULT_QUANTILES = (0.5, 0.9, 0.99)


def quantiles(
    frame: Frame,
    qs: Sequence[float] = DEFAULT_QUANTILES,
    *,
    by: Sequence[str] | str | None = None,
    every: str | timedelta | None = None,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
) -> Frame:
    """DDSketch quantiles of ``value`` per group, as a frame of the same kind.

    Parameters
    ----------
    frame
        A DataFrame or LazyFrame with a ``value`` column (and ``timestamp`` for ``every``),
        e.g. what ``db.select`` returns.
    qs
        Quantiles in [0, 1]; column ``f"q{q:g}"`` each (``q0.5``, ``q0.99``).
    by
        Group columns (labels); none: one group of all rows.
    every
        Window length (Polars duration string such as ``"5m"``, or a timedelta); the windows
        start at ``timestamp.dt.truncate(every)``, kept as the ``timestamp`` column.
    relative_accuracy
        Every quantile is within this relative error of the exact value at rank
        ``q * (count - 1)`` of the group's sorted values.

    Returns
    -------
    The group columns, then one Float64 column per quantile; groups sorted by their keys.
    Equal, bit for bit, to ``Sketch.from_values(group values).quantile(q)`` and to
    ``ddsketch.DDSketch``'s; NaN values are ignored; a group of only NaN gives nulls.

    Raises
    ------
    SketchError
        For a ``q`` outside [0, 1] or an infinite value; ``ConfigError`` for a bad relative
        accuracy, ``every``, or missing columns.

    Examples
    --------
    >>> import polars as pl
    >>> import tsdb_arrow as ta
    >>> frame = pl.DataFrame({"job": ["a", "a", "a", "b"], "value": [1.0, 2.0, 3.0, 10.0]})
    >>> ta.sketch.quantiles(frame, [0.5, 1.0], by="job").rows()
    [('a', 1.99..., 2.97...), ('b', 10.07..., 10.07...)]

    On a selection, per label and minute (a LazyFrame in, a LazyFrame out)::

        lf = db.select("node_scrape_collector_duration_seconds")
        ta.sketch.quantiles(lf, [0.5, 0.9, 0.99], by=["collector"], every="1m").collect()
    """
    qs_arr, names = quantile_columns(qs)
    mapping = LogarithmicMapping(relative_accuracy)
    lf, cols, schema = prepare_values(frame, by, every)

    def compute(df: pl.DataFrame) -> pl.DataFrame:
        groups, arrays, _ = sketch_groups(df, cols, mapping, with_stats=False)
        return with_quantiles(groups, search_quantiles(mapping, arrays, qs_arr), names)

    return run_eager_or_lazy(frame, lf, compute, {**schema, **{n: pl.Float64 for n in names}})


def sketches(
    frame: Frame,
    *,
    by: Sequence[str] | str | None = None,
    every: str | timedelta | None = None,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
) -> Frame:
    """The DDSketch of each group as bucket rows: sketches to keep, merge or serialize.

    Parameters
    ----------
    frame
        A DataFrame or LazyFrame with a ``value`` column (and ``timestamp`` for ``every``).
    by, every, relative_accuracy
        As in ``quantiles``.

    Returns
    -------
    A frame of the same kind with one row per (group, sign, key): the group columns, then
    ``sign``, ``key``, ``count``, ``sum``, ``min``, ``max`` (layout in
    ``tsdb_arrow.sketch.frames.bucket_rows``). ``merge_sketches`` merges such rows exactly and
    ``quantiles_from_sketches`` reads quantiles off them.

    Examples
    --------
    >>> import polars as pl
    >>> import tsdb_arrow as ta
    >>> frame = pl.DataFrame({"job": ["a", "a", "b"], "value": [1.0, 2.0, 10.0]})
    >>> ta.sketch.sketches(frame, by="job").select("job", "sign", "key", "count").rows()
    [('a', 1, 0, 1.0), ('a', 1, 35, 1.0), ('b', 1, 116, 1.0)]
    """
    mapping = LogarithmicMapping(relative_accuracy)
    lf, cols, schema = prepare_values(frame, by, every)

    def compute(df: pl.DataFrame) -> pl.DataFrame:
        groups, arrays, stats = sketch_groups(df, cols, mapping, with_stats=True)
        return bucket_rows(groups, arrays, stats)

    return run_eager_or_lazy(frame, lf, compute, {**schema, **BUCKET_SCHEMA})


def merge_sketches(
    buckets: Frame,
    *,
    by: Sequence[str] | str | None = None,
    every: str | timedelta | None = None,
) -> Frame:
    """Merge bucket rows into one sketch per ``by`` group (and ``every`` window): exact.

    Parameters
    ----------
    buckets
        Bucket rows (a DataFrame or LazyFrame) as ``sketches`` gives them, e.g. several
        blocks' or days' rows concatenated.
    by
        The group columns to keep (it may name ``timestamp``); rows of all other group columns
        are merged together. None merges everything into one sketch.
    every
        Re-truncates ``timestamp`` to longer windows (``"1h"`` merges ``"5m"`` windows) and
        keeps it as a group column.

    Returns
    -------
    Bucket rows of the same kind, one row per (group, sign, key), sorted: counts and sums
    added, min and max combined. Equal to ``sketches`` of the union of the values (sums up to
    float rounding).

    Examples
    --------
    >>> import polars as pl
    >>> import tsdb_arrow as ta
    >>> frame = pl.DataFrame({"job": ["a", "a", "b"], "value": [1.0, 2.0, 2.0]})
    >>> rows = ta.sketch.sketches(frame, by="job")
    >>> ta.sketch.merge_sketches(rows).select("sign", "key", "count").rows()
    [(1, 0, 1.0), (1, 35, 2.0)]
    """
    lf, cols = prepare_buckets(buckets, by, every)
    merged = (
        lf.group_by([*cols, "sign", "key"])
        .agg(pl.col("count").sum(), pl.col("sum").sum(), pl.col("min").min(), pl.col("max").max())
        .sort([*cols, "sign", "key"])
    )
    return merged.collect() if isinstance(buckets, pl.DataFrame) else merged


def quantiles_from_sketches(
    buckets: Frame,
    qs: Sequence[float] = DEFAULT_QUANTILES,
    *,
    by: Sequence[str] | str | None = None,
    every: str | timedelta | None = None,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
) -> Frame:
    """Quantiles of bucket rows merged per group, as ``quantiles`` gives them for the union of
    the values.

    Parameters
    ----------
    buckets
        Bucket rows (a DataFrame or LazyFrame) as ``sketches`` or ``from_sketch_column`` give
        them.
    qs, by, every
        As in ``quantiles`` and ``merge_sketches``.
    relative_accuracy
        Must be the one the bucket rows were built with (it is not a column).

    Returns
    -------
    A frame of the same kind: the group columns, then one Float64 column per quantile.

    Examples
    --------
    >>> import polars as pl
    >>> import tsdb_arrow as ta
    >>> day1 = ta.sketch.sketches(pl.DataFrame({"value": [1.0, 2.0]}))
    >>> day2 = ta.sketch.sketches(pl.DataFrame({"value": [3.0]}))
    >>> ta.sketch.quantiles_from_sketches(pl.concat([day1, day2]), [0.5]).item()
    1.99...
    """
    qs_arr, names = quantile_columns(qs)
    mapping = LogarithmicMapping(relative_accuracy)
    merged = merge_sketches(buckets.lazy(), by=by, every=every)
    cols = group_columns(by, every)
    schema = merged.collect_schema()

    def compute(df: pl.DataFrame) -> pl.DataFrame:
        groups, arrays = arrays_from_rows(df, cols)
        return with_quantiles(groups, search_quantiles(mapping, arrays, qs_arr), names)

    out_schema = {**{c: schema[c] for c in cols}, **{n: pl.Float64 for n in names}}
    return run_eager_or_lazy(buckets, merged, compute, out_schema)


def to_sketch_column(
    buckets: Frame,
    *,
    by: Sequence[str] | str | None = None,
    every: str | timedelta | None = None,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
    column: str = "sketch",
) -> Frame:
    """One row per group: its columns and its sketch serialized, to store or send sketches.

    Parameters
    ----------
    buckets
        Bucket rows (a DataFrame or LazyFrame) as ``sketches`` gives them.
    by, every
        The groups, as in ``merge_sketches`` (rows of other group columns are merged).
    relative_accuracy
        The one the bucket rows were built with; it is written into every sketch.
    column
        Name of the Binary column of serialized sketches.

    Returns
    -------
    A frame of the same kind: the group columns, then ``column`` with each group's sketch as
    ``Sketch.to_bytes`` writes it (layout in ``docs/sketches.md``); ``from_sketch_column``
    reads it back.

    Examples
    --------
    >>> import polars as pl
    >>> import tsdb_arrow as ta
    >>> rows = ta.sketch.sketches(pl.DataFrame({"job": ["a", "b"], "value": [1.0, 2.0]}), by="job")
    >>> column = ta.sketch.to_sketch_column(rows, by="job")
    >>> ta.sketch.Sketch.from_bytes(column.get_column("sketch")[0]).count
    1.0
    """
    mapping = LogarithmicMapping(relative_accuracy)
    merged = merge_sketches(buckets.lazy(), by=by, every=every)
    cols = group_columns(by, every)
    schema = merged.collect_schema()

    def compute(df: pl.DataFrame) -> pl.DataFrame:
        groups, arrays = arrays_from_rows(df, cols)
        offsets, data = encode_arrays(mapping, arrays)
        binary = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), arrays.groups, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
        return with_columns(groups, [pl.Series(column, binary).cast(pl.Binary)])

    return run_eager_or_lazy(
        buckets, merged, compute, {**{c: schema[c] for c in cols}, column: pl.Binary}
    )


def from_sketch_column(
    frame: pl.DataFrame,
    *,
    column: str = "sketch",
    relative_accuracy: float | None = None,
) -> pl.DataFrame:
    """Bucket rows of a column of serialized sketches; the other columns are the groups.

    Parameters
    ----------
    frame
        A DataFrame with a Binary column of sketches as ``to_sketch_column`` (or
        ``Sketch.to_bytes``) writes them; all of one mapping.
    column
        The name of that column.
    relative_accuracy
        If given, the sketches must have been built with it.

    Returns
    -------
    Bucket rows (as ``sketches`` gives them): each row's other columns, then ``sign``,
    ``key``, ``count``, ``sum``, ``min``, ``max``; a group's sum/min/max sit on its first row.

    Raises
    ------
    SketchError
        For a null or invalid sketch, mixed mappings, or a mapping other than
        ``relative_accuracy`` when it is given.

    Examples
    --------
    >>> import polars as pl
    >>> import tsdb_arrow as ta
    >>> rows = ta.sketch.sketches(pl.DataFrame({"job": ["a", "b"], "value": [1.0, 2.0]}), by="job")
    >>> back = ta.sketch.from_sketch_column(ta.sketch.to_sketch_column(rows, by="job"))
    >>> back.select("job", "sign", "key", "count").rows()
    [('a', 1, 0, 1.0), ('b', 1, 35, 1.0)]
    """
    if column not in frame.columns:
        raise ConfigError(f"frame has no column {column!r} of serialized sketches")
    series = frame.get_column(column)
    if series.null_count():
        raise SketchError(f"{column}[{int(series.is_null().arg_max())}] is null, not a sketch")
    binary = series.cast(pl.Binary).to_arrow().cast(pa.large_binary())
    if isinstance(binary, pa.ChunkedArray):
        binary = binary.combine_chunks()
    offsets = np.frombuffer(binary.buffers()[1], dtype=np.int64)
    offsets = offsets[binary.offset : binary.offset + len(binary) + 1]
    data = np.frombuffer(binary.buffers()[2] or b"", dtype=np.uint8)
    if len(binary) == 0:
        return (
            frame.drop(column)
            .clear()
            .with_columns(pl.Series(n, [], dtype=t) for n, t in BUCKET_SCHEMA.items())
        )
    mapping, arrays = decode_arrays(offsets, data)
    if relative_accuracy is not None and mapping != LogarithmicMapping(relative_accuracy):
        raise SketchError(
            f"sketches have relative_accuracy {mapping.relative_accuracy!r} offset "
            f"{mapping.offset!r}, expected {relative_accuracy!r}"
        )
    return bucket_rows(frame.drop(column), arrays, None)
