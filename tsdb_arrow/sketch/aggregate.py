"""Quantiles of Polars frames through DDSketch, grouped by labels and time windows.

The pipeline, with no Python loop per group or per value:

1. groups: ``rle`` over the group columns finds runs of equal keys (one run per group when
   rows are sorted by series and time, as ``db.select`` returns them), and a dense rank over
   the runs' keys numbers the groups in key order. Rows in no useful order are grouped by a
   64-bit hash of their keys instead (numba hash table, then a counting sort of the values by
   group); a hash shared by two groups is detected by counting distinct keys, and then the
   run-wise grouping is used;
2. keys and buckets: numpy's ``log``, then one numba pass per group gives every value its
   sign and DDSketch key (exactly ``ddsketch``'s; see ``mapping``) and counts (sign, key)
   into buckets with a dense counter over the group's key range (a sort when that range is
   too wide);
3. ranks: ``ddsketch.search_quantiles`` finds every (group, quantile) rank at once with
   ``np.searchsorted`` over running counts.

Bucket rows (``sketches``, ``merge_sketches``, ``from_sketch_column``) form a long frame:

=============  =========  =====================================================================
column         dtype      meaning
=============  =========  =====================================================================
``by`` ...     as input   the group's label values
``timestamp``  Datetime   window start (``dt.truncate(every)``), when ``every`` is given
``sign``       Int8       -1 negative values (key of ``|v|``), 0 the zero bucket, 1 positive
``key``        Int64      the DDSketch key (0 for the zero bucket)
``count``      Float64    values in the bucket
``sum``        Float64    contribution to the group's sum
``min``        Float64    contribution to the group's min (+inf when none)
``max``        Float64    contribution to the group's max (-inf when none)
=============  =========  =====================================================================

Rows are sorted by the group columns, then ``sign``, then ``key``. A group's sketch is the sum
of its rows' counts per (sign, key), and its sum/min/max the sum/min/max of the rows' columns;
so concatenating bucket frames and grouping again (``merge_sketches``) is an exact merge.
Built from values, each row carries its bucket's own sum/min/max; decoded from serialized
sketches, a group's first row carries the group's and the others the identities (0, +inf,
-inf). A group whose values were all NaN keeps one zero-bucket row with count 0, so that its
quantiles stay null. The relative accuracy is not a column: pass the same one to every call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.errors import ConfigError, SketchError
from tsdb_arrow.sketch.ddsketch import (
    DEFAULT_RELATIVE_ACCURACY,
    SketchArrays,
    check_quantiles,
    decode_arrays,
    encode_arrays,
    search_quantiles,
)
from tsdb_arrow.sketch.mapping import LogarithmicMapping, fast_key

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

DEFAULT_QUANTILES = (0.5, 0.9, 0.99)
BUCKET_SCHEMA = {
    "sign": pl.Int8,
    "key": pl.Int64,
    "count": pl.Float64,
    "sum": pl.Float64,
    "min": pl.Float64,
    "max": pl.Float64,
}
# Dense per-group counting while the key range is at most this (and 4x the group's values).
_DENSE_LIMIT = 1 << 20
# Rows whose runs decide between run-wise grouping and hash grouping.
_PROBE_ROWS = 1 << 16


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
    """
    qs_arr, names = _quantile_columns(qs)
    mapping = LogarithmicMapping(relative_accuracy)
    lf, cols, schema = _prepare_values(frame, by, every)

    def compute(df: pl.DataFrame) -> pl.DataFrame:
        groups, arrays, _ = _sketch_groups(df, cols, mapping, with_stats=False)
        return _with_quantiles(groups, search_quantiles(mapping, arrays, qs_arr), names)

    return _run(frame, lf, compute, {**schema, **{n: pl.Float64 for n in names}})


def sketches(
    frame: Frame,
    *,
    by: Sequence[str] | str | None = None,
    every: str | timedelta | None = None,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
) -> Frame:
    """The DDSketch of each group as bucket rows (layout in the module docstring)."""
    mapping = LogarithmicMapping(relative_accuracy)
    lf, cols, schema = _prepare_values(frame, by, every)

    def compute(df: pl.DataFrame) -> pl.DataFrame:
        groups, arrays, stats = _sketch_groups(df, cols, mapping, with_stats=True)
        return _bucket_rows(groups, arrays, stats)

    return _run(frame, lf, compute, {**schema, **BUCKET_SCHEMA})


