"""Loading a selector's samples: series split exactly as ``db.select`` returns them."""

from __future__ import annotations

import numpy as np
import polars as pl
import promql_parser
from hypothesis import given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tsdb_arrow.promql import select
from tsdb_arrow.promql.select import load, selector_text

LABEL_SETS = st.lists(
    st.fixed_dictionaries(
        {},
        optional={"a": st.sampled_from(["x", "y"]), "b": st.sampled_from(["1", "2", "3"])},
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda d: tuple(sorted(d.items())),
)


@settings(max_examples=25, deadline=None)
@given(label_sets=LABEL_SETS, n=st.integers(1, 4), data=st.data())
def test_load_splits_series_like_select(tmp_path_factory, label_sets, n, data) -> None:
    rows = []
    for k, labels in enumerate(label_sets):
        times = data.draw(st.lists(st.integers(0, 20), min_size=1, max_size=n, unique=True))
        rows += [{**labels, "timestamp": t * 1000, "value": float(k * 100 + t)} for t in times]
    frame = pl.DataFrame(
        {
            "__name__": ["m"] * len(rows),
            "a": pl.Series([r.get("a") for r in rows], dtype=pl.String),
            "b": pl.Series([r.get("b") for r in rows], dtype=pl.String),
            "timestamp": [r["timestamp"] for r in rows],
            "value": [r["value"] for r in rows],
        }
    )
    with ta.open(tmp_path_factory.mktemp("db")) as db:
        db.write(frame)
        samples = load(db, promql_parser.parse("m"), 0, 20_000)
    got = {}
    for i, labels in enumerate(samples.labels.to_dicts()):
        key = tuple(sorted((k, v) for k, v in labels.items() if v is not None))
        lo, hi = samples.offsets[i], samples.offsets[i + 1]
        assert key not in got
        got[key] = list(zip(samples.timestamps[lo:hi].tolist(), samples.values[lo:hi].tolist()))
    want: dict[tuple, list] = {}
    for r in sorted(rows, key=lambda r: r["timestamp"]):
        key = tuple(sorted([("__name__", "m")] + [(k, r[k]) for k in ("a", "b") if k in r]))
        want.setdefault(key, []).append((r["timestamp"], r["value"]))
    assert got == want


def test_selector_text_quotes_values() -> None:
    node = promql_parser.parse('m{a="x\\"y", b=~"1|2", c!="", d!~"z\\\\d"}')
    assert selector_text(node) == '{__name__="m", a="x\\"y", b=~"1|2", c!="", d!~"z\\\\d"}'


def test_load_nothing(db) -> None:
    samples = load(db, promql_parser.parse("nothing"), 0, 1000)
    assert samples.count == 0 and samples.offsets.tolist() == [0]
    assert samples.labels.height == 0 and np.array_equal(samples.timestamps, [])


def by_series(labels: pl.DataFrame, ts, values, offsets) -> dict:
    """label set -> [(t, v), ...] of a split sample list."""
    out = {}
    for i, row in enumerate(labels.to_dicts()):
        key = tuple(sorted((k, v) for k, v in row.items() if v is not None))
        assert key not in out
        lo, hi = offsets[i], offsets[i + 1]
        out[key] = list(zip(ts[lo:hi].tolist(), values[lo:hi].tolist()))
    return out


def by_select(db, text: str, lo: int, hi: int) -> dict:
    """The same from ``db.select``'s frame (series told apart by all their labels)."""
    frame = db.select(text, start=lo, end=hi).collect()
    names = [c for c in frame.columns if c not in ("timestamp", "value")]
    out: dict = {}
    for row in frame.with_columns(pl.col("timestamp").dt.epoch("ms")).to_dicts():
        key = tuple(sorted((k, row[k]) for k in names if row[k] is not None))
        out.setdefault(key, []).append((row["timestamp"], row["value"]))
    return out


def test_load_reads_blocks_head_and_batches_as_select(tmp_path, monkeypatch) -> None:
    """Series split between read batches stay one; flushed blocks, the head over them and a
    deletion are read as ``db.select`` reads them."""
    monkeypatch.setattr(select, "_BATCH", 3)
    rng = np.random.default_rng(1)

    def frame(times: np.ndarray) -> pl.DataFrame:
        n = len(times)
        return pl.DataFrame(
            {
                "__name__": ["m"] * n,
                "a": rng.choice(["x", "y", "z"], n),
                "b": pl.Series(rng.choice(["1", None], n), dtype=pl.String),
                "timestamp": times,
                "value": rng.random(n),
            }
        )

    with ta.open(tmp_path / "db") as db:
        db.write(frame(np.arange(0, 7_200_000 * 2, 60_000)))
        db.flush()
        db.write(frame(np.arange(30_000, 7_200_000 * 3, 90_000)))  # overlaps the blocks
        db.delete('{a="x"}', start=1_000_000, end=2_000_000)
        for lo, hi in [(0, 30_000_000), (1_500_000, 9_000_000), (5, 5)]:
            samples = load(db, promql_parser.parse('m{a!="z"}'), lo, hi)
            got = by_series(samples.labels, samples.timestamps, samples.values, samples.offsets)
            assert got == by_select(db, '{__name__="m", a!="z"}', lo, hi)
            assert samples.count == sum(len(v) for v in got.values())
