"""What an OTLP metrics export means for the database, whatever transport carried it.

The body is converted by ``ingest.otlp.convert_request`` and written; the outcome says what the
transport answers: OK with the protobuf response (partial success when some points were
refused), invalid (nothing stored), or retry later (the head is full). The response goes out
only after ``write`` returned, that is once the accepted points are in the write-ahead log.
Concurrent requests are written together (``group_write.GroupWriter``, one for float tables and
one for histogram tables, which ``Database.write`` takes apart): each is still answered with the
outcome of its own points only.

A request made only of points whose series a clean request stored before (a feed repeating its
series) skips the conversion: ``ingest.otlp.repeat.KnownPoints`` reads its rows as series refs,
timestamps and values, written with ``Database.write_refs`` (grouped too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from tsdb_arrow.errors import BackpressureError, ClosedError, InputError, SeriesCollisionError
from tsdb_arrow.model import TIMESTAMP, VALUE
from tsdb_arrow.server.group_write import GroupWriter

if TYPE_CHECKING:
    from tsdb_arrow.database import Database
    from tsdb_arrow.ingest.otlp import Converted

#: Seconds a client is told to wait before retrying when the head is full.
RETRY_AFTER = 1.0
#: The serialized ExportMetricsServiceResponse of a request stored whole (no partial_success).
FULL_SUCCESS = b""


@dataclass(frozen=True)
class Outcome:
    """``kind``: "ok" (``response`` is the serialized ExportMetricsServiceResponse), "invalid"
    (the request could not be decoded: nothing stored) or "unavailable" (retry later)."""

    kind: str
    response: bytes = b""
    message: str = ""
    retry_after: float = RETRY_AFTER


class OtlpReceiver:
    """Turns OTLP export requests into writes on one database; shared by gRPC and HTTP."""

    def __init__(self, db: Database, *, promote_resource_attributes: Sequence[str] = ()) -> None:
        from tsdb_arrow.ingest.otlp import DeltaState, OtlpLimits
        from tsdb_arrow.ingest.otlp.repeat import KnownPoints

        self.db = db
        self.promote = tuple(promote_resource_attributes)
        self.delta = DeltaState()
        self.floats = GroupWriter(db)
        self.histograms = GroupWriter(db)
        self.known = KnownPoints(frozenset(self.promote), OtlpLimits())
        self.repeats = GroupWriter(db, store=self._write_refs)
        _warm_up()

    def _write_refs(self, table: pa.Table) -> None:
        self.db.write_refs(
            table.column("ref").to_numpy(), table.column(TIMESTAMP).to_numpy(),
            table.column(VALUE).to_numpy(),
        )  # fmt: skip

    def export(self, body: bytes) -> Outcome:
        """Store the points of one serialized ExportMetricsServiceRequest."""
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
            ExportMetricsServiceResponse,
        )

        from tsdb_arrow.ingest.otlp import convert_request, wire

        status, sc = wire.scan(np.frombuffer(body, dtype=np.uint8))
        if sc is not None:
            repeat = self.known.rows(sc)
            stored = None if repeat is None else self._store_repeat(repeat.table)
            if stored is not None:
                return stored
        try:
            converted = convert_request(
                body, promote_resource_attributes=self.promote, delta=self.delta
            )
        except InputError as exc:
            return Outcome("invalid", message=str(exc))
        rejected, errors = converted.rejected_points, list(converted.errors)
        try:
            floats = [t for t in (converted.floats, converted.target_info) if t is not None]
            if len(floats) == 2:  # one write: one WAL record, one series lookup
                floats = [pa.concat_tables(floats, promote_options="default")]
            for table in floats:
                if table.num_rows:
                    self.floats.write(table)
            if converted.histograms is not None and converted.histograms.num_rows:
                self.histograms.write(converted.histograms)
        except (BackpressureError, ClosedError) as exc:
            # Retried whole: points already written are written again, and the last write of
            # a (series, timestamp) wins, so nothing doubles; delta totals are taken back so
            # that the retry adds them once.
            self._undo(converted)
            return Outcome("unavailable", message=str(exc))
        except (InputError, SeriesCollisionError) as exc:
            self._undo(converted)
            rejected += converted.accepted_points
            errors.append(str(exc))
        else:
            if sc is not None:
                self.known.remember(sc, converted)
        response = ExportMetricsServiceResponse()  # partial_success unset on full success
        if rejected:
            response.partial_success.rejected_data_points = rejected
            response.partial_success.error_message = "; ".join(errors)[:4096]
        return Outcome("ok", response=response.SerializeToString())

    def _store_repeat(self, table: pa.Table) -> Outcome | None:
        """Write a request's remembered points; None when they are refused (not expected: the
        refs were admitted), so that the full conversion decides."""
        try:
            self.repeats.write(table)
        except (BackpressureError, ClosedError) as exc:
            return Outcome("unavailable", message=str(exc))
        except (InputError, SeriesCollisionError):
            return None
        return Outcome("ok", response=FULL_SUCCESS)

    def _undo(self, converted: Converted) -> None:
        if converted.delta_change is not None:
            self.delta.undo(converted.delta_change)


def _warm_up() -> None:
    """Convert one small request of every point kind, untimed, and import what writing it
    takes: the kernels load (or compile, on a first install) now rather than while an
    exporter's deadline runs."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    import tsdb_arrow.ingest.convert
    import tsdb_arrow.ingest.known
    import tsdb_arrow.ingest.series
    import tsdb_arrow.query.overlap  # noqa: F401
    from tsdb_arrow.ingest.otlp import OtlpLimits, convert_request, wire
    from tsdb_arrow.ingest.otlp.repeat import KnownPoints
    from tsdb_arrow.ingest.otlp.repeat import warm_up as warm_up_repeat

    warm_up_repeat()
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    gauge = scope.metrics.add()
    gauge.name = "warm_up"
    point = gauge.gauge.data_points.add()
    point.time_unix_nano = 1_000_000_000_000_000
    point.as_double = 1.0
    attribute = point.attributes.add()
    attribute.key, attribute.value.string_value = "k", "v"
    histogram = scope.metrics.add()
    histogram.name = "warm_up_histogram"
    h = histogram.histogram.data_points.add()
    h.time_unix_nano, h.count, h.sum = 1_000_000_000_000_000, 1, 1.0
    h.bucket_counts.extend([1, 0])
    h.explicit_bounds.append(1.0)
    exponential = scope.metrics.add()
    exponential.name = "warm_up_exponential"
    e = exponential.exponential_histogram.data_points.add()
    e.time_unix_nano, e.count, e.scale = 1_000_000_000_000_000, 1, 0
    e.positive.bucket_counts.append(1)
    every_kind = convert_request(request.SerializeToString())
    del scope.metrics[1:]  # a gauge alone: remembered, then read back the short way
    gauge_only = request.SerializeToString()
    known = KnownPoints(frozenset(), OtlpLimits())
    status, sc = wire.scan(np.frombuffer(gauge_only, dtype=np.uint8))
    assert sc is not None
    converted = convert_request(gauge_only)
    known.remember(sc, converted)
    repeat = known.rows(sc)
    assert repeat is not None
    _warm_up_writes(every_kind, repeat.table)


