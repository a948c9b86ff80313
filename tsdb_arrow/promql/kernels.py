"""numba kernels of the evaluator: instant selection with lookback, grouped aggregation,
top/bottom-k. Each walks all series and steps in one compiled call and releases the GIL."""

from __future__ import annotations

import numpy as np

from tsdb_arrow.jit import njit
from tsdb_arrow.promql.range_kernels import kahan_inc

STALE_BITS = np.uint64(0x7FF0000000000002)


@njit(cache=True, nogil=True)
def instant_select(ts, vals, offsets, times, lookback):  # pragma: no cover - compiled
    """Latest sample of each series in ``(t - lookback, t]`` per time ``t``; a stale marker as
    the latest sample means absent. ``times`` need not be sorted."""
    n_series = offsets.size - 1
    n_steps = times.size
    out = np.zeros((n_series, n_steps))
    present = np.zeros((n_series, n_steps), dtype=np.bool_)
    sample_ts = np.zeros((n_series, n_steps), dtype=np.int64)
    bits = vals.view(np.uint64)
    ascending = True
    for j in range(1, n_steps):
        if times[j] < times[j - 1]:
            ascending = False
    for i in range(n_series):
        lo = offsets[i]
        hi = offsets[i + 1]
        if lo == hi:
            continue
        k = lo  # first sample after the current time (times ascending: one walk per series)
        for j in range(n_steps):
            t = times[j]
            if ascending:
                while k < hi and ts[k] <= t:
                    k += 1
                last = k - 1
            else:
                last = lo + np.searchsorted(ts[lo:hi], t, side="right") - 1
            if last < lo or ts[last] <= t - lookback or bits[last] == STALE_BITS:
                continue
            out[i, j] = vals[last]
            present[i, j] = True
            sample_ts[i, j] = ts[last]
    return out, present, sample_ts


# Aggregation operators the grouped kernel knows (ids shared with aggregate.py).
SUM, AVG, COUNT, MIN, MAX, GROUP, STDDEV, STDVAR = range(8)


@njit(cache=True, nogil=True)
def grouped(op, group_ids, n_groups, vals, present):  # pragma: no cover - compiled
    """Aggregate ``vals[series, step]`` into ``[group, step]`` the way Prometheus does (Kahan
    sums, incremental mean on overflow, Welford variance, NaN-aware min/max)."""
    n_series, n_steps = vals.shape
    out = np.zeros((n_groups, n_steps))
    comp = np.zeros((n_groups, n_steps))
    mean = np.zeros((n_groups, n_steps))
    count = np.zeros((n_groups, n_steps))
    incremental = np.zeros((n_groups, n_steps), dtype=np.bool_)
    for i in range(n_series):
        g = group_ids[i]
        for j in range(n_steps):
            if not present[i, j]:
                continue
            f = vals[i, j]
            count[g, j] += 1
            n = count[g, j]
            if n == 1:
                if op == STDDEV or op == STDVAR:
                    mean[g, j] = f
                    out[g, j] = np.nan if (np.isnan(f) or np.isinf(f)) else 0.0
                elif op == GROUP:
                    out[g, j] = 1.0
                else:
                    out[g, j] = f
                continue
            if op == SUM:
                out[g, j], comp[g, j] = kahan_inc(f, out[g, j], comp[g, j])
            elif op == MIN:
                if out[g, j] > f or np.isnan(out[g, j]):
                    out[g, j] = f
            elif op == MAX:
                if out[g, j] < f or np.isnan(out[g, j]):
                    out[g, j] = f
            elif op == STDDEV or op == STDVAR:
                delta = f - mean[g, j]
                mean[g, j] += delta / n
                out[g, j] += delta * (f - mean[g, j])
            elif op == AVG:
                if not incremental[g, j]:
                    nv, nc = kahan_inc(f, out[g, j], comp[g, j])
                    if not np.isinf(nv):
                        out[g, j] = nv
                        comp[g, j] = nc
                        continue
                    incremental[g, j] = True
                    mean[g, j] = out[g, j] / (n - 1)
                    comp[g, j] /= n - 1
                m = mean[g, j]
                if np.isinf(m):
                    if np.isinf(f) and (m > 0) == (f > 0):
                        continue
                    if not np.isinf(f) and not np.isnan(f):
                        continue
                cur = m + comp[g, j]
                mean[g, j], comp[g, j] = kahan_inc(f / n - cur / n, m, comp[g, j])
    has = count > 0
    for g in range(n_groups):
        for j in range(n_steps):
            n = count[g, j]
            if n == 0:
                continue
            if op == SUM:
                out[g, j] += comp[g, j]
            elif op == COUNT:
                out[g, j] = n
            elif op == AVG:
                if incremental[g, j]:
                    out[g, j] = mean[g, j] + comp[g, j]
                else:
                    out[g, j] = out[g, j] / n + comp[g, j] / n
            elif op == STDVAR:
                out[g, j] = out[g, j] / n
            elif op == STDDEV:
                out[g, j] = np.sqrt(out[g, j] / n)
    return out, has


