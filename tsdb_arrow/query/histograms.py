"""Selecting histogram samples: ``db.select_histograms`` returns a LazyFrame built here.

Histogram samples are few next to float samples (one row holds a whole distribution), so a
selection is read whole at collect time, merged (the last write of a (series, timestamp) wins)
and then handed to Polars in ``batch_size`` slices with the predicate applied exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.ingest.cut import last_writes
from tsdb_arrow.model import (
    HISTOGRAM,
    HISTOGRAM_FIELDS,
    HISTOGRAM_SCHEMA,
    HISTOGRAM_TYPE,
    REF,
    TIMESTAMP,
    present_labels,
)
from tsdb_arrow.query.read import T_MAX, T_MIN, Snapshot
from tsdb_arrow.query.scan import DEFAULT_BATCH, TIME_DTYPE, lazy_source


def histogram_schema(series: pl.DataFrame) -> dict[str, pl.DataType]:
    """timestamp, histogram (struct), then every label name some selected series has."""
    labels = present_labels(series)
    dtype = pl.from_arrow(pa.array([], HISTOGRAM_TYPE)).dtype  # type: ignore[union-attr]
    return {TIMESTAMP: TIME_DTYPE, HISTOGRAM: dtype, **{c: pl.String() for c in labels}}


@dataclass(frozen=True)
class HistogramScan:
    """The IO source behind ``db.select_histograms``."""

    series: pl.DataFrame  # REF + label columns, sorted by ref
    start: int | None
    end: int | None
    open_snapshot: Callable[[], tuple[Snapshot, Callable[[], None]]]

    def lazy(self) -> pl.LazyFrame:
        return lazy_source(self, histogram_schema(self.series), "tsdb-arrow histograms")

    def __call__(
        self,
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        schema = histogram_schema(self.series)
        wanted = list(schema) if with_columns is None else with_columns
        labels = [c for c in schema if c not in (TIMESTAMP, HISTOGRAM)]
        refs = self.series[REF].to_numpy()
        lo = T_MIN if self.start is None else self.start
        hi = T_MAX if self.end is None else self.end
        if n_rows == 0 or len(refs) == 0 or lo > hi:
            return
        snapshot, release = self.open_snapshot()
        try:
            table = _read(snapshot, refs, lo, hi)
        finally:
            release()
        if table.num_rows == 0:
            return
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        struct = pl.struct([f.name for f in HISTOGRAM_FIELDS]).alias(HISTOGRAM)
        frame = frame.select(pl.col(TIMESTAMP).cast(TIME_DTYPE), struct, pl.col(REF))
        frame = frame.join(
            self.series.select(REF, *labels), on=REF, how="left", maintain_order="left"
        )
        frame = frame.select(*schema)
        if predicate is not None:
            frame = frame.filter(predicate)
        frame = frame.select(wanted)
        if n_rows is not None:
            frame = frame.head(n_rows)
        size = batch_size or DEFAULT_BATCH
        for offset in range(0, frame.height, size):
            yield frame.slice(offset, size)


def _read(snapshot: Snapshot, refs: np.ndarray, lo: int, hi: int) -> pa.Table:
    """Histogram rows of the selected series from blocks and head, last write winning."""
    parts = []
    for block in snapshot.blocks:
        if block.meta.max_time < lo or block.meta.min_time > hi:
            continue
        found = block.histograms(refs, lo, hi)
        if found is not None and found.num_rows:
            seq = pa.repeat(pa.scalar(block.meta.seq), found.num_rows)
            parts.append(found.append_column("seq", seq))
    for p_refs, p_ts, fields in snapshot.histograms:
        keep = np.isin(p_refs, refs) & (p_ts >= lo) & (p_ts <= hi)
        if keep.any():
            idx = np.flatnonzero(keep)
            piece = pa.Table.from_arrays(
                [pa.array(p_refs[idx], pa.uint64()), pa.array(p_ts[idx], pa.int64())]
                + [fields.column(f.name).take(idx) for f in HISTOGRAM_FIELDS],
                schema=HISTOGRAM_SCHEMA,
            )
            parts.append(piece.append_column("seq", pa.repeat(pa.scalar(T_MAX), piece.num_rows)))
    if not parts:
        return HISTOGRAM_SCHEMA.empty_table()
    table = pa.concat_tables(parts).combine_chunks()
    if len(snapshot.tombstones):
        dead = snapshot.tombstones.deleted(
            table[REF].to_numpy(), table[TIMESTAMP].to_numpy(), table["seq"].to_numpy()
        )
        table = table.filter(pa.array(~dead))
    order, keep = last_writes(
        table[REF].to_numpy(), table[TIMESTAMP].to_numpy(), table["seq"].to_numpy()
    )
    return table.take(order).filter(pa.array(keep)).drop_columns(["seq"])
