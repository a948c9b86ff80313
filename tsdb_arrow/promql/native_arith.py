"""Arithmetic on native histogram samples: weighted sums of pool rows, in one numba kernel.

``sum``, ``avg``, ``h1 + h2``, ``h1 - h2``, ``h * 2``, ``h / 2``, ``rate``, ``increase`` and
``delta`` are all a weighted sum ``w1*h1 + w2*h2 + ...`` of stored histograms, computed as
Prometheus' ``FloatHistogram.Add``/``Sub``/``Mul`` do:

- the result has the lowest schema of its members; a finer member's bucket ``i`` (OpenTelemetry
  indexing) falls into bucket ``i >> (scale - lowest)``;
- the zero buckets are reconciled: the widest threshold wins, widened further while it falls
  inside a populated bucket of a member (``zeroCountForLargerThreshold``), and a member with a
  narrower threshold moves the buckets below the new threshold into the zero bucket;
- count, sum, zero count and buckets are the weighted sums.

One difference from Prometheus' sequential adds: whether a bucket is populated (so that a
threshold falling inside it widens to its upper bound) is asked of the members, where
Prometheus asks the running sum. They agree unless weights of both signs cancel a bucket out
part way through a sum of members with different zero thresholds, where Prometheus' answer
depends on the order of its adds.
"""

from __future__ import annotations

import numpy as np

from tsdb_arrow.jit import njit
from tsdb_arrow.promql.native import NativeHistograms
from tsdb_arrow.promql.native_kernels import _upper


@njit(cache=True, nogil=True)
def widen_threshold(r, t, scale, zc, zt, po, ps, pc, no, ns, nc):
    """Prometheus' ``zeroCountForLargerThreshold`` of row ``r``: the threshold ``t`` widened
    to the upper bound of a populated bucket it falls in (``t`` itself when none)."""
    if t <= zt[r]:
        return t
    s = scale[r]
    while True:
        for j in range(ps[r], ps[r + 1]):
            i = po[r] + (j - ps[r])
            if _upper(i - 1, s) >= t:
                break
            if _upper(i, s) > t:
                if pc[j] != 0.0:
                    t = _upper(i, s)
                break
        again = False
        for j in range(ns[r], ns[r + 1]):
            i = no[r] + (j - ns[r])
            if _upper(i - 1, s) >= t:
                break
            if _upper(i, s) > t:
                if nc[j] != 0.0:
                    t = _upper(i, s)
                    again = True
                break
        if not again:
            return t


@njit(cache=True, nogil=True)
def _plan(k0, k1, rows, scale, zc, zt, po, ps, pc, no, ns, nc):
    """Lowest scale, reconciled zero threshold, and the bucket index ranges (at that scale,
    ``[lo, hi)``) of the output made of members ``k0..k1``."""
    s_min = scale[rows[k0]]
    t = zt[rows[k0]]
    for k in range(k0, k1):
        s_min = min(s_min, scale[rows[k]])
        t = max(t, zt[rows[k]])
    changed = True
    while changed:
        changed = False
        for k in range(k0, k1):
            w = widen_threshold(rows[k], t, scale, zc, zt, po, ps, pc, no, ns, nc)
            if w != t:
                t, changed = w, True
    p_lo, p_hi, n_lo, n_hi = 0, 0, 0, 0
    p_any, n_any = False, False
    for k in range(k0, k1):
        r = rows[k]
        d = scale[r] - s_min
        fold = zt[r] != t
        for j in range(ps[r], ps[r + 1]):
            i = po[r] + (j - ps[r])
            if fold and _upper(i - 1, scale[r]) < t:
                continue
            c = i >> d
            if not p_any:
                p_lo, p_hi, p_any = c, c + 1, True
            else:
                p_lo, p_hi = min(p_lo, c), max(p_hi, c + 1)
        for j in range(ns[r], ns[r + 1]):
            i = no[r] + (j - ns[r])
            if fold and _upper(i - 1, scale[r]) < t:
                continue
            c = i >> d
            if not n_any:
                n_lo, n_hi, n_any = c, c + 1, True
            else:
                n_lo, n_hi = min(n_lo, c), max(n_hi, c + 1)
    return s_min, t, p_lo, p_hi, n_lo, n_hi


