"""``tsdb-arrow serve``: one process owning a data directory, listeners until SIGINT/SIGTERM.

Ready when it says so: one line per listener with its address on stderr (and stdout, for
scripts that wait for it). SIGINT or SIGTERM stops accepting, lets requests in flight finish,
flushes and closes the database, and exits 0. SIGKILL loses nothing acknowledged (the WAL).
SIGUSR1 writes every thread's stack to stderr and serves on: what to send a server that seems
stuck before killing it (also while it stops).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading

import tsdb_arrow as ta
from tsdb_arrow.errors import ServerError
from tsdb_arrow.server import (
    DEFAULT_FLIGHT,
    DEFAULT_OTLP_GRPC,
    DEFAULT_OTLP_HTTP,
    DEFAULT_PROM_HTTP,
    serve,
)
from tsdb_arrow.server.auth import load_token

#: How often the main thread wakes to run the handler of a signal another thread received.
SIGNAL_POLL_SECONDS = 0.2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--otlp-grpc",
        default=DEFAULT_OTLP_GRPC,
        metavar="HOST:PORT|off",
        help=f"OTLP gRPC listener (default {DEFAULT_OTLP_GRPC})",
    )
    parser.add_argument(
        "--otlp-http",
        default=DEFAULT_OTLP_HTTP,
        metavar="HOST:PORT|off",
        help=f"OTLP/HTTP listener, POST /v1/metrics (default {DEFAULT_OTLP_HTTP})",
    )
    parser.add_argument(
        "--http",
        default=DEFAULT_PROM_HTTP,
        metavar="HOST:PORT|off",
        help=f"Prometheus HTTP API: queries, remote write/read, OTLP (default {DEFAULT_PROM_HTTP})",
    )
    parser.add_argument(
        "--query-timeout", type=float, default=120.0, help="seconds a query may run (default 120)"
    )
    parser.add_argument(
        "--query-max-samples",
        type=int,
        default=50_000_000,
        help="samples one query may load (default 50,000,000)",
    )
    parser.add_argument(
        "--query-max-concurrency",
        type=int,
        default=20,
        help="queries evaluated at once; more wait, and beyond 4x that get 503 (default 20)",
    )
    parser.add_argument(
        "--query-lookback-delta",
        type=float,
        default=300.0,
        help="seconds an instant selector looks back for a sample (default 300)",
    )
    parser.add_argument(
        "--flight",
        default=DEFAULT_FLIGHT,
        metavar="HOST:PORT|off",
        help=f"Arrow Flight listener for ta.connect (default {DEFAULT_FLIGHT})",
    )
    parser.add_argument(
        "--auth-token-file",
        metavar="FILE",
        help="require 'Authorization: Bearer <the file's content>' on every listener; "
        "without it Flight binds loopback only",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="TLS certificate for Flight")
    parser.add_argument("--tls-key", metavar="PEM", help="TLS private key for Flight")
    parser.add_argument(
        "--promote-resource-attributes",
        default="",
        metavar="A,B",
        help="resource attributes that become labels of every series",
    )
    parser.add_argument(
        "--grpc-max-message-bytes",
        type=int,
        default=4 * 2**20,
        help="largest gRPC request accepted (default 4 MiB, as the Collector)",
    )
    parser.add_argument(
        "--http-max-body-bytes",
        type=int,
        default=4 * 2**20,
        help="largest HTTP body accepted, after gunzip (default 4 MiB): 413 beyond",
    )


def _read_pem(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ServerError(
            f"cannot read {path}: {exc.strerror}; check --tls-cert/--tls-key"
        ) from exc


def _write_stacks(signum: int, frame: object) -> None:
    """SIGUSR1 while serving: every thread's stack to stderr. Run by the main thread (within
    ``SIGNAL_POLL_SECONDS``) holding the GIL, so no other thread changes its frames meanwhile:
    faulthandler's dump from its C handler read the frames of threads running Python code at
    that moment, and crashed a busy server about once in 40 dumps."""
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)


def run(args: argparse.Namespace) -> int:
    """Serve until a signal; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="tsdb-arrow: %(message)s", stream=sys.stderr)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, _write_stacks)
    promote = [a.strip() for a in args.promote_resource_attributes.split(",") if a.strip()]
    from tsdb_arrow.server.prom_api import QueryOptions

    options = QueryOptions(
        max_samples=args.query_max_samples,
        timeout=args.query_timeout,
        max_concurrent=args.query_max_concurrency,
        lookback=round(args.query_lookback_delta * 1000),
    )
    token = load_token(args.auth_token_file) if args.auth_token_file else None
    tls_cert, tls_key = _read_pem(args.tls_cert), _read_pem(args.tls_key)
    db = ta.open(args.data)
    try:
        server = serve(
            db,
            otlp_grpc=args.otlp_grpc,
            otlp_http=args.otlp_http,
            promote_resource_attributes=promote,
            grpc_max_message_bytes=args.grpc_max_message_bytes,
            http_max_body_bytes=args.http_max_body_bytes,
            http=args.http,
            query_options=options,
            flight=args.flight,
            auth_token=token,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
    except BaseException:
        db.close()
        raise
    try:
        replayed = db.stats()["wal"]["replayed_samples"]
        print(
            f"tsdb-arrow: serving {db.path} ({replayed:,} samples replayed from the WAL)",
            flush=True,
        )
        for name, address in server.addresses.items():
            tls = " (TLS)" if name == "flight" and tls_cert else ""
            print(f"tsdb-arrow: {name} listening on {address}{tls}", flush=True)
        if token is None and {"flight", "http"} & server.addresses.keys():
            print(
                "tsdb-arrow: no --auth-token-file: Flight and the Prometheus HTTP API bind "
                "loopback only",
                flush=True,
            )
        if not server.addresses:
            print("tsdb-arrow: every listener is off; serving nothing until stopped", flush=True)
        print("tsdb-arrow: ready", flush=True)
        # The kernel may hand SIGTERM to any thread (gRPC's, Arrow's), and Python runs the
        # handler only when the main thread runs again: a wait without end never saw it.
        while not stop.is_set():
            stop.wait(SIGNAL_POLL_SECONDS)
        print("tsdb-arrow: stopping: finishing requests in flight, flushing", flush=True)
    finally:
        # Stopping, the main thread may wait in a listener's stop in C++, where no Python
        # handler runs: from now on faulthandler writes the stacks from its C handler. That
        # reads the frames of threads that run meanwhile, which can crash the process: a
        # stopping one only, whose acknowledged samples are in the WAL.
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
        server.stop()
        db.close()
    print("tsdb-arrow: stopped", flush=True)
    return 0
