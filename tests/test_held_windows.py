"""The head holds every window writes keep reaching: shuffled multi-window loads flush once.

A span-due background flush writes only the complete windows no write touched within
``recent.QUIET_SECONDS``; samples reaching a window after its block was written go to an
overlapping block. These tests check the exact sample and replaced-row counts, bit-exact round
trips, and that the held windows survive a crash through the write-ahead log.
"""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tsdb_arrow.ingest import recent
from tsdb_arrow.ingest.recent import RecentWrites, all_held, held, window_start

HOUR = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % (2 * HOUR)  # a window start


def shuffled_rows(seed: int, n_series: int = 6, hours: int = 7, step: int = 60_000) -> pl.DataFrame:
    """Samples of ``n_series`` over ``hours`` (four 2 h windows), shuffled, with repeats of
    earlier (series, timestamp) pairs, NaN payloads and a stale marker."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(0, hours * HOUR, step)
    sid = np.repeat(np.arange(n_series), len(ts))
    times = np.tile(ts, n_series)
    again = rng.choice(len(sid), len(sid) // 10, replace=False)  # written a second time
    sid, times = np.concatenate([sid, sid[again]]), np.concatenate([times, times[again]])
    values = rng.normal(size=len(sid))
    bits = values.view(np.uint64)
    bits[::97] = 0x7FF8_0000_DEAD_BEEF  # a NaN payload
    bits[5] = 0x7FF0000000000002  # the stale marker
    order = rng.permutation(len(sid))
    return pl.DataFrame(
        {
            "timestamp": times[order],
            "value": bits.view(np.float64)[order],
            "__name__": "m",
            "host": [f"h{i}" for i in sid[order]],
        }
    )


def expected(rows: pl.DataFrame) -> pl.DataFrame:
    """Last write wins per (series, timestamp), sorted as select returns it."""
    return (
        rows.with_row_index("order")
        .sort("order")
        .group_by(["__name__", "host", "timestamp"])
        .last()
        .sort(["host", "timestamp"])
        .select("timestamp", "value", "__name__", "host")
    )


def replaced_in_order(batches: list[pl.DataFrame]) -> list[int]:
    """Per batch: rows whose (series, timestamp) an earlier row (any batch) already wrote."""
    seen: set[tuple[str, int]] = set()
    out = []
    for b in batches:
        n = 0
        for host, t in zip(b["host"].to_list(), b["timestamp"].to_list()):
            n += (host, t) in seen
            seen.add((host, t))
        out.append(n)
    return out


def stored(db: ta.Database) -> pl.DataFrame:
    got = db.select("m").collect().sort(["host", "timestamp"])  # select: by series ref
    return got.with_columns(pl.col("timestamp").dt.epoch("ms")).select(
        "timestamp", "value", "__name__", "host"
    )


def assert_bit_equal(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.select("timestamp", "__name__", "host").equals(
        want.select("timestamp", "__name__", "host")
    )
    assert np.array_equal(
        got["value"].to_numpy().view(np.uint64), want["value"].to_numpy().view(np.uint64)
    )


def split(rows: pl.DataFrame, n: int) -> list[pl.DataFrame]:
    bounds = np.linspace(0, rows.height, n + 1).astype(int)
    return [rows.slice(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]


def own_flushes(db: ta.Database) -> ta.Database:
    """``db`` without its background thread: the test's ``_flush`` calls are the only ones."""
    db._background.stop()
    return db


@pytest.fixture
def long_quiet(monkeypatch):
    """Every window a write touched stays held for the whole test."""
    monkeypatch.setattr(recent, "QUIET_SECONDS", 3600.0)


def test_shuffled_multi_window_batches_stay_in_the_head_until_flush(tmp_path, long_quiet):
    rows = shuffled_rows(1)
    batches = split(rows, 9)
    with own_flushes(ta.open(tmp_path / "db")) as db:
        results = [db.write(b) for b in batches]
        assert [r.replaced for r in results] == replaced_in_order(batches)
        assert db._flush_due() == "span"  # each batch spans four windows
        assert db._flush(only_if_due=True) == []  # ... all of them written to just now
        stats = db.stats()
        assert (stats["blocks"], stats["head_samples"]) == (0, rows.height)
        assert len(db.flush()) == 4  # one block per window, once
        want = expected(rows)
        stats = db.stats()
        assert (stats["samples"], stats["blocks"]) == (want.height, 4)
        assert sum(r.added for r in results) == want.height
        assert_bit_equal(stored(db), want)


def test_a_quiet_window_is_flushed_and_later_samples_overlap_it(tmp_path, long_quiet):
    """The background flush writes the window writes stopped reaching; a late batch into it
    counts the rows it replaces in the block and lands in an overlapping block."""
    first = shuffled_rows(2, hours=3)  # windows T0 and T0 + 2h
    newer = pl.DataFrame(
        {"timestamp": [T0 + 5 * HOUR], "value": [1.5], "__name__": "m", "host": "h0"}
    )
    with own_flushes(ta.open(tmp_path / "db")) as db:
        db.write(first)
        db.write(newer)
        assert db._flush(only_if_due=True) == []  # the first batch's windows are held
        db._recent.quiet = 0.0  # ... until writes have been quiet long enough
        assert len(db._flush(only_if_due=True)) == 2  # both complete windows, not the newest
        stats = db.stats()
        assert (stats["blocks"], stats["head_samples"]) == (2, 1)
        late = pl.DataFrame(
            {
                "timestamp": [T0, T0 + 30_000, T0 + HOUR, T0 + HOUR],
                "value": [7.0, 8.0, 9.0, 10.0],
                "__name__": "m",
                "host": ["h1", "h1", "h2", "h2"],
            }
        )
        # T0 and T0+1h of h1/h2 are stored; T0+30 s is new; T0+1h twice in the batch.
        assert db.write(late).replaced == 3
        db.flush()
        want = expected(pl.concat([first, newer, late]))
        assert db.stats()["samples"] == want.height
        assert_bit_equal(stored(db), want)
        assert db.stats()["blocks"] == 4  # the late rows' block overlaps the first window's
        db.compact()
        assert db.stats()["blocks"] < 4 and db.stats()["samples"] == want.height
        assert_bit_equal(stored(db), want)


