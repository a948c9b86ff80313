"""OTLP conversion benchmark: data points per second through ``convert_request``, no socket.

Run: ``.venv/bin/python -m benchmarks.otlp_convert [--points 10000] [--repeat 20]``

Each case is one ``ExportMetricsServiceRequest`` as an SDK or Collector sends it (one resource
with service and host attributes, one scope), encoded once; the time is that of
``convert_request`` on its bytes, best of ``--repeat`` runs after a warm-up (the machine is
shared: noise only adds), as wall time and as this thread's CPU time. Cases:

- gauges: ``--points`` series of one gauge, 5 attributes each (one of them an integer), and the
  same with 2 attributes;
- counters: a cumulative monotonic sum, 5 attributes, and a delta one summed up in a DeltaState;
- histograms: explicit buckets (10 bounds: 12 rows a point), 5 attributes;
- exponential histograms: 160 buckets a point, 5 attributes;

and two references for the gauge case: decoding the same bytes with the protobuf library alone
(no conversion), and ``Database.write`` of the converted table (what a server does next).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

import tsdb_arrow as ta
from tsdb_arrow.ingest.otlp import DeltaState, convert_request
from tsdb_arrow.sketch.exponential.histogram import ExponentialHistogram
from tsdb_arrow.sketch.otlp import exponential_to_proto

T0 = 1_700_000_000_000_000_000
ROUTES = [f"/api/v1/items/{i}" for i in range(50)]
METHODS = ["GET", "POST", "PUT", "DELETE"]


def _attributes(i: int, n: int) -> list[common_pb2.KeyValue]:
    """n of: route, method, status code (an integer), pod, zone; distinct sets for i < 10 k."""
    values = [
        ("http.route", common_pb2.AnyValue(string_value=ROUTES[i % 50])),
        ("http.request.method", common_pb2.AnyValue(string_value=METHODS[i // 50 % 4])),
        ("http.response.status_code", common_pb2.AnyValue(int_value=200 + i // 200 % 5)),
        ("k8s.pod.name", common_pb2.AnyValue(string_value=f"shop-7f9c-{i // 1000:03d}")),
        ("cloud.availability_zone", common_pb2.AnyValue(string_value=f"eu-west-{i % 3}")),
    ]
    if n == 2:
        values = [values[0], ("series", common_pb2.AnyValue(string_value=f"s{i}"))]
    return [common_pb2.KeyValue(key=k, value=v) for k, v in values[:n]]


def make_request(kind: str, points: int, attributes: int = 5) -> bytes:
    """One request of ``points`` data points of a metric of ``kind``."""
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for k, v in [("service.name", "shop"), ("service.instance.id", "shop-1"),
                 ("host.name", "node-17"), ("telemetry.sdk.language", "python")]:  # fmt: skip
        rm.resource.attributes.add(key=k, value=common_pb2.AnyValue(string_value=v))
    sm = rm.scope_metrics.add()
    sm.scope.name, sm.scope.version = "shop.instrumentation", "1.4.0"
    m = sm.metrics.add(name="http.server.requests", unit="{request}")
    rng = np.random.default_rng(0)
    if kind == "gauge":
        data = m.gauge.data_points
    elif kind in ("counter", "delta"):
        m.sum.is_monotonic = True
        m.sum.aggregation_temporality = 1 if kind == "delta" else 2
        data = m.sum.data_points
    elif kind == "histogram":
        m.histogram.aggregation_temporality = 2
        data = m.histogram.data_points
    else:
        m.exponential_histogram.aggregation_temporality = 2
        data = m.exponential_histogram.data_points
        hist = ExponentialHistogram.from_values(rng.lognormal(-3, 1.5, 5000))
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
    for i in range(points):
        t = T0 + i * 1000
        if kind in ("gauge", "counter", "delta"):
            p = data.add(time_unix_nano=t, start_time_unix_nano=T0, as_double=float(i))
        elif kind == "histogram":
            counts = rng.integers(0, 100, len(bounds) + 1).tolist()
            p = data.add(time_unix_nano=t, start_time_unix_nano=T0, count=sum(counts),
                         sum=float(i), explicit_bounds=bounds, bucket_counts=counts)  # fmt: skip
        else:
            p = exponential_to_proto(hist, time_unix_nano=t, start_time_unix_nano=T0)
            data.append(p)
            p = data[-1]
        p.attributes.extend(_attributes(i, attributes))
    return req.SerializeToString()


def best_of(repeat: int, fn) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    """Shortest wall time and shortest thread CPU time of ``repeat`` calls, and a result."""
    wall = cpu = float("inf")
    result = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.thread_time()
        result = fn()
        cpu = min(cpu, time.thread_time() - c)
        wall = min(wall, time.perf_counter() - w)
    return wall, cpu, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    n = args.points
    cases = [
        ("gauges, 5 attributes", "gauge", n, 5),
        ("gauges, 2 attributes", "gauge", n, 2),
        ("counters (cumulative), 5 attributes", "counter", n, 5),
        ("counters (delta, summed up), 5 attributes", "delta", n, 5),
        ("histograms, 10 bounds, 5 attributes", "histogram", n // 10, 5),
        ("exponential histograms, 160 buckets, 5 attr.", "exponential", n // 10, 5),
    ]
    header = (
        f"{'request':<46} {'points':>7} {'rows':>7} {'MB':>5} {'wall ms':>8} {'cpu ms':>7} "
        f"{'M points/s':>10}"
    )
    print(f"convert_request, best of {args.repeat} after a warm-up; M points/s from CPU time")
    print(header)
    print("-" * len(header))
    gauge_body = b""
    gauge_table = None
    for label, kind, points, attributes in cases:
        body = make_request(kind, points, attributes)
        state = DeltaState() if kind == "delta" else None
        convert_request(body, delta=state)  # compile / load the numba kernels
        wall, cpu, result = best_of(
            args.repeat, lambda b=body, s=state: convert_request(b, delta=s)
        )
        rows = sum(t.num_rows for t in result.tables)
        assert result.accepted_points == points and result.rejected_points == 0
        print(f"{label:<46} {points:>7,} {rows:>7,} {len(body) / 1e6:>5.2f} {wall * 1e3:>8.2f} "
              f"{cpu * 1e3:>7.2f} {points / cpu / 1e6:>10.2f}")  # fmt: skip
        if kind == "gauge" and attributes == 5:
            gauge_body, gauge_table = body, result.floats
    request_type = metrics_service_pb2.ExportMetricsServiceRequest
    wall, cpu, _ = best_of(args.repeat, lambda: request_type.FromString(gauge_body))
    print(f"{'reference: protobuf decoding alone (gauges, 5)':<46} {n:>7,} {'':>7} "
          f"{len(gauge_body) / 1e6:>5.2f} {wall * 1e3:>8.2f} {cpu * 1e3:>7.2f} "
          f"{n / cpu / 1e6:>10.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, ta.open(tmp) as db:
        db.write(gauge_table)
        wall, cpu, _ = best_of(max(3, args.repeat // 4), lambda: db.write(gauge_table))
    print(f"{'reference: Database.write of the gauge table':<46} {n:>7,} {n:>7,} {'':>5} "
          f"{wall * 1e3:>8.2f} {cpu * 1e3:>7.2f} {n / cpu / 1e6:>10.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
