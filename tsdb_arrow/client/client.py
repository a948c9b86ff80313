"""``Client``: a running server's database through Arrow Flight, with the local API.

``select`` returns a Polars LazyFrame streaming from the server; ``write`` sends a frame and
returns once the server has it in its write-ahead log; ``series``, ``stats``, ``flush``,
``compact`` and ``delete`` run there. Errors are the ``TsdbError`` subclasses (and messages) a
local call raises; a server that cannot be reached or dies mid-call gives
``ConnectionLostError``; a missing or wrong token ``AuthError``.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.flight as flight

from tsdb_arrow.client.decoded import DecodedChunks
from tsdb_arrow.client.scan import RemoteScan, schema_of
from tsdb_arrow.client.writes import PARTS_SCHEMA, Prepared, encode_part, prepare
from tsdb_arrow.config import StorageConfig
from tsdb_arrow.database import WriteResult
from tsdb_arrow.errors import AuthError, ConnectionLostError, InputError, TsdbError
from tsdb_arrow.model import REF, TIMESTAMP, VALUE
from tsdb_arrow.server import flight_wire as wire
from tsdb_arrow.timeutil import to_ms

#: Batches a write stream sends ahead of the server's acknowledgements.
WRITE_WINDOW = 2
#: Parts of a frame encoded at once (threads: the encoding kernels release the GIL) while the
#: part before them is sent.
ENCODERS = 2
#: Bytes of decoded chunks a client keeps, as a local database does by default.
DEFAULT_CACHE_BYTES = StorageConfig.cache_bytes
#: How long ``connect`` waits for the server's first answer.
CONNECT_TIMEOUT = 10.0


def connect(
    address: str,
    *,
    token: str | None = None,
    timeout: float | None = None,
    tls_root_certs: bytes | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> Client:
    """Connect to ``tsdb-arrow serve``'s Flight listener, e.g. ``"grpc://127.0.0.1:8815"``
    (``grpc+tls://`` for TLS; ``tls_root_certs``: PEM of a private CA). ``token``: the
    server's ``--auth-token-file`` content. ``timeout``: seconds per call (None: no limit).
    ``cache_bytes``: bound of the client's cache of decoded chunks (0: none), as a local
    database's ``cache_bytes``.
    Raises ``ConnectionLostError`` when nothing answers, ``AuthError`` on a refused token."""
    return Client(
        address,
        token=token,
        timeout=timeout,
        tls_root_certs=tls_root_certs,
        cache_bytes=cache_bytes,
    )


class Client:
    """A connection to a server's database; close it (or use ``with``) when done."""

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        timeout: float | None = None,
        tls_root_certs: bytes | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if not isinstance(cache_bytes, int) or isinstance(cache_bytes, bool) or cache_bytes < 0:
            raise InputError(f"cache_bytes must be an int >= 0 (0: no cache), got {cache_bytes!r}")
        self._decoded = DecodedChunks(cache_bytes)
        if "://" not in address:
            address = f"grpc://{address}"
        self.address = address
        kwargs: dict[str, Any] = {}
        if tls_root_certs is not None:
            kwargs["tls_root_certs"] = tls_root_certs
        try:
            self._flight = flight.FlightClient(address, **kwargs)
        except (pa.ArrowException, ValueError) as exc:
            raise InputError(
                f"cannot use {address!r} as a server address ({exc}); write it as "
                "grpc://HOST:PORT or grpc+tls://HOST:PORT"
            ) from None
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self._options = flight.FlightCallOptions(
            headers=headers,
            timeout=timeout,
            # gRPC hands buffers at odd addresses; realigned once here, numpy and Polars then
            # read them as they read local arrays (unaligned, building frames took 2-3x longer).
            read_options=pa.ipc.IpcReadOptions(ensure_alignment=pa.ipc.Alignment.At64Byte),
        )
        first = flight.FlightCallOptions(
            headers=headers, timeout=min(timeout or CONNECT_TIMEOUT, CONNECT_TIMEOUT)
        )
        try:
            with self._remote():
                list(self._flight.list_actions(first))  # fails now on no server or a bad token
        except BaseException:
            self._flight.close()
            raise

    # -- reading ---------------------------------------------------------------------------

    def select(
        self, selector: str | None = None, *, start: Any = None, end: Any = None
    ) -> pl.LazyFrame:
        """Samples of the matching series in [start, end], as ``Database.select`` gives them:
        a LazyFrame read from the server when collected (projection and filters sent there)."""
        lo, hi = to_ms(start, name="start"), to_ms(end, name="end")
        empty, series = self._action("select", selector=selector, start=lo, end=hi)
        schema = schema_of(pl.from_arrow(wire.bytes_table(empty)))
        series_frame = pl.from_arrow(wire.bytes_table(series))
        if series_frame.height == 0:
            return pl.LazyFrame(schema=schema)
        labels = [c for c in schema if c not in (TIMESTAMP, VALUE)]
        return RemoteScan(self, series_frame.select(REF, *labels), lo, hi, schema).lazy()

    def series(
        self, selector: str | None = None, *, start: Any = None, end: Any = None
    ) -> pl.DataFrame:
        """Label sets of the series matching ``selector`` (all when None), one row each; with
        ``start`` or ``end`` only those with samples in range, as ``Database.series``."""
        lo, hi = to_ms(start, name="start"), to_ms(end, name="end")
        (table,) = self._action("series", selector=selector, start=lo, end=hi)
        return pl.from_arrow(wire.bytes_table(table))

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: Any, *, metric: str | None = None) -> WriteResult:
        """Write a long-format frame as ``Database.write`` does; returns once the server has it
        in its WAL. A refused frame raises the local error and stores nothing."""
        results = list(self.write_batches([data], metric=metric))
        return results[0] if results else WriteResult(rows=0, replaced=0)

    def write_batches(
        self, batches: Iterable[Any], *, metric: str | None = None
    ) -> Iterator[WriteResult]:
        """Write frames one after the other on one stream, yielding each one's result in order
        as the server acknowledges it (a few are sent ahead). The first refused frame raises,
        its position in ``batches`` as the error's ``batch_index``: the frames before it are
        stored, it and the later ones are not."""
        stream: _PutStream | None = None
        acked = 0
        # Encode a frame's next parts while the main thread sends the one before.
        encoder = ThreadPoolExecutor(ENCODERS, thread_name_prefix="tsdb-arrow-encode")
        try:
            for index, data in enumerate(batches):
                try:
                    prepared = prepare(data, metric)
                except TsdbError as exc:
                    exc.batch_index = index  # type: ignore[attr-defined]
                    raise
                if prepared is None or prepared.plain is not None:
                    if stream is not None:  # results stay in order
                        for result in stream.finish():
                            acked += 1
                            yield result
                        stream = None
                    if prepared is None:
                        acked += 1
                        yield WriteResult(rows=0, replaced=0)
                        continue
                    plain = _PutStream(self, "plain", prepared.plain.schema, metric)
                    for result in plain.one(prepared, encoder):
                        acked += 1
                        yield result
                    continue
                if stream is None:
                    stream = _PutStream(self, "parts", PARTS_SCHEMA, None)
                for result in stream.send(prepared, encoder):
                    acked += 1
                    yield result
            if stream is not None:
                for result in stream.finish():
                    acked += 1
                    yield result
                stream = None
        except TsdbError as exc:
            if not hasattr(exc, "batch_index"):  # the server refused the first unacknowledged
                exc.batch_index = acked  # type: ignore[attr-defined]
            raise
        finally:
            if stream is not None:
                stream.abandon()
            encoder.shutdown(wait=False, cancel_futures=True)

    # -- maintenance -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The server's ``db.stats()``."""
        (body,) = self._action("stats")
        return json.loads(body)

    def flush(self) -> list[str]:
        """Flush the server's head to blocks; returns the new block ids."""
        (body,) = self._action("flush")
        return json.loads(body)

    def compact(self) -> dict[str, list[Any]]:
        """Run the server's ``db.compact()``; returns what was done."""
        (body,) = self._action("compact")
        return json.loads(body)

    def delete(self, selector: str | None = None, *, start: Any = None, end: Any = None) -> int:
        """Delete samples on the server as ``Database.delete``; returns the series matched."""
        lo, hi = to_ms(start, name="start"), to_ms(end, name="end")
        (body,) = self._action("delete", selector=selector, start=lo, end=hi)
        return int(json.loads(body))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._flight.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _action(self, kind: str, **body: Any) -> list[bytes]:
        with self._remote():
            results = self._flight.do_action(
                flight.Action(kind, wire.command(kind, **body)), self._options
            )
            return [r.body.to_pybytes() for r in results]

    def _do_get(self, ticket: wire.SelectTicket) -> flight.FlightStreamReader:
        return self._flight.do_get(flight.Ticket(ticket.encode()), self._options)

    @contextlib.contextmanager
    def _remote(self) -> Iterator[None]:
        """Turn Flight errors into the TsdbError the server raised, or say what happened."""
        try:
            yield
        except flight.FlightError as exc:
            raise self._error(exc) from None
        except pa.ArrowException as exc:
            raise ConnectionLostError(
                f"the stream from {self.address} broke off: {_first_line(exc)}"
            ) from None

    def _error(self, exc: flight.FlightError) -> TsdbError:
        known = wire.from_error_info(exc.extra_info)
        if known is not None:
            return known
        if isinstance(exc, flight.FlightUnauthenticatedError):
            return AuthError(
                f"{self.address} refused the call: it needs a bearer token (token= of "
                "ta.connect) and this one is missing or wrong"
            )
        return ConnectionLostError(
            f"no answer from {self.address} ({_first_line(exc)}): is `tsdb-arrow serve` "
            "running there with --flight on that address? Writes acknowledged before are stored"
        )


