"""The series index: series added are merged into the sorted frame when it is read; the refs,
the frame, the collision check and restore are as if each add had sorted it."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from tsdb_arrow.errors import SeriesCollisionError
from tsdb_arrow.index import SeriesIndex
from tsdb_arrow.model import REF


def series(refs: list[int], **labels: list[str | None]) -> pa.Table:
    columns = {REF: pa.array(refs, pa.uint64())}
    columns.update({k: pa.array(v, pa.large_string()) for k, v in labels.items()})
    return pa.table(columns)


def test_adds_merge_into_one_sorted_frame_when_read():
    index = SeriesIndex()
    assert index.add(series([30, 10], __name__=["c", "a"], host=["h3", "h1"])).tolist() == [
        False,
        False,
    ]
    assert index.add(series([20], __name__=["b"], zone=["z2"])).tolist() == [False]
    # A Polars frame with a non-string label is taken too (cast to String).
    index.add(pl.DataFrame({REF: pl.Series([5], dtype=pl.UInt64), "__name__": ["e"], "n": [7]}))
    assert index.refs.tolist() == [5, 10, 20, 30] and len(index) == 4
    assert index.frame.to_dict(as_series=False) == {
        REF: [5, 10, 20, 30],
        "__name__": ["e", "a", "b", "c"],
        "host": [None, "h1", None, "h3"],
        "n": ["7", None, None, None],
        "zone": [None, None, "z2", None],
    }
    assert index.label_names == ["__name__", "host", "n", "zone"]
    index.add(series([1], __name__=["f"]))
    assert index.frame[REF].to_list() == [1, 5, 10, 20, 30]


def test_known_series_are_checked_against_series_not_yet_merged():
    index = SeriesIndex()
    index.add(series([10, 20], __name__=["a", "b"]))
    index.add(series([30], __name__=["c"]))
    known = index.add(series([30, 40, 10], __name__=["c", "d", "a"]))
    assert known.tolist() == [True, False, True]
    assert index.refs.tolist() == [10, 20, 30, 40]
    with pytest.raises(SeriesCollisionError, match="0x000000000000001e"):
        index.add(series([30], __name__=["not c"]))
    assert index.frame["__name__"].to_list() == ["a", "b", "c", "d"]


def test_restore_forgets_series_added_since_the_state():
    index = SeriesIndex()
    index.add(series([10], __name__=["a"]))
    before = index.state()
    index.add(series([5, 20], __name__=["x", "y"], extra=["1", "2"]))
    assert len(index) == 3
    index.restore(before)
    assert index.refs.tolist() == [10] and len(index) == 1
    assert index.frame.to_dict(as_series=False) == {REF: [10], "__name__": ["a"]}
    # Restored after a read merged them: the same.
    index.add(series([5], __name__=["x"]))
    before = index.state()
    index.add(series([7], __name__=["z"]))
    assert index.frame[REF].to_list() == [5, 7, 10]
    index.restore(before)
    assert index.frame[REF].to_list() == [5, 10]


def test_many_adds_match_one_sort():
    rng = np.random.default_rng(7)
    refs = np.unique(rng.integers(0, 2**64, size=3000, dtype=np.uint64))
    rng.shuffle(refs)
    index = SeriesIndex()
    for part in np.array_split(refs, 30):
        index.add(series(part.tolist(), __name__=[f"m{r % 5}" for r in part]))
    order = np.sort(refs)
    assert (index.refs == order).all()
    assert (index.frame[REF].to_numpy() == order).all()
    assert index.frame["__name__"].to_list() == [f"m{r % 5}" for r in order]
