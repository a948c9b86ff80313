"""OTLP over gRPC: ``opentelemetry.proto.collector.metrics.v1.MetricsService/Export`` on grpcio.

Request bodies arrive as raw bytes (gzip already undone by grpcio) and are parsed by the
converter, so an undecodable message gets INVALID_ARGUMENT instead of a framework error. A full
head gets UNAVAILABLE with a ``google.rpc.RetryInfo`` detail, the answer OTLP exporters retry on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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
    """A running gRPC listener; ``address`` is where it listens (the port resolved)."""

    def __init__(
        self,
        receiver: OtlpReceiver,
        address: str,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        workers: int = 8,
        auth_token: str | None = None,
    ) -> None:
        self._receiver = receiver
        self._auth_token = auth_token
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tsdb-arrow-otlp-grpc"),
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        handler = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=None,  # raw bytes: the converter parses them
            response_serializer=None,
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),)
        )
        host, _, port = address.rpartition(":")
        try:
            bound = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            bound = 0
            reason = str(exc)
        else:
            reason = "port taken or address not available"
        if not bound:
            raise ServerError(
                f"cannot listen for OTLP gRPC on {address} ({reason}); pick another port with "
                "--otlp-grpc HOST:PORT, or 'off'"
            )
        self.address = f"{host}:{bound}"
        self._server.start()

    def _export(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        if self._auth_token is not None:
            header = dict(context.invocation_metadata()).get("authorization")
            if not bearer_ok(header, self._auth_token):
                context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "a bearer token is required: authorization: Bearer <token>",
                )
        outcome = self._receiver.export(body)
        if outcome.kind == "ok":
            return outcome.response
        if outcome.kind == "unavailable":
            context.set_trailing_metadata(_retry_details(outcome))
            context.abort(grpc.StatusCode.UNAVAILABLE, outcome.message)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, outcome.message)
        raise AssertionError("unreachable: abort raises")

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new calls, let running ones finish (up to ``grace`` seconds)."""
        self._server.stop(grace).wait()
