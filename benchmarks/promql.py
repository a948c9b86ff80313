"""``python -m benchmarks.promql``: PromQL range queries against Prometheus, same data, same run.

Data: ``--series`` counters ``http_requests_total`` (five jobs, one instance each; realistic
per-series rates, occasional resets) and, for two jobs, classic histograms
``http_request_duration_seconds_bucket`` with 10 ``le`` values (one group per 25 counters),
scraped every 15 s for ``--hours`` hours at a fixed offset per series, from a seeded generator.
The same samples go into Prometheus (OpenMetrics text, ``promtool tsdb create-blocks-from
openmetrics``, then a ``prometheus`` server on a free loopback port, blocks kept at 2 h as
promtool writes them and as we write them) and into tsdb-arrow (``db.write``, ``flush``, served
in this process by ``ta.serve``). Each query runs over the whole range at a 15 s step through
``/api/v1/query_range`` with one client (the time until the whole JSON body is read), systems
alternating, best of ``--repeat``; both answers are checked to hold the same series and values
(1e-9 relative). Query times sit half a step off the grid of scrape offsets, so no sample sits
on a window's edge (Prometheus 2.42's windows are closed, 3.x's left-open), and start once
the first window holds a whole 5 m of samples (see ``FIRST_QUERY``).

Last, OTLP ingest (``benchmarks.otlp``'s requests and gRPC client) into the same server, idle
and while a process runs the range queries in a loop against its HTTP API, in alternating
rounds; the best rate of each is compared, and every round's pair printed.

Usage::

    python -m benchmarks.promql [--series 1000] [--hours 24] [--repeat 3] [--no-prometheus]
        [--ingest-requests 300] [--ingest-rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

import tsdb_arrow as ta
from benchmarks import otlp
from benchmarks.formats import openmetrics_lines
from benchmarks.workers import collect, stop_all

SCRAPE = 15_000
#: 2026-11-21 00:00 UTC, on a 2 h block boundary, well before the OTLP benchmark's points.
T0 = 1_794_960_000_000
JOBS = ("api", "web", "db", "queue", "auth")
HISTOGRAM_JOBS = ("api", "web")
LE = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")
COUNTER = "http_requests_total"
BUCKET = "http_request_duration_seconds_bucket"
QUERIES = (
    f"rate({COUNTER}[5m])",
    f"sum by (job) (rate({COUNTER}[5m]))",
    f"histogram_quantile(0.99, sum by (le) (rate({BUCKET}[5m])))",
    f"topk(5, rate({COUNTER}[5m]))",
)
#: Query times sit this far past every series' scrape offset (mod the step).
QUERY_PHASE = SCRAPE // 2
#: The first query time: every window starts after the first samples. Where a window starts
#: long before a counter's first sample, ``rate`` differs between 2.42 and 3.x (3.x caps the
#: extrapolation at half an interval before it caps at the counter's zero point, 2.42 after).
FIRST_QUERY = T0 + 300_000 + 2 * SCRAPE + QUERY_PHASE
RELATIVE_TOLERANCE = 1e-9
READY_TIMEOUT_S = 120


# --- data ------------------------------------------------------------------------------------


def _stamps(rng: np.random.Generator, rows: int, steps: int) -> np.ndarray:
    """Scrape times of ``rows`` series: a fixed offset each plus 0-3 ms of jitter, none on the
    query grid (``T0 + QUERY_PHASE + k * SCRAPE``)."""
    offset = rng.integers(0, SCRAPE, rows)
    ts = T0 + offset[:, None] + np.arange(steps) * SCRAPE + rng.integers(0, 4, (rows, steps))
    on_grid = (ts - T0 - QUERY_PHASE) % SCRAPE == 0
    return ts + on_grid


def _with_resets(increments: np.ndarray, resets: np.ndarray) -> np.ndarray:
    """Running totals along the last axis that restart from the increment where ``resets``."""
    total = np.cumsum(increments, axis=-1)
    base = np.maximum.accumulate(np.where(resets, total - increments, 0), axis=-1)
    return (total - base).astype(np.float64)


def _long(labels: dict[str, np.ndarray], ts: np.ndarray, values: np.ndarray) -> pl.DataFrame:
    """A long frame: each label repeated over its row's samples, then timestamp and value."""
    steps = ts.shape[-1]
    columns: dict[str, object] = {k: np.repeat(v, steps) for k, v in labels.items()}
    return pl.DataFrame({**columns, "timestamp": ts.ravel(), "value": values.ravel()})