@njit(cache=True, nogil=True)
def _better(a, b, top):  # pragma: no cover - compiled
    """Whether value ``a`` ranks before ``b`` (NaN ranks last either way)."""
    if np.isnan(a):
        return False
    if np.isnan(b):
        return True
    return a > b if top else a < b


@njit(cache=True, nogil=True)
def top_k(by_group, group_starts, vals_t, present_t, ks, top):  # pragma: no cover - compiled
    """Which series topk/bottomk keep per step (``ks[step]`` per group) and each kept series'
    rank in its group (0 = first). ``by_group`` lists the series sorted by group, group g
    being ``by_group[group_starts[g]:group_starts[g+1]]``. Values and presence come
    transposed, ``[step, series]``, so that one step's series are contiguous in memory."""
    n_steps, n_series = vals_t.shape
    keep = np.zeros((n_series, n_steps), dtype=np.bool_)
    rank = np.zeros((n_series, n_steps), dtype=np.int64)
    best = np.empty(n_series + 1, dtype=np.int64)
    for j in range(n_steps):
        k = min(ks[j], n_series)
        if k < 1:
            continue
        for g in range(group_starts.size - 1):
            m = 0
            for q in range(group_starts[g], group_starts[g + 1]):
                i = by_group[q]
                if not present_t[j, i]:
                    continue
                v = vals_t[j, i]
                if m == k and not _better(v, vals_t[j, best[m - 1]], top):
                    continue
                pos = min(m, k - 1)
                while pos > 0 and _better(v, vals_t[j, best[pos - 1]], top):
                    best[pos] = best[pos - 1]
                    pos -= 1
                best[pos] = i
                if m < k:
                    m += 1
            for q in range(m):
                keep[best[q], j] = True
                rank[best[q], j] = q
    return keep, rank


@njit(cache=True, nogil=True)
def group_presence(group_ids, n_groups, present):  # pragma: no cover - compiled
    """Per group and step: how many series are present, and the last such series (-1 if
    none)."""
    n_series, n_steps = present.shape
    counts = np.zeros((n_groups, n_steps), dtype=np.int64)
    last = np.full((n_groups, n_steps), -1, dtype=np.int64)
    for i in range(n_series):
        g = group_ids[i]
        for j in range(n_steps):
            if present[i, j]:
                counts[g, j] += 1
                last[g, j] = i
    return counts, last


@njit(cache=True, nogil=True)
def single_partner(match, kept):  # pragma: no cover - compiled
    """Per row, the one partner index it is kept with at every step (-1: none), and whether
    every row has at most one partner over all steps."""
    n_rows, n_steps = match.shape
    partner = np.full(n_rows, -1, dtype=np.int64)
    for i in range(n_rows):
        for j in range(n_steps):
            if kept[i, j]:
                if partner[i] == -1:
                    partner[i] = match[i, j]
                elif partner[i] != match[i, j]:
                    return partner, False
    return partner, True
