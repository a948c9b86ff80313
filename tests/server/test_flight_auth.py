"""Bearer tokens on every listener, and Flight over TLS."""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request

import grpc
import pyarrow.flight as flight
import pytest

import tsdb_arrow as ta
from tests.conftest import synthetic
from tsdb_arrow.server import flight_wire as wire

TOKEN = "s3cret-token"


@pytest.fixture
def guarded(tmp_path):
    db = ta.open(tmp_path / "db")
    db.write(synthetic(n_series=4, n_samples=10))
    server = ta.serve(
        db,
        otlp_grpc="127.0.0.1:0",
        otlp_http="127.0.0.1:0",
        http="127.0.0.1:0",
        flight="127.0.0.1:0",
        auth_token=TOKEN,
    )
    yield db, server
    server.stop()
    db.close()


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_flight_without_the_token_is_auth_error_and_nothing_else(guarded, token):
    db, server = guarded
    with pytest.raises(ta.AuthError) as caught:
        ta.connect(f"grpc://{server.addresses['flight']}", token=token)
    message = str(caught.value)
    for name in ("temp", "requests_total", "job", "instance", "host-", "api"):
        assert name not in message
    # Nor does a raw Flight client get anything: every call is refused before its handler.
    raw = flight.connect(f"grpc://{server.addresses['flight']}")
    options = flight.FlightCallOptions(
        headers=[(b"authorization", f"Bearer {token}".encode())] if token else []
    )
    try:
        calls = [
            lambda: list(raw.list_flights(options=options)),
            lambda: list(raw.do_action(flight.Action("stats", b"{}"), options)),
            lambda: list(raw.do_action(flight.Action("series", b"{}"), options)),
            lambda: raw.do_get(
                flight.Ticket(wire.SelectTicket(b"", None, None, [], True).encode()), options
            ).read_all(),
        ]
        for call in calls:
            with pytest.raises(flight.FlightUnauthenticatedError) as refused:
                call()
            assert "temp" not in str(refused.value)
            assert "job" not in str(refused.value)
    finally:
        raw.close()
    assert db.stats()["samples"] == 40


def test_flight_with_the_token_works(guarded):
    db, server = guarded
    with ta.connect(f"grpc://{server.addresses['flight']}", token=TOKEN) as client:
        assert client.select().collect().equals(db.select().collect())
        assert client.write(synthetic(n_series=1, n_samples=5, seed=3, start=1)).rows == 5


def test_otlp_http_without_the_token_is_401(guarded):
    db, server = guarded
    url = f"http://{server.addresses['otlp_http']}/v1/metrics"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        request = urllib.request.Request(
            url,
            data=b"",
            headers={"Content-Type": "application/x-protobuf", **headers},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 401
        assert b"temp" not in caught.value.read()
    ok = urllib.request.Request(
        url,
        data=b"",
        headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(ok, timeout=10) as response:
        assert response.status == 200  # an empty request: nothing to store, accepted


def test_prometheus_http_api_takes_the_same_token(guarded):
    _, server = guarded
    url = f"http://{server.addresses['http']}/api/v1/query?query=temp"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=30)
    assert caught.value.code == 401
    assert b"api" not in caught.value.read()
    ok = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(ok, timeout=30) as response:
        assert response.status == 200


def test_otlp_grpc_without_the_token_is_unauthenticated(guarded):
    _, server = guarded
    method = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
    with grpc.insecure_channel(server.addresses["otlp_grpc"]) as channel:
        export = channel.unary_unary(method)
        with pytest.raises(grpc.RpcError) as caught:
            export(b"", timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as caught:
            export(b"", timeout=10, metadata=[("authorization", "Bearer wrong")])
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert export(b"", timeout=10, metadata=[("authorization", f"Bearer {TOKEN}")]) == b""


def test_a_token_allows_flight_beyond_loopback(tmp_path):
    with ta.open(tmp_path / "db") as db:
        server = ta.serve(
            db, otlp_grpc="off", otlp_http="off", http="off", flight="0.0.0.0:0", auth_token=TOKEN
        )
        try:
            port = server.addresses["flight"].rpartition(":")[2]
            with ta.connect(f"grpc://127.0.0.1:{port}", token=TOKEN) as client:
                assert client.stats()["samples"] == 0
        finally:
            server.stop()


@pytest.mark.parametrize("listener", ["flight", "http"])
def test_readers_beyond_loopback_need_a_token(tmp_path, listener):
    options = {"otlp_grpc": "off", "otlp_http": "off", "http": "off", "flight": "off"}
    with ta.open(tmp_path / "db") as db:
        with pytest.raises(ta.ServerError, match=f"^{listener} on 0.0.0.0:0 would serve every"):
            ta.serve(db, **{**options, listener: "0.0.0.0:0"})
        server = ta.serve(db, **{**options, listener: "0.0.0.0:0"}, auth_token=TOKEN)
        try:
            assert server.addresses[listener].startswith("0.0.0.0:")
        finally:
            server.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_flight_over_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    with ta.open(tmp_path / "db") as db:
        db.write(synthetic(n_series=2, n_samples=10))
        server = ta.serve(
            db,
            otlp_grpc="off",
            otlp_http="off",
            http="off",
            flight="127.0.0.1:0",
            tls_cert=cert.read_bytes(),
            tls_key=key.read_bytes(),
        )
        try:
            address = server.addresses["flight"]
            with ta.connect(f"grpc+tls://{address}", tls_root_certs=cert.read_bytes()) as client:
                assert client.select().collect().equals(db.select().collect())
            # Plain text to a TLS listener does not get through.
            with pytest.raises(ta.ConnectionLostError):
                ta.connect(f"grpc://{address}", timeout=5)
        finally:
            server.stop()