def make_data(series: int, hours: float, seed: int = 11) -> list[pl.DataFrame]:
    """The counters and the histogram buckets, one long frame each (deterministic)."""
    rng = np.random.default_rng(seed)
    steps = int(hours * 3_600_000 // SCRAPE)
    ids = np.arange(series)
    rates = np.exp(rng.uniform(np.log(0.05), np.log(200.0), series))
    increments = rng.poisson(rates[:, None] * (SCRAPE / 1000), (series, steps))
    resets = rng.random((series, steps)) < 1 / 1500
    counters = _long(
        {
            "__name__": np.full(series, COUNTER),
            "job": np.array(JOBS)[ids % len(JOBS)],
            "instance": np.array([f"10.0.{i // 250}.{i % 250}:9100" for i in ids // len(JOBS)]),
        },
        _stamps(rng, series, steps),
        _with_resets(increments, resets),
    )
    groups = max(1, series // 25)
    gids = np.arange(groups)
    per_second = np.exp(rng.uniform(0, np.log(50.0), groups))
    observed = rng.poisson(per_second[:, None] * (SCRAPE / 1000), (groups, steps))
    # latency ~ lognormal with a per-group median; bucket shares from its CDF at each ``le``
    bounds = np.array([float(le) for le in LE[:-1]])
    median = np.exp(rng.uniform(np.log(0.01), np.log(0.3), groups))
    z = (np.log(bounds)[None, :] - np.log(median)[:, None]) / 0.8
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / np.sqrt(2)))
    shares = np.diff(np.concatenate([np.zeros((groups, 1)), cdf, np.ones((groups, 1))], axis=1))
    per_bucket = rng.multinomial(observed, shares[:, None, :])  # (groups, steps, buckets)
    cumulative = np.cumsum(per_bucket, axis=2).transpose(0, 2, 1)  # (groups, le, steps)
    group_resets = np.broadcast_to((rng.random((groups, steps)) < 1 / 1500)[:, None, :],
                                   cumulative.shape)  # fmt: skip
    buckets = _long(
        {
            "__name__": np.full(groups * len(LE), BUCKET),
            "job": np.repeat(np.array(HISTOGRAM_JOBS)[gids % len(HISTOGRAM_JOBS)], len(LE)),
            "instance": np.repeat(np.array([f"10.1.0.{g}:9100" for g in gids]), len(LE)),
            "le": np.tile(np.array(LE), groups),
        },
        _stamps(rng, groups, steps).repeat(len(LE), axis=0),
        _with_resets(cumulative, group_resets).reshape(groups * len(LE), steps),
    )
    return [counters, buckets]


def write_openmetrics(frames: list[pl.DataFrame], path: Path) -> None:
    """All frames as one OpenMetrics file (each family contiguous, ``# EOF`` last)."""
    with path.open("wb") as f:
        for frame in frames:
            openmetrics_lines(frame.to_arrow()).write_csv(f, include_header=False,
                                                          quote_style="never")  # fmt: skip
        f.write(b"# EOF\n")


# --- servers ---------------------------------------------------------------------------------


def _wait_ready(address: str, proc: subprocess.Popen | None = None) -> None:
    """Poll ``/-/ready`` until it answers 200 (or the process exits, or time runs out)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection(address, timeout=5)
            connection.request("GET", "/-/ready")
            if connection.getresponse().status == 200:
                connection.close()
                return
        time.sleep(0.2)
    raise RuntimeError(f"{address} not ready after {READY_TIMEOUT_S} s")


@contextlib.contextmanager
def prometheus(frames: list[pl.DataFrame], work: Path) -> Iterator[str]:
    """A Prometheus server over the frames' samples; yields its ``HOST:PORT``."""
    promtool, binary = shutil.which("promtool"), shutil.which("prometheus")
    if promtool is None or binary is None:
        raise FileNotFoundError("prometheus is not installed (apt-get install prometheus)")
    text, store = work / "samples.om", work / "prometheus"
    write_openmetrics(frames, text)
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(text),
                    str(store)], check=True, capture_output=True, timeout=1800)  # fmt: skip
    text.unlink()
    config = work / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    address = f"127.0.0.1:{otlp._free_port()}"
    command = [binary, f"--config.file={config}", f"--storage.tsdb.path={store}",
               f"--web.listen-address={address}", "--storage.tsdb.retention.time=100y",
               "--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h",
               "--log.level=warn"]  # fmt: skip
    with (work / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(address, proc)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- queries ---------------------------------------------------------------------------------


def query_path(query: str, start: int, end: int, step: int) -> str:
    """The ``/api/v1/query_range`` request path (times in seconds, as Grafana sends them)."""
    params = {"query": query, "start": start / 1000, "end": end / 1000, "step": step / 1000}
    return "/api/v1/query_range?" + urllib.parse.urlencode(params)


class Client:
    """One keep-alive connection; ``get`` returns the raw body (timed by the caller)."""

    def __init__(self, address: str) -> None:
        self.connection = http.client.HTTPConnection(address, timeout=600)

    def get(self, path: str) -> bytes:
        """The body of a GET that must answer 200. A keep-alive connection the server closed
        while idle (the other system's query can outlast its idle timeout) is opened again
        once, as HTTP clients do."""
        try:
            self.connection.request("GET", path)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.connection.close()
            self.connection.request("GET", path)
            response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path[:80]} answered {response.status}: {body[:300]!r}")
        return body

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def _series(body: bytes) -> dict[frozenset, tuple[np.ndarray, np.ndarray]]:
    """A matrix answer as label set -> (timestamps ms, values)."""
    answer = json.loads(body)
    if answer.get("status") != "success" or answer["data"]["resultType"] != "matrix":
        raise RuntimeError(f"not a matrix answer: {body[:300]!r}")
    out = {}
    for item in answer["data"]["result"]:
        points = item["values"]
        ts = np.array([round(float(t) * 1000) for t, _ in points], dtype=np.int64)
        values = np.array([float(v) for _, v in points], dtype=np.float64)
        out[frozenset(item["metric"].items())] = (ts, values)
    return out


