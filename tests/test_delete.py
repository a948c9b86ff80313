"""Deletes: hidden at once, persisted, surviving reopen and SIGKILL; later writes stay."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import polars as pl
import pytest

import tsdb_arrow as ta

from .processes import kill_after

HOUR = 3_600_000


def frame(name: str, host: str, ts, values) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": np.asarray(ts, np.int64),
            "value": np.asarray(values, np.float64),
            "__name__": name,
            "host": host,
        }
    )


def rows(db: ta.Database, selector: str | None = None) -> list[tuple[str, str, int, float]]:
    got = db.select(selector).collect().sort(["__name__", "host", "timestamp"])
    return list(
        zip(
            got["__name__"].to_list(),
            got["host"].to_list(),
            got["timestamp"].dt.epoch("ms").to_list(),
            got["value"].to_list(),
        )
    )


def fill(db: ta.Database) -> None:
    """m{host=a|b} at 0..9 s in a block, m{host=a} at 10..14 s in the head."""
    db.write(frame("m", "a", np.arange(10) * 1000, np.arange(10)))
    db.write(frame("m", "b", np.arange(10) * 1000, np.arange(10) + 100))
    db.flush()
    db.write(frame("m", "a", np.arange(10, 15) * 1000, np.arange(10, 15)))


def test_delete_hides_block_and_head_samples_at_once_with_exact_counts(tmp_path):
    with ta.open(tmp_path / "db") as db:
        fill(db)
        assert db.delete('m{host="a"}', start=5000, end=11_000) == 1
        want_a = [("m", "a", t * 1000, float(t)) for t in [0, 1, 2, 3, 4, 12, 13, 14]]
        want_b = [("m", "b", t * 1000, float(t + 100)) for t in range(10)]
        assert rows(db) == want_a + want_b
        stats = db.stats()
        assert stats["samples"] == len(want_a) + len(want_b)
        assert stats["head_samples"] == 3
        db.flush()
        assert rows(db) == want_a + want_b
        assert db.stats()["samples"] == len(want_a) + len(want_b)
    with ta.open(tmp_path / "db") as db:  # persisted
        assert rows(db) == want_a + want_b
        assert db.stats()["samples"] == len(want_a) + len(want_b)


def test_samples_written_after_a_delete_in_its_range_stay(tmp_path):
    with ta.open(tmp_path / "db") as db:
        fill(db)
        db.delete("m", start=0, end=20_000)
        assert rows(db) == []
        assert db.stats()["samples"] == 0
        db.write(frame("m", "a", [3000], [33.0]))  # same series and time as a deleted one
        assert rows(db) == [("m", "a", 3000, 33.0)]
        db.flush()
        assert rows(db) == [("m", "a", 3000, 33.0)]
        assert db.stats()["samples"] == 1
    with ta.open(tmp_path / "db") as db:
        assert rows(db) == [("m", "a", 3000, 33.0)]


def test_delete_of_all_time_and_of_nothing(tmp_path):
    with ta.open(tmp_path / "db") as db:
        fill(db)
        assert db.delete('m{host="zzz"}') == 0
        assert db.delete("nothing_here") == 0
        assert len(rows(db)) == 25
        assert db.delete('{host="b"}') == 1
        assert {r[1] for r in rows(db)} == {"a"}
        with pytest.raises(ta.TimeRangeError):
            db.delete("m", start=10, end=1)
        with pytest.raises(ta.SelectorError):
            db.delete("m{")


def test_delete_hides_histogram_samples(tmp_path):
    hist = pl.DataFrame(
        {
            "timestamp": [1000, 2000, 3000],
            "__name__": "lat",
            "histogram": [{"scale": 0, "count": 0}] * 3,
        }
    )
    with ta.open(tmp_path / "db") as db:
        db.write(hist.slice(0, 2))
        db.flush()
        db.write(hist.slice(2, 1))
        db.delete("lat", start=1500, end=2500)
        got = db.select_histograms("lat").collect()
        assert got["timestamp"].dt.epoch("ms").to_list() == [1000, 3000]


def test_delete_on_a_read_only_open_is_refused_and_the_reader_sees_deletes(tmp_path):
    with ta.open(tmp_path / "db") as db:
        fill(db)
        db.flush()
        reader = ta.open(tmp_path / "db", read_only=True)
        with pytest.raises(ta.ReadOnlyError):
            reader.delete("m")
        db.delete('m{host="b"}')
        reader.refresh()
        assert {r[1] for r in rows(reader)} == {"a"}
        reader.close()


CHILD = textwrap.dedent(
    """
    import signal, sys
    import numpy as np, polars as pl
    import tsdb_arrow as ta
    db = ta.open(sys.argv[1])
    def frame(host, ts, values):
        return pl.DataFrame({"timestamp": np.asarray(ts, np.int64),
                             "value": np.asarray(values, np.float64),
                             "__name__": "m", "host": host})
    db.write(frame("a", np.arange(10) * 1000, np.arange(10)))
    db.flush()
    db.write(frame("a", np.arange(10, 20) * 1000, np.arange(10, 20)))
    db.delete("m", start=5000, end=15_000)
    db.write(frame("a", [7000], [77.0]))
    print("done", flush=True)
    signal.pause()
    """
)


def test_a_delete_survives_sigkill_and_keeps_the_write_after_it(tmp_path):
    kill_after([sys.executable, "-c", CHILD, str(tmp_path / "db")], "done")
    with ta.open(tmp_path / "db") as db:
        got = [(t, v) for _, _, t, v in rows(db)]
    want = [(t * 1000, float(t)) for t in range(20) if not 5 <= t <= 15]
    want = sorted([*want, (7000, 77.0)])
    assert got == want
