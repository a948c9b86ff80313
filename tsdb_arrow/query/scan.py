"""A Polars IO source over a database snapshot: ``db.select`` returns the LazyFrame it builds.

Projections skip decoding (no ``value`` column, no value payloads), predicates prune blocks,
chunks and series before anything is decoded, and the predicate is then applied exactly to each
batch, since Polars does not apply it again after an IO source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import polars as pl
from polars.io.plugins import register_io_source

from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.model import REF, TIMESTAMP, VALUE
from tsdb_arrow.query.pushdown import analyse
from tsdb_arrow.query.read import T_MAX, T_MIN, Samples, Snapshot, iter_samples

DEFAULT_BATCH = 1 << 18
TIME_DTYPE = pl.Datetime("ms", "UTC")


def schema_for(series: pl.DataFrame) -> dict[str, pl.DataType]:
    """Output schema: timestamp, value, then every label name that some selected series has."""
    labels = [c for c in series.columns if c != REF and series[c].null_count() < series.height]
    return {TIMESTAMP: TIME_DTYPE, VALUE: pl.Float64(), **{c: pl.String() for c in sorted(labels)}}


@dataclass(frozen=True)
class Scan:
    """The IO source behind ``db.select``: series fixed at select time, samples read on collect."""

    series: pl.DataFrame  # REF + label columns, sorted by ref
    start: int | None
    end: int | None
    open_snapshot: Callable[[], tuple[Snapshot, Callable[[], None]]]
    cache: ChunkCache
    pool: Executor  # decodes row groups in parallel

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return schema_for(self.series)

    def lazy(self) -> pl.LazyFrame:
        return register_io_source(
            self,
            schema=self.schema,
            validate_schema=False,
            is_pure=False,
            explain_name="tsdb-arrow",
        )

    def __call__(
        self,
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        """Yield frames of at most ``batch_size`` rows, ``predicate`` applied exactly."""
        schema = self.schema
        labels = [c for c in schema if c not in (TIMESTAMP, VALUE)]
        wanted = list(schema) if with_columns is None else with_columns
        needed = set(wanted) | (
            set(predicate.meta.root_names()) if predicate is not None else set()
        )
        push = analyse(predicate, set(labels))
        chosen = self.series.select(REF, *labels)
        for term in push.label_terms:
            chosen = chosen.filter(term)
        lo = max(x for x in (self.start, push.start, T_MIN) if x is not None)
        hi = min(x for x in (self.end, push.end, T_MAX) if x is not None)
        refs = chosen[REF].to_numpy()
        if n_rows == 0 or len(refs) == 0 or lo > hi:
            return
        snapshot, release = self.open_snapshot()
        try:
            remaining = n_rows
            size = batch_size or DEFAULT_BATCH
            # Without a predicate, frames are built with exactly the wanted columns, in order.
            columns = wanted if predicate is None else [c for c in schema if c in needed]
            layout = _Layout(chosen, columns)
            for batch in iter_samples(
                snapshot,
                refs,
                lo,
                hi,
                values=VALUE in needed,
                batch_size=size,
                cache=self.cache,
                pool=self.pool,
            ):
                frame = layout.frame(batch)
                if predicate is not None:
                    frame = frame.filter(predicate).select(wanted)
                if remaining is not None:
                    frame = frame.head(remaining)
                    remaining -= frame.height
                # One series can hold more than a batch: hand it over in batch_size slices.
                if frame.height <= size:
                    yield frame
                else:
                    for offset in range(0, frame.height, size):
                        yield frame.slice(offset, size)
                if remaining is not None and remaining <= 0:
                    return
        finally:
            release()


class _Layout:
    """Builds a batch's frame: the given columns in order, labels expanded from the series.

    Rows come in runs of one series: a label column that is constant within a batch (often
    null) is broadcast as a literal, which costs nothing per row; only the columns that vary
    within the batch are gathered row by row.
    """

    def __init__(self, series: pl.DataFrame, columns: list[str]) -> None:
        self.columns = columns
        self.labels = series.select([c for c in columns if c not in (TIMESTAMP, VALUE)])
        self.refs = series[REF].to_numpy()
        if self.labels.width:
            # Per series and label, a code equal between series exactly when the values are
            # (null is 0), so one numpy pass finds the columns constant within a batch.
            self.codes = (
                self.labels.select(pl.all().rank("dense").fill_null(0)).to_numpy().astype(np.int64)
            )
        self._lits: dict[tuple[int, int], pl.Expr] = {}  # (label no, code) -> its literal

    def frame(self, batch: Samples) -> pl.DataFrame:
        n = len(batch)
        base = []
        if TIMESTAMP in self.columns or VALUE not in self.columns:  # some column sets the height
            base.append(pl.Series(TIMESTAMP, batch.timestamps).cast(TIME_DTYPE))
        if VALUE in self.columns:
            base.append(pl.Series(VALUE, batch.values))
        if not self.labels.width:
            frame = pl.DataFrame(base)
            return frame if frame.columns == self.columns else frame.select(self.columns)
        if batch.runs is not None:
            run_refs, lengths = batch.runs
        else:
            run_starts = np.flatnonzero(np.diff(batch.refs, prepend=batch.refs[:1] ^ 1))
            run_refs, lengths = batch.refs[run_starts], np.diff(np.append(run_starts, n))
        pos = np.searchsorted(self.refs, run_refs)
        codes = self.codes[pos]
        constant = (codes == codes[:1]).all(axis=0).tolist()
        first = int(pos[0]) if n else 0
        exprs = {c.name: pl.col(c.name) for c in base}
        varying = []
        for j, (name, const) in enumerate(zip(self.labels.columns, constant)):
            if const:
                code = int(self.codes[first, j]) if n else 0
                lit = self._lits.get((j, code))
                if lit is None:
                    value = self.labels.get_column(name)[first] if n else None
                    lit = self._lits[(j, code)] = pl.lit(value, pl.String).alias(name)
                exprs[name] = lit
            else:
                varying.append(self.labels.get_column(name))
                exprs[name] = pl.col(name)
        if varying:
            rows = pl.Series(np.repeat(pos.astype(np.uint32), lengths))
            base += pl.DataFrame(varying)[rows].get_columns()
        frame = pl.DataFrame(base)
        selected = [exprs[c] for c in self.columns]
        if any(c in frame.columns for c in self.columns):
            # One select: the wanted order, constants broadcast to the batch's height.
            return frame.select(selected)
        # Only literals: a select would give one row, with_columns broadcasts them.
        return frame.with_columns(selected).select(self.columns)
