"""Series refs: the vectorised resolver agrees with the reference definition, chunked or not."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.ingest import split as split_mod
from tsdb_arrow.ingest.series import resolve_series
from tsdb_arrow.model import series_ref

NAMES = ["__name__", "a", "b", "zz"]
values = st.one_of(st.none(), st.just(""), st.text(max_size=6))
rows = st.lists(st.fixed_dictionaries({n: values for n in NAMES}), min_size=1, max_size=40)


def labels_of(table_rows, chunks=1):
    cols = {}
    for name in NAMES:
        arr = pa.array([r[name] for r in table_rows], pa.large_string())
        bounds = np.linspace(0, len(arr), chunks + 1).astype(int)
        cols[name] = pa.chunked_array(
            [arr.slice(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])], pa.large_string()
        )
    return cols


@settings(max_examples=150, deadline=None)
@given(rows=rows, chunks=st.integers(1, 4), repeat=st.integers(1, 3), split=st.booleans())
def test_refs_match_the_reference_definition(rows, chunks, repeat, split):
    """Each row's ref and number, and the distinct series, whether the rows are grouped at
    once or (``split``) in two halves on a pool and then joined."""
    rows = [r for r in rows for _ in range(repeat)]  # runs of identical rows, as in real input
    with ThreadPoolExecutor(1) as pool, mock.patch.object(split_mod, "SPLIT_VALUES", 0):
        resolved = resolve_series(labels_of(rows, chunks), len(rows), pool if split else None)
    want = [series_ref(r) for r in rows]
    assert resolved.row_refs.tolist() == want
    # the numbers are dense and name the same series as the refs do
    assert sorted(set(resolved.row_sets.tolist())) == list(range(len(set(want))))
    assert len(set(zip(resolved.row_sets.tolist(), want))) == len(set(want))
    assert sorted(resolved.series["series_ref"].to_pylist()) == sorted(set(want))
    for row in resolved.series.to_pylist():
        ref = row.pop("series_ref")
        assert ref == series_ref(row)
        assert "" not in row.values()  # "" is stored as an absent label


def test_reference_values_are_fixed():
    # The ref is part of the on-disk format: these numbers must never change.
    assert series_ref({"__name__": "up"}) == series_ref({"__name__": "up", "job": ""})
    assert series_ref({"__name__": "up", "job": "node"}) == series_ref(
        {"job": "node", "__name__": "up"}
    )
    assert series_ref({"__name__": "up", "job": "node"}) != series_ref(
        {"__name__": "upjob", "": "node"}
    )
    assert f"{series_ref({'__name__': 'up'}):#018x}" == FIXED_UP
    assert f"{series_ref({'__name__': 'up', 'job': 'node'}):#018x}" == FIXED_UP_NODE


FIXED_UP = "0xd01204e13a5175e8"
FIXED_UP_NODE = "0x103a1d2140662d55"


def test_stored_refs_are_the_reference_refs(db):
    db.write(
        pa.table(
            {
                "timestamp": [1, 2],
                "value": [1.0, 2.0],
                "__name__": ["up", "up"],
                "job": ["node", None],
            }
        )
    )
    refs = dict(zip(db.series()["job"].to_list(), db.series()["series_ref"].to_list()))
    assert refs == {
        "node": series_ref({"__name__": "up", "job": "node"}),
        None: series_ref({"__name__": "up"}),
    }


@pytest.mark.parametrize("chunks", [1, 3])
def test_label_order_and_chunking_do_not_matter(chunks):
    rows = [{"__name__": "m", "a": "x", "b": None, "zz": "q"}] * 5
    first = resolve_series(labels_of(rows, chunks), 5)
    reordered = dict(reversed(list(labels_of(rows, chunks).items())))
    second = resolve_series(reordered, 5)
    assert first.row_refs.tolist() == second.row_refs.tolist()


long_values = st.one_of(st.none(), st.just(""), st.text(max_size=30))
long_rows = st.lists(
    st.fixed_dictionaries({n: long_values for n in NAMES}), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(rows=long_rows, repeat=st.integers(1, 3), offset=st.integers(0, 3), split=st.booleans())
def test_string_view_columns_give_the_same_refs(rows, repeat, offset, split):
    # Polars hands over string_view arrays: inline (<= 12 bytes) and buffer-backed values,
    # sliced arrays and several data buffers must all resolve exactly as large_string does.
    rows = [r for r in rows for _ in range(repeat)]
    views = {}
    for name in NAMES:
        values = [None] * offset + [r[name] for r in rows]
        halves = [values[: len(values) // 2], values[len(values) // 2 :]]
        combined = pa.concat_arrays([pa.array(h, pa.string_view()) for h in halves])
        views[name] = pa.chunked_array([combined.slice(offset)])
    with ThreadPoolExecutor(1) as pool, mock.patch.object(split_mod, "SPLIT_VALUES", 0):
        got = resolve_series(views, len(rows), pool if split else None)
    assert got.row_refs.tolist() == [series_ref(r) for r in rows]
    assert got.series.equals(resolve_series(labels_of(rows), len(rows)).series)


def test_polars_frames_resolve_through_string_views(db):
    import polars as pl

    frame = pl.DataFrame(
        {
            "timestamp": [1, 2, 3, 4],
            "value": [1.0, 2.0, 3.0, 4.0],
            "__name__": ["a_rather_long_metric_name"] * 2 + ["m"] * 2,
            "path": ["/a/very/long/path/beyond/twelve"] * 2 + [None, None],
        }
    )
    db.write(frame)
    refs = sorted(db.series()["series_ref"].to_list())
    assert refs == sorted(
        [
            series_ref(
                {"__name__": "a_rather_long_metric_name", "path": "/a/very/long/path/beyond/twelve"}
            ),
            series_ref({"__name__": "m"}),
        ]
    )
