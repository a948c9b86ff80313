"""Kernels over the data point table: checking histogram points, expanding points into rows.

A Gauge or Sum point is one row. An explicit-bucket histogram point is one ``_bucket`` row per
finite bound (the cumulative count up to it, ``le`` = the bound), one ``le="+Inf"`` row (the
count), one ``_count`` row and one ``_sum`` row when it has a sum. A summary point is one row
per quantile (``quantile`` = it), one ``_sum`` and one ``_count`` row. A point flagged
NO_RECORDED_VALUE gives the same rows, every value the Prometheus stale marker.
"""

from __future__ import annotations

import numpy as np

from tsdb_arrow.ingest.otlp.wire import (
    EXPONENTIAL,
    H_DOUBLE,
    H_INT,
    H_MAX,
    H_MIN,
    H_SUM,
    HISTOGRAM,
    P_B0,
    P_B1,
    P_COUNT,
    P_F0,
    P_F1,
    P_FLAGS,
    P_HAS,
    P_MAX,
    P_METRIC,
    P_MIN,
    P_N0,
    P_N1,
    P_NEG_OFF,
    P_POS_OFF,
    P_SCALE,
    P_SUM,
    P_VALUE,
    P_ZERO,
    P_ZT,
    SUMMARY,
)
from tsdb_arrow.jit import njit

NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE
STALE_NAN = np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0]

# Why a histogram point is refused (0: it is fine).
BAD_BUCKETS, BAD_BOUNDS, BAD_COUNT = 1, 2, 3
BAD_SCALE, BAD_ZERO_THRESHOLD, BAD_MIN_MAX, BAD_EXP_COUNT, BAD_INDEX = 4, 5, 6, 7, 8
MIN_SCALE, MAX_SCALE = -10, 20


@njit(cache=True, nogil=True)
def check_histograms(points, kinds, pt, ptf, counts, floats):
    """The reason code of each (not stale) histogram point of ``points`` that is refused."""
    out = np.zeros(points.shape[0], dtype=np.int64)
    for i in range(points.shape[0]):
        p = points[i]
        if pt[p, P_FLAGS] & NO_RECORDED_VALUE:
            continue
        kind = kinds[i]
        if kind == HISTOGRAM:
            nb_ = pt[p, P_B1] - pt[p, P_B0]
            nbounds = pt[p, P_F1] - pt[p, P_F0]
            if nb_ > 0 and nb_ != nbounds + 1:
                out[i] = BAD_BUCKETS
                continue
            bad = False
            for k in range(pt[p, P_F0], pt[p, P_F1]):
                x = floats[k]
                if np.isnan(x) or (k > pt[p, P_F0] and not x > floats[k - 1]):
                    bad = True
            if bad:
                out[i] = BAD_BOUNDS
                continue
            if nb_ > 0:
                total = np.uint64(0)
                for k in range(pt[p, P_B0], pt[p, P_B1]):
                    total += counts[k]
                if total != np.uint64(pt[p, P_COUNT]):
                    out[i] = BAD_COUNT
        elif kind == EXPONENTIAL:
            scale = pt[p, P_SCALE]
            if scale < MIN_SCALE or scale > MAX_SCALE:
                out[i] = BAD_SCALE
                continue
            zt = ptf[p, P_ZT]
            if not (np.isfinite(zt) and zt >= 0):
                out[i] = BAD_ZERO_THRESHOLD
                continue
            has = pt[p, P_HAS]
            if (has & H_MIN) and (has & H_MAX) and ptf[p, P_MIN] > ptf[p, P_MAX]:
                out[i] = BAD_MIN_MAX
                continue
            total = np.uint64(pt[p, P_ZERO])
            for k in range(pt[p, P_B0], pt[p, P_B1]):
                total += counts[k]
            for k in range(pt[p, P_N0], pt[p, P_N1]):
                total += counts[k]
            if total != np.uint64(pt[p, P_COUNT]):
                out[i] = BAD_EXP_COUNT
                continue
            if (pt[p, P_POS_OFF] + pt[p, P_B1] - pt[p, P_B0] > 2**31
                    or pt[p, P_NEG_OFF] + pt[p, P_N1] - pt[p, P_N0] > 2**31):  # fmt: skip
                out[i] = BAD_INDEX
    return out


@njit(cache=True, nogil=True)
def _bucket_rows(pt, p, floats):
    """Finite-bound bucket rows of histogram point p (as Prometheus loops them)."""
    n = min(pt[p, P_B1] - pt[p, P_B0], pt[p, P_F1] - pt[p, P_F0])
    rows = 0
    for i in range(n):
        if floats[pt[p, P_F0] + i] != np.inf:
            rows += 1
    return rows


