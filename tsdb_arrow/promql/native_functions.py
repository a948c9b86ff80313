"""PromQL functions over native histogram samples: ``histogram_quantile``, ``_fraction``,
``_count``, ``_sum``, ``_avg``, ``_stddev``, ``_stdvar``.

Each returns the float result of every cell of an instant vector that holds a histogram sample
(labels without ``__name__``), computed in one kernel call over all those cells; the float
cells of the same vector are left to the classic-histogram code (or ignored).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from tsdb_arrow.promql import native_kernels as nk
from tsdb_arrow.promql.native import NativeHistograms
from tsdb_arrow.promql.values import InstantVector

Part = tuple[pl.DataFrame, np.ndarray, np.ndarray]


def _cells(iv: InstantVector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the histogram samples are (bool ``[series, step]``), their step numbers and
    pool rows, in row-major order."""
    assert iv.hist is not None
    mask = iv.hist >= 0
    _, cols = np.nonzero(mask)
    return mask, cols, iv.hist[mask]


def _pool_args(p: NativeHistograms) -> tuple[np.ndarray, ...]:
    return (p.zero_count, p.zero_threshold, p.pos_offset, p.pos_start, p.pos_counts,
            p.neg_offset, p.neg_start, p.neg_counts)


def _result(iv: InstantVector, mask: np.ndarray, out: np.ndarray) -> Part:
    values = np.full(mask.shape, np.nan)
    values[mask] = out
    return iv.labels.drop("__name__", strict=False), values, mask


def quantile(iv: InstantVector, q: np.ndarray) -> Part:
    """``histogram_quantile(q, iv)`` at the histogram cells of ``iv`` (``q`` one per step)."""
    mask, cols, rows = _cells(iv)
    p = iv.pool
    assert p is not None
    out = nk.quantiles(rows, np.ascontiguousarray(q[cols], np.float64), p.scale, p.count,
                       p.sum, *_pool_args(p))
    return _result(iv, mask, out)


def fraction(
    iv: InstantVector, lo: np.ndarray, hi: np.ndarray
) -> Part:
    """``histogram_fraction(lo, hi, iv)`` at the histogram cells of ``iv``."""
    mask, cols, rows = _cells(iv)
    p = iv.pool
    assert p is not None
    out = nk.fractions(rows, np.ascontiguousarray(lo[cols], np.float64),
                       np.ascontiguousarray(hi[cols], np.float64), p.scale, p.count,
                       *_pool_args(p))
    return _result(iv, mask, out)


def _stdvar(p: NativeHistograms, rows: np.ndarray) -> np.ndarray:
    return nk.variances(rows, p.scale, p.count, p.sum, *_pool_args(p))


STATISTICS: dict[str, Callable[[NativeHistograms, np.ndarray], np.ndarray]] = {
    "histogram_count": lambda p, rows: p.count[rows],
    "histogram_sum": lambda p, rows: p.sum[rows],
    "histogram_avg": lambda p, rows: p.sum[rows] / p.count[rows],
    "histogram_stdvar": _stdvar,
    "histogram_stddev": lambda p, rows: np.sqrt(_stdvar(p, rows)),
}


def statistic(name: str, iv: InstantVector) -> Part:
    """``histogram_count(iv)`` and the like (``name`` a key of ``STATISTICS``)."""
    mask, _, rows = _cells(iv)
    assert iv.pool is not None
    return _result(iv, mask, STATISTICS[name](iv.pool, rows))
