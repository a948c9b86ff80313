"""The parts a frame is encoded into (``client.writes``): each row's labels, exactly."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.client import writes
from tsdb_arrow.client.writes import encode_part, prepare
from tsdb_arrow.server import flight_wire as wire

VALUES = st.sampled_from([None, "", "a", "b", "ab", "a" * 13, "é", "x" * 40])
NAMES = ["__name__", "host", "job", "zone"]


@st.composite
def frames(draw):
    """Label columns laid out in runs (a set may come back in a later run), chunked at random."""
    n_sets = draw(st.integers(1, 5))
    sets = [
        {"__name__": draw(st.sampled_from(["m", "n"]))} | {name: draw(VALUES) for name in NAMES[1:]}
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


@settings(max_examples=200, deadline=None)
@given(frame=frames(), data=st.data())
def test_a_part_carries_each_rows_labels_exactly(frame, data):
    columns, rows = frame
    n = len(rows)
    values = data.draw(st.lists(st.floats(allow_nan=True), min_size=n, max_size=n))
    table = pa.table(
        {"timestamp": pa.array(1_700_000_000_000 + np.arange(n), pa.int64()),
         "value": pa.array(values, pa.float64())} | columns
    )  # fmt: skip
    prepared = prepare(table, None)
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo + 1, n))
    part = encode_part(prepared.samples, lo, hi, hi == n)
    last, frame_rows, sets_ipc = wire.read_part_metadata(pa.py_buffer(part.metadata))
    assert (last, frame_rows) == (hi == n, n)
    got = wire.read_runs(part.batch)
    assert np.array_equal(got.timestamps, 1_700_000_000_000 + np.arange(lo, hi))
    want_bits = np.array(values, np.float64)[lo:hi].view(np.uint64)
    assert np.array_equal(got.values.view(np.uint64), want_bits)
    assert np.all(got.run_codes[1:] != got.run_codes[:-1])  # runs of one set are joined
    sets = wire.bytes_table(sets_ipc).to_pylist()
    assert len({_key(s) for s in sets}) == len(sets)  # each set once
    assert [_key(sets[c]) for c in got.codes()] == [_key(r) for r in rows[lo:hi]]


@settings(max_examples=100, deadline=None)
@given(rows=st.integers(1, 10_000), part_rows=st.integers(1, 3_000))
def test_parts_cover_the_rows_once_in_order_and_near_equal(rows, part_rows):
    before = writes.PART_ROWS
    writes.PART_ROWS = part_rows
    try:
        bounds = writes.Prepared(rows, None, None).bounds()
    finally:
        writes.PART_ROWS = before
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) <= part_rows and max(sizes) - min(sizes) <= 1
    assert len(bounds) == -(-rows // part_rows)