@njit(cache=True, nogil=True)
def _weighted_sums(starts, rows, weights, scale, count, hsum, zc, zt, po, ps, pc, no, ns, nc):
    n = starts.size - 1
    o_scale = np.zeros(n, np.int64)
    o_zt = np.zeros(n)
    o_po = np.zeros(n, np.int64)
    o_no = np.zeros(n, np.int64)
    o_ps = np.zeros(n + 1, np.int64)
    o_ns = np.zeros(n + 1, np.int64)
    for o in range(n):
        if starts[o + 1] == starts[o]:
            o_ps[o + 1], o_ns[o + 1] = o_ps[o], o_ns[o]
            continue
        s_min, t, p_lo, p_hi, n_lo, n_hi = _plan(starts[o], starts[o + 1], rows, scale, zc, zt,
                                                 po, ps, pc, no, ns, nc)
        o_scale[o], o_zt[o], o_po[o], o_no[o] = s_min, t, p_lo, n_lo
        o_ps[o + 1] = o_ps[o] + (p_hi - p_lo)
        o_ns[o + 1] = o_ns[o] + (n_hi - n_lo)
    o_count, o_sum, o_zc = np.zeros(n), np.zeros(n), np.zeros(n)
    o_pc, o_nc = np.zeros(o_ps[n]), np.zeros(o_ns[n])
    for o in range(n):
        t = o_zt[o]
        for k in range(starts[o], starts[o + 1]):
            r, w = rows[k], weights[k]
            d = scale[r] - o_scale[o]
            fold = zt[r] != t
            o_count[o] += w * count[r]
            o_sum[o] += w * hsum[r]
            z = zc[r]
            for j in range(ps[r], ps[r + 1]):
                i = po[r] + (j - ps[r])
                if fold and _upper(i - 1, scale[r]) < t:
                    z += pc[j]
                else:
                    o_pc[o_ps[o] + (i >> d) - o_po[o]] += w * pc[j]
            for j in range(ns[r], ns[r + 1]):
                i = no[r] + (j - ns[r])
                if fold and _upper(i - 1, scale[r]) < t:
                    z += nc[j]
                else:
                    o_nc[o_ns[o] + (i >> d) - o_no[o]] += w * nc[j]
            o_zc[o] += w * z
    return o_scale, o_count, o_sum, o_zc, o_zt, o_po, o_ps, o_pc, o_no, o_ns, o_nc


def weighted_sums(
    pool: NativeHistograms, starts: np.ndarray, rows: np.ndarray, weights: np.ndarray
) -> NativeHistograms:
    """Output o is ``sum(weights[k] * pool[rows[k]] for k in starts[o]..starts[o+1])``."""
    out = _weighted_sums(
        np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(rows, np.int64),
        np.ascontiguousarray(weights, np.float64), pool.scale, pool.count, pool.sum,
        pool.zero_count, pool.zero_threshold, pool.pos_offset, pool.pos_start, pool.pos_counts,
        pool.neg_offset, pool.neg_start, pool.neg_counts,
    )
    return NativeHistograms(*out)


def concat(a: NativeHistograms, b: NativeHistograms) -> NativeHistograms:
    """One pool of the rows of ``a`` then those of ``b`` (``b``'s row r becomes ``len(a) + r``)."""
    if a is b:
        return a
    return NativeHistograms(
        np.r_[a.scale, b.scale], np.r_[a.count, b.count], np.r_[a.sum, b.sum],
        np.r_[a.zero_count, b.zero_count], np.r_[a.zero_threshold, b.zero_threshold],
        np.r_[a.pos_offset, b.pos_offset], np.r_[a.pos_start, a.pos_start[-1] + b.pos_start[1:]],
        np.r_[a.pos_counts, b.pos_counts],
        np.r_[a.neg_offset, b.neg_offset], np.r_[a.neg_start, a.neg_start[-1] + b.neg_start[1:]],
        np.r_[a.neg_counts, b.neg_counts],
    )


@njit(cache=True, nogil=True)
def _equal_rows(a_rows, b_rows, scale, count, hsum, zc, zt, po, ps, pc, no, ns, nc):
    out = np.zeros(a_rows.size, np.bool_)
    for k in range(a_rows.size):
        a, b = a_rows[k], b_rows[k]
        if (scale[a] != scale[b] or zt[a] != zt[b] or zc[a] != zc[b] or count[a] != count[b]
                or not (hsum[a] == hsum[b] or (hsum[a] != hsum[a] and hsum[b] != hsum[b]))):
            continue
        same = True
        for side in range(2):
            off, st, cnt = (po, ps, pc) if side == 0 else (no, ns, nc)
            lo = min(off[a], off[b])
            hi = max(off[a] + st[a + 1] - st[a], off[b] + st[b + 1] - st[b])
            for i in range(lo, hi):
                ca, cb = 0.0, 0.0
                if off[a] <= i < off[a] + st[a + 1] - st[a]:
                    ca = cnt[st[a] + i - off[a]]
                if off[b] <= i < off[b] + st[b + 1] - st[b]:
                    cb = cnt[st[b] + i - off[b]]
                if ca != cb:
                    same = False
                    break
            if not same:
                break
        out[k] = same
    return out


def equal_rows(pool: NativeHistograms, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether pool rows ``a[k]`` and ``b[k]`` are the same histogram (Prometheus'
    ``FloatHistogram.Equals``: schema, zero bucket, count, sum and every bucket count; an
    empty bucket equals a missing one)."""
    return _equal_rows(np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64),
                       pool.scale, pool.count, pool.sum, pool.zero_count, pool.zero_threshold,
                       pool.pos_offset, pool.pos_start, pool.pos_counts, pool.neg_offset,
                       pool.neg_start, pool.neg_counts)