def merge_sketches(
    buckets: Frame,
    *,
    by: Sequence[str] | str | None = None,
    every: str | timedelta | None = None,
) -> Frame:
    """Merge bucket rows into one sketch per ``by`` group (and ``every`` window): exact.

    ``by`` lists the group columns to keep (it may name ``timestamp``); ``every`` re-truncates
    ``timestamp`` to longer windows and keeps it. Rows of all other columns are merged.
    """
    lf, cols = _prepare_buckets(buckets, by, every)
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
    """Quantiles of merged bucket rows, as ``quantiles`` gives them for the union of values.

    ``relative_accuracy`` must be the one the bucket rows were built with.
    """
    qs_arr, names = _quantile_columns(qs)
    mapping = LogarithmicMapping(relative_accuracy)
    merged = merge_sketches(buckets.lazy(), by=by, every=every)
    cols = _group_columns(by, every)
    schema = merged.collect_schema()

    def compute(df: pl.DataFrame) -> pl.DataFrame:
        groups, arrays = _arrays_from_rows(df, cols)
        return _with_quantiles(groups, search_quantiles(mapping, arrays, qs_arr), names)

    out_schema = {**{c: schema[c] for c in cols}, **{n: pl.Float64 for n in names}}
    return _run(buckets, merged, compute, out_schema)


def to_sketch_column(
    buckets: Frame,
    *,
    by: Sequence[str] | str | None = None,
    every: str | timedelta | None = None,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
    column: str = "sketch",
) -> Frame:
    """One row per group: its columns and its sketch serialized as ``Sketch.to_bytes``."""
    mapping = LogarithmicMapping(relative_accuracy)
    merged = merge_sketches(buckets.lazy(), by=by, every=every)
    cols = _group_columns(by, every)
    schema = merged.collect_schema()

    def compute(df: pl.DataFrame) -> pl.DataFrame:
        groups, arrays = _arrays_from_rows(df, cols)
        offsets, data = encode_arrays(mapping, arrays)
        binary = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), arrays.groups, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
        return _with_columns(groups, [pl.Series(column, binary).cast(pl.Binary)])

    return _run(buckets, merged, compute, {**{c: schema[c] for c in cols}, column: pl.Binary})


