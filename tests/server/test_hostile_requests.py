"""Malformed and hostile OTLP requests: the server answers, stays up and stores nothing."""

from __future__ import annotations

import os
import urllib.request
from urllib.error import HTTPError

import pytest

import tsdb_arrow as ta

pytest.importorskip("opentelemetry.proto")

import grpc  # noqa: E402
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: E402
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

T_NS = 1_795_000_000_000 * 1_000_000


def request(name: str = "g", ts: int = T_NS, attributes: int = 0, value_bytes: int = 1) -> bytes:
    r = ExportMetricsServiceRequest()
    metric = r.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = name
    point = metric.gauge.data_points.add()
    point.time_unix_nano = ts
    point.as_double = 1.0
    for i in range(attributes):
        a = point.attributes.add()
        a.key, a.value.string_value = f"k{i}", "v" * value_bytes
    return r.SerializeToString()


def no_data() -> bytes:
    r = ExportMetricsServiceRequest()
    r.resource_metrics.add().scope_metrics.add().metrics.add().name = "nodata"
    return r.SerializeToString()


REFUSED_POINTS = {
    "100k attributes": request(attributes=100_000),
    "1 MB attribute value": request(attributes=1, value_bytes=2**20 - 100),
    "zero timestamp": request(ts=0),
    "timestamp past int64": request(ts=2**64 - 1),
    "empty metric name": request(name=""),
    "unknown metric type": no_data(),
}
UNDECODABLE = {
    "random bytes": os.urandom(4096),
    "truncated protobuf": request(attributes=3)[:-5],
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = ta.open(tmp_path_factory.mktemp("hostile") / "db")
    server = ta.serve(
        db,
        otlp_grpc="127.0.0.1:0",
        otlp_http="127.0.0.1:0",
        http="off",
        http_max_body_bytes=8 * 2**20,
    )
    yield db, server
    server.stop()
    db.close()


def post(server: ta.Server, body: bytes) -> tuple[int, bytes]:
    http = urllib.request.Request(
        f"http://{server.addresses['otlp_http']}/v1/metrics",
        data=body,
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http, timeout=60) as response:
            return response.status, response.read()
    except HTTPError as err:
        with err:
            return err.code, err.read()


@pytest.mark.parametrize("case", sorted(REFUSED_POINTS))
def test_bad_points_are_refused_one_by_one_and_counted(served, case):
    db, server = served
    before = db.stats()["samples"], len(db.series())
    status, payload = post(server, REFUSED_POINTS[case])
    assert status == 200
    partial = ExportMetricsServiceResponse.FromString(payload).partial_success
    assert partial.rejected_data_points == 1 and partial.error_message
    assert (db.stats()["samples"], len(db.series())) == before  # nothing stored


@pytest.mark.parametrize("case", sorted(UNDECODABLE))
def test_undecodable_bodies_get_400_and_invalid_argument(served, case):
    db, server = served
    before = db.stats()["samples"]
    assert post(server, UNDECODABLE[case])[0] == 400
    with grpc.insecure_channel(server.addresses["otlp_grpc"]) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        )
        with pytest.raises(grpc.RpcError) as err:
            export(UNDECODABLE[case], timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert db.stats()["samples"] == before


def test_a_grpc_message_over_the_limit_is_refused_and_the_server_stays_up(served):
    db, server = served
    with grpc.insecure_channel(server.addresses["otlp_grpc"]) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        )
        with pytest.raises(grpc.RpcError) as err:
            export(b"\0" * (5 * 2**20), timeout=60)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        answer = ExportMetricsServiceResponse.FromString(export(request("after"), timeout=60))
    assert not answer.HasField("partial_success")
    assert db.select("after").collect()["value"].to_list() == [1.0]
