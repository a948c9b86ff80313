"""``python -m tsdb_arrow.server.demo --data DIR``: the server live, end to end, in a few seconds.

Starts ``tsdb-arrow serve`` on free loopback ports, sends a short feed from the real
OpenTelemetry SDK (a counter, a gauge and a histogram from a pretend checkout service), stops
the server with SIGTERM, and prints what arrived. ``make run`` ends with it.
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import tsdb_arrow as ta
from tsdb_arrow.errors import MissingDependencyError

#: How long the demo's server may take to stop after SIGTERM before it is killed.
STOP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _feed(endpoint: str, rounds: int) -> int:
    """Export ``rounds`` collections of three instruments; returns the points exported."""
    try:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.metrics import Observation
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExporter
        from opentelemetry.sdk.resources import Resource
    except ImportError as exc:
        raise MissingDependencyError(
            "the demo feed needs the OpenTelemetry SDK and OTLP exporter: pip install "
            "'tsdb-arrow[test]' (make run installs them)"
        ) from exc

    reader = InMemoryMetricReader()
    exporter: MetricExporter = OTLPMetricExporter(endpoint=endpoint, insecure=True)
    resource = Resource.create({"service.name": "checkout", "service.instance.id": "demo-1"})
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    meter = provider.get_meter("tsdb_arrow.demo")
    orders = meter.create_counter("orders", unit="{order}")
    latency = meter.create_histogram("checkout.duration", unit="s")
    queue = [3.0]
    meter.create_observable_gauge(
        "queue.depth", callbacks=[lambda _: [Observation(queue[0], {"queue": "payments"})]]
    )
    rng = random.Random(7)
    points = 0
    for _ in range(rounds):
        for _ in range(20):
            orders.add(1, {"region": rng.choice(["eu", "us"])})
            latency.record(rng.lognormvariate(-2.5, 0.6))
        queue[0] = float(rng.randint(0, 9))
        data = reader.get_metrics_data()
        result = exporter.export(data)
        if result.name != "SUCCESS":
            raise RuntimeError(f"the export failed ({result.name}); see the server's log")
        points += sum(
            len(m.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
    exporter.shutdown()
    provider.shutdown()
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tsdb_arrow.server.demo")
    parser.add_argument("--data", type=Path, default=Path("./data"))
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    port = _free_port()
    cli = Path(sys.executable).with_name("tsdb-arrow")
    command = [
        str(cli),
        "serve",
        "--data",
        str(args.data),
        "--otlp-grpc",
        f"127.0.0.1:{port}",
        "--otlp-http",
        "off",
        "--http",
        "off",
        "--flight",
        "off",
    ]
    print("$ tsdb-arrow", " ".join(command[1:]), flush=True)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            for line in server.stdout:
                print(line.rstrip(), flush=True)
                if line.strip() == "tsdb-arrow: ready":
                    break
            else:
                raise RuntimeError("the server exited before it was ready")
            points = _feed(f"http://127.0.0.1:{port}", args.rounds)
            print(
                f"demo: the OpenTelemetry SDK exported {points} points in {args.rounds} requests",
                flush=True,
            )
            server.send_signal(signal.SIGTERM)
            killer = threading.Timer(STOP_SECONDS, server.kill)  # if it does not stop
            killer.start()
            try:
                for line in server.stdout:
                    print(line.rstrip(), flush=True)
                server.wait()
            finally:
                killer.cancel()
            if server.returncode == -signal.SIGKILL:
                raise RuntimeError(f"the server did not stop within {STOP_SECONDS} s of SIGTERM")
            if server.returncode != 0:
                raise RuntimeError(f"the server exited with {server.returncode}")
        finally:
            if server.poll() is None:
                server.kill()
    with ta.open(args.data, read_only=True) as db:
        series = db.series('{job="checkout"}')
        print(f"demo: {len(series)} series of job=checkout stored, e.g.:")
        for name in sorted(set(series["__name__"].to_list()))[:8]:
            print(f"  {name}")
        orders = db.select("orders_total").collect()
        last = orders.sort("timestamp").group_by("region").last().sort("region")
        print("demo: orders_total now:", dict(zip(last["region"], last["value"])))
        stats = db.stats()
        print(
            f"demo: {stats['samples']:,} samples in {stats['blocks']} blocks, "
            f"{stats['bytes_per_sample']:.3f} bytes/sample"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