def from_sketch_column(
    frame: pl.DataFrame,
    *,
    column: str = "sketch",
    relative_accuracy: float | None = None,
) -> pl.DataFrame:
    """Bucket rows of a column of serialized sketches; the other columns are the groups.

    Raises
    ------
    SketchError
        For a null or invalid sketch, mixed mappings, or a mapping other than
        ``relative_accuracy`` when it is given.
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
    return _bucket_rows(frame.drop(column), arrays, None)


# -- frames in and out ------------------------------------------------------------------------


def _quantile_columns(qs: Sequence[float]) -> tuple[np.ndarray, list[str]]:
    arr = check_quantiles(qs)
    names = [f"q{q:g}" for q in arr]
    if len(set(names)) != len(names):
        raise SketchError(f"quantiles {list(arr)} give duplicate column names {names}")
    return arr, names


def _group_columns(by: Sequence[str] | str | None, every: str | timedelta | None) -> list[str]:
    cols = [by] if isinstance(by, str) else list(by or [])
    if len(set(cols)) != len(cols):
        raise ConfigError(f"by lists a column twice: {cols}")
    if every is not None:
        if "timestamp" in cols:
            raise ConfigError("by names 'timestamp' and every is given: use one of them")
        cols.append("timestamp")
    return cols


def _check_every(every: str | timedelta | None) -> None:
    if every is None:
        return
    try:
        pl.select(pl.lit(datetime(2000, 1, 1)).dt.truncate(every))
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"every={every!r} is not a window length (use a duration such as '5m')"
        ) from exc


def _lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    if not isinstance(frame, (pl.DataFrame, pl.LazyFrame)):
        raise ConfigError(f"expected a Polars DataFrame or LazyFrame, got {type(frame).__name__}")
    return frame.lazy()


def _check_columns(schema: pl.Schema, needed: Sequence[str], what: str) -> None:
    missing = [c for c in needed if c not in schema]
    if missing:
        raise ConfigError(f"{what} has no column(s) {missing}; it has {list(schema)}")


def _prepare_values(
    frame: pl.DataFrame | pl.LazyFrame,
    by: Sequence[str] | str | None,
    every: str | timedelta | None,
) -> tuple[pl.LazyFrame, list[str], dict[str, pl.DataType]]:
    """The lazy projection (group columns, windowed timestamp, Float64 value) and its groups."""
    lf = _lazy(frame)
    cols = _group_columns(by, every)
    _check_every(every)
    schema = lf.collect_schema()
    _check_columns(schema, [*cols, "value"], "frame")
    if not schema["value"].is_numeric():
        raise ConfigError(f"column 'value' must be numeric, got {schema['value']}")
    if every is not None and not schema["timestamp"].is_temporal():
        raise ConfigError(f"every needs a temporal 'timestamp' column, got {schema['timestamp']}")
    exprs = [pl.col(c) for c in cols]
    if every is not None:
        exprs[-1] = pl.col("timestamp").dt.truncate(every)
    lf = lf.select(*exprs, pl.col("value").cast(pl.Float64))
    return lf, cols, {c: schema[c] for c in cols}


def _prepare_buckets(
    buckets: pl.DataFrame | pl.LazyFrame,
    by: Sequence[str] | str | None,
    every: str | timedelta | None,
) -> tuple[pl.LazyFrame, list[str]]:
    lf = _lazy(buckets)
    cols = _group_columns(by, every)
    _check_every(every)
    _check_columns(lf.collect_schema(), [*cols, *BUCKET_SCHEMA], "bucket frame")
    if every is not None:
        lf = lf.with_columns(pl.col("timestamp").dt.truncate(every))
    return lf.select(*cols, *(pl.col(n).cast(t) for n, t in BUCKET_SCHEMA.items())), cols


def _run(
    frame: pl.DataFrame | pl.LazyFrame,
    lf: pl.LazyFrame,
    compute: Callable[[pl.DataFrame], pl.DataFrame],
    schema: dict[str, pl.DataType],
) -> pl.DataFrame | pl.LazyFrame:
    """Eager for a DataFrame; for a LazyFrame, deferred until the result is collected."""
    if isinstance(frame, pl.DataFrame):
        return compute(lf.collect())
    return lf.map_batches(compute, schema=schema)


def _with_quantiles(groups: pl.DataFrame, values: np.ndarray, names: list[str]) -> pl.DataFrame:
    return _with_columns(
        groups,
        [
            pl.Series(name, values[:, j], dtype=pl.Float64, nan_to_null=True)
            for j, name in enumerate(names)
        ],
    )


def _with_columns(groups: pl.DataFrame, columns: list[pl.Series]) -> pl.DataFrame:
    """``groups`` with ``columns`` added; just ``columns`` when there are no group columns."""
    return groups.with_columns(columns) if groups.width else pl.DataFrame(columns)


def _runs(
    df: pl.DataFrame, cols: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pl.DataFrame, np.ndarray | None]:
    """Runs of rows with equal group keys, and the groups they make, numbered in key order.

    Returns ``(run_starts, run_order, group_runs, groups, grouped)``: run ``r`` is rows
    ``run_starts[r]:run_starts[r + 1]`` of the values (of ``grouped``, the values reordered,
    when it is not None); group ``g`` is the runs ``run_order[group_runs[g]:group_runs[g + 1]]``;
    ``groups`` holds each group's keys. Rows sorted by series and time (as ``db.select``
    returns them) make one run per group; rows in no useful order (many short runs, judged on
    the first ``_PROBE_ROWS``) are grouped by hash and reordered instead.
    """
    if not cols:
        none = np.zeros(1, np.int64)
        return np.array([0, df.height]), none, np.array([0, 1]), pl.DataFrame(), None
    probe = df.head(_PROBE_ROWS).lazy().select(pl.struct(cols).rle_id().max()).collect().item()
    if probe is not None and (probe + 1) * 16 > min(df.height, _PROBE_ROWS):
        hashed = _hash_groups(df, cols)
        if hashed is not None:
            return hashed
    rle = df.lazy().select(pl.struct(cols).rle()).collect().to_series().struct.unnest()
    lengths = rle.get_column("len").to_numpy().astype(np.int64)
    run_starts = np.concatenate([[0], np.cumsum(lengths)])
    run_keys = rle.get_column("value").struct.unnest()
    if run_keys.height == 0:
        return run_starts, np.zeros(0, np.int64), np.zeros(1, np.int64), df.select(cols), None
    run_group = run_keys.select(pl.struct(cols).rank("dense")).to_series().to_numpy()
    run_group = run_group.astype(np.int64) - 1
    run_order = np.argsort(run_group, kind="stable")
    sorted_group = run_group[run_order]
    group_runs = np.searchsorted(sorted_group, np.arange(sorted_group[-1] + 2))
    groups = run_keys.select(pl.col(cols).gather(run_order[group_runs[:-1]]))
    return run_starts, run_order, group_runs, groups, None


def _hash_groups(
    df: pl.DataFrame, cols: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pl.DataFrame, np.ndarray] | None:
    """Groups by a 64-bit hash of the keys, rows reordered by group; None if two groups' keys
    share a hash (detected by counting the distinct keys), so that the caller falls back."""
    hashes = df.lazy().select(pl.struct(cols).hash()).collect().to_series().to_numpy()
    ids, firsts, rows = _dense_ids(hashes)
    distinct = df.lazy().group_by(cols).agg(pl.len()).collect().height
    if firsts.size != distinct:
        return None
    keys = df.select(pl.col(cols).gather(firsts))
    rank = keys.select(pl.struct(cols).rank("dense")).to_series().to_numpy().astype(np.int64)
    values = np.ascontiguousarray(df.get_column("value").to_numpy(), dtype=np.float64)
    grouped, starts = _values_by_group(values, ids, rank - 1, rows)
    groups = keys.select(pl.col(cols).gather(np.argsort(rank)))
    n_groups = firsts.size
    return starts, np.arange(n_groups), np.arange(n_groups + 1), groups, grouped


def _sketch_groups(
    df: pl.DataFrame, cols: list[str], mapping: LogarithmicMapping, *, with_stats: bool
) -> tuple[pl.DataFrame, SketchArrays, tuple[np.ndarray, ...] | None]:
    """The groups' key rows, their sketches, and per-bucket (sum, min, max) if asked."""
    run_starts, run_order, group_runs, groups, grouped = _runs(df, cols)
    n_groups = group_runs.size - 1
    if grouped is None:
        values = np.ascontiguousarray(df.get_column("value").to_numpy(), dtype=np.float64)
    else:
        values = grouped
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.abs(values))
    out = _sketch_kernel(
        values,
        logs,
        run_starts,
        run_order,
        group_runs,
        mapping.multiplier,
        mapping.offset,
        mapping.min_possible,
        with_stats,
    )
    bad = out[0]
    if bad >= 0:
        values = df.get_column("value").to_numpy()
        bad = int(np.flatnonzero(np.isinf(values))[0])
        raise SketchError(
            f"value[{bad}] = {float(values[bad])!r} cannot be sketched: DDSketch has no bucket for "
            "+-inf (filter infinite values out first)"
        )
    po, pk, pc, no, nk, nc, zero, count, gsum, gmin, gmax = out[1:12]
    nan = np.full(n_groups, np.nan)
    arrays = SketchArrays(
        count,
        zero,
        po,
        pk[: po[-1]].copy(),
        pc[: po[-1]].copy(),
        no,
        nk[: no[-1]].copy(),
        nc[: no[-1]].copy(),
        gsum if with_stats else nan,
        gmin if with_stats else nan,
        gmax if with_stats else nan,
    )
    stats = None
    if with_stats:
        psum, pmin, pmax, nsum, nmin, nmax, zsum, zmin, zmax = out[12:]
        stats = (
            psum[: po[-1]],
            pmin[: po[-1]],
            pmax[: po[-1]],
            nsum[: no[-1]],
            nmin[: no[-1]],
            nmax[: no[-1]],
            zsum,
            zmin,
            zmax,
        )
    return groups, arrays, stats


