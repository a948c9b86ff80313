"""The load benchmarks' child processes: a failed client fails the run, never hangs it."""

from __future__ import annotations

import multiprocessing as mp
import queue
import subprocess
import sys
import time

import pytest

from benchmarks import workers
from benchmarks.workers import WorkerFailed, collect, stop_all, wait_ready


def _answer(out, value) -> None:  # noqa: ANN001 - a multiprocessing queue
    out.put(value)


def _fail(out) -> None:  # noqa: ANN001
    raise RuntimeError("remote write answered 503")  # what a refused request does


def _sleep(out) -> None:  # noqa: ANN001
    time.sleep(60)


@pytest.fixture
def ctx():
    return mp.get_context("spawn")  # as the benchmarks' children: no fork of this threaded process


def test_every_result_comes_back(ctx) -> None:
    out = ctx.Queue()
    procs = [ctx.Process(target=_answer, args=(out, i)) for i in range(3)]
    for p in procs:
        p.start()
    try:
        assert sorted(collect(out, procs, timeout=60)) == [0, 1, 2]
        for p in procs:
            p.join(60)
    finally:
        stop_all(procs)
    assert [p.exitcode for p in procs] == [0, 0, 0]


def test_a_client_that_raises_fails_the_run_at_once(ctx, capfd) -> None:
    out = ctx.Queue()
    procs = [ctx.Process(target=_answer, args=(out, 1)), ctx.Process(target=_fail, args=(out,))]
    for p in procs:
        p.start()
    started = time.monotonic()
    try:
        with pytest.raises(WorkerFailed, match=r"failed before its latencies \(.* exit code 1\)"):
            collect(out, procs, "latencies", timeout=600)
    finally:
        stop_all(procs)
    assert time.monotonic() - started < 30  # not the 600 s timeout
    assert "remote write answered 503" in capfd.readouterr().err


def test_a_client_that_hangs_times_out_and_is_stopped(ctx) -> None:
    out = ctx.Queue()
    procs = [ctx.Process(target=_sleep, args=(out,))]
    procs[0].start()
    with pytest.raises(WorkerFailed, match="no result from 1 child process"):
        collect(out, procs, timeout=1)
    stop_all(procs, grace=5)
    assert not procs[0].is_alive() and procs[0].exitcode == -15  # SIGTERM


class _Exited:
    """A worker that exited cleanly (its result lost)."""

    exitcode = 0
    name = "client"
    pid = 1

    def is_alive(self) -> bool:
        return False


def test_clients_that_exit_without_their_results_fail_the_run(monkeypatch) -> None:
    monkeypatch.setattr(workers, "POLL_SECONDS", 0.01)
    results: queue.Queue = queue.Queue()
    results.put("one")
    with pytest.raises(WorkerFailed, match="every child process exited, 1 without its result"):
        collect(results, [_Exited(), _Exited()], timeout=600)


def test_unstarted_workers_are_left_alone(ctx) -> None:
    stop_all([ctx.Process(target=_sleep, args=(None,))])  # no join of a process never started


def test_a_server_that_exits_before_ready_is_an_error() -> None:
    with subprocess.Popen([sys.executable, "-c", "print('starting')"], stdout=subprocess.PIPE,
                          text=True) as server:  # fmt: skip
        exited = r"exited; see its stderr above \(exit code 0, waiting for 'tsdb-arrow: ready'\)"
        with pytest.raises(WorkerFailed, match=exited):
            wait_ready(server)


def test_a_server_that_never_gets_ready_is_killed_and_an_error() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                          stdout=subprocess.PIPE, text=True) as server:  # fmt: skip
        started = time.monotonic()
        with pytest.raises(WorkerFailed, match="was not ready within 1 s"):
            wait_ready(server, timeout=1)
        assert time.monotonic() - started < 30
        assert server.returncode == -9  # killed, not left running
