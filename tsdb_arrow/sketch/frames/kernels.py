"""Numba kernels of the Polars aggregations: hash grouping, the counting sort of values by group,
and the DDSketch buckets of every group in one pass."""

from __future__ import annotations

import numpy as np

from tsdb_arrow.jit import njit
from tsdb_arrow.sketch.ddsketch.mapping import fast_key

# Dense per-group counting while the key range is at most this (and 4x the group's values).
_DENSE_LIMIT = 1 << 20


@njit(cache=True)
def dense_ids(hashes):
    """Group id per row, numbered by first appearance of each hash, each id's first row and
    its number of rows (open addressing, table grown to stay at most half full)."""
    n = hashes.size
    cap = 1024
    table = np.zeros(cap, np.uint64)
    slot_id = np.full(cap, -1, np.int64)
    ids = np.empty(n, np.int64)
    firsts = np.empty(n, np.int64)
    rows = np.zeros(n, np.int64)
    groups = 0
    for i in range(n):
        h = hashes[i]
        j = np.int64(h & np.uint64(cap - 1))
        while slot_id[j] >= 0 and table[j] != h:
            j = (j + 1) & (cap - 1)
        if slot_id[j] < 0:
            table[j], slot_id[j] = h, groups
            firsts[groups] = i
            groups += 1
            if 2 * groups > cap:
                old_table, old_id = table, slot_id
                cap *= 2
                table = np.zeros(cap, np.uint64)
                slot_id = np.full(cap, -1, np.int64)
                for k in range(old_table.size):
                    if old_id[k] >= 0:
                        m = np.int64(old_table[k] & np.uint64(cap - 1))
                        while slot_id[m] >= 0:
                            m = (m + 1) & (cap - 1)
                        table[m], slot_id[m] = old_table[k], old_id[k]
            ids[i] = groups - 1
        else:
            ids[i] = slot_id[j]
        rows[ids[i]] += 1
    return ids, firsts[:groups].copy(), rows[:groups].copy()


@njit(cache=True)
def values_by_group(values, ids, rank, rows):
    """``values`` reordered by group ``rank[ids[row]]`` (a stable counting sort), and each
    group's start."""
    groups = rank.size
    starts = np.zeros(groups + 1, np.int64)
    for k in range(groups):
        starts[rank[k] + 1] = rows[k]
    for g in range(groups):
        starts[g + 1] += starts[g]
    at = starts[:-1].copy()
    out = np.empty_like(values)
    for i in range(ids.size):
        g = rank[ids[i]]
        out[at[g]] = values[i]
        at[g] += 1
    return out, starts


@njit(cache=True)
def _emit(
    keys,
    signs,
    values,
    lo,
    hi,
    side,
    n_side,
    kmin,
    kmax,
    out_keys,
    out_counts,
    out_sum,
    out_min,
    out_max,
    w,
    dense,
    dsum,
    dmin,
    dmax,
    with_stats,
):
    """Append the buckets of one group's ``side`` (ascending keys) at ``w``; the new ``w``."""
    if n_side == 0:
        return w
    span = kmax - kmin + 1
    if span <= min(4 * n_side + 1024, _DENSE_LIMIT):
        for i in range(lo, hi):
            if signs[i] == side:
                j = keys[i] - kmin
                dense[j] += 1.0
                if with_stats:
                    dsum[j] += values[i]
                    dmin[j] = min(dmin[j], values[i])
                    dmax[j] = max(dmax[j], values[i])
        for j in range(span):
            if dense[j] > 0:
                out_keys[w], out_counts[w] = kmin + j, dense[j]
                dense[j] = 0.0
                if with_stats:
                    out_sum[w], out_min[w], out_max[w] = dsum[j], dmin[j], dmax[j]
                    dsum[j], dmin[j], dmax[j] = 0.0, np.inf, -np.inf
                w += 1
        return w
    picked = np.empty(n_side, np.int64)
    m = 0
    for i in range(lo, hi):
        if signs[i] == side:
            picked[m] = i
            m += 1
    order = picked[np.argsort(keys[picked], kind="mergesort")]
    for t in range(n_side):
        i = order[t]
        if t == 0 or keys[i] != keys[order[t - 1]]:
            out_keys[w], out_counts[w] = keys[i], 0.0
            if with_stats:
                out_sum[w], out_min[w], out_max[w] = 0.0, np.inf, -np.inf
            w += 1
        out_counts[w - 1] += 1.0
        if with_stats:
            out_sum[w - 1] += values[i]
            out_min[w - 1] = min(out_min[w - 1], values[i])
            out_max[w - 1] = max(out_max[w - 1], values[i])
    return w