def _bucket_rows(
    groups: pl.DataFrame, arrays: SketchArrays, stats: tuple[np.ndarray, ...] | None
) -> pl.DataFrame:
    """The long bucket-row frame of ``arrays``; without per-bucket ``stats``, each group's
    sum/min/max go on its first row and the identities on the others."""
    g = arrays.groups
    n_neg, n_pos = np.diff(arrays.neg_offsets), np.diff(arrays.pos_offsets)
    has_zero = ((arrays.zero_count > 0) | (arrays.count == 0)).astype(np.int64)
    per_group = n_neg + has_zero + n_pos
    start = np.concatenate([[0], np.cumsum(per_group)])
    total = int(start[-1])
    group_of = np.repeat(np.arange(g), per_group)
    sign = np.empty(total, np.int8)
    key = np.zeros(total, np.int64)
    count = np.empty(total)
    sums, mins, maxs = np.zeros(total), np.full(total, np.inf), np.full(total, -np.inf)

    neg_group = np.repeat(np.arange(g), n_neg)
    at = start[neg_group] + np.arange(neg_group.size) - arrays.neg_offsets[neg_group]
    sign[at], key[at], count[at] = -1, arrays.neg_keys, arrays.neg_counts
    zero_group = np.flatnonzero(has_zero)
    at_zero = start[zero_group] + n_neg[zero_group]
    sign[at_zero], count[at_zero] = 0, arrays.zero_count[zero_group]
    pos_group = np.repeat(np.arange(g), n_pos)
    at_pos = (
        start[pos_group]
        + n_neg[pos_group]
        + has_zero[pos_group]
        + np.arange(pos_group.size)
        - arrays.pos_offsets[pos_group]
    )
    sign[at_pos], key[at_pos], count[at_pos] = 1, arrays.pos_keys, arrays.pos_counts
    if stats is not None:
        psum, pmin, pmax, nsum, nmin, nmax, zsum, zmin, zmax = stats
        for where, s, lo, hi in (
            (at, nsum, nmin, nmax),
            (at_pos, psum, pmin, pmax),
            (at_zero, zsum[zero_group], zmin[zero_group], zmax[zero_group]),
        ):
            sums[where], mins[where], maxs[where] = s, lo, hi
    else:
        first = start[:-1][per_group > 0]
        sums[first], mins[first], maxs[first] = arrays.sum, arrays.min, arrays.max
    columns = [
        pl.Series("sign", sign),
        pl.Series("key", key),
        pl.Series("count", count),
        pl.Series("sum", sums),
        pl.Series("min", mins),
        pl.Series("max", maxs),
    ]
    return _with_columns(groups.select(pl.all().gather(group_of)), columns)


