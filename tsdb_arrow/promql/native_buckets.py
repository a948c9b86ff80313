"""The buckets of native histogram samples as Prometheus lists them: bounds, closedness, count.

One kernel call lists the non-empty buckets of many pool rows in the order of Prometheus'
``FloatHistogram.AllBucketIterator``: negative buckets from the most negative up, then the zero
bucket ``[-zero_threshold, zero_threshold]`` when its count is positive, then the positive
buckets upwards; a bucket reaching into the zero bucket is cut at the threshold. The HTTP API's
JSON (``server/prom_json_histograms.py``) writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsdb_arrow.jit import njit
from tsdb_arrow.promql.native import NativeHistograms
from tsdb_arrow.promql.native_kernels import _upper

#: Prometheus' boundary rules: which ends of a bucket are inclusive.
LEFT_OPEN, RIGHT_OPEN, OPEN, CLOSED = 0, 1, 2, 3


@dataclass
class BucketList:
    """Buckets of pool rows ``rows``: row k's at ``[starts[k], starts[k+1])``."""

    starts: np.ndarray
    rule: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray


@njit(cache=True, nogil=True)
def _fill(rows, scale, zc, zt, po, ps, pc, no, ns, nc, starts, rule, lower, upper, count):
    """List the non-empty buckets of every row into the output arrays; returns how many."""
    m = 0
    for k in range(rows.size):
        r = rows[k]
        starts[k] = m
        s, z = scale[r], zt[r]
        for j in range(ns[r + 1] - 1, ns[r] - 1, -1):
            if nc[j] == 0.0:
                continue
            i = no[r] + (j - ns[r])
            lo, hi = -_upper(i, s), -_upper(i - 1, s)
            if hi < 0.0 and hi > -z:
                hi = -z
            rule[m], lower[m], upper[m], count[m] = RIGHT_OPEN, lo, hi, nc[j]
            m += 1
        if zc[r] > 0.0:
            rule[m], lower[m], upper[m], count[m] = CLOSED, -z, z, zc[r]
            m += 1
        for j in range(ps[r], ps[r + 1]):
            if pc[j] == 0.0:
                continue
            i = po[r] + (j - ps[r])
            lo, hi = _upper(i - 1, s), _upper(i, s)
            if lo > 0.0 and lo < z:
                lo = z
            rule[m], lower[m], upper[m], count[m] = LEFT_OPEN, lo, hi, pc[j]
            m += 1
    starts[rows.size] = m
    return m


def bucket_list(pool: NativeHistograms, rows: np.ndarray) -> BucketList:
    """The non-empty buckets of pool rows ``rows`` (any order, repeats allowed)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    width = (np.diff(pool.pos_start)[rows].sum() + np.diff(pool.neg_start)[rows].sum()
             + rows.size)
    rule = np.empty(width, np.int8)
    lower, upper, count = np.empty(width), np.empty(width), np.empty(width)
    starts = np.empty(rows.size + 1, np.int64)
    m = _fill(rows, pool.scale, pool.zero_count, pool.zero_threshold, pool.pos_offset,
              pool.pos_start, pool.pos_counts, pool.neg_offset, pool.neg_start, pool.neg_counts,
              starts, rule, lower, upper, count)
    return BucketList(starts, rule[:m], lower[:m], upper[:m], count[:m])