def compare(ours: bytes, theirs: bytes) -> str:
    """``"same"`` when both matrices hold the same series, steps and values, else what differs."""
    a, b = _series(ours), _series(theirs)
    if a.keys() != b.keys():
        return f"series differ: {len(a)} vs {len(b)}, {len(a.keys() ^ b.keys())} not in both"
    worst = 0.0
    for key, (ts, values) in a.items():
        their_ts, their_values = b[key]
        if not np.array_equal(ts, their_ts):
            return f"steps differ for {dict(key)}: {len(ts)} vs {len(their_ts)}"
        both_nan = np.isnan(values) & np.isnan(their_values)
        with np.errstate(invalid="ignore"):
            diff = np.abs(values - their_values) / np.maximum(np.abs(their_values), 1e-300)
        diff = np.where(both_nan | (values == their_values), 0.0, diff)
        worst = max(worst, float(np.nanmax(diff, initial=0.0)))
        if np.isnan(diff).any():
            worst = float("inf")
    if worst > RELATIVE_TOLERANCE:
        return f"values differ: worst relative error {worst:.3g}"
    points = sum(len(ts) for ts, _ in a.values())
    return f"same ({len(a)} series, {points:,} points, worst rel. error {worst:.1e})"


@dataclass
class QueryRow:
    """One query's figures; ``None`` where not measured."""

    query: str
    prometheus_s: float | None = None
    ours_s: float | None = None
    in_process_s: float | None = None
    body_mib: float | None = None
    agree: str = ""


