"""A process killed with SIGKILL while it flushes leaves only whole blocks behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tsdb_arrow as ta

PER_FLUSH = 20_000
HOUR = 3_600_000

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import polars as pl
    import tsdb_arrow as ta

    db = ta.open(sys.argv[1])
    i = 0
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
        db.flush()
        print(i, flush=True)
        i += 1
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.13])
def test_sigkill_during_flushes_leaves_only_whole_blocks(tmp_path, delay):
    path = tmp_path / "db"
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            confirmed = -1
            assert proc.stdout is not None
            while confirmed < 3:
                line = proc.stdout.readline()
                assert line, "the writer died before flushing"
                confirmed = int(line)
            time.sleep(delay)  # somewhere inside a later write or flush
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == -signal.SIGKILL

    with ta.open(path) as db:  # the dead process's lock is gone with it
        stats = db.stats()
        assert not list((path / "blocks").glob("*.tmp"))  # half-written blocks removed
        rounds = stats["blocks"]
        # Every confirmed flush is there, each block whole; nothing else.
        assert rounds >= confirmed + 1
        assert stats["samples"] == rounds * PER_FLUSH
        got = db.select("round").collect()
    assert got.height == rounds * PER_FLUSH
    per_round = got.group_by("value").len().sort("value")
    assert per_round["value"].to_list() == [float(i) for i in range(rounds)]
    assert set(per_round["len"].to_list()) == {PER_FLUSH}
    assert np.all(got["series"].is_not_null().to_numpy())
