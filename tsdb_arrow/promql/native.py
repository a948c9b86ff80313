"""Native (exponential) histogram samples as the PromQL engine holds them: flat arrays.

A :class:`NativeHistograms` pool holds many samples at once, one row each, with the bucket
counts of all rows concatenated (CSR): so kernels run over every sample of a query in one call.
Buckets use OpenTelemetry's indexing as storage does (``docs/sketches.md``): positive bucket
``i`` at scale ``s`` covers ``(2**(i * 2**-s), 2**((i+1) * 2**-s)]``, which is Prometheus'
bucket ``i + 1`` of schema ``s``; negative buckets mirror it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.model import HISTOGRAM, HISTOGRAM_FIELDS, TIMESTAMP


@dataclass
class NativeHistograms:
    """Histogram samples, one row each: ``scale``, ``count``, ``sum``, ``zero_count``,
    ``zero_threshold`` (float64 but scale, one per row), positive buckets of row r at
    ``pos_counts[pos_start[r]:pos_start[r+1]]`` starting at index ``pos_offset[r]``, negative
    ones likewise."""

    scale: np.ndarray
    count: np.ndarray
    sum: np.ndarray
    zero_count: np.ndarray
    zero_threshold: np.ndarray
    pos_offset: np.ndarray
    pos_start: np.ndarray
    pos_counts: np.ndarray
    neg_offset: np.ndarray
    neg_start: np.ndarray
    neg_counts: np.ndarray

    def __len__(self) -> int:
        return int(self.scale.size)


def _csr(column: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row starts (n + 1) and the concatenated float64 values of a list column, read from
    its Arrow offsets and values (no explode)."""
    arr = column.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        arr = arr.fill_null(pa.scalar([], arr.type))
    offsets = np.asarray(arr.offsets, dtype=np.int64)
    flat = np.asarray(arr.values, dtype=np.float64)[offsets[0]:offsets[-1]]
    return offsets - offsets[0], flat


def _floats(struct: pl.Series, name: str, default: float) -> np.ndarray:
    return struct.struct.field(name).cast(pl.Float64).fill_null(default).to_numpy().copy()


def from_struct(struct: pl.Series) -> NativeHistograms:
    """The pool of a ``histogram`` struct column as ``db.select_histograms`` gives it."""
    pos_start, pos_counts = _csr(struct.struct.field("positive_counts"))
    neg_start, neg_counts = _csr(struct.struct.field("negative_counts"))
    ints = {n: struct.struct.field(n).fill_null(0).cast(pl.Int64).to_numpy().copy()
            for n in ("scale", "positive_offset", "negative_offset")}
    return NativeHistograms(
        scale=ints["scale"],
        count=_floats(struct, "count", 0.0),
        sum=_floats(struct, "sum", np.nan),
        zero_count=_floats(struct, "zero_count", 0.0),
        zero_threshold=_floats(struct, "zero_threshold", 0.0),
        pos_offset=ints["positive_offset"],
        pos_start=pos_start,
        pos_counts=pos_counts,
        neg_offset=ints["negative_offset"],
        neg_start=neg_start,
        neg_counts=neg_counts,
    )


def empty_pool() -> NativeHistograms:
    """A pool without samples."""
    z, zi = np.empty(0), np.empty(0, np.int64)
    one = np.zeros(1, np.int64)
    return NativeHistograms(zi, z, z, z, z, zi, one, z, zi, one, z)


@dataclass
class HistogramSamples:
    """Raw histogram samples of the series a selector matched: labels (one row per series),
    then series i's samples at ``timestamps[offsets[i]:offsets[i+1]]`` (sorted by time), rows
    ``offsets[i]..`` of ``pool``."""

    labels: pl.DataFrame
    timestamps: np.ndarray
    offsets: np.ndarray
    pool: NativeHistograms

    @property
    def count(self) -> int:
        """How many samples were loaded."""
        return int(self.timestamps.size)


def load_histograms(db: object, text: str, lo: int, hi: int) -> HistogramSamples | None:
    """Histogram samples of the series matching selector ``text`` in ``[lo, hi]`` (ms), or
    None when there are none (the common case: float-only series)."""
    start, end = np.datetime64(lo, "ms"), np.datetime64(hi, "ms")
    frame = db.select_histograms(text, start=start, end=end).collect()  # type: ignore[attr-defined]
    if frame.height == 0:
        return None
    names = [c for c in frame.columns if c not in (TIMESTAMP, HISTOGRAM)]
    if names:
        changed = frame.select(
            pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift()) for c in names])
        ).to_series().fill_null(True).to_numpy().copy()
    else:
        changed = np.zeros(frame.height, bool)
    changed[0] = True
    starts = np.flatnonzero(changed)
    labels = frame.select(names)[starts]
    stamps = frame[TIMESTAMP].dt.epoch("ms").to_numpy().astype(np.int64, copy=False)
    offsets = np.r_[starts, frame.height].astype(np.int64)
    return HistogramSamples(labels, stamps, offsets, from_struct(frame[HISTOGRAM]))


@dataclass
class HistogramRange:
    """The histogram samples of a range vector's series: series i's at
    ``timestamps[offsets[i]:offsets[i+1]]`` (sorted by time), each the row ``rows[...]`` of
    ``pool``."""

    timestamps: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray
    pool: NativeHistograms


def to_struct(pool: NativeHistograms, rows: np.ndarray, name: str = HISTOGRAM) -> pl.Series:
    """Pool rows ``rows`` as a ``histogram`` struct column with the fields of
    ``db.select_histograms``, counts as float64 (results such as ``rate`` have fractional
    counts) and ``min``/``max`` NaN (PromQL does not track them)."""
    rows = np.asarray(rows, dtype=np.int64)

    def lists(start: np.ndarray, counts: np.ndarray) -> pa.Array:
        lengths = (start[1:] - start[:-1])[rows]
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        gather = np.repeat(start[:-1][rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(counts[gather]))

    nan = pa.array(np.full(rows.size, np.nan))
    struct = pa.StructArray.from_arrays(
        [
            pa.array(pool.scale[rows].astype(np.int8)),
            pa.array(pool.count[rows]),
            pa.array(pool.zero_count[rows]),
            pa.array(pool.zero_threshold[rows]),
            pa.array(pool.pos_offset[rows].astype(np.int32)),
            lists(pool.pos_start, pool.pos_counts),
            pa.array(pool.neg_offset[rows].astype(np.int32)),
            lists(pool.neg_start, pool.neg_counts),
            pa.array(pool.sum[rows]),
            nan,
            nan,
        ],
        names=[f.name for f in HISTOGRAM_FIELDS],
    )
    return pl.Series(name, struct)