def _arrays_from_rows(df: pl.DataFrame, cols: list[str]) -> tuple[pl.DataFrame, SketchArrays]:
    """Merged bucket rows (sorted by groups, sign, key) as the groups' rows and sketches."""
    bad = df.select(
        sign=~pl.col("sign").is_in([-1, 0, 1]) | pl.col("sign").is_null(),
        count=~(pl.col("count").is_finite() & (pl.col("count") >= 0)) | pl.col("count").is_null(),
        key=pl.col("key").is_null() | ((pl.col("sign") == 0) & (pl.col("key") != 0)),
    )
    for name in bad.columns:
        if bad.get_column(name).any():
            row = int(bad.get_column(name).arg_max())
            raise SketchError(
                f"bucket row {row} has an invalid {name!r}: {df.row(row)}; "
                "sign must be -1/0/1, key 0 for the zero bucket, count >= 0"
            )
    if cols and df.height:
        gid = df.lazy().select(pl.struct(cols).rle_id()).collect().to_series().to_numpy()
        gid = gid.astype(np.int64)
    else:
        gid = np.zeros(df.height, dtype=np.int64)
    n_groups = int(gid[-1]) + 1 if df.height else (0 if cols else 1)
    starts = np.searchsorted(gid, np.arange(n_groups + 1))
    groups = df.select(pl.col(cols).gather(starts[:-1])) if cols else pl.DataFrame()
    sign = df.get_column("sign").to_numpy()
    key = df.get_column("key").to_numpy()
    count = df.get_column("count").to_numpy()
    parts = []
    for s in (1, -1):
        mask = sign == s
        parts += [np.searchsorted(gid[mask], np.arange(n_groups + 1)), key[mask], count[mask]]
    zero = np.bincount(gid[sign == 0], weights=count[sign == 0], minlength=n_groups)
    total = np.bincount(gid, weights=count, minlength=n_groups)
    if df.height:
        row_starts = starts[:-1]
        gsum = np.add.reduceat(df.get_column("sum").to_numpy(), row_starts)
        gmin = np.minimum.reduceat(df.get_column("min").to_numpy(), row_starts)
        gmax = np.maximum.reduceat(df.get_column("max").to_numpy(), row_starts)
    else:
        gsum, gmin, gmax = (np.full(n_groups, v) for v in (0.0, np.inf, -np.inf))
    return groups, SketchArrays(total, zero, *parts, gsum, gmin, gmax)


# -- kernels ----------------------------------------------------------------------------------


