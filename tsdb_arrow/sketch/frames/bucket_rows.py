"""Bucket rows: many DDSketches as a long Polars frame, one row per bucket, and back.

Bucket rows (``sketches``, ``merge_sketches``, ``from_sketch_column`` in ``aggregate``) form a
long frame:

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

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import polars as pl

from tsdb_arrow.errors import SketchError
from tsdb_arrow.sketch.ddsketch.arrays import SketchArrays
from tsdb_arrow.sketch.frames.plumbing import (
    as_lazy,
    check_columns,
    check_every,
    group_columns,
    with_columns,
)

BUCKET_SCHEMA = {
    "sign": pl.Int8,
    "key": pl.Int64,
    "count": pl.Float64,
    "sum": pl.Float64,
    "min": pl.Float64,
    "max": pl.Float64,
}


def prepare_buckets(
    buckets: pl.DataFrame | pl.LazyFrame,
    by: Sequence[str] | str | None,
    every: str | timedelta | None,
) -> tuple[pl.LazyFrame, list[str]]:
    """The lazy projection of a bucket frame (group columns, re-windowed timestamp, bucket
    columns cast to ``BUCKET_SCHEMA``) and its group columns."""
    lf = as_lazy(buckets)
    cols = group_columns(by, every)
    check_every(every)
    check_columns(lf.collect_schema(), [*cols, *BUCKET_SCHEMA], "bucket frame")
    if every is not None:
        lf = lf.with_columns(pl.col("timestamp").dt.truncate(every))
    return lf.select(*cols, *(pl.col(n).cast(t) for n, t in BUCKET_SCHEMA.items())), cols


def bucket_rows(
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
    return with_columns(groups.select(pl.all().gather(group_of)), columns)


def arrays_from_rows(df: pl.DataFrame, cols: list[str]) -> tuple[pl.DataFrame, SketchArrays]:
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
