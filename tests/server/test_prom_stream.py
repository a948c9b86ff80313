"""Large range matrices are written in pieces and sent as they are written (HTTP chunks):
the same bytes as one piece, gzip too, and a failure or a client leaving mid-way handled."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import socket
import sys
import threading
import time

import numpy as np
import polars as pl
import pytest

import tsdb_arrow as ta
from tsdb_arrow.promql.values import InstantVector, Steps
from tsdb_arrow.server import prom_http, prom_json
from tsdb_arrow.server.prom_http import PromHttpServer

STEPS = Steps(1_700_000_000_500, 1_700_000_000_500 + 399 * 15_000, 15_000)


def matrix(series: int = 60, seed: int = 5) -> InstantVector:
    """Rates with gaps, special values and a few series without any value."""
    rng = np.random.default_rng(seed)
    n = len(STEPS)
    values = rng.gamma(2.0, 0.7, (series, n)) * rng.choice([1e-9, 1.0, 1e22], (series, 1))
    values[:, ::37] = np.nan
    values[::7, ::11] = np.inf
    present = rng.random((series, n)) < 0.9
    present[::13] = False
    labels = pl.DataFrame(
        {
            "__name__": ["http_requests_total"] * series,
            "job": [f"job{i % 3}" for i in range(series)],
            "instance": [f'host-{i}:9100 "é"' for i in range(series)],
        }
    )
    return InstantVector(labels, values, present)


def whole(data) -> bytes:
    body = prom_json.success(data, ["a warning"])
    return body.join() if isinstance(body, prom_json.Stream) else body


@pytest.mark.parametrize("limit", [0, 1, 20])
@pytest.mark.parametrize("piece", [1, 50_000, 10**9])
def test_pieces_join_to_the_single_piece_body(monkeypatch, limit, piece):
    value = matrix()
    single = whole(prom_json.encode_range(value, STEPS, limit=limit))
    monkeypatch.setattr(prom_json, "STREAM_BYTES", 0)
    monkeypatch.setattr(prom_json, "PIECE_BYTES", piece)
    data = prom_json.encode_range(value, STEPS, limit=limit)
    assert isinstance(data, prom_json.Stream)
    pieces = [bytes(p) for p in prom_json.success(data, ["a warning"])]
    assert b"".join(pieces) == single
    series = min(limit or 60, 60 - 5)  # every 13th series has no value
    if piece == 1:  # one series a piece, the envelope's head and tail apart
        assert len(pieces) == series + 2
    if piece == 10**9:
        assert len(pieces) == 3
    answer = json.loads(single)
    assert len(answer["data"]["result"]) == series and answer["warnings"] == ["a warning"]


def test_small_matrices_are_one_piece():
    data = prom_json.encode_range(matrix(3), STEPS)
    assert isinstance(data, memoryview)


class Engine:
    """Answers every query with ``matrix()``."""

    def __init__(self) -> None:
        self.value = matrix()

    def __call__(self, db, expr, steps, *, lookback, limits):
        return self.value


@pytest.fixture
def streamed(tmp_path, monkeypatch):
    """A server whose range matrices over 1 byte stream in pieces of ~20 kB, and the body
    a query answers with when not streamed."""
    value = matrix()
    expected = whole_body(value)
    monkeypatch.setattr(prom_json, "STREAM_BYTES", 1)
    monkeypatch.setattr(prom_json, "PIECE_BYTES", 20_000)
    db = ta.open(tmp_path / "db")
    server = PromHttpServer(db, "127.0.0.1:0", engine=Engine())
    yield server, expected
    server.stop()
    db.close()


def whole_body(value: InstantVector) -> bytes:
    return prom_json.success(prom_json.encode_range(value, STEPS))


PATH = (
    f"/api/v1/query_range?query=rate(x[5m])&start={STEPS.start / 1000}"
    f"&end={STEPS.end / 1000}&step=15"
)


def get(server, path=PATH, headers=None, method="GET"):
    connection = http.client.HTTPConnection(server.address, timeout=60)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_streamed_answer_is_chunked_and_equal(streamed):
    server, expected = streamed
    status, headers, body = get(server)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert headers["Transfer-Encoding"] == "chunked" and headers["Content-Length"] is None
    assert body == expected and len(expected) > 100_000


def test_streamed_answer_gzipped(streamed):
    server, expected = streamed
    status, headers, body = get(server, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == expected


def test_head_of_a_streamed_answer_has_no_body(streamed):
    server, _ = streamed
    status, headers, body = get(server, method="HEAD")
    assert status == 200 and body == b""
    assert get(server)[0] == 200  # the slot was released


def test_failure_mid_stream_cuts_the_connection(streamed, monkeypatch):
    server, expected = streamed
    calls = []
    piece = prom_json._matrix_piece

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("no room for the third piece")
        return piece(*args)

    monkeypatch.setattr(prom_json, "_matrix_piece", failing)
    with pytest.raises(http.client.IncompleteRead) as cut:
        get(server)
    assert 0 < len(cut.value.partial) < len(expected)
    assert expected.startswith(cut.value.partial)
    monkeypatch.setattr(prom_json, "_matrix_piece", piece)
    assert get(server)[2] == expected  # the server goes on answering


def test_client_leaving_mid_stream_stops_the_writing(streamed, monkeypatch):
    server, expected = streamed
    calls = []
    piece = prom_json._matrix_piece
    left = threading.Event()

    def slow(*args):
        calls.append(1)
        if len(calls) >= 2:
            left.wait(10)
        return piece(*args)

    monkeypatch.setattr(prom_json, "_matrix_piece", slow)
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    left.set()
    time.sleep(1.0)
    written = len(calls)
    time.sleep(0.5)
    assert len(calls) == written < 20  # ~60 series in ~20 kB pieces would be ~60 pieces
    monkeypatch.setattr(prom_json, "_matrix_piece", piece)
    assert get(server)[2] == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_queries_run_in_threads_that_yield_the_cpu(tmp_path):
    """Evaluation and encoding run at ``QUERY_NICE`` more niceness than the server."""
    seen = []

    class Recording(Engine):
        def __call__(self, db, expr, steps, *, lookback, limits):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super().__call__(db, expr, steps, lookback=lookback, limits=limits)

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with ta.open(tmp_path / "db") as db:
        server = PromHttpServer(db, "127.0.0.1:0", engine=Recording())
        try:
            assert get(server)[0] == 200
        finally:
            server.stop()
    assert seen == [min(base + prom_http.QUERY_NICE, 19)]
