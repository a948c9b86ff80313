"""VictoriaMetrics row: a single-node server on a free loopback port, fed over its import API.

The samples go to ``/api/v1/import`` as JSON lines (one per series), then
``/internal/force_flush`` makes them searchable and durable: load = both, wall time (building
the JSON is not timed). After ``/internal/force_merge`` has settled, the bytes of the storage
directory (its ``cache`` left out) give bytes/sample. Selects go through ``/api/v1/export``,
parsed into a long Polars frame like ours. VictoriaMetrics stores values as decimals, so the
exported values are compared bit for bit with the originals and the loss is reported.

The server binds 127.0.0.1 only and is always stopped (terminate, then kill) when done.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.datasets import DataSet
from benchmarks.formats import NAME, TIMESTAMP, VALUE, batches, selector, vm_import_lines
from benchmarks.measure import Row, best_of, dir_bytes, rate, timed

SYSTEM = "VictoriaMetrics"
BINARY_CANDIDATES = ("victoria-metrics", "victoria-metrics-prod")
REQUEST_BYTES = 32 * 2**20
STARTUP_TIMEOUT_S = 30.0
MERGE_TIMEOUT_S = 600.0
HTTP_TIMEOUT_S = 900.0
ALL_SERIES = '{__name__!=""}'
PROBE = 1.0 / 3.0


def binary_path() -> str | None:
    """Path of the single-node VictoriaMetrics binary, or None when it is not installed."""
    for name in BINARY_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def package_version() -> str:
    """The Debian package version of ``victoria-metrics`` (the binary reports none)."""
    if shutil.which("dpkg-query") is None:
        return ""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """HTTP access to a running VictoriaMetrics on 127.0.0.1:``port``."""

    def __init__(self, port: int, data_path: Path, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.data_path = data_path
        self.process = process

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        """One HTTP request; raises on a non-2xx status with the server's message."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_S)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if not 200 <= resp.status < 300:
            raise RuntimeError(f"{method} {path} -> {resp.status}: {data[:300]!r}")
        return data

    def metrics(self) -> dict[str, float]:
        """The server's own ``/metrics``, as {series text: value}."""
        out: dict[str, float] = {}
        for line in self.request("GET", "/metrics").decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def metric_sum(self, prefix: str) -> float:
        """Sum of the server metrics whose name is ``prefix`` (any labels)."""
        return sum(
            v for k, v in self.metrics().items() if k == prefix or k.startswith(prefix + "{")
        )

    def import_lines(self, lines: list[bytes]) -> None:
        """POST the JSON lines to ``/api/v1/import`` in bodies of ~32 MiB, then force a flush."""
        for body in batches(lines, REQUEST_BYTES):
            self.request("POST", "/api/v1/import", body)
        self.request("GET", "/internal/force_flush")

    def force_merge(self) -> None:
        """Start a forced merge and wait until merges are over and the directory is stable."""
        self.request("GET", "/internal/force_merge")
        deadline = time.monotonic() + MERGE_TIMEOUT_S
        last = -1
        while time.monotonic() < deadline:
            time.sleep(0.5)
            busy = self.metric_sum("vm_active_force_merges") + self.metric_sum("vm_active_merges")
            size = dir_bytes(self.data_path, skip=frozenset({"cache"}))
            if busy == 0 and size == last:
                return
            last = size
        raise TimeoutError(f"VictoriaMetrics merges did not settle in {MERGE_TIMEOUT_S:.0f} s")

    def export(self, match: str) -> bytes:
        """Raw ``/api/v1/export`` JSON lines of the series matching ``match``, all time."""
        query = urllib.parse.urlencode({"match[]": match})
        return self.request("GET", f"/api/v1/export?{query}")


