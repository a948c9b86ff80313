"""Series that no block holds any more keep their labels in the WAL, so that writes acknowledged
after that (which log a known series by ref only) come back after SIGKILL.

Each scenario runs in a child killed with SIGKILL after its last acknowledged write; the
directory is then reopened and every series and sample compared exactly.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

import tsdb_arrow as ta

from .processes import kill_after

T0 = 1_795_392_000_000
H = 3_600_000

PRELUDE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import polars as pl
    import tsdb_arrow as ta

    T0, H = 1_795_392_000_000, 3_600_000

    def fr(host, start, n=10):
        ts = T0 + start + np.arange(n, dtype=np.int64) * 1000
        return pl.DataFrame(
            {"timestamp": ts, "value": np.arange(n, dtype=np.float64) + 1,
             "__name__": "m", "host": host}
        )

    db = ta.open(sys.argv[1], config=CONFIG)
    """
)

SCENARIOS = {
    # b's only block is rewritten without it (deleted), then b is written again
    "compacted away": (
        "{}",
        """
        db.write(fr("a", 0)); db.write(fr("b", 0)); db.flush()
        db.write(fr("a", 3 * H)); db.flush()
        db.delete('m{host="b"}')
        db.compact()
        db.write(fr("b", 5 * H))
        """,
    ),
    # ... and a flush's checkpoint drops the WAL segment that held b's labels
    "compacted away, then checkpointed": (
        "{}",
        """
        db.write(fr("a", 0)); db.write(fr("b", 0)); db.flush()
        db.write(fr("a", 3 * H)); db.flush()
        db.delete('m{host="b"}')
        db.compact()
        db.write(fr("a", 5 * H)); db.flush()
        db.write(fr("b", 6 * H))
        """,
    ),
    # b was only ever in the head and deleted there; a flush checkpoints
    "deleted in the head": (
        "{}",
        """
        db.write(fr("a", 0)); db.write(fr("b", 0))
        db.delete('m{host="b"}')
        db.flush()
        db.write(fr("b", H))
        """,
    ),
    # b's block expires by retention; b is written again within retention
    "expired": (
        "{'retention': 2 * H}",
        """
        db.write(fr("b", 0)); db.flush()
        db.write(fr("a", 6 * H)); db.flush()
        db.compact()
        assert db.stats()["blocks"] == 1, db.stats()["blocks"]
        db.write(fr("b", 6 * H + 60_000))
        """,
    ),
}

EXPECTED = {
    "compacted away": {"a": [0, 3 * H], "b": [5 * H]},
    "compacted away, then checkpointed": {"a": [0, 3 * H, 5 * H], "b": [6 * H]},
    "deleted in the head": {"a": [0], "b": [H]},
    "expired": {"a": [6 * H], "b": [6 * H + 60_000]},
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_write_after_the_last_block_of_its_series_went_survives_sigkill(tmp_path, name):
    config, steps = SCENARIOS[name]
    code = (
        PRELUDE.replace("CONFIG", config) + textwrap.dedent(steps) + 'print("acked", flush=True)\n'
    )
    kill_after([sys.executable, "-c", code, str(tmp_path / "db")], "acked")
    with ta.open(tmp_path / "db") as db:
        got = db.select().collect().sort("host", "timestamp")
    want = {
        (host, T0 + start + i * 1000, float(i + 1))
        for host, starts in EXPECTED[name].items()
        for start in starts
        for i in range(10)
    }
    rows = zip(got["host"].to_list(), got["timestamp"].dt.epoch("ms").to_list(), got["value"])
    assert sorted(rows) == sorted(want)
