"""OTLP over HTTP: ``POST /v1/metrics`` with protobuf or JSON bodies, gzip or not.

Answers follow the OTLP/HTTP specification: 200 with an ExportMetricsServiceResponse (in the
request's encoding), 400 with a ``google.rpc.Status`` for a body that cannot be decoded, 413 for
a body over the limit, 415 for another content type, 503 with ``Retry-After`` when the head is
full.
"""

from __future__ import annotations

import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tsdb_arrow.errors import ServerError
from tsdb_arrow.server.auth import bearer_ok
from tsdb_arrow.server.otlp import OtlpReceiver

PATH = "/v1/metrics"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MAX_BODY_BYTES = 4 * 2**20


class _TooLarge(Exception):
    """A gzip body inflates past the size limit."""


def _gunzip(body: bytes, limit: int) -> bytes:
    """Undo gzip without letting a small bomb expand past ``limit`` bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise _TooLarge
    return out


def _json_to_protobuf(body: bytes) -> bytes:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    request = ExportMetricsServiceRequest()
    json_format.Parse(body, request)
    return request.SerializeToString()


def _response_json(body: bytes) -> bytes:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceResponse,
    )

    response = ExportMetricsServiceResponse()
    response.ParseFromString(body)
    return json_format.MessageToJson(response, indent=None).encode()


def _status(code: int, message: str, as_json: bool) -> bytes:
    from google.protobuf import json_format
    from google.rpc import status_pb2

    status = status_pb2.Status(code=code, message=message)
    if as_json:
        return json_format.MessageToJson(status, indent=None).encode()
    return status.SerializeToString()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: one line per request would drown the server's own log."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        limit = self.server.max_body_bytes
        if not bearer_ok(self.headers.get("Authorization"), self.server.auth_token):
            self.close_connection = True  # the body is not read
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"a bearer token is required: Authorization: Bearer <token>",
                "text/plain",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        if self.path.split("?", 1)[0] != PATH:
            self._send(HTTPStatus.NOT_FOUND, b"", "text/plain")
            return
        kind = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        as_json = kind == JSON
        if kind not in (PROTOBUF, JSON):
            self._fail(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                3,
                f"unsupported content type {kind!r}; send {PROTOBUF} or {JSON}",
                as_json,
            )
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._fail(
                HTTPStatus.LENGTH_REQUIRED, 3, "a Content-Length header is required", as_json
            )
            return
        if length < 0 or length > limit:
            self.close_connection = True
            remaining = length if length <= 16 * limit else 0
            while remaining > 0:  # read it away, so that the client sees the answer
                chunk = self.rfile.read(min(2**20, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
            self._fail(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                8,
                f"the body of {length} bytes is over the {limit}-byte limit",
                as_json,
            )
            return
        body = self.rfile.read(length)
        try:
            if self.headers.get("Content-Encoding", "").strip().lower() == "gzip":
                body = _gunzip(body, limit)
            if as_json:
                body = _json_to_protobuf(body)
        except _TooLarge:
            self._fail(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                8,
                f"the body inflates past the {limit}-byte limit",
                as_json,
            )
            return
        except (OSError, EOFError, zlib.error, ValueError) as exc:  # bad gzip, bad JSON
            self._fail(HTTPStatus.BAD_REQUEST, 3, f"cannot decode the body: {exc}", as_json)
            return
        outcome = self.server.receiver.export(body)
        if outcome.kind == "ok":
            payload = _response_json(outcome.response) if as_json else outcome.response
            self._send(HTTPStatus.OK, payload, JSON if as_json else PROTOBUF)
        elif outcome.kind == "unavailable":
            self._fail(
                HTTPStatus.SERVICE_UNAVAILABLE,
                14,
                outcome.message,
                as_json,
                {"Retry-After": str(max(1, round(outcome.retry_after)))},
            )
        else:
            self._fail(HTTPStatus.BAD_REQUEST, 3, outcome.message, as_json)

    def _fail(
        self,
        status: HTTPStatus,
        code: int,
        message: str,
        as_json: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send(status, _status(code, message, as_json), JSON if as_json else PROTOBUF, headers)

    def _send(
        self,
        status: HTTPStatus,
        payload: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close waits for requests in flight
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        receiver: OtlpReceiver,
        max_body_bytes: int,
        auth_token: str | None = None,
    ):
        self.receiver = receiver
        self.max_body_bytes = max_body_bytes
        self.auth_token = auth_token
        super().__init__(address, _Handler)


class OtlpHttpServer:
    """A running OTLP/HTTP listener on its own thread; ``address`` has the port resolved."""

    def __init__(
        self,
        receiver: OtlpReceiver,
        address: str,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        auth_token: str | None = None,
    ) -> None:
        host, _, port = address.rpartition(":")
        try:
            self._server = _Server(
                (host.strip("[]"), int(port)), receiver, max_body_bytes, auth_token
            )
        except (OSError, ValueError) as exc:
            raise ServerError(
                f"cannot listen for OTLP/HTTP on {address} ({exc}); pick another port with "
                "--otlp-http HOST:PORT, or 'off'"
            ) from exc
        self.address = f"{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tsdb-arrow-otlp-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, wait for requests in flight, close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
