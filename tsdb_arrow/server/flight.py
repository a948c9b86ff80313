"""Arrow Flight over one open ``Database``: what ``ta.connect`` talks to.

``do_get`` streams a select (series fixed by the client, projection and predicate pushed down)
batch by batch as the read path decodes it; ``do_put`` writes batches, answering each with a
``PutResult`` only once ``db.write`` returned (its samples are in the WAL; a frame sent in
parts is written once its last part arrived, ``flight_frames``); ``do_action`` runs
``series``, ``select``, ``stats``, ``flush``, ``compact`` and ``delete``; ``list_flights`` and
``get_flight_info`` list the metrics. The wire format is ``flight_wire``'s. With a token, every
call needs ``Authorization: Bearer <token>`` (a middleware refuses it before any handler runs).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.flight as flight

from tsdb_arrow import errors
from tsdb_arrow.model import METRIC_NAME, REF, TIMESTAMP, VALUE
from tsdb_arrow.query.scan import decode_batch
from tsdb_arrow.server import auth
from tsdb_arrow.server import flight_wire as wire

if TYPE_CHECKING:
    from tsdb_arrow.database import Database

log = logging.getLogger("tsdb_arrow.server")

DEFAULT_FLIGHT = "127.0.0.1:8815"
#: Most rows per streamed batch (16 bytes each with values): a few MiB per gRPC message.
STREAM_BATCH = 1 << 20
#: Seconds without a batch sent after which a select stream counts as stalled at a stop: its
#: client stopped reading, and waiting for it would only delay the stop by the whole grace.
STALLED_AFTER = 1.0
F = TypeVar("F", bound=Callable[..., Any])


def flight_error(exc: BaseException) -> flight.FlightError:
    """The Flight error for ``exc``; its ``extra_info`` carries the TsdbError class."""
    info = wire.error_info(exc)
    if isinstance(exc, errors.AuthError):
        return flight.FlightUnauthenticatedError(str(exc), info)
    if isinstance(exc, errors.BackpressureError):
        return flight.FlightUnavailableError(str(exc), info)
    if isinstance(exc, errors.TsdbError):
        return flight.FlightServerError(str(exc), info)
    log.exception("Flight call failed")
    return flight.FlightInternalError(f"{type(exc).__name__}: {exc}", info)


def _mapped(method: F) -> F:
    """Run a handler, turning any exception into its Flight error."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except flight.FlightError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure crosses as a Flight error
            raise flight_error(exc) from exc

    return call  # type: ignore[return-value]