@contextmanager
def running(binary: str, work_dir: Path) -> Iterator[Server]:
    """Start VictoriaMetrics on a free loopback port with a fresh data dir; always stop it."""
    with tempfile.TemporaryDirectory(prefix="vm-", dir=work_dir) as tmp:
        data_path = Path(tmp) / "storage"
        port = free_port()
        log = (Path(tmp) / "vm.log").open("wb")
        process = subprocess.Popen(
            [
                binary,
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={data_path}",
                "-retentionPeriod=100y",
                "-search.disableCache",
                "-selfScrapeInterval=0",
                "-loggerLevel=ERROR",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            server = Server(port, data_path, process)
            _wait_ready(server)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
            log.close()


def _wait_ready(server: Server) -> None:
    """Poll ``/health`` until the server answers; fail early if the process died."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"victoria-metrics exited with {server.process.returncode}")
        try:
            server.request("GET", "/health")
            return
        except (OSError, RuntimeError):
            time.sleep(0.1)
    raise TimeoutError(f"victoria-metrics not ready in {STARTUP_TIMEOUT_S:.0f} s")


def parse_export(raw: bytes, labels: list[str]) -> pl.DataFrame:
    """Export JSON lines to a long frame: one column per label, ``timestamp``, ``value``."""
    schema = {
        "metric": pl.Struct({name: pl.String for name in labels}),
        "values": pl.List(pl.Float64),
        "timestamps": pl.List(pl.Int64),
    }
    if not raw.strip():
        return pl.DataFrame(
            schema={**dict.fromkeys(labels, pl.String), TIMESTAMP: pl.Int64, VALUE: pl.Float64}
        )
    return (
        pl.read_ndjson(raw, schema=schema)
        .explode(["values", "timestamps"])
        .unnest("metric")
        .rename({"values": VALUE, "timestamps": TIMESTAMP})
    )


def value_loss(original: pl.DataFrame, exported: pl.DataFrame, labels: list[str]) -> str:
    """How many exported values differ from the originals bit for bit, and the worst case."""
    joined = (
        original.lazy()
        .join(
            exported.lazy(),
            on=[*labels, TIMESTAMP],
            how="inner",
            nulls_equal=True,
            suffix="_vm",
        )
        .select(VALUE, f"{VALUE}_vm")
        .collect()
    )
    a = joined[VALUE].to_numpy()
    b = joined[f"{VALUE}_vm"].to_numpy()
    differ = a.view(np.uint64) != b.view(np.uint64)
    n = int(differ.sum())
    if n == 0:
        return f"values bit-exact ({joined.height} compared)"
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(a[differ] - b[differ]) / np.maximum(np.abs(a[differ]), np.finfo(float).tiny)
    worst = int(np.argmax(rel))
    return (
        f"lossy: {n}/{joined.height} values not bit-exact, max rel err {rel[worst]:.1e} "
        f"({float(a[differ][worst])!r} -> {float(b[differ][worst])!r})"
    )


def probe_one_third(server: Server, timestamp_ms: int) -> str:
    """Store 1/3 in a probe series (after all measurements) and say what comes back.

    The probe sample is stamped like the data (queries skip the last 30 s by default).
    """
    line = (
        f'{{"metric":{{"{NAME}":"bench_probe"}},"values":[{PROBE!r}],'
        f'"timestamps":[{timestamp_ms}]}}\n'
    ).encode()
    server.import_lines([line])
    back = parse_export(server.export('{__name__="bench_probe"}'), [NAME])
    if back.height != 1:
        return f"probe: {back.height} samples came back"
    got = float(back[VALUE][0])
    return f"1/3 stored as {got!r}" if got != PROBE else "1/3 stored exactly"


def run(data: DataSet, work_dir: Path, repetitions: int) -> Row:
    """Measure VictoriaMetrics on ``data``; a missing binary gives a "not installed" row."""
    row = Row(SYSTEM, data.name, data.samples)
    binary = binary_path()
    if binary is None:
        row.note("not installed (apt-get install victoria-metrics)")
        return row
    version = package_version()
    row.note(f"v{version}" if version else "version unknown")
    try:
        _measure(row, data, binary, work_dir, repetitions)
    except (
        OSError,
        RuntimeError,
        TimeoutError,
        subprocess.SubprocessError,
        pl.exceptions.PolarsError,
    ) as e:
        row.fail(e)
    return row


def _measure(row: Row, data: DataSet, binary: str, work_dir: Path, repetitions: int) -> None:
    """The VictoriaMetrics measurements proper, filling ``row`` in place.

    Load is the best of ``repetitions`` loads, each into a fresh server and directory; the
    rest is measured on the last one.
    """
    lines, dropped = vm_import_lines(data.table)
    expected = data.samples - dropped
    if dropped:
        row.note(f"{dropped} non-finite samples not sent (JSON has no NaN/Inf)")
    best_load = float("inf")
    for rep in range(repetitions):
        with running(binary, work_dir) as server:
            load_s, _ = timed(partial(server.import_lines, lines))
            best_load = min(best_load, load_s)
            if rep == repetitions - 1:
                _after_load(row, server, data, expected, repetitions)
    row.load_sps = rate(expected, best_load)


def _after_load(row: Row, server: Server, data: DataSet, expected: int, repetitions: int) -> None:
    """Size after a forced merge, selects and the value checks, on a loaded server."""
    labels = data.labels
    one = data.one_series()
    ignored = server.metric_sum("vm_rows_ignored_total")
    if ignored:
        row.note(f"{ignored:.0f} rows ignored by VM")
    server.force_merge()
    row.bytes_per_sample = dir_bytes(server.data_path, skip=frozenset({"cache"})) / expected

    def select_all() -> pl.DataFrame:
        return parse_export(server.export(ALL_SERIES), labels)

    export_s, _ = best_of(repetitions, lambda: server.export(ALL_SERIES))
    all_s, frame = best_of(repetitions, select_all)
    row.select_all_sps = rate(frame.height, all_s)
    export_rate = rate(frame.height, export_s) / 1e6
    row.note(f"select = /api/v1/export -> Polars; export alone {export_rate:.1f} M/s")
    if frame.height != expected:
        row.note(f"export returned {frame.height} of {expected} samples")
    one_s, one_frame = best_of(
        repetitions, lambda: parse_export(server.export(selector(one)), labels)
    )
    row.select_one_ms = one_s * 1000
    expected_one = data.series_samples(one)
    if one_frame.height != expected_one:
        row.note(f"select one returned {one_frame.height} of {expected_one} samples")
    original = pl.from_arrow(data.table)
    assert isinstance(original, pl.DataFrame)
    row.note(value_loss(original, frame, labels))
    row.note(probe_one_third(server, int(original[TIMESTAMP].min())))
