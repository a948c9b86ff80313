"""``python -m benchmarks.otlp``: OTLP export requests into ``tsdb-arrow serve`` over loopback.

Several client processes send realistic ``ExportMetricsServiceRequest``s (10,000 series in all,
gauges and monotonic counters with 5 attributes each, 1,000 points per request) over gRPC and
over HTTP (each client's requests are serialized and its connection made before the clock
starts: the run times sending only); the table gives points/s accepted end to end,
per-request latency p50/p99, the server's CPU time per point (user + system, all threads:
what the figure would be with the cores to itself), its peak RSS, and whether the points
stored equal the points acknowledged.

The ``+queries`` row repeats the gRPC run while a thread of the server process runs select
queries over what is stored so far, one every 50 ms (a dashboard of 20 panels refreshing every
second) or back to back when one takes longer (``db.select(...).collect()`` on the server's own
``Database``: the GIL is shared, as it will be with the Prometheus HTTP API); it reports the
ingest rate against the idle gRPC run and the queries' count and latencies.

Usage::

    python -m benchmarks.otlp [--clients 2] [--requests 1000] [--transport grpc,http,queries]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import numpy as np

import tsdb_arrow as ta
from benchmarks.datasets import repo_root
from benchmarks.workers import collect, stop_all, stop_server, wait_ready

T0_NS = 1_795_392_000_000 * 1_000_000
SERIES = 10_000
PER_REQUEST = 1_000
QUERY_INTERVAL = 0.05  # the +queries row starts a query every 50 ms (or when the last ends)


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


def _client(
    transport: str, address: str, bodies: list[bytes], out: mp.Queue, go: Event | None = None
) -> None:
    """Send ``bodies`` (serialized before the run) one after the other, then put the latencies
    on ``out``. Given ``go``: connect first, put ``"ready"`` on ``out`` and wait for it, so that
    the timed run holds sending only."""
    latencies = []
    if transport == "grpc":
        import grpc

        with grpc.insecure_channel(address) as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
            )
            if go is not None:
                grpc.channel_ready_future(channel).result(timeout=60)
                out.put("ready")
                go.wait()
            for body in bodies:
                start = time.perf_counter()
                export(body, timeout=120)
                latencies.append(time.perf_counter() - start)
    else:
        import http.client

        connection = http.client.HTTPConnection(address, timeout=120)
        if go is not None:
            connection.connect()
            out.put("ready")
            go.wait()
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _serve_with_queries(data: str, port: int) -> int:
    """The server of the ``+queries`` row: ``ta.serve`` (gRPC) over a database whose own
    process runs select queries back to back until SIGTERM; prints their count and latencies
    as JSON when stopped."""
    import threading

    db = ta.open(data)
    server = ta.serve(
        db, otlp_grpc=f"127.0.0.1:{port}", otlp_http="off", http="off", flight="off"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    latencies: list[float] = []
    rows = [0]

    def query_loop() -> None:
        selectors = ['bench_gauge{attr1="z3"}', "bench_counter_total", 'bench_gauge{attr4="c0"}']
        while not stop.is_set():
            start = time.perf_counter()
            rows[0] += db.select(selectors[len(latencies) % len(selectors)]).collect().height
            latencies.append(time.perf_counter() - start)
            stop.wait(max(0.0, QUERY_INTERVAL - latencies[-1]))

    querier = threading.Thread(target=query_loop, name="bench-queries")
    querier.start()
    print("tsdb-arrow: ready", flush=True)
    stop.wait()
    querier.join()
    server.stop()
    db.close()
    ms = np.array(latencies or [0.0]) * 1000
    done = {"queries": len(latencies), "rows": rows[0], "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99))}  # fmt: skip
    print(json.dumps(done), flush=True)
    return 0


def run(
    transport: str, clients: int, requests: int, work: Path, *, queries: bool = False
) -> dict[str, float]:
    """One row: ``clients`` processes send ``requests`` requests each over ``transport``
    ("grpc" or "http"); ``queries``: to the ``+queries`` server instead of ``tsdb-arrow serve``."""
    data = work / f"otlp-{transport}{'-queries' if queries else ''}"
    shutil.rmtree(data, ignore_errors=True)
    port = _free_port()
    flags = (
        ["--otlp-grpc", f"127.0.0.1:{port}", "--otlp-http", "off", "--flight", "off"]
        if transport == "grpc"
        else ["--otlp-grpc", "off", "--otlp-http", f"127.0.0.1:{port}", "--flight", "off"]
    )
    cli = Path(sys.executable).with_name("tsdb-arrow")
    command = [str(cli), "serve", "--data", str(data), *flags, "--http", "off"]
    if queries:
        command = [sys.executable, "-m", "benchmarks.otlp", "--serve-with-queries", str(data),
                   str(port)]  # fmt: skip
    bodies = [_requests(c, requests) for c in range(clients)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=repo_root()) as server:
        workers: list[mp.Process] = []
        try:
            wait_ready(server)
            queue: mp.Queue = mp.Queue()
            go = mp.Event()
            workers = [
                mp.Process(target=_client, args=(transport, f"127.0.0.1:{port}", b, queue, go))
                for b in bodies
            ]
            for w in workers:
                w.start()
            assert collect(queue, workers, "connection", timeout=120) == ["ready"] * len(workers)
            cpu = _cpu_seconds(server.pid)
            start = time.perf_counter()
            go.set()
            latencies = np.concatenate(collect(queue, workers, "latencies"))
            elapsed = time.perf_counter() - start
            cpu = _cpu_seconds(server.pid) - cpu
            for w in workers:
                w.join()
            rss = _peak_rss(server.pid)
            server.send_signal(signal.SIGTERM)
            rest = server.communicate(timeout=300)[0]
        finally:
            stop_all(workers)
            stop_server(server)
    query_stats = json.loads(rest.strip().splitlines()[-1]) if queries else {}
    acknowledged = clients * requests * PER_REQUEST
    with ta.open(data, read_only=True) as db:
        stored = db.stats()["samples"]
    return {
        "points_per_s": acknowledged / elapsed,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "rss_mib": rss / 2**20,
        "cpu_us_per_point": cpu / acknowledged * 1e6,
        "acknowledged": acknowledged,
        "stored": stored,
        "queries": query_stats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.otlp")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument(
        "--requests", type=int, default=1000,
        help="per client (1,000: a run of about 4 s, where the first pass over the 10,000 "
        "series is 1 %% of the requests; at 200 the run lasts under a second)",
    )  # fmt: skip
    parser.add_argument(
        "--transport", default="grpc,http,queries", help="rows: grpc, http, queries"
    )
    parser.add_argument("--serve-with-queries", nargs=2, metavar=("DATA", "PORT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.serve_with_queries:
        return _serve_with_queries(args.serve_with_queries[0], int(args.serve_with_queries[1]))
    print(
        f"{args.clients} clients x {args.requests} requests x {PER_REQUEST} points "
        f"({SERIES:,} series, 5 attributes), default WAL mode, loopback, {os.cpu_count()} cores"
    )
    print(
        f"{'transport':<10}{'k points/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/pt':>11}"
        f"{'RSS MiB':>9}  stored"
    )
    ok = True
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for row in args.transport.split(","):
            queries = row == "queries"
            transport = "grpc" if queries else row
            r = run(transport, args.clients, args.requests, Path(tmp), queries=queries)
            rates[row] = r["points_per_s"]
            same = r["stored"] == r["acknowledged"]
            ok &= same
            print(
                f"{'+queries' if queries else row:<10}{r['points_per_s'] / 1e3:>12.0f}"
                f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['cpu_us_per_point']:>11.2f}"
                f"{r['rss_mib']:>9.0f}  {r['stored']:,} of {r['acknowledged']:,} acknowledged"
                f"{'' if same else ' MISMATCH'}"
            )
            if queries:
                q = r["queries"]
                against = (
                    f"{r['points_per_s'] / rates['grpc']:.2f}x the idle gRPC ingest, "
                    if "grpc" in rates
                    else ""
                )
                print(
                    f"          +queries: {against}{q['queries']} queries meanwhile "
                    f"(p50 {q['p50_ms']:.1f} ms, p99 {q['p99_ms']:.1f} ms, {q['rows']:,} rows)"
                )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
