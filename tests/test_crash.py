"""A process killed with SIGKILL while it writes and flushes loses no acknowledged write.

The writer runs in a child process and reports each confirmed flush on stdout. The kill points
are chosen by the child's progress, never by a sleep: either the child stops itself at a named
point of round ``PAUSE_ROUND`` (samples in the head, a block half-written in its ``.tmp``
directory, a block renamed but its flush not yet returned) and says so, or the parent kills it
as soon as it sees a block directory appear on disk while the child runs on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import tsdb_arrow as ta

PER_FLUSH = 20_000
PAUSE_ROUND = 4

WRITER = textwrap.dedent(
    """
    import signal, sys
    import numpy as np
    import polars as pl
    import pyarrow.parquet as pq
    import tsdb_arrow as ta
    from tsdb_arrow.blocks import writer

    path, pause_at, pause_round = sys.argv[1], sys.argv[2], int(sys.argv[3])
    i = 0

    def pause(point):
        if pause_at == point and i == pause_round:
            print("paused", flush=True)
            signal.pause()  # until the parent's SIGKILL

    real_write_table, real_write_block = pq.write_table, writer.write_block

    def write_table(table, where, *args, **kwargs):
        real_write_table(table, where, *args, **kwargs)
        if ".tmp/" in str(where):
            pause("tmp")  # a file of the block is in its .tmp directory, not yet renamed

    def write_block(*args, **kwargs):
        meta = real_write_block(*args, **kwargs)
        pause("renamed")  # the block directory is renamed; flush() has not returned
        return meta

    pq.write_table, writer.write_block = write_table, write_block
    db = ta.open(path)
    while True:
        # Each round: 20,000 samples of 20 series in its own 2 h window, then a flush.
        ts = i * 2 * 3_600_000 + np.tile(np.arange(1000) * 1000, 20)
        frame = pl.DataFrame({
            "timestamp": ts,
            "value": np.full(20_000, float(i)),
            "__name__": "round",
            "series": np.repeat([str(s) for s in range(20)], 1000),
        })
        db.write(frame)
        pause("head")  # accepted, in the head only
        db.flush()
        print(i, flush=True)
        i += 1
    """
)


def _start(path: Path, pause_at: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), pause_at, str(PAUSE_ROUND)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _kill(proc: subprocess.Popen) -> list[str]:
    """SIGKILL the child; returns the lines it printed that were not read yet."""
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    return rest.split()


def _check_whole_rounds(path: Path) -> int:
    """Reopen: no .tmp directory is left and every round is whole, from blocks or replayed
    from the write-ahead log; returns the number of rounds stored."""
    with ta.open(path) as db:  # the dead process's lock is gone with it
        assert not list((path / "blocks").glob("*.tmp"))  # half-written blocks removed
        got = db.select("round").collect()
    rounds = got.height // PER_FLUSH
    with ta.open(path) as db:  # the replayed round was flushed by close()
        assert db.stats()["samples"] == rounds * PER_FLUSH == got.height
    per_round = got.group_by("value").len().sort("value")
    assert per_round["value"].to_list() == [float(i) for i in range(rounds)]
    assert set(per_round["len"].to_list()) == {PER_FLUSH}
    assert np.all(got["series"].is_not_null().to_numpy())
    return rounds


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pause_at", "stored"),
    [
        # Round 4 was acknowledged by write() in every case: the WAL brings it back.
        ("head", PAUSE_ROUND + 1),  # in the head only
        ("tmp", PAUSE_ROUND + 1),  # the half-written block is removed, the round replayed
        ("renamed", PAUSE_ROUND + 1),  # the renamed block is kept; the replay adds nothing
    ],
)
def test_sigkill_at_a_point_of_a_flush_keeps_every_acknowledged_round(tmp_path, pause_at, stored):
    """Killed at a known point of round 4, the directory reopens with every round, whole."""
    path = tmp_path / "db"
    with _start(path, pause_at) as proc:
        try:
            assert proc.stdout is not None
            lines = []
            while not lines or lines[-1] != "paused":
                line = proc.stdout.readline()
                assert line, f"the writer died before pausing at {pause_at!r}"
                lines.append(line.strip())
                assert len(lines) <= PAUSE_ROUND + 1, f"the writer never paused: {lines}"
            assert lines == [*map(str, range(PAUSE_ROUND)), "paused"]
            tmp_dirs = list((path / "blocks").glob("*.tmp"))
            assert len(tmp_dirs) == (1 if pause_at == "tmp" else 0)
            assert _kill(proc) == []
        finally:
            if proc.poll() is None:
                proc.kill()
    assert _check_whole_rounds(path) == stored


@pytest.mark.slow
def test_sigkill_of_a_running_writer_keeps_every_confirmed_round(tmp_path):
    """Killed wherever it is once its sixth block appears on disk, the writer loses no
    acknowledged round and leaves only whole ones."""
    path = tmp_path / "db"
    sixth = path / "blocks" / "b0000000006"
    with _start(path, "never") as proc:
        try:
            deadline = time.monotonic() + 300
            while not sixth.is_dir():
                assert proc.poll() is None, "the writer died before its sixth flush"
                assert time.monotonic() < deadline, "no sixth block after 300 s"
                time.sleep(0.001)  # polling interval only; the kill point is the block above
            lines = _kill(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    confirmed = int(lines[-1]) if lines else -1
    rounds = _check_whole_rounds(path)
    assert rounds >= 6
    assert rounds >= confirmed + 1
