"""OTLP over gRPC: ``opentelemetry.proto.collector.metrics.v1.MetricsService/Export`` on grpc.aio.

Request bodies arrive as raw bytes (gzip already undone by grpcio) and are parsed by the
converter, so an undecodable message gets INVALID_ARGUMENT instead of a framework error. A full
head gets UNAVAILABLE with a ``google.rpc.RetryInfo`` detail, the answer OTLP exporters retry on.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import grpc

from tsdb_arrow.errors import ServerError
from tsdb_arrow.server.auth import bearer_ok
from tsdb_arrow.server.otlp import OtlpReceiver, Outcome

SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
DEFAULT_MAX_MESSAGE_BYTES = 4 * 2**20  # as the OpenTelemetry Collector


def _retry_details(outcome: Outcome) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying a google.rpc.Status with RetryInfo."""
    from google.protobuf import any_pb2, duration_pb2
    from google.rpc import code_pb2, error_details_pb2, status_pb2

    retry = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(
            seconds=int(outcome.retry_after),
            nanos=int((outcome.retry_after % 1) * 1e9),
        )
    )
    detail = any_pb2.Any()
    detail.Pack(retry)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=outcome.message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)


class OtlpGrpcServer:
    """A running gRPC listener; ``address`` is where it listens (the port resolved).

    grpc.aio on an event loop of its own thread, each export handled on that thread as it comes:
    the work of an export is numba kernels, numpy and the WAL write, so one thread taking the
    requests one after another keeps a core busy without the hand-offs between grpcio's polling
    thread and a pool of handler threads (``docs/benchmarks.md``, runs in turns with the threaded
    server: 15-39 % less CPU per point, 12-51 % more points/s). Concurrent calls queue in grpcio
    meanwhile; OTLP over HTTP, Flight and remote write keep their own threads.
    """

    def __init__(
        self,
        receiver: OtlpReceiver,
        address: str,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        auth_token: str | None = None,
    ) -> None:
        self._receiver = receiver
        self._auth_token = auth_token
        self._loop = asyncio.new_event_loop()
        self._done: asyncio.Event | None = None
        self._grace = 0.0
        started: Future[int] = Future()
        self._thread = threading.Thread(
            target=self._run,
            args=(address, max_message_bytes, started),
            name="tsdb-arrow-otlp-grpc",
            daemon=True,
        )
        self._thread.start()
        try:
            bound = started.result()
        except RuntimeError as exc:
            self._thread.join()
            self._loop.close()
            raise ServerError(
                f"cannot listen for OTLP gRPC on {address} ({exc}); pick another port with "
                "--otlp-grpc HOST:PORT, or 'off'"
            ) from None
        host, _, _ = address.rpartition(":")
        self.address = f"{host}:{bound}"

    def _run(self, address: str, max_message_bytes: int, started: Future[int]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve(address, max_message_bytes, started))
        except BaseException as exc:  # reported to the constructor when it is still waiting
            if not started.done():
                started.set_exception(exc)
            raise

    async def _serve(self, address: str, max_message_bytes: int, started: Future[int]) -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
            ]
        )
        handler = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=None,  # raw bytes: the converter parses them
            response_serializer=None,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),)
        )
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            started.set_exception(exc)
            return
        if not bound:
            started.set_exception(RuntimeError("port taken or address not available"))
            return
        self._done = asyncio.Event()
        await server.start()
        started.set_result(bound)
        await self._done.wait()
        await server.stop(self._grace)

    async def _export(self, body: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if self._auth_token is not None:
            header = dict(context.invocation_metadata() or ()).get("authorization")
            if not bearer_ok(header, self._auth_token):
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "a bearer token is required: authorization: Bearer <token>",
                )
        outcome = self._receiver.export(body)  # on this thread: see the class docstring
        if outcome.kind == "ok":
            return outcome.response
        if outcome.kind == "unavailable":
            context.set_trailing_metadata(_retry_details(outcome))
            await context.abort(grpc.StatusCode.UNAVAILABLE, outcome.message)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, outcome.message)
        raise AssertionError("unreachable: abort raises")

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new calls, let running ones finish (up to ``grace`` seconds)."""
        if self._thread.is_alive() and self._done is not None:
            self._grace = grace
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join()
        self._loop.close()
