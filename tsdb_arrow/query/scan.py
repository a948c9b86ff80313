"""A Polars IO source over a database snapshot: ``db.select`` returns the LazyFrame it builds.

Projections skip decoding (no ``value`` column, no value payloads), predicates prune blocks,
chunks and series before anything is decoded, and the predicate is then applied exactly to each
batch, since Polars does not apply it again after an IO source.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TypeVar

import polars as pl
from polars.io.plugins import register_io_source

from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.model import REF, TIMESTAMP, VALUE, present_labels
from tsdb_arrow.query.frames import TIME_DTYPE, FrameBuilder
from tsdb_arrow.query.pushdown import analyse
from tsdb_arrow.query.read import (
    T_MAX,
    T_MIN,
    Payloads,
    Samples,
    Snapshot,
    iter_samples,
    submit,
)

T = TypeVar("T")

DEFAULT_BATCH = 1 << 18
#: Fewest samples decoded per internal batch: Polars asks for small frames (100,000 rows),
#: which are then sliced from bigger batches, so fixed per-batch costs are paid less often.
MIN_DECODE_BATCH = 1 << 18
#: A read without a row limit decodes batches of about this many output bytes (8 per timestamp
#: and value, 16 per label view), between MIN_DECODE_BATCH and MAX_DECODE_BATCH samples: a
#: select-all of few label columns then pays a batch's fixed costs (one decode call per row
#: group and batch, one frame) a quarter as often.
DECODE_BATCH_BYTES = 64 << 20
MAX_DECODE_BATCH = 1 << 20


def lazy_source(
    source: Callable[..., Iterator[pl.DataFrame]], schema: dict[str, pl.DataType], name: str
) -> pl.LazyFrame:
    """A LazyFrame read from ``source`` (Polars' IO-source protocol): not pure, since the
    database changes between collects, and not re-validated (the source yields ``schema``)."""
    return register_io_source(
        source, schema=schema, validate_schema=False, is_pure=False, explain_name=name
    )


def decode_batch(columns: list[str], n_rows: int | None) -> int:
    """Samples per internal batch for frames of ``columns``, at most ``n_rows`` wanted."""
    if n_rows is not None:
        return MIN_DECODE_BATCH
    row_bytes = sum(8 if c in (TIMESTAMP, VALUE) else 16 for c in columns) or 8
    return min(max(DECODE_BATCH_BYTES // row_bytes, MIN_DECODE_BATCH), MAX_DECODE_BATCH)


def schema_for(series: pl.DataFrame) -> dict[str, pl.DataType]:
    """Output schema: timestamp, value, then every label name that some selected series has."""
    labels = present_labels(series)
    return {TIMESTAMP: TIME_DTYPE, VALUE: pl.Float64(), **{c: pl.String() for c in labels}}


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
        return lazy_source(self, self.schema, "tsdb-arrow")

    def __call__(
        self,
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        """Yield frames of at most ``batch_size`` rows, ``predicate`` applied exactly."""
        schema = self.schema
        wanted = list(schema) if with_columns is None else with_columns
        needed = set(wanted) | (
            set(predicate.meta.root_names()) if predicate is not None else set()
        )
        chosen, lo, hi = self.prune(predicate)
        if n_rows == 0:
            return
        size = batch_size or DEFAULT_BATCH
        # Without a predicate, frames are built with exactly the wanted columns, in order.
        columns = wanted if predicate is None else [c for c in schema if c in needed]
        batches = self.samples(
            chosen,
            lo,
            hi,
            values=VALUE in needed,
            batch_size=max(size, decode_batch(columns, n_rows)),
        )
        frames = self._frames(lambda: FrameBuilder(chosen, columns), batches)
        try:
            yield from deliver(frames, predicate, wanted, n_rows, size)
        finally:
            frames.close()

    def prune(self, predicate: pl.Expr | None) -> tuple[pl.DataFrame, int, int]:
        """The series (REF + labels) and inclusive time bounds left by ``predicate``'s label
        terms and time bounds: what must be read, before the predicate is applied exactly."""
        labels = [c for c in self.schema if c not in (TIMESTAMP, VALUE)]
        push = analyse(predicate, set(labels))
        chosen = self.series.select(REF, *labels)
        for term in push.label_terms:
            try:
                chosen = chosen.filter(term)
            except pl.exceptions.PolarsError:
                # A term that fails on some label value (a cast, say) is not pushed down: the
                # predicate, applied to the frames, decides on the rows that are read.
                continue
        lo = max(x for x in (self.start, push.start, T_MIN) if x is not None)
        hi = min(x for x in (self.end, push.end, T_MAX) if x is not None)
        return chosen, int(lo), int(hi)

    def samples(
        self,
        chosen: pl.DataFrame,
        lo: int,
        hi: int,
        *,
        values: bool,
        batch_size: int,
        payloads: bool = False,
    ) -> Generator[Samples | Payloads, None, None]:
        """The samples of ``chosen`` series in [lo, hi], in batches of runs of one series
        (the snapshot is held until the generator is exhausted or closed); ``payloads``:
        batches of stored chunks as they are stored (``iter_samples``)."""
        refs = chosen[REF].to_numpy()
        if len(refs) == 0 or lo > hi:
            return
        snapshot, release = self.open_snapshot()
        try:
            yield from iter_samples(
                snapshot,
                refs,
                lo,
                hi,
                values=values,
                batch_size=batch_size,
                cache=self.cache,
                pool=self.pool,
                payloads=payloads,
            )
        finally:
            release()

    def _frames(
        self, make_builder: Callable[[], FrameBuilder], batches: Generator[Samples, None, None]
    ) -> Iterator[pl.DataFrame]:
        """The batches' frames, each built on the pool while the next batch is awaited, so
        label columns are expanded on one core while samples decode on the other."""
        def jobs() -> Iterator[Future[pl.DataFrame]]:
            builder: FrameBuilder | None = None
            for batch in batches:
                if builder is None:  # made once the first batches decode on the pool
                    builder = make_builder()
                yield submit(
                    self.pool,
                    builder.frame,
                    batch.timestamps,
                    batch.values,
                    (batch.run_refs, batch.run_lengths),
                )

        try:
            yield from one_ahead(jobs())
        finally:
            batches.close()  # cancels the decoding ahead when the consumer stops early


def deliver(
    frames: Iterator[pl.DataFrame],
    predicate: pl.Expr | None,
    wanted: list[str],
    n_rows: int | None,
    size: int,
) -> Iterator[pl.DataFrame]:
    """What an IO source hands Polars: ``frames`` filtered by ``predicate`` exactly, with the
    ``wanted`` columns, at most ``n_rows`` rows in all, in slices of at most ``size`` rows."""
    remaining = n_rows
    for frame in frames:
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


def one_ahead(jobs: Iterator[Future[T]]) -> Iterator[T]:
    """The results of ``jobs`` in order, the next one submitted before this one is awaited
    (so its work overlaps the consumer's); jobs not handed out are cancelled when the
    consumer stops early."""
    pending: deque[Future[T]] = deque()
    try:
        for job in jobs:
            pending.append(job)
            if len(pending) > 1:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for job in pending:
            job.cancel()
