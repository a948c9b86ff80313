"""OTLP requests that arrive together are written together, each answered with its own outcome."""

from __future__ import annotations

import threading
import urllib.request

import pyarrow as pa
import pytest

import tsdb_arrow as ta
from tsdb_arrow.errors import BackpressureError, InputError

pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: E402
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from tsdb_arrow.server.otlp import OtlpReceiver  # noqa: E402

T0_NS = 1_795_000_000_000_000_000


def request(name: str, client: int, first: int, count: int) -> bytes:
    """``count`` gauge points of ``name``, one per series ``s{first..}``, values client*1e6+i."""
    req = ExportMetricsServiceRequest()
    metric = req.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = name
    for i in range(first, first + count):
        point = metric.gauge.data_points.add()
        point.time_unix_nano = T0_NS + first * 1_000_000
        point.as_double = client * 1e6 + i
        for key, value in (("client", f"c{client}"), ("s", f"s{i}")):
            attribute = point.attributes.add()
            attribute.key, attribute.value.string_value = key, value
    return req.SerializeToString()


def test_concurrent_clients_over_both_transports_store_every_point(tmp_path):
    import grpc

    db = ta.open(tmp_path / "db")
    per_client, size = 12, 50
    with ta.serve(
        db, otlp_grpc="127.0.0.1:0", otlp_http="127.0.0.1:0", http="off", flight="off"
    ) as server:
        answers: list[bytes] = []

        def client(c: int) -> None:
            bodies = [request("load", c, k * size, size) for k in range(per_client)]
            if c % 2:
                with grpc.insecure_channel(server.addresses["otlp_grpc"]) as channel:
                    export = channel.unary_unary(
                        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
                    )
                    answers.extend(export(b, timeout=60) for b in bodies)
                return
            for body in bodies:
                post = urllib.request.Request(
                    f"http://{server.addresses['otlp_http']}/v1/metrics",
                    data=body,
                    headers={"Content-Type": "application/x-protobuf"},
                    method="POST",
                )
                with urllib.request.urlopen(post, timeout=60) as reply:
                    answers.append(reply.read())

        threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert len(answers) == 6 * per_client
    for answer in answers:
        assert not ExportMetricsServiceResponse.FromString(answer).HasField("partial_success")
    got = db.select("load").collect()
    assert got.height == 6 * per_client * size
    expected = sorted(c * 1e6 + i for c in range(6) for i in range(per_client * size))
    assert sorted(got["value"].to_list()) == expected
    db.close()


class Gate:
    """``db.write`` whose first call waits for ``release``; refuses tables of metrics ``bad*``
    (as ``Database.write`` refuses bad input: raising, storing nothing) or raises ``error``
    from the second call on."""

    def __init__(self, db: ta.Database, error: BaseException | None = None) -> None:
        self.write_through = db.write
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[int] = []
        self.error = error

    def write(self, table: pa.Table):
        self.calls.append(table.num_rows)
        if len(self.calls) == 1:
            self.entered.set()
            assert self.release.wait(30)
        elif self.error is not None:
            raise self.error
        if any(n.startswith("bad") for n in table["__name__"].unique().to_pylist()):
            raise InputError("metric 'bad' is refused")
        return self.write_through(table)


def export_in_group(receiver: OtlpReceiver, gate: Gate, bodies: dict[str, bytes]) -> dict:
    """Export the first body, then the rest while its write waits: they form one group."""
    outcomes: dict[str, object] = {}

    def send(key: str) -> None:
        outcomes[key] = receiver.export(bodies[key])

    keys = list(bodies)
    first = threading.Thread(target=send, args=(keys[0],))
    first.start()
    assert gate.entered.wait(30)
    rest = [threading.Thread(target=send, args=(k,)) for k in keys[1:]]
    for t in rest:
        t.start()
    while len(receiver.floats._pending) < len(rest):
        threading.Event().wait(0.005)
    gate.release.set()
    for t in [first, *rest]:
        t.join(30)
    return outcomes


def test_a_refused_request_does_not_fail_the_others_of_its_group(tmp_path, monkeypatch):
    db = ta.open(tmp_path / "db")
    gate = Gate(db)
    monkeypatch.setattr(db, "write", gate.write)
    receiver = OtlpReceiver(db)
    bodies = {
        "a": request("good", 0, 0, 10),
        "b": request("good", 1, 0, 20),
        "c": request("bad", 2, 0, 30),
        "d": request("good", 3, 0, 40),
    }
    outcomes = export_in_group(receiver, gate, bodies)
    # a alone, then b + c + d as one write (refused), then each alone, in the order their
    # threads reached the group
    assert gate.calls[:2] == [10, 90] and sorted(gate.calls[2:]) == [20, 30, 40]
    for key in "abd":
        assert outcomes[key].kind == "ok"
        response = ExportMetricsServiceResponse.FromString(outcomes[key].response)
        assert not response.HasField("partial_success")
    assert outcomes["c"].kind == "ok"
    refused = ExportMetricsServiceResponse.FromString(outcomes["c"].response).partial_success
    assert refused.rejected_data_points == 30
    assert "metric 'bad' is refused" in refused.error_message
    monkeypatch.undo()
    good = db.select("good").collect()
    assert good.height == 70
    assert sorted(good["value"].to_list()) == sorted(
        c * 1e6 + i for c, n in ((0, 10), (1, 20), (3, 40)) for i in range(n)
    )
    assert db.select("bad").collect().height == 0
    db.close()


def test_backpressure_answers_each_request_of_the_group_retry_later(tmp_path, monkeypatch):
    db = ta.open(tmp_path / "db")
    gate = Gate(db, error=BackpressureError("the head is full; retry the batch later"))
    monkeypatch.setattr(db, "write", gate.write)
    receiver = OtlpReceiver(db)
    bodies = {k: request("good", c, 0, 5) for c, k in enumerate("abc")}
    outcomes = export_in_group(receiver, gate, bodies)
    assert gate.calls == [5, 10]
    assert outcomes["a"].kind == "ok"
    assert outcomes["b"].kind == outcomes["c"].kind == "unavailable"
    assert "retry" in outcomes["b"].message
    monkeypatch.undo()
    assert db.select("good").collect().height == 5
    db.close()


def test_a_refused_delta_request_gives_its_totals_back(tmp_path, monkeypatch):
    db = ta.open(tmp_path / "db")
    gate = Gate(db)
    monkeypatch.setattr(db, "write", gate.write)
    receiver = OtlpReceiver(db)

    def delta(name: str, value: float) -> bytes:
        req = ExportMetricsServiceRequest()
        metric = req.resource_metrics.add().scope_metrics.add().metrics.add()
        metric.name = name
        metric.sum.is_monotonic = True
        metric.sum.aggregation_temporality = 1  # delta
        point = metric.sum.data_points.add()
        point.start_time_unix_nano = T0_NS
        point.time_unix_nano = T0_NS + 1_000_000_000
        point.as_double = value
        return req.SerializeToString()

    outcomes = export_in_group(
        receiver, gate, {"a": delta("good", 1.0), "b": delta("good", 2.0), "c": delta("bad", 3.0)}
    )
    assert all(o.kind == "ok" for o in outcomes.values())
    monkeypatch.undo()
    assert receiver.export(delta("bad", 4.0)).kind == "ok"
    stored = db.select('{__name__=~"bad.*"}').collect()
    assert stored["value"].to_list() == [4.0]  # the refused 3.0 was not added to the total
    db.close()
