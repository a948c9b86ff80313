"""``ta.serve``: the network listeners over one open ``Database`` (OTLP gRPC and HTTP, the
Prometheus HTTP API, Arrow Flight).

``serve(db, ...)`` starts them in this process and returns a ``Server`` handle; ``tsdb-arrow
serve`` (``server/process.py``) is the same with signal handling around it. Listeners bind
loopback by default; an address is ``HOST:PORT`` (port 0 picks a free one) or ``"off"``.
With ``auth_token`` every listener asks for ``Authorization: Bearer <token>``; without one,
Flight and the Prometheus HTTP API (which serve reads) bind loopback only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tsdb_arrow.errors import ServerError

if TYPE_CHECKING:
    from tsdb_arrow.database import Database
    from tsdb_arrow.server.prom_api import QueryOptions

log = logging.getLogger("tsdb_arrow.server")

DEFAULT_OTLP_GRPC = "127.0.0.1:4317"
DEFAULT_OTLP_HTTP = "127.0.0.1:4318"
DEFAULT_PROM_HTTP = "127.0.0.1:9090"
DEFAULT_FLIGHT = "127.0.0.1:8815"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class Server:
    """Running listeners; ``addresses`` maps each listener to where it listens."""

    def __init__(self) -> None:
        self.addresses: dict[str, str] = {}
        self._stops: list = []

    def stop(self) -> None:
        """Stop accepting, finish requests in flight; the database stays open (close it after).
        Idempotent."""
        while self._stops:
            self._stops.pop()()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _address(name: str, value: str | None) -> str | None:
    if value is None or value == "off":
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ServerError(f"{name} must be HOST:PORT (e.g. 127.0.0.1:4317) or 'off', got {value!r}")
    if host not in LOOPBACK:
        log.warning("%s listens on %s, reachable from other machines", name, value)
    return value


def serve(
    db: Database,
    *,
    otlp_grpc: str | None = DEFAULT_OTLP_GRPC,
    otlp_http: str | None = DEFAULT_OTLP_HTTP,
    promote_resource_attributes: Sequence[str] = (),
    grpc_max_message_bytes: int = 4 * 2**20,
    http_max_body_bytes: int = 4 * 2**20,
    http: str | None = DEFAULT_PROM_HTTP,
    query_options: QueryOptions | None = None,
    flight: str | None = DEFAULT_FLIGHT,
    auth_token: str | None = None,
    tls_cert: bytes | None = None,
    tls_key: bytes | None = None,
) -> Server:
    """Start the listeners over ``db`` in this process; returns the handle to ``stop()`` them.

    A request is answered only once its points are in the write-ahead log. A listener that
    cannot bind raises ``ServerError`` (the others are stopped first). ``http`` is the
    Prometheus HTTP API (queries, remote write and read, OTLP at ``/api/v1/otlp/v1/metrics``)
    with ``query_options`` as its limits; with ``auth_token`` it answers only requests
    carrying ``Authorization: Bearer <token>`` (401 otherwise), as do the OTLP listeners
    (401 / UNAUTHENTICATED) and Flight; Flight or the Prometheus HTTP API on a
    non-loopback address needs a token.
    ``tls_cert``/``tls_key`` (PEM bytes): Flight over TLS.
    """
    from tsdb_arrow.server.otlp import OtlpReceiver

    grpc_address = _address("otlp_grpc", otlp_grpc)
    http_address = _address("otlp_http", otlp_http)
    prom_address = _address("http", http)
    flight_address = _address("flight", flight)
    if auth_token is None:
        readers = {"flight": flight_address, "http": prom_address}
        for name, address in readers.items():
            if address is not None and address.rpartition(":")[0] not in LOOPBACK:
                raise ServerError(
                    f"{name} on {address} would serve every sample to anyone who can reach "
                    "it: give a token (--auth-token-file FILE, or auth_token=) or bind 127.0.0.1"
                )
        if flight_address is not None or prom_address is not None:
            log.info("no auth token: Flight and the Prometheus HTTP API listen on loopback only")
    if (tls_cert is None) != (tls_key is None):
        raise ServerError("TLS needs both a certificate and its key (--tls-cert and --tls-key)")
    if db.read_only:
        raise ServerError("serve needs a database opened for writing, not read_only=True")
    receiver = OtlpReceiver(db, promote_resource_attributes=promote_resource_attributes)
    server = Server()
    try:
        if grpc_address is not None:
            from tsdb_arrow.server.otlp_grpc import OtlpGrpcServer

            grpc_server = OtlpGrpcServer(
                receiver,
                grpc_address,
                max_message_bytes=grpc_max_message_bytes,
                auth_token=auth_token,
            )
            server._stops.append(grpc_server.stop)
            server.addresses["otlp_grpc"] = grpc_server.address
        if http_address is not None:
            from tsdb_arrow.server.otlp_http import OtlpHttpServer

            http_server = OtlpHttpServer(
                receiver, http_address, max_body_bytes=http_max_body_bytes, auth_token=auth_token
            )
            server._stops.append(http_server.stop)
            server.addresses["otlp_http"] = http_server.address
        if prom_address is not None:
            from tsdb_arrow.server.prom_api import QueryOptions
            from tsdb_arrow.server.prom_http import PromHttpServer

            prom_server = PromHttpServer(
                db,
                prom_address,
                options=query_options or QueryOptions(),
                receiver=receiver,
                auth_token=auth_token,
            )
            server._stops.append(prom_server.stop)
            server.addresses["http"] = prom_server.address
        if flight_address is not None:
            from tsdb_arrow.server.flight import FlightListener

            flight_server = FlightListener(
                db, flight_address, auth_token=auth_token, tls_cert=tls_cert, tls_key=tls_key
            )
            server._stops.append(flight_server.stop)
            server.addresses["flight"] = flight_server.address
    except BaseException:
        server.stop()
        raise
    return server