@nb.njit(cache=True)
def _dense_ids(hashes):
    """Group id per row, numbered by first appearance of each hash, each id's first row and
    its number of rows (open addressing, table grown to stay at most half full)."""
    n = hashes.size
    cap = 1024
    table = np.zeros(cap, np.uint64)
    slot_id = np.full(cap, -1, np.int64)
    ids = np.empty(n, np.int64)
    firsts = np.empty(n, np.int64)
    rows = np.zeros(n, np.int64)
    groups = 0
    for i in range(n):
        h = hashes[i]
        j = np.int64(h & np.uint64(cap - 1))
        while slot_id[j] >= 0 and table[j] != h:
            j = (j + 1) & (cap - 1)
        if slot_id[j] < 0:
            table[j], slot_id[j] = h, groups
            firsts[groups] = i
            groups += 1
            if 2 * groups > cap:
                old_table, old_id = table, slot_id
                cap *= 2
                table = np.zeros(cap, np.uint64)
                slot_id = np.full(cap, -1, np.int64)
                for k in range(old_table.size):
                    if old_id[k] >= 0:
                        m = np.int64(old_table[k] & np.uint64(cap - 1))
                        while slot_id[m] >= 0:
                            m = (m + 1) & (cap - 1)
                        table[m], slot_id[m] = old_table[k], old_id[k]
            ids[i] = groups - 1
        else:
            ids[i] = slot_id[j]
        rows[ids[i]] += 1
    return ids, firsts[:groups].copy(), rows[:groups].copy()


@nb.njit(cache=True)
def _values_by_group(values, ids, rank, rows):
    """``values`` reordered by group ``rank[ids[row]]`` (a stable counting sort), and each
    group's start."""
    groups = rank.size
    starts = np.zeros(groups + 1, np.int64)
    for k in range(groups):
        starts[rank[k] + 1] = rows[k]
    for g in range(groups):
        starts[g + 1] += starts[g]
    at = starts[:-1].copy()
    out = np.empty_like(values)
    for i in range(ids.size):
        g = rank[ids[i]]
        out[at[g]] = values[i]
        at[g] += 1
    return out, starts


@nb.njit(cache=True)
def _emit(
    keys,
    signs,
    values,
    lo,
    hi,
    side,
    n_side,
    kmin,
    kmax,
    out_keys,
    out_counts,
    out_sum,
    out_min,
    out_max,
    w,
    dense,
    dsum,
    dmin,
    dmax,
    with_stats,
):
    """Append the buckets of one group's ``side`` (ascending keys) at ``w``; the new ``w``."""
    if n_side == 0:
        return w
    span = kmax - kmin + 1
    if span <= min(4 * n_side + 1024, _DENSE_LIMIT):
        for i in range(lo, hi):
            if signs[i] == side:
                j = keys[i] - kmin
                dense[j] += 1.0
                if with_stats:
                    dsum[j] += values[i]
                    dmin[j] = min(dmin[j], values[i])
                    dmax[j] = max(dmax[j], values[i])
        for j in range(span):
            if dense[j] > 0:
                out_keys[w], out_counts[w] = kmin + j, dense[j]
                dense[j] = 0.0
                if with_stats:
                    out_sum[w], out_min[w], out_max[w] = dsum[j], dmin[j], dmax[j]
                    dsum[j], dmin[j], dmax[j] = 0.0, np.inf, -np.inf
                w += 1
        return w
    picked = np.empty(n_side, np.int64)
    m = 0
    for i in range(lo, hi):
        if signs[i] == side:
            picked[m] = i
            m += 1
    order = picked[np.argsort(keys[picked], kind="mergesort")]
    for t in range(n_side):
        i = order[t]
        if t == 0 or keys[i] != keys[order[t - 1]]:
            out_keys[w], out_counts[w] = keys[i], 0.0
            if with_stats:
                out_sum[w], out_min[w], out_max[w] = 0.0, np.inf, -np.inf
            w += 1
        out_counts[w - 1] += 1.0
        if with_stats:
            out_sum[w - 1] += values[i]
            out_min[w - 1] = min(out_min[w - 1], values[i])
            out_max[w - 1] = max(out_max[w - 1], values[i])
    return w


