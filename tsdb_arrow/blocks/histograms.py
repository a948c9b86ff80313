"""A block's histogram samples: ``histograms.parquet``, one row per sample, plain Parquet.

Exponential histograms are already compact (a few bucket counts each), so they are stored as
ordinary Parquet columns sorted by (series_ref, timestamp) rather than as encoded payloads:
any Parquet reader gets them back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tsdb_arrow.errors import CorruptBlockError
from tsdb_arrow.model import HISTOGRAM_FIELDS, HISTOGRAM_SCHEMA, REF, TIMESTAMP, numpy_of

HISTOGRAMS_FILE = "histograms.parquet"
HISTOGRAM_ROW_GROUP = 1 << 16


@dataclass(frozen=True)
class HistogramWindow:
    """Histogram samples of one block window, sorted by (ref, timestamp), unique per pair."""

    start: int
    refs: np.ndarray
    timestamps: np.ndarray
    fields: pa.Table  # HISTOGRAM_FIELDS columns


def write_histograms(fs: pafs.FileSystem, path: str, window: HistogramWindow) -> None:
    table = pa.Table.from_arrays(
        [pa.array(window.refs, pa.uint64()), pa.array(window.timestamps, pa.int64())]
        + [window.fields.column(f.name) for f in HISTOGRAM_FIELDS],
        schema=HISTOGRAM_SCHEMA,
    )
    pq.write_table(
        table,
        path,
        filesystem=fs,
        compression="zstd",
        row_group_size=HISTOGRAM_ROW_GROUP,
        write_page_checksum=True,
    )


def read_all_histograms(fs: pafs.FileSystem, path: str) -> pa.Table:
    """Every histogram sample of the file, in stored order (for compaction)."""
    try:
        with pq.ParquetFile(path, filesystem=fs, page_checksum_verification=True) as file:
            table = file.read()
        return table.select(HISTOGRAM_SCHEMA.names).cast(HISTOGRAM_SCHEMA)
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        raise CorruptBlockError(
            f"cannot read {path}: {exc}; move the block directory aside"
        ) from exc


def read_histograms(
    fs: pafs.FileSystem, path: str, refs: np.ndarray, t_lo: int, t_hi: int
) -> pa.Table:
    """Rows of the given series in [t_lo, t_hi]; row groups outside are skipped by statistics."""
    import pyarrow.compute as pc  # here, not at the top: opening a directory needs none of it

    try:
        table = pq.read_table(
            path,
            filesystem=fs,
            filters=[(TIMESTAMP, ">=", t_lo), (TIMESTAMP, "<=", t_hi)],
            schema=HISTOGRAM_SCHEMA,
            page_checksum_verification=True,
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise CorruptBlockError(
            f"cannot read {path}: {exc}; the block is damaged: restore it from a backup or move "
            "its directory to quarantine/"
        ) from exc
    return table.filter(pc.is_in(table[REF], pa.array(refs, pa.uint64())))


def histogram_times(
    fs: pafs.FileSystem, path: str, t_lo: int, t_hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """The series refs and timestamps of the file's histogram samples in [t_lo, t_hi]."""
    try:
        with pq.ParquetFile(path, filesystem=fs, page_checksum_verification=True) as file:
            table = file.read(columns=[REF, TIMESTAMP])
    except (OSError, pa.ArrowInvalid) as exc:
        raise CorruptBlockError(
            f"cannot read {path}: {exc}; the block is damaged: restore it from a backup or move "
            "its directory to quarantine/"
        ) from exc
    t = numpy_of(table.column(TIMESTAMP))
    keep = (t >= t_lo) & (t <= t_hi)
    return numpy_of(table.column(REF))[keep], t[keep]
