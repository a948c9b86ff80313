"""``benchmarks.flight`` runs end to end (on the shipped 15-minute excerpt) and prints its table;
a stuck run fails with every thread's stack instead of hanging the test run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks import flight as bench
from tests.conftest import REAL_SLICE

ROOT = Path(__file__).resolve().parents[2]
#: Seconds the smoke run may take (about 30 s alone, a few minutes on a loaded machine).
RUN_TIMEOUT = 900


def _run_bounded(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``args`` in a session of its own; past ``timeout`` every process of it (the benchmark
    and its servers) dumps its threads' stacks (faulthandler, SIGABRT) and is killed, and the
    test fails with those stacks."""
    env = {**os.environ, "TSDB_ARROW_REAL_DATA": str(REAL_SLICE), "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGABRT)
        time.sleep(2)  # the dumps are written
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{args} still ran after {timeout} s; stacks:\n{err[-20000:]}\n{out}")
    assert proc.returncode == 0, err
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.slow
def test_flight_benchmark_prints_both_ratios():
    run = [sys.executable, "-m", "benchmarks.flight", "--repeat", "1"]
    out = _run_bounded(run, RUN_TIMEOUT).stdout
    assert "460,800 samples, 38 label columns, best of 1" in out
    rows = [line for line in out.splitlines() if re.match(r"\| (select|write)", line)]
    assert [r.split("|")[1].strip() for r in rows] == [
        "select-all (cache warm)",
        "write(table), one call",
        "write, 500,000-row batches",
    ]
    for row in rows:
        assert re.search(r"\d+\.\d\dx \|$", row)
    assert re.search(r"goal: flight/local >= 0.7x: (met|NOT met)", out)


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path):
    """A server that does not exit on SIGTERM fails the run within the timeout, killed, after
    it was asked for its stacks (SIGUSR1, as ``tsdb-arrow serve`` answers it)."""
    ignores = "import faulthandler, signal, sys, time; " \
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
        "faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True); " \
        "print('up', flush=True); time.sleep(600)"  # fmt: skip
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", ignores], stdout=subprocess.PIPE, stderr=err, text=True
        )
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    failure: list[BaseException] = []

    def stop() -> None:
        try:
            bench._stop(proc, timeout=1.0)
        except BaseException as exc:  # noqa: BLE001 - checked below
            failure.append(exc)

    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    stopper.join(30)
    try:
        assert not stopper.is_alive(), "_stop waited for a server that ignores SIGTERM"
        assert len(failure) == 1 and isinstance(failure[0], RuntimeError)
        assert f"(pid {proc.pid}) did not exit within 1 s of SIGTERM; killed it" in str(failure[0])
        assert proc.returncode == -signal.SIGKILL
        assert "most recent call first" in stderr.read_text()
    finally:
        proc.kill()
        proc.wait()


def test_serve_gives_up_on_a_server_that_exits_before_ready(tmp_path, monkeypatch):
    """A server that exits without printing ``ready`` fails ``_serve`` at once."""
    monkeypatch.setattr(bench, "SERVER_TIMEOUT", 30.0)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"tsdb-arrow serve \(pid \d+\) exited; see its stderr"):
        bench._serve(not_a_dir)
    assert time.monotonic() - started < 30
