"""``tsdb-arrow serve`` as a real process: ready lines, SIGTERM, SIGKILL, a locked directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import tsdb_arrow as ta

pytest.importorskip("opentelemetry.proto")

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (  # noqa: E402
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

T0_NS = 1_795_000_000_000 * 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data: Path, http_port: int, stderr=subprocess.PIPE) -> subprocess.Popen:  # noqa: ANN001
    cli = Path(sys.executable).with_name("tsdb-arrow")
    return subprocess.Popen(
        [
            str(cli),
            "serve",
            "--data",
            str(data),
            "--otlp-grpc",
            "off",
            "--otlp-http",
            f"127.0.0.1:{http_port}",
            "--http",
            "off",
            "--flight",
            "off",
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def wait_ready(proc: subprocess.Popen) -> list[str]:
    lines = []
    while True:
        line = proc.stdout.readline()
        assert line, f"the server exited: {proc.stderr.read() if proc.stderr else ''}"
        lines.append(line.strip())
        if line.strip() == "tsdb-arrow: ready":
            return lines


def export(port: int, i: int) -> None:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "feed"
    for j in range(100):
        point = metric.gauge.data_points.add()
        point.time_unix_nano = T0_NS + (i * 100 + j) * 1_000_000_000
        point.as_double = float(i * 100 + j)
    http = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/metrics",
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(http, timeout=60) as response:
        assert response.status == 200
        assert not ExportMetricsServiceResponse.FromString(response.read()).HasField(
            "partial_success"
        )


def test_serve_says_where_it_listens_and_sigterm_flushes_and_exits_0(tmp_path):
    port = free_port()
    with start(tmp_path / "db", port) as proc:
        lines = wait_ready(proc)
        assert f"tsdb-arrow: otlp_http listening on 127.0.0.1:{port}" in lines
        for i in range(3):
            export(port, i)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read().strip().endswith("tsdb-arrow: stopped")
    with ta.open(tmp_path / "db") as db:
        stats = db.stats()
        assert stats["wal"]["replayed_samples"] == 0  # flushed at the stop
        assert stats["samples"] == 300 and stats["blocks"] >= 1
        got = db.select("feed").collect()["value"].to_list()
    assert got == [float(v) for v in range(300)]


def test_sigusr1_writes_every_threads_stack_and_serves_on(tmp_path):
    """What to send a server that seems stuck: its stacks on stderr, and it keeps serving."""
    port = free_port()
    with start(tmp_path / "db", port) as proc:
        wait_ready(proc)
        proc.send_signal(signal.SIGUSR1)
        export(port, 0)  # answered after the dump
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
    assert "Current thread" in err and "most recent call first" in err
    assert "tsdb_arrow/server/process.py" in err  # the main thread, waiting in run()
    with ta.open(tmp_path / "db") as db:
        assert db.stats()["samples"] == 100


def test_a_busy_server_survives_many_stack_dumps(tmp_path):
    """SIGUSR1 sixty times while exports arrive: every export is answered and the server stops
    cleanly. Written from faulthandler's C handler, the dump read the frames of threads running
    Python code meanwhile and crashed such a server (SIGSEGV) about once in 40 dumps."""
    import threading
    import time

    port = free_port()
    err_path = tmp_path / "stderr.txt"  # a file: sixty dumps would fill a pipe nobody reads
    with err_path.open("w") as err, start(tmp_path / "db", port, stderr=err) as proc:
        try:
            wait_ready(proc)
            sent, failures, done = [0], [], threading.Event()

            def feed() -> None:
                while not done.is_set():
                    try:
                        export(port, sent[0])
                        sent[0] += 1
                    except Exception as exc:  # noqa: BLE001 - reported below
                        failures.append(exc)
                        return

            feeder = threading.Thread(target=feed)
            feeder.start()
            for _ in range(60):
                proc.send_signal(signal.SIGUSR1)
                time.sleep(0.02)
            time.sleep(0.5)  # the last dump written
            done.set()
            feeder.join(60)
            assert not failures, failures
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "Current thread" in err_path.read_text()
    with ta.open(tmp_path / "db") as db:
        assert db.stats()["samples"] == 100 * sent[0] > 0


_TGKILL = {"x86_64": 234, "aarch64": 131}.get(os.uname().machine)


def _threads_taking(pid: int, sig: int) -> list[int]:
    """The process's threads that do not block ``sig`` (jemalloc's background threads block
    every signal: one sent to them alone is never delivered)."""
    out = []
    for task in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        status = Path(f"/proc/{pid}/task/{task}/status").read_text()
        line = next(ln for ln in status.splitlines() if ln.startswith("SigBlk:"))
        blocked = int(line.split()[1], 16)
        if not blocked >> (sig - 1) & 1:
            out.append(int(task))
    return out


@pytest.mark.skipif(
    sys.platform != "linux" or _TGKILL is None, reason="tgkill: Linux on x86_64 or aarch64"
)
def test_sigterm_received_by_another_thread_still_stops_the_server(tmp_path):
    """The kernel may hand a process's SIGTERM to any of its threads; Python then runs the
    handler only when the main thread runs. Sent to each thread but the main one in turn (the
    listeners' and the database's), it stops the server all the same."""
    import ctypes
    import time

    syscall = ctypes.CDLL(None, use_errno=True).syscall
    port = free_port()
    with start(tmp_path / "db", port) as proc:
        wait_ready(proc)
        export(port, 0)
        tasks = [t for t in _threads_taking(proc.pid, signal.SIGTERM) if t != proc.pid]
        assert tasks, "the server runs threads besides its main one"
        try:
            assert syscall(_TGKILL, proc.pid, tasks[-1], signal.SIGTERM) == 0, ctypes.get_errno()
            started = time.monotonic()
            assert proc.wait(timeout=30) == 0
            assert time.monotonic() - started < 10
        finally:
            if proc.poll() is None:  # it missed the signal: the test fails, the server goes
                proc.kill()
                proc.wait()
        assert proc.stdout.read().strip().endswith("tsdb-arrow: stopped")
    with ta.open(tmp_path / "db") as db:
        assert db.stats()["samples"] == 100


def test_sigkill_after_acknowledged_exports_loses_nothing(tmp_path):
    port = free_port()
    with start(tmp_path / "db", port) as proc:
        wait_ready(proc)
        for i in range(5):
            export(port, i)  # each answered 200: in the WAL
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    with ta.open(tmp_path / "db") as db:
        assert db.stats()["wal"]["replayed_samples"] == 500
        assert db.select("feed").collect()["value"].to_list() == [float(v) for v in range(500)]


def test_a_locked_directory_or_a_taken_port_exits_non_zero_with_a_message(tmp_path):
    port = free_port()
    with ta.open(tmp_path / "db"):
        with start(tmp_path / "db", port) as proc:
            assert proc.wait(timeout=60) == 1
            assert "lock" in proc.stderr.read().lower()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with start(tmp_path / "db", taken.getsockname()[1]) as proc:
            assert proc.wait(timeout=60) == 1
            assert "cannot listen for OTLP/HTTP" in proc.stderr.read()


def test_the_make_run_demo_serves_a_live_sdk_feed_and_stops(tmp_path, capsys):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")
    from tsdb_arrow.server import demo

    assert demo.main(["--data", str(tmp_path / "db"), "--rounds", "3"]) == 0
    out = capsys.readouterr().out
    assert "tsdb-arrow: ready" in out and "tsdb-arrow: stopped" in out
    assert "exported 12 points in 3 requests" in out
    with ta.open(tmp_path / "db") as db:
        orders = db.select("orders_total").collect()
        newest = orders.sort("timestamp").group_by("region").last()
        assert newest["value"].sum() == 60.0  # 20 orders a round, 3 rounds


def test_the_demo_kills_a_server_that_does_not_stop_and_says_so(tmp_path, monkeypatch):
    """``make run`` must end: a server that does not stop after SIGTERM (here: stopped with
    SIGSTOP, so the SIGTERM stays pending) is killed after ``STOP_SECONDS``, and the demo fails
    saying why."""
    from tsdb_arrow.server import demo

    started: list[subprocess.Popen] = []
    popen = subprocess.Popen

    def recorded(*args, **kwargs) -> subprocess.Popen:
        started.append(popen(*args, **kwargs))
        return started[-1]

    def freeze(url: str, rounds: int) -> int:
        os.kill(started[0].pid, signal.SIGSTOP)
        return 0

    monkeypatch.setattr(demo.subprocess, "Popen", recorded)
    monkeypatch.setattr(demo, "_feed", freeze)
    monkeypatch.setattr(demo, "STOP_SECONDS", 1)
    with pytest.raises(RuntimeError, match="did not stop within 1 s of SIGTERM"):
        demo.main(["--data", str(tmp_path / "db"), "--rounds", "1"])
    assert started[0].poll() == -signal.SIGKILL
