"""``python -m benchmarks.remote_write``: Prometheus remote write into ``tsdb-arrow serve``.

Requests shaped as Prometheus sends them: snappy-compressed ``WriteRequest``s of one sample
per series, 8 labels a series (``__name__``, ``job``, ``instance`` and 5 more), 10,000 series in
all, ``--per-request`` samples a request (Prometheus' ``max_samples_per_send``). The table gives
samples/s of the conversion alone (in this process, no socket) and end to end over loopback
with several keep-alive client processes (p50/p99 latency per request), on an idle server and
while ``--queriers`` processes run a range query (``rate``, ``sum by``) in a loop on the same
server, the server's peak RSS, and whether the samples stored equal the samples acknowledged.

Usage::

    python -m benchmarks.remote_write [--clients 2] [--requests 200] [--per-request 2000,500]
        [--queriers 1]
"""

from __future__ import annotations

import argparse
import http.client
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
from benchmarks.workers import collect, stop_all, stop_server, wait_ready

T0 = 1_795_392_000_000
SERIES = 10_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def requests(client: int, count: int, per_request: int) -> list[bytes]:
    """``count`` snappy-compressed WriteRequests of ``per_request`` series, one sample each,
    client ``client``'s timestamps a second apart per round over the series."""
    import cramjam

    from tsdb_arrow.ingest import prompb

    out = []
    for i in range(count):
        request = prompb.WriteRequest()
        first = (i * per_request) % SERIES
        t = T0 + ((i * per_request) // SERIES) * 1000
        for s in range(first, first + per_request):
            ts = request.timeseries.add()
            for name, value in (
                ("__name__", f"bench_metric_{s % 50}"),
                ("cpu", str(s % 8)),
                ("env", "prod"),
                ("instance", f"host-{client}-{s // 50}:9100"),
                ("job", "node"),
                ("mode", ("idle", "user", "system", "iowait")[s % 4]),
                ("region", "eu-west-1"),
                ("zone", f"eu-west-1{'abc'[s % 3]}"),
            ):
                ts.labels.add(name=name, value=value)
            ts.samples.add(timestamp=t, value=float(i * 7 + s) * 0.5)
        out.append(cramjam.snappy.compress_raw(request.SerializeToString()).read())
    return out


def _client(address: str, bodies: list[bytes], queue: mp.Queue) -> None:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    headers = {
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }
    latencies = []
    for body in bodies:
        start = time.perf_counter()
        connection.request("POST", "/api/v1/write", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 204:
            raise RuntimeError(f"remote write answered {response.status}")
        latencies.append(time.perf_counter() - start)
    connection.close()
    queue.put(np.array(latencies))


QUERY = "sum by (mode) (rate(bench_metric_0[1m]))"


def _querier(address: str, stop: mp.Event, queue: mp.Queue) -> None:
    """Range queries over the first 10 minutes of data, in a loop until ``stop``."""
    import urllib.parse

    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    params = urllib.parse.urlencode(
        {"query": QUERY, "start": T0 / 1000, "end": T0 / 1000 + 600, "step": 15}
    )
    answered = 0
    while not stop.is_set():
        connection.request("GET", f"/api/v1/query_range?{params}")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"query_range answered {response.status}")
        answered += 1
    connection.close()
    queue.put(answered)


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def convert_rate(bodies: list[bytes]) -> float:
    """Samples/s of snappy + ``decode_write_request`` alone, over ``bodies``."""
    import cramjam

    from tsdb_arrow.ingest.remote_write import decode_write_request

    decode_write_request(bytes(cramjam.snappy.decompress_raw(bodies[0])))  # kernels loaded
    start = time.perf_counter()
    rows = 0
    for body in bodies:
        rows += decode_write_request(bytes(cramjam.snappy.decompress_raw(body))).table.num_rows
    return rows / (time.perf_counter() - start)


def run(
    clients: int, count: int, per_request: int, work: Path, *, queriers: int = 0
) -> dict[str, float]:
    """Serve a fresh directory, send ``clients`` x ``count`` requests (while ``queriers``
    processes run range queries in a loop), check what is stored."""
    data = work / f"remote-write-{per_request}"
    shutil.rmtree(data, ignore_errors=True)
    port = _free_port()
    bodies = [requests(c, count, per_request) for c in range(clients)]
    cli = Path(sys.executable).with_name("tsdb-arrow")
    command = [str(cli), "serve", "--data", str(data), "--otlp-grpc", "off", "--otlp-http", "off",
               "--http", f"127.0.0.1:{port}", "--flight", "off"]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        workers: list[mp.Process] = []
        readers: list[mp.Process] = []
        try:
            wait_ready(server)
            queue: mp.Queue = mp.Queue()
            address = f"127.0.0.1:{port}"
            workers = [mp.Process(target=_client, args=(address, b, queue)) for b in bodies]
            stop, answers = mp.Event(), mp.Queue()
            readers = [
                mp.Process(target=_querier, args=(address, stop, answers)) for _ in range(queriers)
            ]
            if queriers:  # some data to query first: client 0's first request (sent again later)
                _client(address, bodies[0][:1], mp.Queue())
            for r in readers:
                r.start()
            start = time.perf_counter()
            for w in workers:
                w.start()
            latencies = np.concatenate(collect(queue, workers, "latencies"))
            elapsed = time.perf_counter() - start
            stop.set()
            queries = sum(collect(answers, readers, "query count"))
            for w in [*workers, *readers]:
                w.join()
            rss = _peak_rss(server.pid)
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=300)
        finally:
            stop_all([*workers, *readers])
            stop_server(server)
    acknowledged = clients * count * per_request  # the first request, sent twice, replaces
    with ta.open(data, read_only=True) as db:
        stored = db.stats()["samples"]
    return {
        "convert_per_s": convert_rate(bodies[0]),
        "samples_per_s": acknowledged / elapsed,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "rss_mib": rss / 2**20,
        "acknowledged": acknowledged,
        "stored": stored,
        "body_bytes": float(np.mean([len(b) for b in bodies[0]])),
        "queries_per_s": queries / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.remote_write")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--per-request", default="2000,500", help="samples per request")
    parser.add_argument(
        "--queriers", type=int, default=1, help="processes running range queries meanwhile"
    )
    args = parser.parse_args(argv)
    print(
        f"{args.clients} clients x {args.requests} requests, one sample per series, "
        f"{SERIES:,} series of 8 labels, snappy, default WAL mode, loopback"
    )
    print(
        f"{'samples/req':>12}{'queries':>8}{'body KiB':>9}{'convert k/s':>13}{'HTTP k/s':>10}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'RSS MiB':>9}  stored"
    )
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for per_request in (int(n) for n in args.per_request.split(",")):
            for queriers in sorted({0, args.queriers}):
                r = run(args.clients, args.requests, per_request, Path(tmp), queriers=queriers)
                same = r["stored"] == r["acknowledged"]
                ok &= same
                queries = f"{r['queries_per_s']:.1f}/s" if queriers else "-"
                print(
                    f"{per_request:>12,}{queries:>8}{r['body_bytes'] / 1024:>9.1f}"
                    f"{r['convert_per_s'] / 1e3:>13.0f}{r['samples_per_s'] / 1e3:>10.0f}"
                    f"{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['rss_mib']:>9.0f}  "
                    f"{r['stored']:,} of {r['acknowledged']:,} acknowledged"
                    f"{'' if same else ' MISMATCH'}"
                )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