def _warm_up_writes(converted: Converted, repeat: pa.Table) -> None:
    """Write a converted request into a scratch database, as new series, again as known ones,
    and by refs, and grow the hash tables a larger write grows: the write path's kernels load
    before the first request rather than in it."""
    import tempfile

    from tsdb_arrow.database import Database
    from tsdb_arrow.ingest import labelsets, newest, pairs

    with tempfile.TemporaryDirectory(prefix="tsdb-arrow-warm-up-") as scratch:
        db = Database(scratch)
        try:
            for table in converted.tables * 2:
                db.write(table)
            db.write_refs(*(repeat.column(c).to_numpy() for c in ("ref", TIMESTAMP, VALUE)))
        finally:
            db.close()
    n = 4 * pairs._MIN_SLOTS
    pairs.PairSet().add(np.arange(n, dtype=np.uint64), np.zeros(n, dtype=np.int64))
    labelsets._rehash(np.zeros(2, dtype=np.uint64), 2, 4)
    bounds, n = newest.SeriesNewest(), newest._MIN_SLOTS
    bounds.enter(np.arange(n, dtype=np.uint64), newest.NOTHING)  # grows the tables once
    bounds.advance(np.arange(n, dtype=np.uint64), np.zeros(n, dtype=np.int64), 0)
