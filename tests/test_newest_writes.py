"""Writes whose series each move forward skip the replacement check (``ingest/newest.py``);
the replaced counts stay exact wherever a row reaches back: head, blocks, deletes, reopen."""

from __future__ import annotations

import numpy as np
import polars as pl

import tsdb_arrow as ta
from tsdb_arrow.model import REF

T0 = 1_795_392_000_000


def frame(ts: list[int], names: list[str], value: float = 1.0) -> pl.DataFrame:
    return pl.DataFrame({"timestamp": ts, "value": [value] * len(ts), "__name__": names})


def refs_of(db: ta.Database, names: list[str]) -> np.ndarray:
    series = db.series()
    by_name = dict(zip(series["__name__"].to_list(), series[REF].to_list()))
    return np.array([by_name[n] for n in names], dtype=np.uint64)


def pair_set_built(db: ta.Database) -> bool:
    return db._head.floats._pairs is not None


def test_a_feed_moving_forward_never_builds_the_pair_set(tmp_path):
    """Time-major rounds over 50 series (every series at one time, then the next): each batch
    reaches the newest stored time but no series' own newest sample."""
    names = [f"s{i}" for i in range(50)]
    with ta.open(tmp_path / "db") as db:
        results = [db.write(frame([T0] * 25, names[:25])), db.write(frame([T0] * 25, names[25:]))]
        refs = refs_of(db, names)
        for step in range(1, 6):
            ts = np.full(50, T0 + 1000 * step, dtype=np.int64)
            results.append(db.write_refs(refs[:25], ts[:25], np.full(25, 2.0)))
            results.append(db.write_refs(refs[25:], ts[25:], np.full(25, 2.0)))
        assert [r.replaced for r in results] == [0] * 12
        assert not pair_set_built(db)
        assert db.stats()["samples"] == 300


def test_rows_at_or_before_their_series_newest_are_counted_exactly(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(frame([T0, T0 + 1000], ["a", "a"]))
        db.write(frame([T0 + 5000], ["b"]))
        a, b = refs_of(db, ["a", "b"])
        # One row at a's newest time among rows newer than their series' newest: one replaced.
        got = db.write_refs(np.array([b, a, b], np.uint64), np.array([T0 + 6000, T0 + 1000,
                            T0 + 7000]), np.ones(3))  # fmt: skip
        assert got.replaced == 1 and pair_set_built(db)
        # Against a block: flushed, then a row at a's (stored) newest time and one newer.
        db.flush()
        got = db.write_refs(np.array([a, a], np.uint64), np.array([T0 + 1000, T0 + 2000]),
                            np.ones(2))  # fmt: skip
        assert got.replaced == 1
        # A row before the series' newest sample but at no stored time replaces nothing.
        got = db.write_refs(np.array([a], np.uint64), np.array([T0 + 1500]), np.ones(1))
        assert got.replaced == 0
        # Repeats within a batch of newer rows are still counted.
        got = db.write_refs(np.array([b, b], np.uint64), np.array([T0 + 9000] * 2), np.ones(2))
        assert got.replaced == 1
        db.flush()
        assert db.stats()["samples"] == 2 + 1 + 2 + 1 + 1 + 1  # a: T0, +1, +1.5, +2; b: +5..+9


def test_a_new_series_behind_the_newest_time_starts_from_nothing(tmp_path):
    """A series first written at a time before everything stored (a lagging exporter): its
    next rows are newer than its own newest sample and skip the check; a repeat is counted."""
    with ta.open(tmp_path / "db") as db:
        db.write(frame([T0 + 60_000], ["ahead"]))
        assert db.write(frame([T0, T0], ["late1", "late2"])).replaced == 0
        assert db.write(frame([T0 + 1000, T0 + 1000], ["late1", "late2"])).replaced == 0
        assert not pair_set_built(db)
        assert db.write(frame([T0 + 1000, T0 + 2000], ["late1", "late2"])).replaced == 1
        db.flush()
        assert db.stats()["samples"] == 1 + 2 + 2 + 1


def test_deleted_and_reopened_samples_are_checked_in_full(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(frame([T0, T0 + 1000], ["a", "a"]))
        db.delete("a", start=T0 + 1000, end=T0 + 1000)
        # The bound stays at T0 + 1 s: the row is checked, and nothing stored is there.
        assert db.write(frame([T0 + 1000], ["a"])).replaced == 0
        assert db.write(frame([T0 + 1000], ["a"])).replaced == 1
    with ta.open(tmp_path / "db") as db:  # replayed from the WAL: no bounds yet
        assert db.write(frame([T0 + 1000, T0 + 2000], ["a", "a"])).replaced == 1
        assert db.write(frame([T0], ["a"])).replaced == 1
        db.flush()
        assert db.stats()["samples"] == 3


def test_a_stored_series_written_again_beside_a_new_one_counts_its_replacements(tmp_path):
    """A batch of a series stored before (not yet seen by this process) and a new series:
    whichever comes first in the batch and whichever ref is smaller, the stored series' rows
    replace their samples and the new series' rows add theirs. (The series that were new used
    to be picked by their position in the batch's sorted set list against the numbering of
    its rows, so half the arrangements counted the stored series' rows as new.)"""
    path = tmp_path / "db"
    with ta.open(path) as db:
        db.write(frame([T0, T0 + 1000, T0 + 2000], ["old"] * 3))
    for k, (first, second) in enumerate([("old", "new0"), ("new1", "old")]):
        with ta.open(path) as db:  # a fresh process's view: no newest bounds yet
            ts = [T0, T0 + 1000, T0 + 2000]
            later = [T0 + 5000 + 1000 * k + i for i in range(3)]
            times = {"old": ts, f"new{k}": later}
            rows = frame(times[first] + times[second], [first] * 3 + [second] * 3, value=2.0)
            got = db.write(rows)
            assert (got.rows, got.replaced, got.added) == (6, 3, 3)
            db.flush()
            assert db.stats()["samples"] == 3 + 3 * (k + 1)
    with ta.open(path) as db:
        old = db.select("old").collect()
        assert old["value"].to_list() == [2.0, 2.0, 2.0]
