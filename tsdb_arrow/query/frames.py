"""Building a batch's Polars frame: timestamps and values as they are, labels from the series.

A batch's rows come in runs of one series. A label column is therefore built from the series'
Arrow string views (16 bytes each, the text stored once per query), repeated run by run by a
numba kernel that releases the GIL: no per-row string work and no Polars gather. A label that is
the same for the whole batch (often null) is a literal that Polars broadcasts, which costs
nothing per row.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.model import REF, TIMESTAMP, VALUE
from tsdb_arrow.query import streaming_stores
from tsdb_arrow.query.buffers import pool_buffer

TIME_DTYPE = pl.Datetime("ms", "UTC")


class LabelViews:
    """One label's values per series (in series order) as Arrow string views and validity.

    A view is 16 bytes (two uint64 here): the length, then the text itself when it has at most
    12 bytes, else a prefix and where the text lies in ``data``. Each distinct value is stored
    once, so equal values have equal views (and a label shared by a batch's series is found
    constant by comparing views).
    """

    def __init__(self, values: pl.Series) -> None:
        # Polars, not pyarrow.compute: a query must not import pyarrow.compute or pandas
        # (pyarrow's to_numpy of a boolean array does), see benchmarks/cold_start.py.
        distinct_values = values.drop_nulls().unique(maintain_order=True)
        distinct = distinct_values.to_arrow(compat_level=pl.CompatLevel.newest())
        if isinstance(distinct, pa.ChunkedArray):
            distinct = distinct.combine_chunks()
        buffers = distinct.buffers()
        views = np.frombuffer(buffers[1], dtype=np.uint64).reshape(-1, 2)
        views = views[distinct.offset : distinct.offset + len(distinct)]
        self.valid = values.is_not_null().to_numpy()
        self.all_valid = bool(self.valid.all())
        codes = values.cast(pl.Enum(distinct_values)).to_physical()
        index = codes.fill_null(0).to_numpy().astype(np.int64)
        self.views = np.zeros((len(values), 2), np.uint64)  # null slots zeroed
        if len(views):
            self.views[self.valid] = views[index[self.valid]]
        self.data = buffers[2:]  # the text of views longer than 12 bytes, shared by every batch

    def array(self, views: pa.Buffer, n: int, pos: np.ndarray, lengths: np.ndarray) -> pa.Array:
        """The Arrow column of ``n`` expanded ``views`` (rows in runs of series ``pos``)."""
        validity, nulls = None, 0
        if not self.all_valid:
            valid = self.valid[pos]
            if not valid.all():
                rows = np.repeat(valid, lengths)
                nulls = n - int(np.count_nonzero(rows))
                validity = pa.py_buffer(np.packbits(rows, bitorder="little"))
        return pa.StringViewArray.from_buffers(
            pa.string_view(), n, [validity, views, *self.data], null_count=nulls
        )


@nb.njit(cache=True, nogil=True)
def _expand(views: np.ndarray, pos: np.ndarray, lengths: np.ndarray, out: np.ndarray) -> None:
    """``out[j]`` = label ``j``'s view of series ``pos[r]``, ``lengths[r]`` times per run r."""
    for j in range(views.shape[0]):
        k = 0
        for r in range(pos.shape[0]):
            lo = views[j, pos[r], 0]
            hi = views[j, pos[r], 1]
            for _ in range(lengths[r]):
                out[j, k, 0] = lo
                out[j, k, 1] = hi
                k += 1


@nb.njit(cache=True, nogil=True)
def _expand_streaming(
    views: np.ndarray, pos: np.ndarray, lengths: np.ndarray, out: np.ndarray
) -> None:
    """:func:`_expand` into ``out`` flattened (16-byte aligned), with streaming stores."""
    n = out.shape[0] // max(2 * views.shape[0], 1)
    for j in range(views.shape[0]):
        k = j * n
        for r in range(pos.shape[0]):
            lo = views[j, pos[r], 0]
            hi = views[j, pos[r], 1]
            for _ in range(lengths[r]):
                streaming_stores.store_pair(out, k, lo, hi)
                k += 1
    streaming_stores.store_fence()


def expand(views: np.ndarray, pos: np.ndarray, lengths: np.ndarray, out: np.ndarray) -> None:
    """:func:`_expand`, with streaming stores where the CPU and ``out``'s alignment allow."""
    if streaming_stores.AVAILABLE and out.ctypes.data % 16 == 0:
        _expand_streaming(views, pos, lengths, out.reshape(-1))
    else:
        _expand(views, pos, lengths, out)


class FrameBuilder:
    """Builds each batch's frame with the given columns, in order, for a query's series."""

    def __init__(self, series: pl.DataFrame, columns: list[str]) -> None:
        self.columns = columns
        self.labels = series.select([c for c in columns if c not in (TIMESTAMP, VALUE)])
        self.names = self.labels.columns
        self.refs = series[REF].to_numpy()
        self.labels_views = [LabelViews(self.labels.get_column(c)) for c in self.names]
        # label, series, view half: compared to find the labels constant within a batch
        self.views = np.stack([v.views for v in self.labels_views]) if self.names else None
        self.valid = np.stack([v.valid for v in self.labels_views]) if self.names else None

    def frame(
        self,
        timestamps: np.ndarray,
        values: np.ndarray | None,
        runs: tuple[np.ndarray, np.ndarray],
    ) -> pl.DataFrame:
        """The frame of one batch: rows in ``runs`` of one series, (refs, lengths)."""
        n = len(timestamps)
        built: dict[str, pl.Series] = {}
        if TIMESTAMP in self.columns or VALUE not in self.columns:  # some column sets the height
            built[TIMESTAMP] = pl.Series(TIMESTAMP, timestamps).cast(TIME_DTYPE)
        if VALUE in self.columns:
            built[VALUE] = pl.Series(VALUE, values)
        literals: dict[str, pl.Expr] = {}
        if self.views is not None:
            run_refs, lengths = runs
            if int(lengths.sum()) != n:  # the kernel below writes n rows per label, unchecked
                raise AssertionError(f"runs cover {int(lengths.sum())} rows, the batch has {n}")
            pos = np.searchsorted(self.refs, run_refs)
            if n:
                picked, valid = self.views[:, pos], self.valid[:, pos]
                same = (picked == picked[:, :1]).all(axis=(1, 2)) & (valid == valid[:, :1]).all(1)
            else:
                same = np.ones(len(self.names), np.bool_)
            varying = np.flatnonzero(~same)
            if len(varying):
                size = 16 * n
                buf = pool_buffer(len(varying) * size)
                out = np.frombuffer(buf, np.uint64).reshape(len(varying), n, 2)
                expand(self.views[varying], pos, lengths, out)
                for k, j in enumerate(varying.tolist()):
                    column = self.labels_views[j].array(buf.slice(k * size, size), n, pos, lengths)
                    built[self.names[j]] = pl.Series(self.names[j], column)
            for j in np.flatnonzero(same).tolist():
                name = self.names[j]
                value = self.labels.get_column(name)[int(pos[0])] if n else None
                literals[name] = pl.lit(value, pl.String).alias(name)
        if not literals:
            # Every column is built: no Polars query (a hand-off to its thread pool) needed.
            return pl.DataFrame([built[c] for c in self.columns])
        frame = pl.DataFrame(list(built.values()))
        selected = [literals[c] if c in literals else pl.col(c) for c in self.columns]
        if any(c in built for c in self.columns):
            # One select: the wanted order, constants broadcast to the batch's height.
            return frame.select(selected)
        # Only literals: a select would give one row, with_columns broadcasts them.
        return frame.with_columns(selected).select(self.columns)