@njit(cache=True)
def sketch_kernel(
    values, logs, run_starts, run_order, group_runs, multiplier, offset, min_possible, with_stats
):
    """Bucket counts of every group (see ``SketchArrays``), one group at a time: the keys of
    its rows go to a scratch buffer, then into a dense counter over their range. Returns the
    index of the first infinite value (or -1) first."""
    groups = group_runs.size - 1
    n = values.size
    m = n if with_stats else 0
    gm = groups if with_stats else 0
    po = np.zeros(groups + 1, np.int64)
    no = np.zeros(groups + 1, np.int64)
    pk, nk = np.empty(n, np.int64), np.empty(n, np.int64)
    pc, nc = np.empty(n, np.float64), np.empty(n, np.float64)
    psum, pmin, pmax = np.empty(m), np.empty(m), np.empty(m)
    nsum, nmin, nmax = np.empty(m), np.empty(m), np.empty(m)
    zero, count = np.zeros(groups), np.zeros(groups)
    zsum, zmin, zmax = np.zeros(gm), np.full(gm, np.inf), np.full(gm, -np.inf)
    gsum, gmin, gmax = np.zeros(gm), np.full(gm, np.inf), np.full(gm, -np.inf)
    largest = 0
    for g in range(groups):
        rows = 0
        for r in range(group_runs[g], group_runs[g + 1]):
            rows += run_starts[run_order[r] + 1] - run_starts[run_order[r]]
        largest = max(largest, rows)
    keys = np.empty(largest, np.int64)
    signs = np.empty(largest, np.int8)
    vals = np.empty(largest if with_stats else 0)
    size = min(_DENSE_LIMIT, 4 * largest + 1024)
    dense = np.zeros(size)
    ds = size if with_stats else 0
    dsum, dmin, dmax = np.zeros(ds), np.full(ds, np.inf), np.full(ds, -np.inf)
    big = 9223372036854775807
    bad = -1  # index of the first infinite value: refused by the caller
    wp = 0
    wn = 0
    for g in range(groups):
        pmin_k, pmax_k, nmin_k, nmax_k = big, -big, big, -big
        n_pos = 0
        n_neg = 0
        t = 0
        for r in range(group_runs[g], group_runs[g + 1]):
            for i in range(run_starts[run_order[r]], run_starts[run_order[r] + 1]):
                v = values[i]
                if v != v:
                    continue
                if v == np.inf or v == -np.inf:
                    bad = i
                    break
                if v > min_possible:
                    key = fast_key(v, logs[i], multiplier, offset)
                    signs[t] = 1
                    n_pos += 1
                    pmin_k, pmax_k = min(pmin_k, key), max(pmax_k, key)
                elif v < -min_possible:
                    key = fast_key(-v, logs[i], multiplier, offset)
                    signs[t] = -1
                    n_neg += 1
                    nmin_k, nmax_k = min(nmin_k, key), max(nmax_k, key)
                else:
                    key = 0
                    signs[t] = 0
                    zero[g] += 1.0
                    if with_stats:
                        zsum[g] += v
                        zmin[g] = min(zmin[g], v)
                        zmax[g] = max(zmax[g], v)
                keys[t] = key
                if with_stats:
                    vals[t] = v
                    gsum[g] += v
                    gmin[g] = min(gmin[g], v)
                    gmax[g] = max(gmax[g], v)
                t += 1
            if bad >= 0:
                break
        if bad >= 0:
            break
        count[g] = t
        wp = _emit(
            keys,
            signs,
            vals,
            0,
            t,
            1,
            n_pos,
            pmin_k,
            pmax_k,
            pk,
            pc,
            psum,
            pmin,
            pmax,
            wp,
            dense,
            dsum,
            dmin,
            dmax,
            with_stats,
        )
        wn = _emit(
            keys,
            signs,
            vals,
            0,
            t,
            -1,
            n_neg,
            nmin_k,
            nmax_k,
            nk,
            nc,
            nsum,
            nmin,
            nmax,
            wn,
            dense,
            dsum,
            dmin,
            dmax,
            with_stats,
        )
        po[g + 1] = wp
        no[g + 1] = wn
    return (
        bad,
        po,
        pk,
        pc,
        no,
        nk,
        nc,
        zero,
        count,
        gsum,
        gmin,
        gmax,
        psum,
        pmin,
        pmax,
        nsum,
        nmin,
        nmax,
        zsum,
        zmin,
        zmax,
    )
