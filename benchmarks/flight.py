"""``python -m benchmarks.flight``: select-all and write over Arrow Flight against the same calls
on a local database, same data, same run.

The server is a ``tsdb-arrow serve`` process on a free loopback port; the client is this
process (``ta.connect``). Select-all collects every sample of the real data set (38 label
columns) with the default cache warm on both sides (the local one a read-only open of the
served directory); write is ``write(table)`` of the whole table into a directory that holds
the same table a year earlier (written first on both sides: a fresh server process would
otherwise be timed on memory it touches for the first time, against a local process that has
written before), returning once the server's WAL has it, and the same table in batches
(``write_batches``, which keeps a few batches in flight). Local and Flight runs take turns;
the table prints the best of each, both rates and the ratio Flight / local (the goal: 0.7 or more).

Usage::

    python -m benchmarks.flight [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import tsdb_arrow as ta
from benchmarks.datasets import load_real, repo_root
from benchmarks.measure import best_of
from benchmarks.workers import wait_ready

GOAL = 0.7
#: Seconds any one Flight call may take: a stuck call fails the run instead of hanging it.
CALL_TIMEOUT = 300.0
#: Seconds a server may take to start, and to stop after SIGTERM, before the run gives up on it.
SERVER_TIMEOUT = 120.0
#: Seconds a stuck server is given to write its stacks before it is killed.
STACKS_WAIT = 2.0
#: Rows per batch of the batched write (a loader's batches; ``tsdb-arrow load`` sends 1 M).
BATCH_ROWS = 500_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(data: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cli = Path(sys.executable).with_name("tsdb-arrow")
    proc = subprocess.Popen(
        [str(cli), "serve", "--data", str(data), "--otlp-grpc", "off", "--otlp-http", "off",
         "--http", "off", "--flight", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_ready(proc, SERVER_TIMEOUT)  # raises, the server killed, if it never gets ready
    return proc, f"grpc://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen, timeout: float = SERVER_TIMEOUT) -> None:
    """SIGTERM the server (it flushes and exits) and close its pipe; a server still running
    ``timeout`` s later writes its threads' stacks to stderr (SIGUSR1), is killed and the run
    fails, instead of waiting for it for ever."""
    proc.terminate()
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(STACKS_WAIT)
        proc.kill()
        proc.communicate()
        raise RuntimeError(
            f"tsdb-arrow serve (pid {proc.pid}) did not exit within {timeout:.0f} s of SIGTERM; "
            "killed it (its threads' stacks are on stderr above)"
        ) from None


def _warmup(table: pa.Table) -> pa.Table:
    """The whole table a year earlier: written first on both sides, so that the timed write
    meets a process that has written as much before (kernels loaded, memory faulted in), as a
    long-running server and this benchmark's own process both have; the timed write then
    appends to the same series on both sides."""
    year = pa.scalar(365 * 86_400_000, pa.int64())
    return table.set_column(
        table.schema.get_field_index("timestamp"),
        "timestamp",
        pc.subtract(table.column("timestamp").cast(pa.int64()), year),
    )


def _writes(table, work: Path, repeat: int, batch_rows: int | None) -> tuple[float, float]:
    """Best time to write ``table`` into a fresh directory, locally and through a fresh server,
    taken in turns (the machine's load then weighs on both alike): as one ``write`` call, or
    (``batch_rows``) in batches of that many rows, the way ``tsdb-arrow load`` sends a file."""
    batches = None if batch_rows is None else table.to_batches(max_chunksize=batch_rows)
    warmup = _warmup(table)
    local_times, flight_times = [], []
    for i in range(repeat):
        path = work / f"local-write-{i}"
        with ta.open(path) as db:
            db.write(warmup)
            started = time.perf_counter()
            if batches is None:
                db.write(table)
            else:
                for batch in batches:
                    db.write(batch)
            local_times.append(time.perf_counter() - started)
        shutil.rmtree(path)
        path = work / f"flight-write-{i}"
        proc, address = _serve(path)
        try:
            with ta.connect(address, timeout=CALL_TIMEOUT) as client:
                client.write(warmup)
                started = time.perf_counter()
                if batches is None:
                    client.write(table)
                else:
                    for _ in client.write_batches(batches):
                        pass
                flight_times.append(time.perf_counter() - started)
        finally:
            _stop(proc)
        shutil.rmtree(path)
    return min(local_times), min(flight_times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flight")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    data = load_real(repo_root())
    table = data.table
    n = table.num_rows
    work = Path(tempfile.mkdtemp(prefix="tsdb-arrow-flight-bench-"))
    try:
        with ta.open(work / "warmup") as db:  # kernels compiled and loaded before any timing
            db.write(table.slice(0, 100_000))
            db.select().collect()
        shutil.rmtree(work / "warmup")
        local_write, flight_write = _writes(table, work, args.repeat, None)
        local_load, flight_load = _writes(table, work, args.repeat, BATCH_ROWS)

        with ta.open(work / "data") as db:
            db.write(table)
            db.flush()
        proc, address = _serve(work / "data")  # one directory: served, and opened read-only
        try:
            with (
                ta.connect(address, timeout=CALL_TIMEOUT) as client,
                ta.open(work / "data", read_only=True) as db,
            ):
                remote, local = client.select(), db.select()
                remote_frame, local_frame = remote.collect(), local.collect()  # caches warm
                assert remote_frame.equals(local_frame), "Flight and local select-alls differ"
                local_times, flight_times = [], []
                for _ in range(args.repeat):  # in turns: the machine's load weighs on both
                    local_times.append(best_of(1, local.collect)[0])
                    flight_times.append(best_of(1, remote.collect)[0])
                local_select, flight_select = min(local_times), min(flight_times)
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()[0]
    print(
        f"Arrow Flight on loopback vs local, {data.source}: {n:,} samples, "
        f"{len(data.labels)} label columns, best of {args.repeat}, load average {load:.1f}"
    )
    rows = [
        ("select-all (cache warm)", local_select, flight_select),
        ("write(table), one call", local_write, flight_write),
        (f"write, {BATCH_ROWS:,}-row batches", local_load, flight_load),
    ]
    print(f"| {'operation':<28} | {'local s':>8} | {'local M/s':>9} | {'flight s':>8} | "
          f"{'flight M/s':>10} | {'flight/local':>12} |")  # fmt: skip
    print(f"|{'-' * 30}|{'-' * 10}:|{'-' * 10}:|{'-' * 9}:|{'-' * 11}:|{'-' * 13}:|")
    ok = True
    for name, local, remote in rows:
        ratio = local / remote
        ok &= ratio >= GOAL
        print(f"| {name:<28} | {local:8.3f} | {n / local / 1e6:9.2f} | {remote:8.3f} | "
              f"{n / remote / 1e6:10.2f} | {ratio:11.2f}x |")  # fmt: skip
    print(f"goal: flight/local >= {GOAL}x: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