def test_held_windows_survive_a_crash(tmp_path, long_quiet):
    """What the head holds is in the write-ahead log, before and after a span flush that kept
    windows: a copy of the directory (a crash) gives every sample back, bit for bit."""
    rows = shuffled_rows(3)
    path = tmp_path / "db"
    with own_flushes(ta.open(path)) as db:
        for b in split(rows, 5):
            db.write(b)
        shutil.copytree(path, tmp_path / "crash1", ignore=shutil.ignore_patterns("LOCK"))
        newer = pl.DataFrame(
            {"timestamp": [T0 + 9 * HOUR], "value": [2.5], "__name__": "m", "host": "h9"}
        )
        db.write(newer)
        db._recent.quiet = 0.0
        assert len(db._flush(only_if_due=True)) == 4  # the newest window stays, in a checkpoint
        shutil.copytree(path, tmp_path / "crash2", ignore=shutil.ignore_patterns("LOCK"))
    with ta.open(tmp_path / "crash1") as db:
        assert db.stats()["wal"]["replayed_samples"] == rows.height
        assert_bit_equal(stored(db), expected(rows))
    with ta.open(tmp_path / "crash2") as db:
        assert db.stats()["wal"]["replayed_samples"] == 1
        assert_bit_equal(stored(db), expected(pl.concat([rows, newer])))


def test_the_background_thread_flushes_a_window_once_it_is_quiet(tmp_path, monkeypatch):
    monkeypatch.setattr(recent, "QUIET_SECONDS", 0.2)
    with ta.open(tmp_path / "db") as db:
        db.write(
            pl.DataFrame({"timestamp": [T0, T0 + 3 * HOUR], "value": [1.0, 2.0], "__name__": "m"})
        )
        assert db._background.wait_idle(timeout=60)  # waits for the pass asked for at +0.2 s
        stats = db.stats()
        assert (stats["blocks"], stats["head_samples"]) == (1, 1)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16), n_batches=st.integers(1, 12), quiet=st.sampled_from([0.0, 3600.0])
)
def test_any_batching_round_trips_with_exact_counts(tmp_path_factory, seed, n_batches, quiet):
    """Shuffled multi-window rows in any number of batches, flushed between batches or held:
    the replaced counts, the samples counted and the selection are exact."""
    rows = shuffled_rows(seed, n_series=3, hours=9, step=600_000)
    batches = split(rows, n_batches)
    with own_flushes(ta.open(tmp_path_factory.mktemp("db") / "db")) as db:
        db._recent.quiet = quiet
        results = []
        for b in batches:
            results.append(db.write(b))
            db._flush(only_if_due=True)  # what the background thread would do now
        assert [r.replaced for r in results] == replaced_in_order(batches)
        want = expected(rows)
        db.flush()
        assert db.stats()["samples"] == want.height
        assert_bit_equal(stored(db), want)


def test_recent_writes_hold_the_ranges_they_touched():
    r = RecentWrites(2 * HOUR, quiet=10.0)
    r.note(T0 + 1, T0 + 5 * HOUR, now=100.0)  # windows T0 .. T0 + 4h
    r.note(T0 + 9 * HOUR, T0 + 9 * HOUR, now=101.0)
    r.note(T0 + 9 * HOUR + 5, T0 + 9 * HOUR + 7, now=102.0)  # the same window: renewed
    ranges = r.ranges(105.0)
    assert ranges == [(T0, T0 + 4 * HOUR), (T0 + 8 * HOUR, T0 + 8 * HOUR)]
    assert held(T0 + 2 * HOUR, ranges) and not held(T0 + 6 * HOUR, ranges)
    assert all_held(T0, T0 + 4 * HOUR, 2 * HOUR, ranges)
    assert not all_held(T0, T0 + 6 * HOUR, 2 * HOUR, ranges)
    assert r.next_release(105.0) == 110.0
    assert r.ranges(110.0) == [(T0 + 8 * HOUR, T0 + 8 * HOUR)]
    assert r.ranges(112.0) == [] and r.next_release(112.0) is None
    assert window_start(-(2**63), 2 * HOUR) == -(2**63)
    assert window_start(-1, 2 * HOUR) == -2 * HOUR


def test_a_pass_asked_for_later_runs_then_and_wait_idle_waits_for_it():
    import time

    from tsdb_arrow.background import BackgroundWorker

    ran: list[float] = []
    worker = BackgroundWorker(lambda: ran.append(time.monotonic()), name="t", interval=60.0)
    try:
        assert worker.wait_idle(timeout=10)
        asked = time.monotonic()
        worker.request_at(asked + 0.3)
        worker.request_at(asked + 5.0)  # a later time does not postpone the earlier one
        assert worker.wait_idle(timeout=10)
        assert len(ran) == 1 and ran[0] >= asked + 0.3
        assert ran[0] < asked + 5.0
    finally:
        worker.stop()