@njit(cache=True, nogil=True)
def float_rows(points, kinds, pt, ptf, counts, floats, stale, names, bound_refs, inf_ref):
    """Expand float points into rows.

    ``names`` holds each metric's name, _bucket, _count and _sum names as (start, end) in the
    side buffer; ``bound_refs`` each bound's or quantile's text, ``inf_ref`` "+Inf"'s. Returns
    the rows' point, value, name (start, end), and ``le`` and ``quantile`` values as
    (source, start, end), source -1 where the row has none.
    """
    n = 0
    for i in range(points.shape[0]):
        p = points[i]
        kind = kinds[i]
        if kind == HISTOGRAM:
            n += _bucket_rows(pt, p, floats) + 2 + (1 if pt[p, P_HAS] & H_SUM else 0)
        elif kind == SUMMARY:
            n += (pt[p, P_F1] - pt[p, P_F0]) // 2 + 2
        else:
            n += 1
    row_point = np.empty(n, dtype=np.int64)
    row_value = np.empty(n, dtype=np.float64)
    name = np.empty((3, n), dtype=np.int64)
    name[0] = 1  # the side buffer
    extra = np.full((2, 3, n), -1, dtype=np.int64)  # le, quantile: (source, start, end)
    r = 0
    for i in range(points.shape[0]):
        p = points[i]
        m = pt[p, P_METRIC]
        kind = kinds[i]
        is_stale = pt[p, P_FLAGS] & NO_RECORDED_VALUE
        start = r
        if kind == HISTOGRAM:
            k_max = min(pt[p, P_B1] - pt[p, P_B0], pt[p, P_F1] - pt[p, P_F0])
            cum = np.uint64(0)
            for k in range(k_max):
                cum += counts[pt[p, P_B0] + k]
                bound = pt[p, P_F0] + k
                if floats[bound] == np.inf:
                    continue
                _set(name, extra, r, names, m, 1, 0, bound_refs[bound])
                row_value[r] = np.float64(cum)
                r += 1
            count = np.float64(np.uint64(pt[p, P_COUNT]))
            _set(name, extra, r, names, m, 1, 0, inf_ref)
            row_value[r] = count
            _set(name, extra, r + 1, names, m, 2, -1, inf_ref)
            row_value[r + 1] = count
            r += 2
            if pt[p, P_HAS] & H_SUM:
                _set(name, extra, r, names, m, 3, -1, inf_ref)
                row_value[r] = ptf[p, P_SUM]
                r += 1
        elif kind == SUMMARY:
            for k in range(pt[p, P_F0], pt[p, P_F1], 2):
                _set(name, extra, r, names, m, 0, 1, bound_refs[k])
                row_value[r] = floats[k + 1]
                r += 1
            _set(name, extra, r, names, m, 3, -1, inf_ref)
            row_value[r] = ptf[p, P_SUM]
            _set(name, extra, r + 1, names, m, 2, -1, inf_ref)
            row_value[r + 1] = np.float64(np.uint64(pt[p, P_COUNT]))
            r += 2
        else:
            _set(name, extra, r, names, m, 0, -1, inf_ref)
            if pt[p, P_HAS] & H_INT:
                row_value[r] = np.float64(pt[p, P_VALUE])
            elif pt[p, P_HAS] & H_DOUBLE:
                row_value[r] = ptf[p, P_VALUE]
            else:
                row_value[r] = 0.0
            r += 1
        for q in range(start, r):
            row_point[q] = p
            if is_stale:
                row_value[q] = stale
    return row_point, row_value, name, extra


@njit(cache=True, nogil=True, inline="always")
def _set(name, extra, r, names, m, suffix, which, ref):
    """Row r's name (metric m with a suffix) and its le (0) or quantile (1) value, if any."""
    name[1, r] = names[m, suffix, 0]
    name[2, r] = names[m, suffix, 1]
    if which >= 0:
        extra[which, 0, r] = 1
        extra[which, 1, r] = ref[0]
        extra[which, 2, r] = ref[1]


@njit(cache=True, nogil=True)
def gather_counts(counts, starts, ends):
    """The bucket count ranges of many points as one list column: (int64 offsets, values)."""
    n = starts.shape[0]
    offsets = np.empty(n + 1, dtype=np.int64)
    total = 0
    for i in range(n):
        offsets[i] = total
        total += ends[i] - starts[i]
    offsets[n] = total
    values = np.empty(total, dtype=np.uint64)
    for i in range(n):
        at = offsets[i]
        for k in range(starts[i], ends[i]):
            values[at] = counts[k]
            at += 1
    return offsets, values


@njit(cache=True, nogil=True)
def group_range(groups, values, n_groups):
    """The smallest and largest value of each group (int64 max and -1 for an empty group)."""
    lo = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(n_groups, -1, dtype=np.int64)
    for i in range(groups.shape[0]):
        g = groups[i]
        lo[g] = min(lo[g], values[i])
        hi[g] = max(hi[g], values[i])
    return lo, hi
