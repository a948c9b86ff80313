"""Child processes of the load benchmarks: results collected without waiting for ever.

A benchmark's client processes put one result each on a queue. A client that fails (a refused
request, a timeout, a server gone) exits with a traceback and puts nothing, and a plain
``queue.get()`` then waits for ever: the run hangs instead of failing. These helpers watch the
processes while they wait, and stop what a failed run leaves behind.
"""

from __future__ import annotations

import queue as queues
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

POLL_SECONDS = 0.5
#: The longest a server may take to say it is ready.
READY_TIMEOUT_S = 120.0
#: The longest a benchmark's clients may take for their results before the run fails.
RUN_TIMEOUT_S = 1800.0


class Worker(Protocol):
    """What ``multiprocessing`` gives for a process (any start method)."""

    exitcode: int | None
    name: str
    pid: int | None

    def is_alive(self) -> bool: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...


class WorkerFailed(RuntimeError):
    """A child process of a benchmark ended without its result, or took too long."""


def collect(
    results: Any, workers: Sequence[Worker], what: str = "result", timeout: float = RUN_TIMEOUT_S
) -> list:
    """One item from ``results`` (a multiprocessing queue) per worker, in arrival order.

    Raises `WorkerFailed` as soon as a worker has exited with an error, when every worker has
    exited and items are still missing, or after ``timeout`` seconds."""
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < len(workers):
        try:
            got.append(results.get(timeout=POLL_SECONDS))
            continue
        except queues.Empty:
            pass
        failed = [w for w in workers if w.exitcode not in (None, 0)]
        if failed:
            codes = ", ".join(f"{w.name} exit code {w.exitcode}" for w in failed)
            raise WorkerFailed(f"a child process failed before its {what} ({codes}); "
                               "its traceback is on stderr")  # fmt: skip
        if not any(w.is_alive() for w in workers):
            try:  # the last items may have been in the pipe when the processes exited
                got.append(results.get(timeout=POLL_SECONDS))
                continue
            except queues.Empty:
                raise WorkerFailed(
                    f"every child process exited, {len(workers) - len(got)} without its {what}"
                ) from None
        if time.monotonic() > deadline:
            raise WorkerFailed(f"no {what} from {len(workers) - len(got)} child process(es) "
                               f"within {timeout:.0f} s")  # fmt: skip
    return got


def stop_all(workers: Iterable[Worker], grace: float = 10.0) -> None:
    """Terminate the workers still running (killed after ``grace`` seconds) and reap them all."""
    workers = [w for w in workers if w.pid is not None]  # started
    for w in workers:
        if w.is_alive():
            w.terminate()
    for w in workers:
        w.join(grace)
        if w.is_alive():
            w.kill()
            w.join(grace)


def wait_ready(
    server: subprocess.Popen, timeout: float = READY_TIMEOUT_S, line: str = "tsdb-arrow: ready"
) -> None:
    """Read the server's stdout up to ``line``, on a thread so that a server that neither gets
    ready nor exits fails too: raises `WorkerFailed`, the server killed, if it exits first or
    is not ready within ``timeout`` seconds."""
    assert server.stdout is not None
    stdout = server.stdout
    ready = threading.Event()

    def watch() -> None:
        for got in stdout:
            if got.strip() == line:
                ready.set()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    watcher.join(timeout)
    if ready.is_set():
        return
    exited = not watcher.is_alive()
    stop_server(server)
    watcher.join(timeout)  # at the end of the output of a process gone
    stdout.close()
    state = "exited" if exited else f"was not ready within {timeout:g} s"
    raise WorkerFailed(f"tsdb-arrow serve (pid {server.pid}) {state}; see its stderr above "
                       f"(exit code {server.returncode}, waiting for {line!r})")  # fmt: skip


def stop_server(server: subprocess.Popen, grace: float = 30.0) -> None:
    """Kill a server a failed run left running (a clean run has stopped it) and reap it."""
    if server.poll() is None:
        server.kill()
    server.wait(timeout=grace)
