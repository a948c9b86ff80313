"""The OTLP server with the real OpenTelemetry SDK exporters, over gRPC and HTTP on loopback."""

from __future__ import annotations

import gzip
import math
import time

import polars as pl
import pytest

import tsdb_arrow as ta

pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: E402
    OTLPMetricExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: E402
    OTLPMetricExporter as HttpExporter,
)
from opentelemetry.metrics import Observation  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: E402
from opentelemetry.sdk.metrics.view import (  # noqa: E402
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource  # noqa: E402


def export_with_sdk(exporter) -> None:
    """Every instrument kind once, exported by the real SDK through ``exporter``."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create(
        {
            "service.name": "checkout",
            "service.namespace": "shop",
            "service.instance.id": "pod-1",
            "deployment.environment": "test",
        }
    )
    provider = MeterProvider(
        metric_readers=[reader],
        resource=resource,
        views=[
            View(
                instrument_name="request.duration",
                aggregation=ExplicitBucketHistogramAggregation(boundaries=(0.25, 0.5, 1.0)),
            ),
            View(
                instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation()
            ),
        ],
    )
    meter = provider.get_meter("shop.meter", "1.2.3")
    requests = meter.create_counter("http.requests", unit="{request}")
    requests.add(5, {"route": "/pay"})
    requests.add(7, {"route": "/pay"})
    queue = meter.create_up_down_counter("queue.size", unit="{item}")
    queue.add(3)
    queue.add(-1)
    meter.create_observable_gauge(
        "memory.usage", callbacks=[lambda _: [Observation(42.5, {"area": "heap"})]], unit="By"
    )
    duration = meter.create_histogram("request.duration", unit="s")
    for v in (0.1, 0.3, 2.0):
        duration.record(v)
    size = meter.create_histogram("payload.size", unit="By")
    for v in (10, 20, 40, 80):
        size.record(v)
    assert provider.force_flush(timeout_millis=30_000)
    provider.shutdown()


def latest(db: ta.Database, selector: str) -> pl.DataFrame:
    """The newest sample of each series (the SDK exports cumulative points again at shutdown)."""
    got = db.select(selector).collect()
    labels = [c for c in got.columns if c not in ("timestamp", "value")]
    return got.sort("timestamp").group_by(labels, maintain_order=True).last().sort(labels)


@pytest.fixture
def served(tmp_path):
    db = ta.open(tmp_path / "db")
    server = ta.serve(
        db, otlp_grpc="127.0.0.1:0", otlp_http="127.0.0.1:0", http="off", flight="off"
    )
    yield db, server
    server.stop()
    db.close()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_every_instrument_of_the_real_sdk_arrives_with_prometheus_names(served, transport):
    db, server = served
    if transport == "grpc":
        exporter = GrpcExporter(endpoint=f"http://{server.addresses['otlp_grpc']}", insecure=True)
    else:
        exporter = HttpExporter(endpoint=f"http://{server.addresses['otlp_http']}/v1/metrics")
    export_with_sdk(exporter)

    common = {
        "job": "shop/checkout",
        "instance": "pod-1",
        "otel_scope_name": "shop.meter",
        "otel_scope_version": "1.2.3",
    }
    got = latest(db, 'http_requests_total{route="/pay"}')
    assert got["value"].to_list() == [12.0]
    assert {k: got[k][0] for k in common} == common
    assert latest(db, "queue_size")["value"].to_list() == [2.0]
    assert latest(db, 'memory_usage_bytes{area="heap"}')["value"].to_list() == [42.5]
    buckets = latest(db, "request_duration_seconds_bucket")
    assert dict(zip(buckets["le"].to_list(), buckets["value"].to_list())) == {
        "0.25": 1.0,
        "0.5": 2.0,
        "1": 2.0,
        "+Inf": 3.0,
    }
    assert latest(db, "request_duration_seconds_count")["value"].to_list() == [3.0]
    total = latest(db, "request_duration_seconds_sum")["value"][0]
    assert math.isclose(total, 2.4)
    hist = db.select_histograms("payload_size_bytes").collect()
    assert set(hist["histogram"].struct.field("count").to_list()) == {4}
    newest = hist["timestamp"].max()
    q = ta.sketch.histogram_quantiles(
        db.select_histograms("payload_size_bytes", start=newest), qs=[0.5]
    )
    median = q.collect()["q0.5"].item()
    assert 20 * 0.9 <= median <= 40 * 1.1  # between the 2nd and 3rd of 10, 20, 40, 80
    info = latest(db, "target_info")
    assert info["deployment_environment"].to_list() == ["test"]
    assert info["value"].to_list() == [1.0]


def test_http_gzip_json_and_the_answers_clients_act_on(served):
    import urllib.request
    from urllib.error import HTTPError

    from google.rpc import status_pb2
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )

    db, server = served
    url = f"http://{server.addresses['otlp_http']}/v1/metrics"

    def post(body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict]:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read(), dict(response.headers)
        except HTTPError as err:
            with err:
                return err.code, err.read(), dict(err.headers)

    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "g"
    point = metric.gauge.data_points.add()
    point.time_unix_nano = 1_795_000_000_123_000_000
    point.as_double = 1.5
    bad = metric.gauge.data_points.add()
    bad.time_unix_nano = 0  # no timestamp: refused alone
    bad.as_double = 2.0
    body = request.SerializeToString()

    status, payload, _ = post(
        gzip.compress(body), {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    )
    assert status == 200
    response = ExportMetricsServiceResponse.FromString(payload)
    assert response.partial_success.rejected_data_points == 1
    assert response.partial_success.error_message
    got = db.select("g").collect()
    assert got["value"].to_list() == [1.5]
    assert got["timestamp"].dt.epoch("ms").to_list() == [1_795_000_000_123]

    from google.protobuf import json_format

    status, payload, headers = post(
        json_format.MessageToJson(request).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200 and headers["Content-Type"] == "application/json"

    status, payload, _ = post(b"\x0a\xff\xff garbage", {"Content-Type": "application/x-protobuf"})
    assert status == 400
    assert status_pb2.Status.FromString(payload).message

    status, _, _ = post(b"x" * (4 * 2**20 + 1), {"Content-Type": "application/x-protobuf"})
    assert status == 413
    bomb = gzip.compress(b"\0" * (8 * 2**20))
    status, _, _ = post(
        bomb, {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    )
    assert status == 413
    status, _, _ = post(body, {"Content-Type": "text/plain"})
    assert status == 415
    assert db.select("g").collect()["value"].to_list() == [1.5]  # nothing else stored


def test_a_full_head_answers_retry_later_on_both_transports(tmp_path, monkeypatch):
    import urllib.request
    from urllib.error import HTTPError

    import grpc
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    db = ta.open(tmp_path / "db")

    def full(*args, **kwargs):
        raise ta.BackpressureError("the head is full; retry the batch later")

    monkeypatch.setattr(db, "write", full)
    with ta.serve(
        db, otlp_grpc="127.0.0.1:0", otlp_http="127.0.0.1:0", http="off", flight="off"
    ) as server:
        request = ExportMetricsServiceRequest()
        metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
        metric.name = "g"
        point = metric.gauge.data_points.add()
        point.time_unix_nano = 1_795_000_000_000_000_000
        point.as_double = 1.0
        body = request.SerializeToString()
        http = urllib.request.Request(
            f"http://{server.addresses['otlp_http']}/v1/metrics",
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
            method="POST",
        )
        with pytest.raises(HTTPError) as err:
            urllib.request.urlopen(http, timeout=30)
        with err.value:
            assert err.value.code == 503 and err.value.headers["Retry-After"] == "1"
        with grpc.insecure_channel(server.addresses["otlp_grpc"]) as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
            )
            with pytest.raises(grpc.RpcError) as rpc:
                export(body, timeout=30)
            assert rpc.value.code() == grpc.StatusCode.UNAVAILABLE
            details = dict(rpc.value.trailing_metadata())["grpc-status-details-bin"]
            from google.rpc import error_details_pb2, status_pb2

            status = status_pb2.Status.FromString(details)
            retry = error_details_pb2.RetryInfo()
            assert status.details[0].Unpack(retry) and retry.retry_delay.seconds == 1
    monkeypatch.undo()
    db.close()


def test_a_taken_port_is_a_clear_error(tmp_path):
    db = ta.open(tmp_path / "db")
    with ta.serve(db, otlp_grpc="off", otlp_http="127.0.0.1:0", http="off", flight="off") as first:
        taken = first.addresses["otlp_http"]
        with pytest.raises(ta.ServerError, match="cannot listen for OTLP/HTTP"):
            ta.serve(db, otlp_grpc="off", otlp_http=taken, http="off", flight="off")
    with ta.serve(db, otlp_grpc="127.0.0.1:0", otlp_http="off", http="off", flight="off") as first:
        taken = first.addresses["otlp_grpc"]
        with pytest.raises(ta.ServerError, match="cannot listen for OTLP gRPC on .*--otlp-grpc"):
            ta.serve(db, otlp_grpc=taken, otlp_http="off", http="off", flight="off")
        # The listener that got the port still answers.
        import grpc

        with grpc.insecure_channel(taken) as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
            )
            assert export(b"", timeout=10) == b""
    with pytest.raises(ta.ServerError, match="HOST:PORT"):
        ta.serve(db, otlp_grpc="4317")
    db.close()


def test_stop_lets_grpc_exports_in_flight_and_queued_finish_and_store(tmp_path, monkeypatch):
    """The gRPC listener runs exports one at a time on its own thread: a stop that comes while
    one runs and another waits behind it answers both, and both are stored."""
    import threading

    import grpc
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    from tsdb_arrow.server.otlp import OtlpReceiver

    entered, release = threading.Event(), threading.Event()
    export_through = OtlpReceiver.export

    def slow_first(self, body):
        if not entered.is_set():
            entered.set()
            assert release.wait(30)
        return export_through(self, body)

    monkeypatch.setattr(OtlpReceiver, "export", slow_first)

    def body(value: float) -> bytes:
        request = ExportMetricsServiceRequest()
        metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
        metric.name = "inflight"
        point = metric.gauge.data_points.add()
        point.time_unix_nano = 1_795_000_000_000_000_000 + int(value) * 1_000_000_000
        point.as_double = value
        return request.SerializeToString()

    db = ta.open(tmp_path / "db")
    server = ta.serve(db, otlp_grpc="127.0.0.1:0", otlp_http="off", http="off", flight="off")
    answers: dict[float, object] = {}
    with grpc.insecure_channel(server.addresses["otlp_grpc"]) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        )

        def send(value: float) -> None:
            try:
                answers[value] = export(body(value), timeout=60)
            except grpc.RpcError as exc:
                answers[value] = exc

        first = threading.Thread(target=send, args=(1.0,))
        first.start()
        assert entered.wait(30)
        second = threading.Thread(target=send, args=(2.0,))
        second.start()
        time.sleep(0.5)  # the second call reaches the server and waits behind the first
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        time.sleep(0.2)
        release.set()
        for t in (first, second, stopping):
            t.join(60)
            assert not t.is_alive()
    assert answers == {1.0: b"", 2.0: b""}
    monkeypatch.undo()
    assert db.select("inflight").collect()["value"].to_list() == [1.0, 2.0]
    db.close()
