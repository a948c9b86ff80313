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


@nb.njit(cache=False)
def _sum_of_rows_reading_ahead(table, ahead):
    total = 0.0
    for i in range(table.shape[0]):
        if i + ahead < table.shape[0]:
            prefetch(table, table.shape[1] * (i + ahead))  # the row's first item, flat
        total += table[i, 0] + table[i, 1]
    return total


def test_a_two_dimensional_table_is_read_ahead_by_its_flat_index():
    table = np.arange(2_000, dtype=np.uint64).reshape(1_000, 2)
    assert _sum_of_rows_reading_ahead(table, 8) == float(table.sum())


def test_only_c_contiguous_arrays_are_accepted():
    with pytest.raises(nb.core.errors.TypingError):
        _sum_reading_ahead(np.arange(20.0)[::2], 1)
