"""A feed repeating its series request after request, through the gRPC server: the remembered
label sets give every point, bit for bit, and each request is one WAL record."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

import tsdb_arrow as ta
from tsdb_arrow.ingest import journal
from tsdb_arrow.ingest.wal import Replay

T0_NS = 1_795_392_000_000 * 1_000_000
SERIES = 40
REQUESTS = 6
STALE_BITS = 0x7FF0000000000002
PAYLOAD_NAN = np.array([0x7FF8DEADBEEF0001], dtype=np.uint64).view(np.float64)[0]
EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def value(i: int, j: int) -> float:
    """Point j of request i; odd bit patterns among them."""
    if j == 3:
        return PAYLOAD_NAN
    if j == 4:
        return -0.0
    return (i * SERIES + j) / 8


def request(i: int) -> bytes:
    """SERIES gauge points at T0 + i s; a resource with a host (so a target_info series too);
    point 5 flagged NO_RECORDED_VALUE."""
    req = ExportMetricsServiceRequest()
    resource = req.resource_metrics.add()
    for key, text in (("service.name", "feed"), ("host.name", "node-1")):
        attr = resource.resource.attributes.add()
        attr.key, attr.value.string_value = key, text
    metric = resource.scope_metrics.add().metrics.add()
    metric.name = "feed.level"
    for j in range(SERIES):
        point = metric.gauge.data_points.add()
        point.time_unix_nano = T0_NS + i * 1_000_000_000
        point.as_double = value(i, j)
        if j == 5:
            point.flags = 1
        for k, text in enumerate((f"s{j}", f"z{j % 3}")):
            attr = point.attributes.add()
            attr.key, attr.value.string_value = f"attr{k}", text
    return req.SerializeToString()


@pytest.fixture
def served(tmp_path):
    db = ta.open(tmp_path / "db")
    server = ta.serve(db, otlp_grpc="127.0.0.1:0", otlp_http="off", http="off", flight="off")
    try:
        yield db, server.addresses["otlp_grpc"]
    finally:
        server.stop()
        db.close()


def test_repeated_series_arrive_bit_for_bit_one_record_a_request(served, tmp_path):
    db, address = served
    with grpc.insecure_channel(address) as channel:
        export = channel.unary_unary(EXPORT)
        for i in range(REQUESTS):
            answer = ExportMetricsServiceResponse.FromString(export(request(i), timeout=60))
            assert not answer.HasField("partial_success")
    # after the first request the points name their series by ref (ingest/otlp/repeat.py):
    # the label sets are not looked up again
    assert db._known.stats()["hits"] == 0
    records = list(Replay(tmp_path / "db" / journal.WAL_DIR))
    assert len(records) == REQUESTS  # the floats and target_info of a request: one write
    assert [sum(t.num_rows for k, t in r if k == journal.SERIES) for _, r in records] == [
        SERIES + 1
    ] + [0] * (REQUESTS - 1)
    got = db.select("feed_level").collect().sort("attr0", "timestamp")
    assert got.height == SERIES * REQUESTS
    want = np.array(
        [value(i, j) for j in sorted(range(SERIES), key=lambda j: f"s{j}") for i in range(REQUESTS)]
    )
    bits = want.view(np.uint64).copy()
    bits[np.repeat(np.array(sorted(range(SERIES), key=lambda j: f"s{j}")) == 5, REQUESTS)] = (
        STALE_BITS
    )
    assert (got["value"].to_numpy().view(np.uint64) == bits).all()
    assert got["timestamp"].dt.epoch("ms").to_list() == [
        T0_NS // 1_000_000 + i * 1000 for _ in range(SERIES) for i in range(REQUESTS)
    ]
    assert set(got["job"].to_list()) == {"feed"}
    target = db.select("target_info").collect()
    assert target["host_name"].unique().to_list() == ["node-1"]
    assert db.stats()["series"] == SERIES + 1
