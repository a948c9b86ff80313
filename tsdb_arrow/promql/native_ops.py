"""PromQL operations on instant vectors holding native histogram samples.

Each operation gathers the histogram cells it combines (``[series, step]`` cells of
``InstantVector.hist``) into one CSR list of (pool row, weight) members per result cell and
computes every result in one ``native_arith.weighted_sums`` call: ``sum``/``avg`` by group,
``h * s``, ``h / s``, ``-h``, ``h1 + h2``, ``h1 - h2``. Cells where Prometheus gives no result
(a histogram with a float in one ``sum`` group, ``h + 1``, ``h1 * h2``, ...) are dropped, with
its annotation where it raises one.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tsdb_arrow.promql import annotations
from tsdb_arrow.promql import labels as lab
from tsdb_arrow.promql.native import NativeHistograms
from tsdb_arrow.promql.native_arith import concat, weighted_sums
from tsdb_arrow.promql.values import InstantVector

MIXED_AGGREGATION = "PromQL warning: encountered a mix of histograms and floats for aggregation"


def hist_of(vec: InstantVector) -> np.ndarray:
    """``vec.hist`` or all -1."""
    return vec.hist if vec.hist is not None else np.full(vec.present.shape, -1, np.int64)


def _results(
    pool: NativeHistograms, cells: np.ndarray, members: np.ndarray, weights: np.ndarray,
    shape: tuple[int, int],
) -> tuple[np.ndarray, NativeHistograms]:
    """Result cell ``cells[k]`` (flat ``[row, step]`` index, grouped: equal cells adjacent) is
    the weighted sum of its members; returns the ``hist`` matrix and the new pool."""
    hist = np.full(shape, -1, np.int64)
    if cells.size == 0:
        return hist, weighted_sums(pool, np.zeros(1, np.int64), members, weights)
    new = np.r_[True, cells[1:] != cells[:-1]]
    starts = np.r_[np.flatnonzero(new), cells.size].astype(np.int64)
    out = weighted_sums(pool, starts, members, weights)
    hist.reshape(-1)[cells[new]] = np.arange(starts.size - 1)
    return hist, out


def aggregate(op: str, vec: InstantVector, ids: np.ndarray, uniq: pl.DataFrame,
              where: str = "") -> InstantVector:
    """``sum`` or ``avg`` of ``vec`` grouped by ``ids`` (float and histogram samples): a group
    with both kinds at a step has no result there, with Prometheus' warning."""
    from tsdb_arrow.promql import kernels
    from tsdb_arrow.promql.aggregate import _REDUCERS

    assert vec.pool is not None
    n_groups = uniq.height if len(vec) else 0
    n_steps = vec.present.shape[1]
    hist = hist_of(vec)
    is_h = hist >= 0
    floats = vec.present & ~is_h
    out, has = kernels.grouped(_REDUCERS.index(op), ids, n_groups, vec.values, floats)
    rows, cols = np.nonzero(is_h)
    cells = ids[rows] * n_steps + cols
    order = np.argsort(cells, kind="stable")
    cells, members = cells[order], hist[rows, cols][order]
    weights = np.ones(cells.size)
    if op == "avg" and cells.size:
        n = np.bincount(cells, minlength=n_groups * n_steps)
        weights = 1.0 / n[cells]
    h_out, pool = _results(vec.pool, cells, members, weights, (n_groups, n_steps))
    mixed = has & (h_out >= 0)
    if mixed.any():
        annotations.warn(MIXED_AGGREGATION + where)
        has = has & ~mixed
        h_out = np.where(mixed, -1, h_out)
    result = InstantVector(lab.tidy(uniq.head(n_groups)), out, has, None, h_out, pool)
    return lab.only_present(result)


def scaled(vec: InstantVector, factor: np.ndarray, keep: np.ndarray) -> InstantVector:
    """``vec`` with each histogram cell multiplied by ``factor`` (``[series, step]``) where
    ``keep``, dropped elsewhere; float cells as they are."""
    assert vec.pool is not None
    hist = hist_of(vec)
    is_h = (hist >= 0) & keep
    rows, cols = np.nonzero(is_h)
    cells = rows * hist.shape[1] + cols
    h_out, pool = _results(vec.pool, cells, hist[rows, cols], factor[rows, cols], hist.shape)
    return InstantVector(vec.labels, vec.values, vec.present & (hist < 0), vec.timestamps,
                         h_out, pool)


def pair_cells(
    op: str, a_hist: np.ndarray, b_hist: np.ndarray, a_val: np.ndarray, b_val: np.ndarray,
    a_float: np.ndarray, b_float: np.ndarray, matched: np.ndarray,
    a_pool: NativeHistograms | None, b_pool: NativeHistograms | None,
) -> tuple[np.ndarray, np.ndarray, NativeHistograms | None]:
    """``a op b`` at the matched cells where a side holds a histogram: the result ``hist``
    matrix, which of those cells have a result, and the pool. Defined as Prometheus does:
    ``h + h``, ``h - h``, ``h * f``, ``f * h``, ``h / f``; any other pairing has none."""
    a_h, b_h = matched & (a_hist >= 0), matched & (b_hist >= 0)
    a_f, b_f = matched & a_float, matched & b_float
    shape = matched.shape
    pools = [p for p in (a_pool, b_pool) if p is not None]
    if not pools:
        return np.full(shape, -1, np.int64), np.zeros(shape, bool), None
    pool = pools[0] if len(pools) == 1 else concat(pools[0], pools[1])
    two = a_pool is not None and b_pool is not None and a_pool is not b_pool
    shift = len(a_pool) if two else 0  # type: ignore[arg-type]
    b_rows = b_hist + shift
    ok = np.zeros(shape, bool)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # cells, rows, weights

    def add(mask: np.ndarray, rows: np.ndarray, weights: np.ndarray) -> None:
        r, c = np.nonzero(mask)
        parts.append((r * shape[1] + c, rows[r, c], weights[r, c]))

    ones = np.ones(shape)
    if op in ("+", "-"):
        both = a_h & b_h
        ok |= both
        add(both, a_hist, ones)
        add(both, b_rows, ones if op == "+" else -ones)
    elif op == "*":
        hf, fh = a_h & b_f, a_f & b_h
        ok |= hf | fh
        add(hf, a_hist, b_val)
        add(fh, b_rows, a_val)
    elif op == "/":
        hf = a_h & b_f
        ok |= hf
        with np.errstate(divide="ignore"):
            add(hf, a_hist, 1.0 / b_val)
    if not parts:
        return np.full(shape, -1, np.int64), ok, pool
    cells = np.concatenate([p[0] for p in parts])
    order = np.argsort(cells, kind="stable")
    rows = np.concatenate([p[1] for p in parts])[order]
    weights = np.concatenate([p[2] for p in parts])[order]
    h_out, out = _results(pool, cells[order], rows, weights, shape)
    return h_out, ok, out


def select(vec: InstantVector, keep: np.ndarray) -> InstantVector:
    """``vec`` with only the cells (float or histogram) where ``keep``."""
    hist = None if vec.hist is None else np.where(keep, vec.hist, -1)
    return InstantVector(vec.labels, vec.values, vec.present & keep, vec.timestamps, hist,
                         vec.pool)


def occupied(vec: InstantVector) -> np.ndarray:
    """Cells holding a sample of either kind."""
    return vec.present if vec.hist is None else vec.present | (vec.hist >= 0)
