"""SIGKILL at random moments of a writer whose head flushes by itself loses no acknowledged batch.

The harness is ``benchmarks/crash.py`` (``python -m benchmarks.crash --kills 1000`` runs a
thousand kills per fsync mode); here a few kills per mode, all in one data directory, so that
each child recovers what the previous one left. The checker itself is tested first, on
directories holding known damage.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import tsdb_arrow as ta
from benchmarks import crash
from tsdb_arrow.config import FSYNC_MODES

KILLS = 4  # per mode: about 2 s each (a child's start-up, then its writes)


def size(b: int) -> int:
    return crash.batch(b).height


def store(path: Path, frames: list[pl.DataFrame]) -> None:
    """``path`` as a writer of ``frames`` killed after its last write: the first two in a
    block, the rest in its WAL only."""
    live = path.with_name("live")
    with ta.open(live) as db:
        for i, frame in enumerate(frames):
            db.write(frame)
            if i == 1:
                db.flush()
        shutil.copytree(live, path)  # the directory as a SIGKILL leaves it


def flipped(b: int, row: int) -> pl.DataFrame:
    """Batch ``b`` with one value's lowest bit flipped."""
    frame = crash.batch(b)
    bits = frame["value"].to_numpy().view(np.uint64).copy()
    bits[row] ^= 1
    return frame.with_columns(pl.Series("value", bits.view(np.float64)))


STRANGER = pl.DataFrame(
    {"timestamp": [crash.SPAN + 1], "value": [1.0], "__name__": "crash_a", "s": "0"}
)


@pytest.mark.parametrize(
    ("frames", "must", "want"),
    [
        pytest.param([0, 1, 2, 3], {0, 1, 2, 3}, {}, id="whole"),
        pytest.param([0, 1, 2, 3, 4], {0, 1, 2, 3}, {"in_flight_kept": True}, id="in-flight"),
        pytest.param([0, 1, 2], {0, 1, 2, 3}, {"lost": [3]}, id="lost"),
        pytest.param([0, 1, 2, 3, ("head", 4)], {0, 1, 2, 3}, {"partial": [4]}, id="partial"),
        pytest.param([0, 1, 2, 3, "stranger"], {0, 1, 2, 3}, {"invented": 1}, id="stranger"),
        pytest.param(
            [0, 1, ("flip", 2), 3], {0, 1, 2, 3}, {"invented": 1, "partial": [2]}, id="bits"
        ),
        # Batch 2 was in flight at an earlier kill and found absent: it may not come back.
        pytest.param([0, 1, 2, 3], {0, 1, 3}, {"invented": size(2)}, id="resurrected"),
    ],
)
def test_the_checker_finds_what_a_directory_lacks_or_adds(tmp_path, frames, must, want):
    def frame(spec):
        if spec == "stranger":
            return STRANGER
        if isinstance(spec, tuple):
            kind, b = spec
            return crash.batch(b).head(100) if kind == "head" else flipped(b, 10)
        return crash.batch(spec)

    stored = [frame(spec) for spec in frames]
    store(tmp_path / "db", stored)
    finding = crash.check(tmp_path / "db", must, in_flight=4, attempted=5)
    expected = {
        "acknowledged": len(must),
        "in_flight_kept": False,
        "lost": [],
        "partial": [],
        "invented": 0,
        "duplicates": 0,
        "unflushed": 0,
        "torn_tails": 0,
        "other_warnings": [],
        **want,
    }
    assert {k: getattr(finding, k) for k in expected} == expected
    assert finding.ok == (want in ({}, {"in_flight_kept": True}))
    assert finding.replayed == sum(f.height for f in stored[2:])


def test_batches_never_share_a_series_and_timestamp():
    """Rows identify their batch, across the wrap of a late batch's phase (STEP - 1 ids)."""
    ids = range(1100)
    rows = pl.concat([crash.batch(b).with_columns(batch=pl.lit(b)) for b in ids])
    assert rows.select("__name__", "s", "timestamp").n_unique() == rows.height
    late = rows.filter(pl.col("timestamp") % crash.STEP != 0)["batch"].unique().sort()
    assert late.to_list() == [b for b in ids if b % 5 == 3 and b > crash.BACK]
    slots = rows.group_by("batch").agg(pl.col("timestamp").min() // crash.SPAN)
    assert (slots["timestamp"] <= slots["batch"]).all()  # late ones reach back, never ahead
    bits = rows["value"].to_numpy().view(np.uint64)
    assert np.count_nonzero(bits == crash.STALE) > 0
    assert np.count_nonzero((bits & crash.QUIET_NAN) == crash.QUIET_NAN) > 0


def check_run(summary: crash.Summary, kills: int) -> None:
    assert summary.failures == []
    assert (summary.lost, summary.partial, summary.invented) == (0, 0, 0)
    assert (summary.duplicates, summary.unflushed) == (0, 0)
    assert summary.kills == kills and summary.acknowledged >= kills
    assert summary.replayed > 0  # each child and check recovered from the WAL


@pytest.mark.parametrize("mode", FSYNC_MODES)
def test_sigkill_at_random_moments_loses_no_acknowledged_batch(tmp_path, mode):
    seed = FSYNC_MODES.index(mode)
    check_run(crash.run(mode, KILLS, seed, tmp_path, kills_per_directory=KILLS), KILLS)


@pytest.mark.skipif(not hasattr(ta.Database, "compact"), reason="no db.compact() yet")
def test_sigkill_with_compactions_loses_no_acknowledged_batch(tmp_path):
    summary = crash.run("interval", KILLS, 7, tmp_path, kills_per_directory=KILLS, compact_every=5)
    check_run(summary, KILLS)
