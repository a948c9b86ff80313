"""``tsdb-arrow serve --flight`` as a process: kills on either side lose nothing acknowledged,
store no partial batch, and never leave the client hanging."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import tsdb_arrow as ta

CLI = Path(sys.executable).with_name("tsdb-arrow")
T0 = 1_700_000_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data: Path, port: int, *extra: str) -> subprocess.Popen:
    """A ``tsdb-arrow serve`` with Flight only, started and ready."""
    proc = subprocess.Popen(
        [str(CLI), "serve", "--data", str(data), "--otlp-grpc", "off", "--otlp-http", "off",
         "--http", "off", "--flight", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines = []
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise AssertionError(f"the server exited: {proc.communicate()[1]}")
        lines.append(line.strip())
        if line.strip() == "tsdb-arrow: ready":
            break
    assert f"tsdb-arrow: flight listening on 127.0.0.1:{port}" in lines
    no_token = "tsdb-arrow: no --auth-token-file: Flight and the Prometheus HTTP API bind loopback"
    assert f"{no_token} only" in lines
    return proc


def batch(i: int, rows: int) -> pl.DataFrame:
    """Batch ``i``: ``rows`` samples of 10 series, its own time range, value = batch number."""
    per = rows // 10
    return pl.DataFrame(
        {
            "timestamp": np.tile(T0 + i * per * 1000 + np.arange(per) * 1000, 10),
            "value": np.full(rows, float(i)),
            "__name__": "load",
            "series": np.repeat([f"s{k}" for k in range(10)], per),
        }
    )


def test_sigterm_stops_a_flight_server_cleanly(tmp_path):
    port = free_port()
    proc = serve(tmp_path / "db", port)
    try:
        with ta.connect(f"grpc://127.0.0.1:{port}") as client:
            assert client.write(batch(0, 1000)).rows == 1000
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.communicate()
    with ta.open(tmp_path / "db") as db:
        assert db.stats()["samples"] == 1000
        assert db.stats()["wal"]["replayed_samples"] == 0  # flushed at the stop


@pytest.mark.slow
def test_a_server_killed_mid_stream_is_a_clear_error_not_a_hang(tmp_path):
    port = free_port()
    proc = serve(tmp_path / "db", port)
    try:
        with ta.connect(f"grpc://127.0.0.1:{port}") as client:
            # 4 M samples of random values: stored chunks go on the wire as they are, so about
            # 32 MB that no codec shrinks, more than any buffer (constant values, used before,
            # took a few kB, and the whole stream could arrive before the kill)
            rng = np.random.default_rng(0)
            for i in range(4):
                client.write(batch(i, 1_000_000).with_columns(value=rng.random(1_000_000)))
            scan = client.select()
            outcome: dict[str, object] = {}

            def read() -> None:
                frames = scan.collect_batches(chunk_size=10_000)
                try:
                    first = next(iter(frames))
                    outcome["first"] = first.height
                    started.set()
                    proceed.wait(60)
                    outcome["rows"] = sum(f.height for f in frames)
                except BaseException as exc:  # noqa: BLE001 - what the reader saw
                    outcome["error"] = exc
                    started.set()

            started, proceed = threading.Event(), threading.Event()
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            assert started.wait(120), "no first frame"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            killed_at = time.monotonic()
            proceed.set()
            reader.join(60)
            assert not reader.is_alive(), "the client hangs on a dead server"
            assert time.monotonic() - killed_at < 30
    finally:
        proc.kill()
        proc.communicate()
    error = outcome.get("error")
    assert error is not None, f"read {outcome} of 4,000,000 rows from a killed server"
    chain = [error, error.__cause__, error.__context__]
    assert any(isinstance(e, ta.ConnectionLostError) for e in chain) or (
        "ConnectionLostError" in str(error)
    ), repr(error)


CLIENT = textwrap.dedent(
    """
    import sys
    import numpy as np, polars as pl
    import tsdb_arrow as ta
    sys.path.insert(0, {root!r})
    from tests.server.test_flight_process import batch
    client = ta.connect("grpc://127.0.0.1:{port}")
    done = client.write_batches(batch(i, {rows}) for i in range(10_000))
    for i, result in enumerate(done):
        print("acked", i, result.rows, flush=True)
    """
)


@pytest.mark.slow
def test_a_client_killed_mid_put_leaves_no_partial_batch(tmp_path):
    port = free_port()
    rows = 400_000
    root = str(Path(__file__).parents[2])
    proc = serve(tmp_path / "db", port)
    try:
        writer = subprocess.Popen(
            [sys.executable, "-c", CLIENT.format(root=root, port=port, rows=rows)],
            stdout=subprocess.PIPE,
            text=True,
        )
        acked = -1
        for line in writer.stdout:
            acked = int(line.split()[1])
            if acked >= 3:
                break
        time.sleep(0.05)  # in the middle of sending the next batches
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate(timeout=60)
        with ta.connect(f"grpc://127.0.0.1:{port}") as client:
            time.sleep(0.5)  # the server sees the broken stream
            frame = client.select("load").collect()
        # Then the server is killed too: what it acknowledged comes back from the WAL.
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    counts = frame.group_by("value").len().sort("value")
    stored = counts["value"].to_list()
    assert stored == [float(i) for i in range(len(stored))]  # batches in order, none skipped
    assert len(stored) >= acked + 1
    assert counts["len"].to_list() == [rows] * len(stored)  # each whole, none partial
    with ta.open(tmp_path / "db") as db:
        again = db.select("load").collect()
    assert again.height >= (acked + 1) * rows
    assert again.height % rows == 0


@pytest.mark.slow
def test_sigterm_with_a_stream_the_client_stopped_reading_exits_promptly(tmp_path):
    """SIGTERM while a do_get is being sent to a client that stopped reading: the call may
    never end (its write blocks); the server does not wait the grace for a stream that sends
    nothing, flushes and exits (pyarrow's exit-time finalizer would wait for it for ever)."""
    import pyarrow.flight as flight

    from tsdb_arrow.server import flight_wire as wire

    port = free_port()
    proc = serve(tmp_path / "db", port)
    address = f"grpc://127.0.0.1:{port}"
    raw = flight.connect(address)
    try:
        with ta.connect(address) as client:
            client.write(batch(0, 4_000_000))
            schema = list(client.select().collect_schema())
            refs = client.series()["series_ref"].to_numpy()
        # Decoded samples (64 MB), not stored chunks: more than gRPC and the sockets buffer.
        ticket = wire.SelectTicket(refs.tobytes(), None, None, schema, True, payloads=False)
        reader = raw.do_get(flight.Ticket(ticket.encode()))
        reader.read_chunk()  # and no more
        time.sleep(1)  # while the server still sends
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=60) == 0
        waited = time.monotonic() - started
        assert waited < 8, waited  # the stop, a flush of 4 M samples; not the 10 s grace
    finally:
        proc.kill()
        _, err = proc.communicate()
        raw.close()
    assert "Traceback" not in err
    with ta.open(tmp_path / "db") as db:
        assert db.stats()["samples"] == 4_000_000
        assert db.stats()["wal"]["replayed_samples"] == 0  # flushed at the stop


def test_a_stop_waits_for_writes_and_sending_streams_not_stalled_ones():
    from tsdb_arrow.server.flight import STALLED_AFTER, FlightService

    service = FlightService.__new__(FlightService)  # the bookkeeping only, no server
    service._calls_lock = threading.Lock()
    service._changing, service._streams = 0, {}
    now = time.monotonic()
    assert not service.draining(now)
    service._streams[1] = now - STALLED_AFTER - 0.1  # a client that stopped reading
    assert not service.draining(now)
    service._streams[2] = now - STALLED_AFTER / 2  # one still sending
    assert service.draining(now)
    del service._streams[2]
    with service._changing_call():  # a write or an action
        assert service.draining(now)
    assert not service.draining(now)
    sent = list(service._tracked(iter([10, 20])))
    assert sent == [10, 20] and service._streams == {1: now - STALLED_AFTER - 0.1}
