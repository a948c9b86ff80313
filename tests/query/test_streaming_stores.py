"""Label views written with streaming stores equal those of plain stores, aligned or not."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tsdb_arrow.query import streaming_stores
from tsdb_arrow.query.frames import _expand, expand


@st.composite
def expansions(draw):
    n_labels = draw(st.integers(1, 5))
    n_series = draw(st.integers(1, 20))
    views = draw(hnp.arrays(np.uint64, (n_labels, n_series, 2), elements=st.integers(0, 2**64 - 1)))
    pos = draw(
        hnp.arrays(np.int64, draw(st.integers(1, 30)), elements=st.integers(0, n_series - 1))
    )
    lengths = draw(hnp.arrays(np.int64, len(pos), elements=st.integers(1, 50)))
    return views, pos, lengths


@settings(max_examples=200, deadline=None)
@given(expansions())
def test_streaming_expansion_equals_the_plain_one(case):
    views, pos, lengths = case
    n = int(lengths.sum())
    plain = np.zeros((views.shape[0], n, 2), np.uint64)
    labels = np.arange(views.shape[0])[::-1].copy()  # every label, in reverse order
    _expand(views, labels, pos, lengths, plain)
    assert (plain == np.repeat(views[labels][:, pos], lengths, axis=1)).all()
    aligned = np.zeros(views.shape[0] * n * 2 + 2, np.uint64)
    start = 0 if aligned.ctypes.data % 16 == 0 else 1
    out = aligned[start : start + views.shape[0] * n * 2].reshape(views.shape[0], n, 2)
    assert out.ctypes.data % 16 == 0
    expand(views, labels, pos, lengths, out)
    assert (out == plain).all()


def test_a_misaligned_output_takes_plain_stores():
    views = np.arange(2 * 3 * 2, dtype=np.uint64).reshape(2, 3, 2)
    pos, lengths = np.array([2, 0, 1]), np.array([3, 1, 2])
    raw = np.zeros(2 * 6 * 2 + 2, np.uint64)
    start = 1 if raw.ctypes.data % 16 == 0 else 0  # 8 bytes off a 16-byte boundary
    out = raw[start : start + 12].reshape(1, 6, 2)
    assert out.ctypes.data % 16 == 8
    expand(views, np.array([1]), pos, lengths, out)
    assert (out == np.repeat(views[1:, pos], lengths, axis=1)).all()


@pytest.mark.skipif(not streaming_stores.AVAILABLE, reason="streaming stores are x86-64 only")
def test_the_stores_compile_to_movnt_and_sfence():
    @nb.njit
    def fill(out, lo, hi):
        for i in range(out.shape[0] // 2):
            streaming_stores.store_pair(out, i, lo, hi)
        streaming_stores.store_fence()

    out = np.zeros(8, np.uint64)
    fill(out, np.uint64(3), np.uint64(2**64 - 1))
    assert out.tolist() == [3, 2**64 - 1] * 4
    asm = next(iter(fill.inspect_asm().values())).lower()
    assert "movnt" in asm and "sfence" in asm
