"""``python -m benchmarks.otlp``: OTLP export requests into ``tsdb-arrow serve`` over loopback.

Several client processes send realistic ``ExportMetricsServiceRequest``s (10,000 series in all,
gauges and monotonic counters with 5 attributes each, 1,000 points per request) over gRPC and
over HTTP; the table gives points/s accepted end to end, per-request latency p50/p99, the
server's peak RSS, and whether the points stored equal the points acknowledged.

Usage::

    python -m benchmarks.otlp [--clients 2] [--requests 200] [--transport grpc,http]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tsdb_arrow as ta

T0_NS = 1_795_392_000_000 * 1_000_000
SERIES = 10_000
PER_REQUEST = 1_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _requests(client: int, count: int) -> list[bytes]:
    """``count`` serialized requests of PER_REQUEST points: client ``client``'s share of the
    series, one point per series per request, timestamps a second apart."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    out = []
    for i in range(count):
        request = ExportMetricsServiceRequest()
        resource = request.resource_metrics.add()
        attr = resource.resource.attributes.add()
        attr.key, attr.value.string_value = "service.name", f"svc-{client}"
        scope = resource.scope_metrics.add()
        first = (i * PER_REQUEST) % SERIES
        for kind in ("gauge", "counter"):
            metric = scope.metrics.add()
            metric.name = f"bench.{kind}"
            points = metric.gauge.data_points if kind == "gauge" else metric.sum.data_points
            if kind == "counter":
                metric.sum.is_monotonic = True
                metric.sum.aggregation_temporality = 2
            for j in range(PER_REQUEST // 2):
                series = first + j
                point = points.add()
                point.time_unix_nano = T0_NS + (i // (SERIES // PER_REQUEST)) * 1_000_000_000
                point.as_double = float(series + i)
                for k, value in enumerate(
                    (f"h{series % 97}", f"z{series % 7}", f"s{series}", "prod", f"c{client}")
                ):
                    a = point.attributes.add()
                    a.key, a.value.string_value = f"attr{k}", value
        out.append(request.SerializeToString())
    return out


def _client(transport: str, address: str, bodies: list[bytes], out: mp.Queue) -> None:
    latencies = []
    if transport == "grpc":
        import grpc

        with grpc.insecure_channel(address) as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
            )
            for body in bodies:
                start = time.perf_counter()
                export(body, timeout=120)
                latencies.append(time.perf_counter() - start)
    else:
        import http.client

        connection = http.client.HTTPConnection(address, timeout=120)
        for body in bodies:
            start = time.perf_counter()
            connection.request(
                "POST", "/v1/metrics", body, {"Content-Type": "application/x-protobuf"}
            )
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            latencies.append(time.perf_counter() - start)
        connection.close()
    out.put(latencies)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run(transport: str, clients: int, requests: int, work: Path) -> dict[str, float]:
    data = work / f"otlp-{transport}"
    shutil.rmtree(data, ignore_errors=True)
    port = _free_port()
    flags = (
        ["--otlp-grpc", f"127.0.0.1:{port}", "--otlp-http", "off", "--flight", "off"]
        if transport == "grpc"
        else ["--otlp-grpc", "off", "--otlp-http", f"127.0.0.1:{port}", "--flight", "off"]
    )
    cli = Path(sys.executable).with_name("tsdb-arrow")
    bodies = [_requests(c, requests) for c in range(clients)]
    with subprocess.Popen(
        [str(cli), "serve", "--data", str(data), *flags, "--http", "off"],
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        assert server.stdout is not None
        for line in server.stdout:
            if line.strip() == "tsdb-arrow: ready":
                break
        queue: mp.Queue = mp.Queue()
        workers = [
            mp.Process(target=_client, args=(transport, f"127.0.0.1:{port}", b, queue))
            for b in bodies
        ]
        start = time.perf_counter()
        for w in workers:
            w.start()
        latencies = np.concatenate([queue.get() for _ in workers])
        elapsed = time.perf_counter() - start
        for w in workers:
            w.join()
        rss = _peak_rss(server.pid)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=300)
    acknowledged = clients * requests * PER_REQUEST
    with ta.open(data, read_only=True) as db:
        stored = db.stats()["samples"]
    return {
        "points_per_s": acknowledged / elapsed,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "rss_mib": rss / 2**20,
        "acknowledged": acknowledged,
        "stored": stored,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.otlp")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--transport", default="grpc,http")
    args = parser.parse_args(argv)
    print(
        f"{args.clients} clients x {args.requests} requests x {PER_REQUEST} points "
        f"({SERIES:,} series, 5 attributes), default WAL mode, loopback"
    )
    print(f"{'transport':<10}{'k points/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'RSS MiB':>9}  stored")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for transport in args.transport.split(","):
            r = run(transport, args.clients, args.requests, Path(tmp))
            same = r["stored"] == r["acknowledged"]
            ok &= same
            print(
                f"{transport:<10}{r['points_per_s'] / 1e3:>12.0f}{r['p50_ms']:>9.1f}"
                f"{r['p99_ms']:>9.1f}{r['rss_mib']:>9.0f}  "
                f"{r['stored']:,} of {r['acknowledged']:,} acknowledged"
                f"{'' if same else ' MISMATCH'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
