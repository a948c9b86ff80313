"""A Polars IO source streaming a select from the server: ``Client.select`` returns its frame.

Polars hands the source the projected columns and the predicate; both go to the server, which
prunes series and time with the predicate and sends only the wanted columns, label sets once.
Frames are built here as a local select builds them (``FrameBuilder``), each on a worker thread
while the next batch arrives, and the predicate is applied to them exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import polars as pl

from tsdb_arrow.model import REF, TIMESTAMP, VALUE
from tsdb_arrow.server import flight_wire as wire

if TYPE_CHECKING:
    from tsdb_arrow.client.client import Client
    from tsdb_arrow.client.decoded import DecodedChunks
    from tsdb_arrow.query.frames import FrameBuilder
    from tsdb_arrow.query.read import Payloads

DEFAULT_BATCH = 1 << 18


@cache
def _builders() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="tsdb-arrow-client")


@dataclass(frozen=True)
class RemoteScan:
    """The IO source behind ``Client.select``: series fixed at select time, read on collect."""

    client: Client
    series: pl.DataFrame  # REF + label columns
    start: int | None
    end: int | None
    schema: dict[str, pl.DataType]

    def lazy(self) -> pl.LazyFrame:
        from tsdb_arrow.query.scan import lazy_source

        return lazy_source(self, self.schema, "tsdb-arrow flight")

    def __call__(
        self,
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        """Yield frames of at most ``batch_size`` rows, ``predicate`` applied exactly."""
        from tsdb_arrow.query.scan import deliver

        wanted = list(self.schema) if with_columns is None else with_columns
        needed = set(wanted) | (
            set(predicate.meta.root_names()) if predicate is not None else set()
        )
        if n_rows == 0:
            return
        columns = wanted if predicate is None else [c for c in self.schema if c in needed]
        ticket = wire.SelectTicket(
            refs=self.series[REF].to_numpy().tobytes(),
            start=self.start,
            end=self.end,
            columns=columns,
            values=VALUE in needed,
            predicate=_serialized(predicate),
            limit=n_rows if predicate is None else None,
            payloads=True,
        )
        frames = self._frames(ticket, columns)
        try:
            yield from deliver(frames, predicate, wanted, n_rows, batch_size or DEFAULT_BATCH)
        finally:
            frames.close()

    def _frames(self, ticket: wire.SelectTicket, columns: list[str]) -> Iterator[pl.DataFrame]:
        """The stream's frames, each built on a worker while the next batch is received."""
        from tsdb_arrow.query.frames import FrameBuilder
        from tsdb_arrow.query.scan import one_ahead

        with self.client._remote():
            reader = self.client._do_get(ticket)
            try:
                series = wire.bytes_table(reader.schema.metadata[wire.SERIES_METADATA])
                builder = FrameBuilder(pl.from_arrow(series), columns)

                def jobs() -> Iterator[Future[pl.DataFrame]]:
                    for chunk in reader:
                        if chunk.app_metadata is not None:  # stored chunks, decoded here
                            stored = wire.read_payloads(chunk.app_metadata)
                            yield _builders().submit(
                                _decoded_frame, builder, self.client._decoded, stored
                            )
                        else:
                            runs = wire.read_runs(chunk.data)
                            yield _builders().submit(
                                builder.frame,
                                runs.timestamps,
                                runs.values,
                                (runs.run_codes, runs.run_lengths),
                            )

                yield from one_ahead(jobs())
            finally:
                reader.cancel()


def _decoded_frame(builder: FrameBuilder, decoded: DecodedChunks, stored: Payloads) -> pl.DataFrame:
    """The frame of a batch of stored chunks, decoded as a local select decodes them."""
    timestamps, values = decoded.decode(stored)
    return builder.frame(timestamps, values, (stored.refs, stored.counts))


def _serialized(predicate: pl.Expr | None) -> str | None:
    """The predicate as Polars JSON, or None when it does not serialize (a Python UDF)."""
    if predicate is None:
        return None
    try:
        return predicate.meta.serialize(format="json")
    except Exception:  # noqa: BLE001 - not pushed down; still applied exactly here
        return None


def schema_of(empty: pl.DataFrame) -> dict[str, pl.DataType]:
    """A select's schema from the server's empty frame (timestamp, value first)."""
    schema = dict(empty.schema)
    return {TIMESTAMP: schema[TIMESTAMP], VALUE: schema[VALUE], **schema}
