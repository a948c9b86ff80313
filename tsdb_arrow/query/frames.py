"""Building a batch's Polars frame: timestamps and values as they are, labels from the series.

A batch's rows come in runs of one series. A label column is therefore built from the series'
Arrow string views (16 bytes each, the text stored once per query), repeated run by run by a
numba kernel that releases the GIL and writes with streaming stores: no per-row string work and
no Polars gather. A label that is the same for the whole batch (often null) is a literal that
Polars broadcasts, which costs nothing per row.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.jit import njit
from tsdb_arrow.model import REF, TIMESTAMP, VALUE
from tsdb_arrow.query import streaming_stores
from tsdb_arrow.query.buffers import pool_buffer

TIME_DTYPE = pl.Datetime("ms", "UTC")


class LabelViews:
    """Every label's value per series as Arrow string views, for all labels of a query at once.

    A view is 16 bytes (two uint64 here): the length, then the text itself when it has at most
    12 bytes, else a prefix and where the text lies in ``data``. Each distinct value (over all
    labels) is stored once in ``data``, shared by every column of every batch. ``codes`` numbers
    the distinct values (-1 for null), so a label shared by a batch's series is found constant
    by comparing small integers.
    """

    def __init__(self, labels: pl.DataFrame) -> None:
        n_series = labels.height
        # Polars, not pyarrow.compute: a query must not import pyarrow.compute or pandas
        # (pyarrow's to_numpy of a boolean array does), see benchmarks/cold_start.py.
        flat = pl.concat([labels.get_column(c).cast(pl.String) for c in labels.columns])
        self.distinct = flat.drop_nulls().unique(maintain_order=True)
        codes = flat.cast(pl.Enum(self.distinct)).to_physical().cast(pl.Int64).fill_null(-1)
        self.codes = codes.to_numpy().reshape(labels.width, n_series)  # label, series
        self.valid = self.codes >= 0
        self.all_valid = self.valid.all(axis=1)
        distinct = self.distinct.to_arrow(compat_level=pl.CompatLevel.newest())
        if isinstance(distinct, pa.ChunkedArray):
            distinct = distinct.combine_chunks()
        buffers = distinct.buffers()
        views = np.frombuffer(buffers[1], dtype=np.uint64).reshape(-1, 2)
        views = views[distinct.offset : distinct.offset + len(distinct)]
        self.views = np.zeros((labels.width, n_series, 2), np.uint64)  # null slots zeroed
        self.views[self.valid] = views[self.codes[self.valid]]
        self.data = buffers[2:]  # the text of views longer than 12 bytes

    def value(self, code: int) -> str | None:
        """The label value numbered ``code`` (None for -1, null)."""
        return None if code < 0 else self.distinct[code]

    def array(
        self, j: int, views: pa.Buffer, n: int, pos: np.ndarray, lengths: np.ndarray
    ) -> pa.Array:
        """Label ``j``'s Arrow column of ``n`` expanded ``views`` (rows in runs of series
        ``pos``)."""
        validity, nulls = None, 0
        if not self.all_valid[j]:
            valid = self.valid[j, pos]
            if not valid.all():
                rows = np.repeat(valid, lengths)
                nulls = n - int(np.count_nonzero(rows))
                validity = pa.py_buffer(np.packbits(rows, bitorder="little"))
        return pa.StringViewArray.from_buffers(
            pa.string_view(), n, [validity, views, *self.data], null_count=nulls
        )


@njit(cache=True, nogil=True)
def _expand(
    views: np.ndarray, labels: np.ndarray, pos: np.ndarray, lengths: np.ndarray, out: np.ndarray
) -> None:
    """``out[j]`` = label ``labels[j]``'s view of series ``pos[r]``, ``lengths[r]`` times per
    run r."""
    for j in range(labels.shape[0]):
        k = 0
        for r in range(pos.shape[0]):
            lo = views[labels[j], pos[r], 0]
            hi = views[labels[j], pos[r], 1]
            for _ in range(lengths[r]):
                out[j, k, 0] = lo
                out[j, k, 1] = hi
                k += 1


@njit(cache=True, nogil=True)
def _expand_streaming(
    views: np.ndarray, labels: np.ndarray, pos: np.ndarray, lengths: np.ndarray, out: np.ndarray
) -> None:
    """:func:`_expand` into ``out`` flattened (16-byte aligned), with streaming stores."""
    n = out.shape[0] // max(2 * labels.shape[0], 1)
    for j in range(labels.shape[0]):
        k = j * n
        for r in range(pos.shape[0]):
            lo = views[labels[j], pos[r], 0]
            hi = views[labels[j], pos[r], 1]
            for _ in range(lengths[r]):
                streaming_stores.store_pair(out, k, lo, hi)
                k += 1
    streaming_stores.store_fence()


def expand(
    views: np.ndarray, labels: np.ndarray, pos: np.ndarray, lengths: np.ndarray, out: np.ndarray
) -> None:
    """:func:`_expand`, with streaming stores where the CPU and ``out``'s alignment allow."""
    if streaming_stores.AVAILABLE and out.ctypes.data % 16 == 0:
        _expand_streaming(views, labels, pos, lengths, out.reshape(-1))
    else:
        _expand(views, labels, pos, lengths, out)


class FrameBuilder:
    """Builds each batch's frame with the given columns, in order, for a query's series."""

    def __init__(self, series: pl.DataFrame, columns: list[str]) -> None:
        self.columns = columns
        labels = series.select([c for c in columns if c not in (TIMESTAMP, VALUE)])
        self.names = labels.columns
        self.refs = series[REF].to_numpy()
        self.labels = LabelViews(labels) if self.names else None
        self._literals: dict[tuple[int, int], pl.Expr] = {}  # (label, code) -> its literal

    def _literal(self, j: int, code: int) -> pl.Expr:
        """Label ``j`` set to the value numbered ``code`` for a whole batch."""
        lit = self._literals.get((j, code))
        if lit is None:
            assert self.labels is not None
            value = self.labels.value(code)
            lit = self._literals[(j, code)] = pl.lit(value, pl.String).alias(self.names[j])
        return lit

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
        if self.labels is not None:
            run_refs, lengths = runs
            if int(lengths.sum()) != n:  # the kernel below writes n rows per label, unchecked
                raise AssertionError(f"runs cover {int(lengths.sum())} rows, the batch has {n}")
            pos = np.searchsorted(self.refs, run_refs)
            if n:
                picked = self.labels.codes[:, pos]
                same = (picked == picked[:, :1]).all(axis=1)
            else:
                same = np.ones(len(self.names), np.bool_)
            varying = np.flatnonzero(~same)
            if len(varying):
                size = 16 * n
                buf = pool_buffer(len(varying) * size)
                out = np.frombuffer(buf, np.uint64).reshape(len(varying), n, 2)
                expand(self.labels.views, varying, pos, lengths, out)
                for k, j in enumerate(varying.tolist()):
                    column = self.labels.array(j, buf.slice(k * size, size), n, pos, lengths)
                    built[self.names[j]] = pl.Series(self.names[j], column)
            for j in np.flatnonzero(same).tolist():
                code = int(self.labels.codes[j, pos[0]]) if n else -1
                literals[self.names[j]] = self._literal(j, code)
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
