"""Loading a selector's samples: series split exactly as ``db.select`` returns them."""

from __future__ import annotations

import numpy as np
import polars as pl
import promql_parser
from hypothesis import given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
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


def test_load_when_series_change_between_select_and_series(db, monkeypatch) -> None:
    """``db.series`` after ``db.select`` may list more series (new ones); were one missing,
    the labels are read with the samples. Either way each series keeps its samples."""
    db.write(
        pl.DataFrame(
            {
                "__name__": ["m"] * 6,
                "a": ["x", "x", "y", "y", "z", "z"],
                "timestamp": [0, 1000] * 3,
                "value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            }
        )
    )
    real = db.series
    for fake in (
        lambda text: real(text).head(2),  # one missing: its key value matches no series
        lambda text: pl.concat(  # a new series, differing only by a new label
            [real(text), real(text).head(1).with_columns(pl.lit("1").alias("b"))],
            how="diagonal",
        ),
    ):
        monkeypatch.setattr(db, "series", fake)
        samples = load(db, promql_parser.parse("m"), 0, 2000)
        got = {
            row["a"]: samples.values[samples.offsets[i] : samples.offsets[i + 1]].tolist()
            for i, row in enumerate(samples.labels.to_dicts())
        }
        assert got == {"x": [1.0, 2.0], "y": [3.0, 4.0], "z": [5.0, 6.0]}
        assert set(samples.labels.columns) == {"__name__", "a"}
