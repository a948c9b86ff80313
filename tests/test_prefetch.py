"""The prefetch intrinsic compiles for the arrays kernels read and leaves their results alone."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest

from tsdb_arrow.prefetch import prefetch


@nb.njit(cache=False)
def _sum_reading_ahead(values, ahead):
    total = 0.0
    for i in range(values.shape[0]):
        if i + ahead < values.shape[0]:
            prefetch(values, i + ahead)
        total += values[i]
    return total


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.uint64, np.float64])
def test_a_kernel_reading_ahead_computes_what_it_would_without(dtype):
    values = (np.arange(10_000) % 200).astype(dtype)
    assert _sum_reading_ahead(values, 16) == values.sum(dtype=np.float64)
    assert _sum_reading_ahead(values[:3], 0) == values[:3].sum(dtype=np.float64)


def test_only_c_contiguous_one_dimensional_arrays_are_accepted():
    with pytest.raises(nb.core.errors.TypingError):
        _sum_reading_ahead(np.arange(20.0)[::2], 1)