def _best(repeat: int, fn: Callable[..., object], *args: object) -> float:
    """Fastest wall time of ``repeat`` calls of ``fn(*args)``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def time_queries(
    db: ta.Database, ours: str, theirs: str | None, start: int, end: int, repeat: int
) -> list[QueryRow]:
    """Each query once on each system to warm up and compare, then ``repeat`` timed rounds
    alternating the systems; the in-process ``db.query_range`` timed last."""
    rows = [QueryRow(q) for q in QUERIES]
    clients = {"ours": Client(ours), **({"prometheus": Client(theirs)} if theirs else {})}
    try:
        paths = [query_path(q, start, end, SCRAPE) for q in QUERIES]
        for row, path in zip(rows, paths, strict=True):
            body = clients["ours"].get(path)
            row.body_mib = len(body) / 2**20
            row.agree = compare(body, clients["prometheus"].get(path)) if theirs else "-"
        best = {(name, q): float("inf") for name in clients for q in QUERIES}
        for _ in range(repeat):
            for q, path in zip(QUERIES, paths, strict=True):
                for name, client in clients.items():
                    best[name, q] = min(best[name, q], _best(1, client.get, path))
    finally:
        for client in clients.values():
            client.close()
    for row in rows:
        row.ours_s = best["ours", row.query]
        row.prometheus_s = best.get(("prometheus", row.query))
        db.query_range(row.query, start, end, SCRAPE)
        row.in_process_s = _best(repeat, db.query_range, row.query, start, end, SCRAPE)
    return rows


# --- ingest while querying -------------------------------------------------------------------


def _querier(address: str, paths: list[str], stop, answered) -> None:
    """Run the range queries in a loop until ``stop`` is set; count the answers."""
    client = Client(address)
    count = 0
    while not stop.is_set():
        for path in paths:
            client.get(path)
            count += 1
    client.close()
    answered.put(count)


def ingest_rate(address: str, bodies: list[list[bytes]]) -> float:
    """Points/s of OTLP gRPC export requests from one process per body list (all points over
    the longest client's time in requests)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=otlp._client, args=("grpc", address, b, queue)) for b in bodies]
    try:
        for w in workers:
            w.start()
        # a client's busy time is the sum of its request latencies (process start-up left out)
        busy = max(sum(latencies) for latencies in collect(queue, workers, "latencies"))
        for w in workers:
            w.join()
    finally:
        stop_all(workers)
    return sum(len(b) for b in bodies) * otlp.PER_REQUEST / busy


@dataclass
class IngestResult:
    """OTLP points/s on the idle server and while range queries run: the best of each over
    alternating rounds, and every round's pair."""

    idle: float
    busy: float
    queries: int
    rounds: list[tuple[float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def ingest_while_querying(
    grpc: str, http_api: str, start: int, end: int, clients: int, requests: int, rounds: int = 3
) -> IngestResult:
    """OTLP ingest into the server idle, then while a process loops over the range queries,
    ``rounds`` times in turn, so that a shared machine's load drifting between the two does
    not decide the ratio.

    Each run sends new series (other clients' resource), so all do the same work; the child
    processes are spawned, not forked, as this process runs the server's threads.
    """
    ctx = mp.get_context("spawn")
    paths = [query_path(q, start, end, SCRAPE) for q in QUERIES]
    pairs, queries, first = [], 0, 0
    for _ in range(rounds):
        idle = ingest_rate(grpc, [otlp._requests(first + c, requests) for c in range(clients)])
        first += clients
        stop, answered = ctx.Event(), ctx.Queue()
        querier = ctx.Process(target=_querier, args=(http_api, paths, stop, answered))
        querier.start()
        try:
            time.sleep(1.0)  # the querier's first request is in flight
            bodies = [otlp._requests(first + c, requests) for c in range(clients)]
            first += clients
            busy = ingest_rate(grpc, bodies)
            stop.set()
            queries += collect(answered, [querier], "query count")[0]
            querier.join()
        finally:
            stop.set()
            stop_all([querier])
        pairs.append((idle, busy))
    return IngestResult(max(i for i, _ in pairs), max(b for _, b in pairs), queries, pairs)


# --- the run ---------------------------------------------------------------------------------


def run(
    series: int, hours: float, repeat: int, work: Path, *, with_prometheus: bool = True,
    ingest_clients: int = 2, ingest_requests: int = 300, ingest_rounds: int = 3,
) -> tuple[list[QueryRow], IngestResult, list[str]]:  # fmt: skip
    """Load, query both systems, measure ingest while querying; returns rows, ingest, notes."""
    frames = make_data(series, hours)
    samples = sum(f.height for f in frames)
    steps = int(hours * 3_600_000 // SCRAPE)
    start = FIRST_QUERY
    end = T0 + steps * SCRAPE - QUERY_PHASE
    buckets = frames[1].height // steps
    notes = [f"{series + buckets:,} series ({series:,} counters, {buckets:,} buckets), "
             f"{samples:,} samples, {(end - start) // SCRAPE + 1:,} steps of 15 s"]  # fmt: skip
    with contextlib.ExitStack() as stack:
        theirs = None
        if with_prometheus:
            try:
                theirs = stack.enter_context(prometheus(frames, work))
                version = subprocess.run(["prometheus", "--version"], capture_output=True,
                                         text=True, check=False).stdout.split("(")[0]  # fmt: skip
                notes.append(version.strip() + ", 2 h blocks from promtool")
            except FileNotFoundError as e:
                notes.append(f"Prometheus: {e}")
        db = stack.enter_context(ta.open(work / "tsdb-arrow"))
        for frame in frames:
            db.write(frame)
        db.flush()
        del frames
        server = stack.enter_context(
            ta.serve(db, http="127.0.0.1:0", otlp_grpc="127.0.0.1:0", otlp_http="off", flight="off")
        )
        ours = server.addresses["http"]
        _wait_ready(ours)
        rows = time_queries(db, ours, theirs, start, end, repeat)
        ingest = ingest_while_querying(
            server.addresses["otlp_grpc"], ours, start, end, ingest_clients, ingest_requests,
            ingest_rounds,
        )
    return rows, ingest, notes


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(rows: list[QueryRow], ingest: IngestResult) -> str:
    """The fixed-width result table and the ingest line."""
    width = max(len(r.query) for r in rows)
    lines = [
        f"{'query':<{width}}  {'Prometheus s':>12}  {'ours s':>8}  {'ours/Prom':>9}  "
        f"{'in-process s':>12}  {'JSON MiB':>8}  answers",
    ]
    for r in rows:
        ratio = "-" if r.prometheus_s is None else f"{r.ours_s / r.prometheus_s:.2f}x"
        lines.append(
            f"{r.query:<{width}}  {_s(r.prometheus_s):>12}  {_s(r.ours_s):>8}  {ratio:>9}  "
            f"{_s(r.in_process_s):>12}  {r.body_mib:>8.1f}  {r.agree}"
        )
    rounds = ", ".join(f"{i / 1e3:,.0f}/{b / 1e3:,.0f}" for i, b in ingest.rounds)
    lines.append(
        f"OTLP ingest (gRPC) idle {ingest.idle / 1e3:,.0f} k points/s, while range queries run "
        f"{ingest.busy / 1e3:,.0f} k points/s ({ingest.queries} queries answered), best of "
        f"{len(ingest.rounds)} rounds: {ingest.busy / ingest.idle:.2f}x idle (target >= 0.8x); "
        f"rounds idle/busy k points/s: {rounds}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.promql")
    parser.add_argument("--series", type=int, default=1000, help="counters (buckets: 2/5 as many)")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ingest-requests", type=int, default=300, help="per client (2 clients)")
    parser.add_argument("--ingest-rounds", type=int, default=3, help="idle/busy rounds in turn")
    parser.add_argument("--no-prometheus", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="promql-bench-") as tmp:
        rows, ingest, notes = run(
            args.series, args.hours, args.repeat, Path(tmp),
            with_prometheus=not args.no_prometheus, ingest_requests=args.ingest_requests,
            ingest_rounds=args.ingest_rounds,
        )  # fmt: skip
    print("; ".join(notes) + f"; best of {args.repeat}, HTTP on loopback, no gzip")
    print(table(rows, ingest))
    return 0 if all(r.agree.startswith(("same", "-")) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