class _BearerMiddleware(flight.ServerMiddlewareFactory):
    """Refuses a call without ``Authorization: Bearer <token>``: Unauthenticated, nothing else."""

    def __init__(self, token: str) -> None:
        self.token = token

    def start_call(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> None:
        given = headers.get("authorization") or [None]
        if not auth.bearer_ok(given[0], self.token):
            raise flight_error(
                errors.AuthError(
                    "this server needs a bearer token: pass token= to ta.connect (or "
                    "--token-file to the CLI) with the server's --auth-token-file content"
                )
            )
        return None


class FlightService(flight.FlightServerBase):
    """The Flight handlers over ``db``."""

    def __init__(
        self,
        db: Database,
        location: str,
        *,
        auth_token: str | None = None,
        tls_certificates: list[flight.CertKeyPair] | None = None,
    ) -> None:
        middleware = {"auth": _BearerMiddleware(auth_token)} if auth_token else {}
        super().__init__(
            location,
            tls_certificates=tls_certificates or [],
            middleware=middleware,
        )
        self.db = db
        self._calls_lock = threading.Lock()
        self._changing = 0  # do_put and do_action calls running
        self._streams: dict[int, float] = {}  # select stream -> when it last sent a batch

    def draining(self, now: float) -> bool:
        """Whether a call is still doing something worth waiting for at a stop: a write or an
        action, or a select stream that sent a batch in the last ``STALLED_AFTER`` s."""
        with self._calls_lock:
            recent = any(now - t < STALLED_AFTER for t in self._streams.values())
            return self._changing > 0 or recent

    @contextlib.contextmanager
    def _changing_call(self) -> Iterator[None]:
        with self._calls_lock:
            self._changing += 1
        try:
            yield
        finally:
            with self._calls_lock:
                self._changing -= 1

    def _tracked(self, batches: Iterator[Any]) -> Iterator[Any]:
        """``batches`` with each one's time noted, for :meth:`draining`."""
        key = id(batches)
        with self._calls_lock:
            self._streams[key] = time.monotonic()
        try:
            for batch in batches:
                yield batch
                with self._calls_lock:
                    self._streams[key] = time.monotonic()
        finally:
            with self._calls_lock:
                self._streams.pop(key, None)

    # -- reading ---------------------------------------------------------------------------

    @_mapped
    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> Any:
        request = wire.SelectTicket.decode(ticket.ticket)
        known = self.db.series()
        series = known.filter(np.isin(known[REF].to_numpy(), request.ref_array()))
        scan = self.db._scan(series, request.start, request.end)
        predicate = _predicate(request.predicate)
        chosen, lo, hi = scan.prune(predicate)
        labels = [c for c in request.columns if c not in (TIMESTAMP, VALUE)]
        table = chosen.select(
            REF,
            *[
                pl.col(c) if c in chosen.columns else pl.lit(None, pl.String).alias(c)
                for c in labels
            ],
        )
        schema = wire.samples_schema(
            request.values, wire.table_bytes(table.to_arrow()), pa.uint64()
        )
        # Batches sized as a local select's: the client's frames of them then fit the same
        # recycled buffers (label views cost 16 bytes a row and label).
        size = min(decode_batch(request.columns, request.limit), STREAM_BATCH)
        # Stored chunks go as they are (the client decodes them) unless rows are counted here.
        payloads = request.payloads and request.limit is None
        batches = scan.samples(
            chosen, lo, hi, values=request.values, batch_size=size, payloads=payloads
        )
        return flight.GeneratorStream(
            schema, self._tracked(_stream(schema, batches, request.limit))
        )

    @_mapped
    def do_action(
        self, context: flight.ServerCallContext, action: flight.Action
    ) -> Iterator[bytes]:
        with self._changing_call():
            return self._action(action)

    def _action(self, action: flight.Action) -> Iterator[bytes]:
        body = wire.read_command(action.body.to_pybytes() if action.body else b"")
        kind = action.type
        db = self.db
        if kind == "series":
            series = db.series(body.get("selector"), start=body.get("start"), end=body.get("end"))
            return iter([wire.table_bytes(series.to_arrow())])
        if kind == "select":
            selector = body.get("selector")
            frame = db.select(selector, start=body.get("start"), end=body.get("end"))
            empty = pl.DataFrame(schema=frame.collect_schema())
            series = db.series(selector)
            return iter([wire.table_bytes(t.to_arrow()) for t in (empty, series)])
        if kind == "stats":
            return iter([json.dumps(db.stats(), default=str).encode()])
        if kind == "flush":
            return iter([json.dumps(db.flush()).encode()])
        if kind == "compact":
            return iter([json.dumps(db.compact(), default=str).encode()])
        if kind == "delete":
            n = db.delete(body.get("selector"), start=body.get("start"), end=body.get("end"))
            return iter([json.dumps(n).encode()])
        raise errors.InputError(
            f"unknown action {kind!r}; this server knows {[a[0] for a in ACTIONS]}"
        )

    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        return list(ACTIONS)

    @_mapped
    def list_flights(
        self, context: flight.ServerCallContext, criteria: bytes
    ) -> Iterator[flight.FlightInfo]:
        selector = criteria.decode() if criteria else None
        series = self.db.series(selector or None)
        if METRIC_NAME not in series.columns:
            return iter(())
        parts = series.filter(pl.col(METRIC_NAME).is_not_null()).partition_by(
            METRIC_NAME, as_dict=True
        )
        infos = [
            self._info(f'{{__name__="{name}"}}', part)
            for (name,), part in sorted(parts.items())
        ]
        return iter(infos)

    @_mapped
    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        body = wire.read_command(descriptor.command or b"")
        selector = body.get("selector")
        return self._info(selector, self.db.series(selector))

    def _info(self, selector: str | None, series: pl.DataFrame) -> flight.FlightInfo:
        """A select-all of ``selector`` (``series``: the series it matches): its frame schema,
        and a ticket reading it whole."""
        from tsdb_arrow.query.scan import schema_for

        if series.height:
            schema = schema_for(series)
        else:  # the labels the selector requires, as db.select gives them
            schema = self.db.select(selector).collect_schema()
        refs = series[REF].to_numpy()
        ticket = wire.SelectTicket(refs.tobytes(), None, None, list(schema), True)
        descriptor = flight.FlightDescriptor.for_command(wire.command("select", selector=selector))
        arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
        return flight.FlightInfo(
            arrow_schema.with_metadata({b"series": str(series.height).encode()}),
            descriptor,
            [flight.FlightEndpoint(ticket.encode(), [])],
            -1,
            -1,
        )

    # -- writing ---------------------------------------------------------------------------

    @_mapped
    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        with self._changing_call():
            self._put(descriptor, reader, writer)

    def _put(
        self,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        from tsdb_arrow.server.flight_frames import FrameParts

        body = wire.read_command(descriptor.command or b"")
        mode = body.get("mode", "plain")
        if mode not in ("parts", "plain"):
            raise errors.InputError(
                f"unknown write mode {mode!r}; send 'parts' or 'plain' (is the client running "
                "this version of tsdb-arrow?)"
            )
        frame: FrameParts | None = None
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                if frame is not None:
                    raise errors.InputError(
                        f"the write stream ended after {frame.filled} rows of a frame without "
                        "its last part; nothing of that frame was stored"
                    ) from None
                return
            if chunk.data is None:
                continue
            if mode == "parts":
                last, rows, sets_ipc = wire.read_part_metadata(chunk.app_metadata)
                if frame is None:
                    frame = FrameParts(rows)
                elif rows != frame.rows:
                    raise errors.InputError(
                        f"a part of a written frame of {frame.rows} rows announced {rows}"
                    )
                frame.add(chunk.data, sets_ipc)
                if not last:
                    continue
                samples, resolved = frame.resolved()
                frame = None
                result = self.db._write_resolved(samples, resolved)
            else:
                result = self.db.write(chunk.data, metric=body.get("metric"))
            # Acknowledged only now: db.write returned, the WAL has the samples.
            ack = {"rows": result.rows, "replaced": result.replaced}
            writer.write(pa.py_buffer(json.dumps(ack).encode()))


ACTIONS = (
    (
        "series",
        "label sets of the series matching {'selector'} with samples in {'start', 'end'}, "
        "as an Arrow IPC table",
    ),
    ("select", "a select's frame schema (an empty table), then its series' label sets"),
    ("stats", "db.stats() as JSON"),
    ("flush", "db.flush(): the new block ids as JSON"),
    ("compact", "db.compact() as JSON"),
    ("delete", "db.delete({'selector', 'start', 'end'}): the series matched, as JSON"),
)


def _predicate(serialized: str | None) -> pl.Expr | None:
    """The client's predicate, or None when it does not deserialize here (nothing pruned; the
    client applies it exactly anyway)."""
    if not serialized:
        return None
    try:
        return pl.Expr.deserialize(io.StringIO(serialized), format="json")
    except Exception:  # noqa: BLE001 - another Polars version's JSON: just not pushed down
        return None


def _stream(
    schema: pa.Schema, batches: Iterator[Any], limit: int | None
) -> Iterator[pa.RecordBatch | tuple[pa.RecordBatch, bytes]]:
    """The record batches of sample batches, at most ``limit`` rows in all; stored chunks
    (``Payloads``, never with a limit) as an empty batch with the chunks as app metadata."""
    from tsdb_arrow.query.read import Payloads

    remaining = limit
    if limit == 0:
        batches.close()
        return
    no_rows = wire.samples_batch(
        schema,
        np.zeros(0, np.int64),
        np.zeros(0) if VALUE in schema.names else None,
        np.zeros(0, np.uint64),
        np.zeros(0, np.int64),
    )
    try:
        for samples in batches:
            if isinstance(samples, Payloads):
                yield no_rows, wire.payloads_bytes(samples)
                continue
            n = len(samples)
            if remaining is not None and n > remaining:
                n = remaining
            lengths = samples.run_lengths
            if n < len(samples):
                ends = np.cumsum(lengths)
                keep = int(np.searchsorted(ends, n, side="left")) + 1
                lengths = lengths[:keep].copy()
                lengths[-1] -= int(ends[keep - 1]) - n
            runs = samples.run_refs[: len(lengths)]
            values = samples.values[:n] if samples.values is not None else None
            yield wire.samples_batch(schema, samples.timestamps[:n], values, runs, lengths)
            if remaining is not None:
                remaining -= n
                if remaining <= 0:
                    return
    except flight.FlightError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failure mid-stream reaches the client too
        raise flight_error(exc) from exc
    finally:
        batches.close()


class FlightListener:
    """A running Flight server; ``address`` is where it listens (the port resolved)."""

    def __init__(
        self,
        db: Database,
        address: str,
        *,
        auth_token: str | None = None,
        tls_cert: bytes | None = None,
        tls_key: bytes | None = None,
    ) -> None:
        host, _, port = address.rpartition(":")
        scheme = "grpc+tls" if tls_cert else "grpc+tcp"
        certificates = [flight.CertKeyPair(tls_cert, tls_key)] if tls_cert and tls_key else None
        try:
            self._service = FlightService(
                db,
                f"{scheme}://{host}:{port}",
                auth_token=auth_token,
                tls_certificates=certificates,
            )
        except (pa.ArrowException, OSError) as exc:
            raise errors.ServerError(
                f"cannot listen for Arrow Flight on {address} ({exc}); pick another port with "
                "--flight HOST:PORT, or 'off'"
            ) from exc
        self.address = f"{host}:{self._service.port}"
        self.scheme = scheme

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new calls, let running ones finish (up to ``grace`` seconds), close the
        socket. Writes and actions are waited for; a select stream only while it sends: one
        whose client stopped reading (nothing sent for ``STALLED_AFTER`` s) is not, and ends
        with an error once the database closes, as does any call still running after
        ``grace``."""
        stopping = threading.Thread(target=self._service.shutdown, daemon=True)
        stopping.start()
        deadline = time.monotonic() + grace
        while stopping.is_alive() and time.monotonic() < deadline:
            stopping.join(min(0.05, max(deadline - time.monotonic(), 0)))
            if not self._service.draining(time.monotonic()):
                break
        if stopping.is_alive():
            log.warning(
                "Flight calls still running at the stop (select streams whose clients stopped "
                "reading, or calls past the %.0f s grace); the database closes anyway",
                grace,
            )
