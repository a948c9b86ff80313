"""Runs of equal label sets (``client.runs``) and the parts a frame is encoded into."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.client import runs
from tsdb_arrow.client.writes import encode_part, prepare
from tsdb_arrow.server import flight_wire as wire

VALUES = st.sampled_from([None, "", "a", "b", "ab", "a" * 13, "é", "x" * 40])
NAMES = ["__name__", "host", "job", "zone"]


@st.composite
def frames(draw):
    """Label columns laid out in runs (a set may come back in a later run), chunked at random."""
    n_sets = draw(st.integers(1, 5))
    sets = [
        {"__name__": draw(st.sampled_from(["m", "n"]))}
        | {name: draw(VALUES) for name in NAMES[1:]}
        for _ in range(n_sets)
    ]
    run_sets = draw(st.lists(st.integers(0, n_sets - 1), min_size=1, max_size=12))
    lengths = draw(st.lists(st.integers(1, 20), min_size=len(run_sets), max_size=len(run_sets)))
    rows = [sets[s] for s, k in zip(run_sets, lengths, strict=True) for _ in range(k)]
    n = len(rows)
    columns = {}
    for name in NAMES:
        values = [r[name] for r in rows]
        cuts = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=3))) - {n})
        pieces = [values[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
        columns[name] = pa.chunked_array(
            [pa.array(p, pa.large_string()) for p in pieces], pa.large_string()
        )
    return columns, rows


def _key(row: dict) -> tuple:
    return tuple(row[name] or None for name in NAMES)


def _chunk_starts(columns: dict[str, pa.ChunkedArray]) -> set[int]:
    starts = set()
    for column in columns.values():
        starts |= set(np.cumsum([len(c) for c in column.chunks])[:-1].tolist())
    return starts


@settings(max_examples=200, deadline=None)
@given(frames())
def test_run_starts_are_the_rows_differing_from_the_row_before(frame):
    columns, rows = frame
    n = len(rows)
    want = {0} | {i for i in range(1, n) if _key(rows[i]) != _key(rows[i - 1])}
    before = runs.MAX_RUN_SHARE
    runs.MAX_RUN_SHARE = 1.0  # never give up
    try:
        got = runs.run_starts(columns, n)
    finally:
        runs.MAX_RUN_SHARE = before
    assert got is not None
    assert set(got.tolist()) == want | (_chunk_starts(columns) & set(range(n)))
    assert np.all(np.diff(got) > 0)


@pytest.mark.parametrize("offset", [0, 3, 8])
def test_a_value_turning_absent_on_a_validity_byte_starts_a_run(offset, monkeypatch):
    monkeypatch.setattr(runs, "MAX_RUN_SHARE", 1.0)
    values = ["pad"] * offset + ["a"] * 8 + [None] * 16 + ["a"] * 3 + [None] * 9 + [""] * 2
    column = pa.chunked_array([pa.array(values, pa.large_string()).slice(offset)])
    steady = pa.chunked_array([pa.array(["m"] * (len(values) - offset), pa.large_string())])
    got = runs.run_starts({"__name__": steady, "zone": column}, len(values) - offset)
    assert got.tolist() == [0, 8, 24, 27]


def test_rows_not_in_runs_stop_the_search_early():
    n = 1000
    column = pa.chunked_array([pa.array([f"h{i % 7}" for i in range(n)], pa.large_string())])
    assert runs.run_starts({"host": column}, n) is None
    ordered = pa.chunked_array([pa.array([f"h{i // 100}" for i in range(n)], pa.large_string())])
    assert runs.run_starts({"host": ordered}, n).tolist() == list(range(0, n, 100))


@pytest.mark.parametrize("share", [0.0, 1.0], ids=["grouped", "runs"])
@settings(max_examples=100, deadline=None)
@given(frame=frames(), data=st.data())
def test_a_part_carries_each_rows_labels_exactly(share, frame, data):
    columns, rows = frame
    n = len(rows)
    table = pa.table(
        {"timestamp": pa.array(1_700_000_000_000 + np.arange(n), pa.int64()),
         "value": pa.array(np.arange(n, dtype=np.float64))} | columns
    )  # fmt: skip
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo + 1, n))
    before = runs.MAX_RUN_SHARE
    runs.MAX_RUN_SHARE = share
    try:
        part = encode_part(prepare(table, None).samples, lo, hi, True)
    finally:
        runs.MAX_RUN_SHARE = before
    last, frame_rows, sets_ipc = wire.read_part_metadata(pa.py_buffer(part.metadata))
    assert (last, frame_rows) == (True, n)
    got = wire.read_runs(part.batch)
    assert np.array_equal(got.timestamps, 1_700_000_000_000 + np.arange(lo, hi))
    assert np.all(got.run_codes[1:] != got.run_codes[:-1])  # runs of one set are joined
    sets = wire.bytes_table(sets_ipc).to_pylist()
    assert len({_key(s) for s in sets}) == len(sets)  # each set once
    decoded = [_key(sets[c]) for c in got.codes()]
    assert decoded == [_key(r) for r in rows[lo:hi]]


def test_take_rows_takes_across_chunks_and_slices():
    column = pa.chunked_array(
        [pa.array(["a", None, "c"], pa.large_string()), pa.array([], pa.large_string()),
         pa.array(["d", "e", "f", "g"], pa.large_string()).slice(1)]
    )  # fmt: skip
    rows = np.array([0, 1, 3, 5])
    assert runs.take_rows(column, rows).to_pylist() == ["a", None, "e", "g"]
    assert runs.take_rows(column, np.array([], np.int64)).to_pylist() == []
    assert runs.take_rows(column.combine_chunks(), rows).to_pylist() == ["a", None, "e", "g"]