@nb.njit(cache=True)
def _sketch_kernel(
    values, logs, run_starts, run_order, group_runs, multiplier, offset, min_possible, with_stats
):
    """Bucket counts of every group (see ``SketchArrays``), one group at a time: the keys of
    its rows go to a scratch buffer, then into a dense counter over their range. Returns the
    index of the first infinite value (or -1) first."""
    groups = group_runs.size - 1
    n = values.size
    m = n if with_stats else 0
    gm = groups if with_stats else 0
    po = np.zeros(groups + 1, np.int64)
    no = np.zeros(groups + 1, np.int64)
    pk, nk = np.empty(n, np.int64), np.empty(n, np.int64)
    pc, nc = np.empty(n, np.float64), np.empty(n, np.float64)
    psum, pmin, pmax = np.empty(m), np.empty(m), np.empty(m)
    nsum, nmin, nmax = np.empty(m), np.empty(m), np.empty(m)
    zero, count = np.zeros(groups), np.zeros(groups)
    zsum, zmin, zmax = np.zeros(gm), np.full(gm, np.inf), np.full(gm, -np.inf)
    gsum, gmin, gmax = np.zeros(gm), np.full(gm, np.inf), np.full(gm, -np.inf)
    largest = 0
    for g in range(groups):
        rows = 0
        for r in range(group_runs[g], group_runs[g + 1]):
            rows += run_starts[run_order[r] + 1] - run_starts[run_order[r]]
        largest = max(largest, rows)
    keys = np.empty(largest, np.int64)
    signs = np.empty(largest, np.int8)
    vals = np.empty(largest if with_stats else 0)
    size = min(_DENSE_LIMIT, 4 * largest + 1024)
    dense = np.zeros(size)
    ds = size if with_stats else 0
    dsum, dmin, dmax = np.zeros(ds), np.full(ds, np.inf), np.full(ds, -np.inf)
    big = 9223372036854775807
    wp = 0
    wn = 0
    for g in range(groups):
        pmin_k, pmax_k, nmin_k, nmax_k = big, -big, big, -big
        n_pos = 0
        n_neg = 0
        t = 0
        for r in range(group_runs[g], group_runs[g + 1]):
            for i in range(run_starts[run_order[r]], run_starts[run_order[r] + 1]):
                v = values[i]
                if v != v:
                    continue
                if v == np.inf or v == -np.inf:
                    return (
                        i,
                        po,
                        pk,
                        pc,
                        no,
                        nk,
                        nc,
                        zero,
                        count,
                        gsum,
                        gmin,
                        gmax,
                        psum,
                        pmin,
                        pmax,
                        nsum,
                        nmin,
                        nmax,
                        zsum,
                        zmin,
                        zmax,
                    )
                if v > min_possible:
                    key = fast_key(v, logs[i], multiplier, offset)
                    signs[t] = 1
                    n_pos += 1
                    pmin_k, pmax_k = min(pmin_k, key), max(pmax_k, key)
                elif v < -min_possible:
                    key = fast_key(-v, logs[i], multiplier, offset)
                    signs[t] = -1
                    n_neg += 1
                    nmin_k, nmax_k = min(nmin_k, key), max(nmax_k, key)
                else:
                    key = 0
                    signs[t] = 0
                    zero[g] += 1.0
                    if with_stats:
                        zsum[g] += v
                        zmin[g] = min(zmin[g], v)
                        zmax[g] = max(zmax[g], v)
                keys[t] = key
                if with_stats:
                    vals[t] = v
                    gsum[g] += v
                    gmin[g] = min(gmin[g], v)
                    gmax[g] = max(gmax[g], v)
                t += 1
        count[g] = t
        wp = _emit(
            keys,
            signs,
            vals,
            0,
            t,
            1,
            n_pos,
            pmin_k,
            pmax_k,
            pk,
            pc,
            psum,
            pmin,
            pmax,
            wp,
            dense,
            dsum,
            dmin,
            dmax,
            with_stats,
        )
        wn = _emit(
            keys,
            signs,
            vals,
            0,
            t,
            -1,
            n_neg,
            nmin_k,
            nmax_k,
            nk,
            nc,
            nsum,
            nmin,
            nmax,
            wn,
            dense,
            dsum,
            dmin,
            dmax,
            with_stats,
        )
        po[g + 1] = wp
        no[g + 1] = wn
    return (
        -1,
        po,
        pk,
        pc,
        no,
        nk,
        nc,
        zero,
        count,
        gsum,
        gmin,
        gmax,
        psum,
        pmin,
        pmax,
        nsum,
        nmin,
        nmax,
        zsum,
        zmin,
        zmax,
    )
