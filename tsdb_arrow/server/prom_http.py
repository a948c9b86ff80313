"""The Prometheus HTTP API listener: an ASGI app on uvicorn, on its own thread.

Why uvicorn (httptools' C parser, uvloop): one event loop holds every keep-alive connection
(Grafana panels, Prometheus' remote-write shards) without a thread each and parses requests in
C; measured on this machine with 4 keep-alive clients it answers 7.6 k small GETs/s against 4.9
k/s for ``http.server`` (with Nagle off; 88/s with it on) and 5.3 k against 4.1 k 64 KiB POSTs/s.
The work of a request (decoding, writing, evaluating, JSON, gzip) never runs on the loop: it
goes to thread pools, where numba ``nogil`` kernels, Polars, Arrow and zlib run in parallel
with the loop and with each other. Queries and writes have separate pools, so that a burst of
slow queries does not hold up ingestion.

Routes: ``/api/v1/query``, ``query_range``, ``series``, ``labels``, ``label/<name>/values``,
``metadata``, ``status/buildinfo`` (GET or form POST); ``POST /api/v1/write`` (remote write),
``POST /api/v1/read`` (remote read), ``POST /api/v1/otlp/v1/metrics`` (OTLP); ``/-/ready``,
``/-/healthy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from tsdb_arrow.errors import ServerError
from tsdb_arrow.server.auth import bearer_ok
from tsdb_arrow.server.group_write import GroupWriter
from tsdb_arrow.server.prom_api import Answer, Engine, PromApi, QueryOptions, error_answer
from tsdb_arrow.server.prom_json import Stream
from tsdb_arrow.server.prom_params import BadData, parse_form

if TYPE_CHECKING:
    from tsdb_arrow.database import Database
    from tsdb_arrow.server.otlp import OtlpReceiver

log = logging.getLogger("tsdb_arrow.server")

GZIP_MIN_BYTES = 1024
WRITE_WORKERS = 8
LIGHT_WORKERS = 2
#: Queries waiting for a slot beyond this many times ``max_concurrent`` are refused at once.
QUEUE_FACTOR = 4
#: The niceness of the query threads (Linux: per thread): evaluating and encoding a query
#: takes the CPU that ingestion leaves, so a loop of heavy queries does not starve writes.
QUERY_NICE = 10

_QUERY = {"/api/v1/query": "query", "/api/v1/query_range": "query_range"}
_LIGHT = {
    "/api/v1/series": "series",
    "/api/v1/labels": "labels",
    "/api/v1/metadata": "metadata",
    "/api/v1/status/buildinfo": "buildinfo",
    "/api/v1/query_exemplars": "query_exemplars",
    "/api/v1/rules": "rules",
    "/api/v1/alerts": "alerts",
}
_OPEN = {"/-/ready": b"tsdb-arrow is Ready.\n", "/-/healthy": b"tsdb-arrow is Healthy.\n"}


def lower_priority() -> None:
    """Give the calling thread ``QUERY_NICE`` more niceness (a no-op where threads cannot
    have their own, or the OS refuses)."""
    if QUERY_NICE and hasattr(os, "setpriority") and sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + QUERY_NICE)


class _Disconnected(Exception):
    """The client went away before its body arrived."""


def gzipped(answer: Answer, accept: str) -> Answer:
    """``answer`` gzip-compressed when the client accepts it and the body is worth it (a
    streamed body piece by piece, as it is written)."""
    if "gzip" not in accept.lower():
        return answer
    headers = answer.headers + (("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding"))
    if isinstance(answer.body, Stream):
        return Answer(answer.status, Stream(_gzip_pieces(answer.body)), headers)
    if len(answer.body) < GZIP_MIN_BYTES:
        return answer
    return Answer(answer.status, gzip.compress(answer.body, compresslevel=1, mtime=0), headers)


def _gzip_pieces(body: Stream) -> Iterator[bytes]:
    """One gzip member over the pieces of ``body``, compressed as they come."""
    deflate = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    try:
        for piece in body:
            out = deflate.compress(piece)
            if out:
                yield out
        yield deflate.flush()
    finally:
        body.close()


class PromApp:
    """The ASGI application; every handler returns an ``Answer``."""

    def __init__(
        self,
        api: PromApi,
        *,
        receiver: OtlpReceiver | None,
        auth_token: str | None,
        max_body_bytes: int,
    ) -> None:
        self.api = api
        self.receiver = receiver
        self.token = auth_token
        self.max_body_bytes = max_body_bytes
        slots = api.options.max_concurrent
        self.queries = ThreadPoolExecutor(
            slots, thread_name_prefix="tsdb-arrow-query", initializer=lower_priority
        )
        self.writes = ThreadPoolExecutor(WRITE_WORKERS, thread_name_prefix="tsdb-arrow-write")
        self.light = ThreadPoolExecutor(LIGHT_WORKERS, thread_name_prefix="tsdb-arrow-api")
        self.group = GroupWriter(api.db)
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0

    def shutdown(self) -> None:
        """Finish the work handed to the pools, then stop their threads."""
        for pool in (self.queries, self.writes, self.light):
            pool.shutdown(wait=True)

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        respond = _Responder(send, receive, head=scope["method"] == "HEAD", pool=self.queries)
        try:
            answer = await self._route(scope, headers, receive, respond)
        except _Disconnected:
            return
        except Exception as exc:  # an answer, not a dropped connection; the log has the trace
            log.exception("request %s %s failed", scope["method"], scope["path"])
            answer = Answer(
                500,
                f"internal error: {type(exc).__name__}\n".encode(),
                (("Content-Type", "text/plain"),),
            )
        if answer is not None:
            await respond(answer)

    async def _route(
        self, scope: dict[str, Any], headers: dict[str, str], receive: Callable,
        respond: _Responder,
    ) -> Answer | None:  # fmt: skip
        """The request's answer, or None once a query has sent its own (``respond``)."""
        path, method = scope["path"], scope["method"]
        if path in _OPEN:
            if method not in ("GET", "HEAD"):
                return _method_not_allowed("GET")
            return Answer(200, _OPEN[path], (("Content-Type", "text/plain; charset=utf-8"),))
        if not bearer_ok(headers.get("authorization"), self.token):
            return Answer(
                401,
                b"Unauthorized\n",
                (("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")),
            )
        accept = headers.get("accept-encoding", "")
        if path in ("/api/v1/write", "/api/v1/read", "/api/v1/otlp/v1/metrics"):
            if method != "POST":
                return _method_not_allowed("POST")
            body = await self._body(headers, receive)
            if isinstance(body, Answer):
                return body
            return await self._protocol(path, body, headers)
        endpoint = _QUERY.get(path) or _LIGHT.get(path)
        name = None
        if endpoint is None and path.startswith("/api/v1/label/") and path.endswith("/values"):
            endpoint, name = "label_values", path[len("/api/v1/label/") : -len("/values")]
        if endpoint is None:
            return Answer(404, b"404 page not found\n", (("Content-Type", "text/plain"),))
        if method not in ("GET", "POST", "HEAD"):
            return _method_not_allowed("GET, POST")
        body = b""
        if method == "POST":
            got = await self._body(headers, receive)
            if isinstance(got, Answer):
                return got
            kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            body = got if kind == "application/x-www-form-urlencoded" else b""
        try:
            form = parse_form(scope.get("query_string", b""), body)
        except BadData as exc:
            return error_answer("bad_data", str(exc))
        function = getattr(self.api, endpoint)
        args = (form,) if name is None else (name, form)

        def work() -> Answer:
            return gzipped(self.api.respond(function, *args), accept)

        if endpoint in _QUERY.values():
            return await self._query(work, respond)
        return await asyncio.get_running_loop().run_in_executor(self.light, work)

    async def _query(self, work: Callable[[], Answer], respond: _Responder | None) -> Answer | None:
        """Run a query in a free slot: wait while all are busy, refuse (503) when too many
        wait or a slot does not free within the query timeout. With ``respond``, the answer is
        sent while the slot is held (a streamed body is written in it) and None returned."""
        options = self.api.options
        if self._slots is None:
            self._slots = asyncio.Semaphore(options.max_concurrent)
        if self._waiting >= options.max_concurrent * QUEUE_FACTOR:
            return _busy(options)
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=options.timeout)
        except asyncio.TimeoutError:
            return _busy(options)
        finally:
            self._waiting -= 1
        try:
            answer = await asyncio.get_running_loop().run_in_executor(self.queries, work)
            if respond is None:
                return answer
            await respond(answer)
            return None
        finally:
            self._slots.release()

    async def _protocol(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        loop = asyncio.get_running_loop()
        db, limit = self.api.db, self.max_body_bytes
        if path == "/api/v1/write":
            from tsdb_arrow.server.remote_write import receive_write

            group = self.group
            return await loop.run_in_executor(
                self.writes,
                lambda: receive_write(
                    group, body, headers, max_bytes=limit, on_metadata=self.api.remember_metadata
                ),
            )
        if path == "/api/v1/read":
            from tsdb_arrow.server.remote_read import receive_read

            return await self._query(lambda: receive_read(db, body, max_bytes=limit), None)
        if self.receiver is None:
            return Answer(404, b"OTLP is not served here\n", (("Content-Type", "text/plain"),))
        from tsdb_arrow.server.prom_otlp import export_answer

        receiver = self.receiver
        return await loop.run_in_executor(
            self.writes, lambda: export_answer(receiver, body, headers, limit)
        )

    async def _body(self, headers: dict[str, str], receive: Callable) -> bytes | Answer:
        """The request body, or a 413 answer once it passes the size limit."""
        limit = self.max_body_bytes
        declared = headers.get("content-length")
        too_large = Answer(
            413,
            f"the body is over the {limit}-byte limit\n".encode(),
            (("Content-Type", "text/plain"), ("Connection", "close")),
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_large
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _Responder:
    """Sends an ``Answer``: a ``bytes`` body with its length, a ``Stream`` in HTTP chunks,
    each next piece written in ``pool`` while the one before is sent (at most two in memory;
    uvicorn's flow control holds the writer back when the client reads slowly)."""

    def __init__(self, send: Callable, receive: Callable, *, head: bool, pool: ThreadPoolExecutor):
        self.send = send
        self.receive = receive
        self.head = head
        self.pool = pool

    async def __call__(self, answer: Answer) -> None:
        body = answer.body
        headers = [(k.lower().encode(), v.encode()) for k, v in answer.headers]
        if not isinstance(body, Stream):
            length = (b"content-length", str(len(body)).encode())
            start = {"type": "http.response.start", "status": answer.status}
            await self.send({**start, "headers": [length, *headers]})
            await self.send({"type": "http.response.body", "body": b"" if self.head else body})
            return
        try:
            await self.send({"type": "http.response.start", "status": answer.status,
                             "headers": headers})  # fmt: skip
            if not self.head:
                await self._stream(body)
                return
            await self.send({"type": "http.response.body", "body": b""})
        finally:
            body.close()

    async def _stream(self, body: Stream) -> None:
        """The pieces of ``body`` until it ends or the client goes away. A piece that fails
        to encode raises: uvicorn closes the connection, the client sees a cut body (never a
        complete one missing data: the status line is already out)."""
        loop = asyncio.get_running_loop()
        pieces = iter(body)
        gone = asyncio.ensure_future(_disconnect(self.receive))
        piece = loop.run_in_executor(self.pool, next, pieces, None)
        try:
            while (chunk := await piece) is not None:
                if gone.done():
                    return
                piece = loop.run_in_executor(self.pool, next, pieces, None)
                await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
            await self.send({"type": "http.response.body", "body": b""})
        except Exception as exc:
            log.error("a streamed answer failed after its first piece (%s); closing", exc)
            raise
        finally:
            gone.cancel()
            if not piece.done():  # the stream is closed next: let its writer finish first
                await asyncio.wait([piece])


async def _disconnect(receive: Callable) -> None:
    """Return once the client has gone away (the request body is already read)."""
    message = await receive()
    while message["type"] != "http.disconnect":
        message = await receive()


def _busy(options: QueryOptions) -> Answer:
    return error_answer(
        "unavailable",
        f"too many queries at once (at most {options.max_concurrent} run, "
        f"{options.max_concurrent * QUEUE_FACTOR} wait); retry later",
        (("Retry-After", "1"),),
    )


def _method_not_allowed(allowed: str) -> Answer:
    return Answer(
        405, b"method not allowed\n", (("Content-Type", "text/plain"), ("Allow", allowed))
    )


def _bind(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    except (OSError, ValueError) as exc:
        sock.close()
        raise ServerError(
            f"cannot listen for the Prometheus HTTP API on {address} ({exc}); pick another "
            "port with --http HOST:PORT, or 'off'"
        ) from exc
    return sock


class PromHttpServer:
    """A running Prometheus HTTP API listener; ``address`` has the port resolved."""

    def __init__(
        self,
        db: Database,
        address: str,
        *,
        options: QueryOptions | None = None,
        receiver: OtlpReceiver | None = None,
        auth_token: str | None = None,
        max_body_bytes: int = 32 * 2**20,
        engine: Engine | None = None,
        limits_factory: Callable[[int, float], object] | None = None,
    ) -> None:
        import uvicorn

        from tsdb_arrow.server.prom_json import warm_up

        sock = _bind(address)
        self.api = PromApi(
            db, options=options or QueryOptions(), engine=engine, limits_factory=limits_factory
        )
        self.app = PromApp(
            self.api, receiver=receiver, auth_token=auth_token, max_body_bytes=max_body_bytes
        )
        self.app.light.submit(warm_up)  # in the background: starting does not wait for it
        host = address.rpartition(":")[0]
        self.address = f"{host}:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self.app,
            loop=_available("uvloop", "asyncio"),
            http=_available("httptools", "h11"),
            lifespan="off",
            ws="none",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_keep_alive=60,  # longer than Grafana's and Prometheus' idle reuse
            timeout_graceful_shutdown=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="tsdb-arrow-prom-http",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                self._thread.join()
                self.app.shutdown()
                sock.close()
                raise ServerError(f"the Prometheus HTTP API on {address} did not start")
            time.sleep(0.005)
        self._sock = sock

    def stop(self) -> None:
        """Stop accepting, finish requests in flight, close the socket."""
        self._server.should_exit = True
        self._thread.join()
        self.app.shutdown()
        self._sock.close()


def _available(module: str, fallback: str) -> str:
    import importlib.util

    return module if importlib.util.find_spec(module) is not None else fallback
