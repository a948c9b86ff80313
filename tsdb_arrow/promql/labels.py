"""Label-set operations over a series table (one ``pl.String`` column per label, null where
absent): grouping, dropping the metric name, merging series that end up with one label set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql.values import METRIC_NAME, InstantVector

DUPLICATE_LABELSET = "vector cannot contain metrics with the same labelset"


def tidy(labels: pl.DataFrame) -> pl.DataFrame:
    """Empty values as null (Prometheus treats them as absent), all-null columns dropped,
    columns sorted by name."""
    if labels.width == 0:
        return labels
    labels = labels.with_columns(
        pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in labels.columns
    )
    keep = [c for c in sorted(labels.columns) if labels[c].null_count() < labels.height]
    return keep_columns(labels, keep)


def empty_labels(n: int) -> pl.DataFrame:
    """A label table of ``n`` series with no labels at all."""
    return pl.DataFrame({"_": np.zeros(n, np.int8)}).drop("_")


def keep_columns(labels: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """The given columns of ``labels`` (missing ones skipped), keeping the row count."""
    cols = [c for c in labels.columns if c in set(names)]
    return labels.select(cols) if cols else empty_labels(labels.height)


def concat(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Label tables stacked (columns unioned, null where absent), zero-width ones too."""
    marked = [f.with_columns(pl.lit(0, pl.Int8).alias("_")) for f in frames]
    return pl.concat(marked, how="diagonal").drop("_")


def rows(labels: pl.DataFrame) -> list[dict[str, str]]:
    """One ``{name: value}`` per series, absent labels left out."""
    if labels.width == 0:
        return [{} for _ in range(labels.height)]
    return [{k: v for k, v in r.items() if v is not None} for r in labels.iter_rows(named=True)]


def drop_name(labels: pl.DataFrame) -> pl.DataFrame:
    """The labels without ``__name__``."""
    return labels.drop(METRIC_NAME, strict=False)


def group_ids(keys: pl.DataFrame) -> tuple[np.ndarray, pl.DataFrame]:
    """A group number per row of ``keys`` (equal rows, nulls equal, share one) and the
    distinct rows in order of first appearance."""
    if keys.width == 0:
        return np.zeros(keys.height, np.int64), empty_labels(min(keys.height, 1))
    uniq = keys.unique(maintain_order=True).with_row_index("_gid")
    ids = keys.join(uniq, on=keys.columns, how="left", nulls_equal=True, maintain_order="left")
    return ids["_gid"].to_numpy().astype(np.int64), uniq.drop("_gid")


def grouping_keys(labels: pl.DataFrame, names: Sequence[str], *, without: bool) -> pl.DataFrame:
    """The columns of ``labels`` a ``by (names)`` / ``without (names)`` clause keeps.

    ``without`` always drops ``__name__`` too; a ``by`` label no series has is null."""
    if without:
        drop = set(names) | {METRIC_NAME}
        return keep_columns(labels, [c for c in labels.columns if c not in drop])
    cols = sorted(set(names))
    if not cols:
        return empty_labels(labels.height)
    missing = [pl.lit(None, pl.String).alias(c) for c in cols if c not in labels.columns]
    return labels.with_columns(missing).select(cols)


def merge_same_labels(vec: InstantVector, message: str = DUPLICATE_LABELSET) -> InstantVector:
    """Series with equal label sets made one; two of them present at one step is an error."""
    labels = tidy(vec.labels)
    ids, uniq = group_ids(labels)
    n = int(ids.max()) + 1 if ids.size else 0
    if n == ids.size:
        return InstantVector(labels, vec.values, vec.present, vec.timestamps, vec.hist, vec.pool)
    has = vec.present if vec.hist is None else vec.present | (vec.hist >= 0)
    counts = np.zeros((n, vec.present.shape[1]), np.int64)
    np.add.at(counts, ids, has.astype(np.int64))
    if (counts > 1).any():
        raise QueryError(message)
    values = np.zeros((n, vec.values.shape[1]))
    present = np.zeros(values.shape, bool)
    rows, cols = np.nonzero(vec.present)
    values[ids[rows], cols] = vec.values[rows, cols]
    present[ids[rows], cols] = True
    stamps = None
    if vec.timestamps is not None:
        stamps = np.zeros(values.shape, np.int64)
        stamps[ids[rows], cols] = vec.timestamps[rows, cols]
    hist = None
    if vec.hist is not None:
        hist = np.full(values.shape, -1, np.int64)
        rows, cols = np.nonzero(vec.hist >= 0)
        hist[ids[rows], cols] = vec.hist[rows, cols]
        if stamps is not None:
            stamps[ids[rows], cols] = vec.timestamps[rows, cols]  # type: ignore[index]
    return InstantVector(uniq, values, present, stamps, hist, vec.pool)


def only_present(vec: InstantVector) -> InstantVector:
    """The vector without the series that have no sample at any step."""
    rows = vec.present.any(axis=1)
    if vec.hist is not None:
        rows |= (vec.hist >= 0).any(axis=1)
    if rows.all():
        return vec
    stamps = None if vec.timestamps is None else vec.timestamps[rows]
    hist = None if vec.hist is None else vec.hist[rows]
    return InstantVector(
        vec.labels.filter(pl.Series(rows)), vec.values[rows], vec.present[rows], stamps,
        hist, vec.pool,
    )