def _first_line(exc: BaseException) -> str:
    return str(exc).split(". Detail:")[0].splitlines()[0] if str(exc) else type(exc).__name__


class _PutStream:
    """One ``do_put`` stream: batches sent ahead up to ``WRITE_WINDOW``, acks read in order."""

    def __init__(self, client: Client, mode: str, schema: pa.Schema, metric: str | None) -> None:
        self.client = client
        self.sizes: list[int] = []
        descriptor = flight.FlightDescriptor.for_command(
            wire.command("write", mode=mode, metric=metric)
        )
        with client._remote():
            self.writer, self.acks = client._flight.do_put(descriptor, schema, client._options)

    def _send(self, prepared: Prepared, encoder: ThreadPoolExecutor) -> None:
        """Send a frame: as it is (``plain``), or part by part, the next ``ENCODERS`` parts
        encoded by ``encoder`` while this thread sends the one before them."""
        if prepared.plain is not None:
            self.writer.write_batch(prepared.plain)
            self.sizes.append(prepared.rows)
            return
        samples = prepared.samples
        bounds = prepared.bounds()
        ahead: deque[Future] = deque()

        def encode_next() -> None:
            k = len(ahead) + sent
            ahead.append(encoder.submit(encode_part, samples, *bounds[k], k == len(bounds) - 1))

        sent = 0
        try:
            while len(ahead) < min(ENCODERS, len(bounds)):
                encode_next()
            while ahead:
                part = ahead.popleft().result()
                sent += 1
                if sent + len(ahead) < len(bounds):
                    encode_next()
                self.writer.write_with_metadata(part.batch, pa.py_buffer(part.metadata))
        finally:
            for future in ahead:
                future.cancel()
        self.sizes.append(prepared.rows)

    def _ack(self) -> WriteResult:
        buf = self.acks.read()
        if buf is None:
            self.writer.close()  # raises the error the server ended the stream with
            raise ConnectionLostError(
                f"{self.client.address} closed the write stream before acknowledging a batch"
            )
        fields = json.loads(buf.to_pybytes())
        self.sizes.pop(0)
        return WriteResult(rows=int(fields["rows"]), replaced=int(fields["replaced"]))

    def send(self, prepared: Prepared, encoder: ThreadPoolExecutor) -> Iterator[WriteResult]:
        with self.client._remote():
            try:
                self._send(prepared, encoder)
            except flight.FlightError:
                # The server ended the stream (a refused batch): its error is in the status.
                self._raise_status()
                raise
            while len(self.sizes) > WRITE_WINDOW:
                yield self._ack()

    def one(self, prepared: Prepared, encoder: ThreadPoolExecutor) -> Iterator[WriteResult]:
        yield from self.send(prepared, encoder)
        yield from self.finish()

    def finish(self) -> Iterator[WriteResult]:
        with self.client._remote():
            self.writer.done_writing()
            while self.sizes:
                yield self._ack()
            self.writer.close()

    def _raise_status(self) -> None:
        """Close the writer: raises the server's error for the stream, if it sent one."""
        self.writer.close()

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
