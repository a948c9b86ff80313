"""Numba kernels over native histogram samples: quantile, fraction, standard deviation.

Each kernel takes the flat arrays of a ``NativeHistograms`` pool and the pool rows to read (one
per result cell) and walks that sample's buckets as Prometheus 3's bucket iterators do: negative
buckets from the most negative up, the zero bucket ``[-zero_threshold, zero_threshold]`` when it
holds a count, then the positive buckets upwards. Interpolation within a bucket follows
Prometheus 3 (``promql/quantile.go``): linear in the zero bucket, exponential (linear in
``log2``) in the others.
"""

from __future__ import annotations

import math

import numpy as np

from tsdb_arrow.jit import njit
from tsdb_arrow.promql.native_bounds import FRACTIONS

_FRACTIONS = FRACTIONS
_MAX = np.finfo(np.float64).max


@njit(cache=True, nogil=True, inline="always")
def _upper(i, scale):
    """Upper bound of OpenTelemetry bucket ``i`` (Prometheus bucket ``i + 1``) at ``scale``,
    as Prometheus' ``getBound`` computes it (``native_bounds.py``): the last finite bucket
    ends at the largest float, not at +Inf."""
    idx = i + 1
    if scale <= 0:
        exp = idx << (-scale)
        if exp == 1024:
            return _MAX
        return math.ldexp(1.0, exp)
    k = idx & ((1 << scale) - 1)
    if scale <= 8:
        frac = _FRACTIONS[(1 << scale) - 1 + k]
    else:
        frac = 2.0 ** (k / (1 << scale)) / 2.0
    exp = (idx >> scale) + 1
    if frac == 0.5 and exp == 1025:
        return _MAX
    return math.ldexp(frac, exp)


@njit(cache=True, nogil=True)
def _buckets(r, scale, zc, zt, po, ps, pc, no, ns, nc, lower, upper, count):
    """Buckets of sample ``r`` in iteration order into the arrays; returns how many."""
    m = 0
    s = scale[r]
    for k in range(ns[r + 1] - 1, ns[r] - 1, -1):
        i = no[r] + (k - ns[r])
        lower[m] = -_upper(i, s)
        upper[m] = -_upper(i - 1, s)
        count[m] = nc[k]
        m += 1
    if zc[r] > 0:
        lower[m] = -zt[r]
        upper[m] = zt[r]
        count[m] = zc[r]
        if ns[r + 1] == ns[r] and ps[r + 1] > ps[r]:
            lower[m] = 0.0
        elif ps[r + 1] == ps[r] and ns[r + 1] > ns[r]:
            upper[m] = 0.0
        m += 1
    for k in range(ps[r], ps[r + 1]):
        i = po[r] + (k - ps[r])
        lower[m] = _upper(i - 1, s)
        upper[m] = _upper(i, s)
        count[m] = pc[k]
        m += 1
    return m


@njit(cache=True, nogil=True, inline="always")
def _interpolate(lo, hi, fraction):
    """The value ``fraction`` of the way through bucket ``(lo, hi]``."""
    if lo <= 0.0 and hi >= 0.0:
        return lo + (hi - lo) * fraction
    log_lo = math.log2(abs(lo))
    log_hi = math.log2(abs(hi))
    if lo > 0.0:
        return math.exp2(log_lo + (log_hi - log_lo) * fraction)
    return -math.exp2(log_hi + (log_lo - log_hi) * (1.0 - fraction))


@njit(cache=True, nogil=True)
def quantiles(rows, qs, scale, total, hsum, zc, zt, po, ps, pc, no, ns, nc):
    """Prometheus' ``histogramQuantile`` of sample ``rows[c]`` at ``qs[c]``, for every cell."""
    out = np.empty(rows.size)
    width = max(pc.size, 1) + max(nc.size, 1) + 1
    lower, upper, count = np.empty(width), np.empty(width), np.empty(width)
    for c in range(rows.size):
        q, r = qs[c], rows[c]
        if q < 0:
            out[c] = -math.inf
            continue
        if q > 1:
            out[c] = math.inf
            continue
        if total[r] == 0 or math.isnan(q):
            out[c] = math.nan
            continue
        m = _buckets(r, scale, zc, zt, po, ps, pc, no, ns, nc, lower, upper, count)
        forward = math.isnan(hsum[r]) or q < 0.5
        rank = q * total[r] if forward else (1 - q) * total[r]
        acc = 0.0
        b = -1
        for step in range(m):
            b = step if forward else m - 1 - step
            acc += count[b]
            if acc >= rank:
                break
        if b < 0:
            out[c] = math.nan
            continue
        if acc > total[r]:
            acc = total[r]
        if acc < rank:
            out[c] = upper[b]
            continue
        if forward:
            rank -= acc - count[b]
        else:
            rank = acc - rank
        out[c] = _interpolate(lower[b], upper[b], rank / count[b])
    return out


@njit(cache=True, nogil=True, inline="always")
def _below(lo, hi, v):
    """Fraction of bucket ``(lo, hi]`` below ``v`` (``lo < v < hi``)."""
    if lo <= 0.0 and hi >= 0.0:
        return (v - lo) / (hi - lo)
    log_lo = math.log2(abs(lo))
    log_hi = math.log2(abs(hi))
    log_v = math.log2(abs(v))
    if lo > 0.0:
        return (log_v - log_lo) / (log_hi - log_lo)
    return (log_lo - log_v) / (log_lo - log_hi)


@njit(cache=True, nogil=True)
def fractions(rows, los, his, scale, total, zc, zt, po, ps, pc, no, ns, nc):
    """Prometheus' ``histogramFraction`` of sample ``rows[c]`` between ``los[c]`` and
    ``his[c]``, for every cell."""
    out = np.empty(rows.size)
    width = max(pc.size, 1) + max(nc.size, 1) + 1
    lower, upper, count = np.empty(width), np.empty(width), np.empty(width)
    for c in range(rows.size):
        r, lo_v, hi_v = rows[c], los[c], his[c]
        if total[r] == 0 or math.isnan(lo_v) or math.isnan(hi_v):
            out[c] = math.nan
            continue
        if lo_v >= hi_v:
            out[c] = 0.0
            continue
        m = _buckets(r, scale, zc, zt, po, ps, pc, no, ns, nc, lower, upper, count)
        rank = 0.0
        lo_rank = hi_rank = 0.0
        lo_set = hi_set = False
        for b in range(m):
            bl, bu = lower[b], upper[b]
            if not lo_set and bl >= lo_v:
                lo_rank, lo_set = rank, True
            if not hi_set and bl >= hi_v:
                hi_rank, hi_set = rank, True
            if lo_set and hi_set:
                break
            if not lo_set and bl < lo_v < bu:
                lo_rank, lo_set = rank + count[b] * _below(bl, bu, lo_v), True
            if not hi_set and bl < hi_v < bu:
                hi_rank, hi_set = rank + count[b] * _below(bl, bu, hi_v), True
            if lo_set and hi_set:
                break
            rank += count[b]
        if not lo_set or lo_rank > total[r]:
            lo_rank = total[r]
        if not hi_set or hi_rank > total[r]:
            hi_rank = total[r]
        out[c] = (hi_rank - lo_rank) / total[r]
    return out


@njit(cache=True, nogil=True)
def variances(rows, scale, total, hsum, zc, zt, po, ps, pc, no, ns, nc):
    """Prometheus' ``histogram_stdvar`` of sample ``rows[c]``: buckets at their geometric
    middle (0 for the zero bucket), Kahan-summed squared deviations from the mean."""
    out = np.empty(rows.size)
    width = max(pc.size, 1) + max(nc.size, 1) + 1
    lower, upper, count = np.empty(width), np.empty(width), np.empty(width)
    for c in range(rows.size):
        r = rows[c]
        m = _buckets(r, scale, zc, zt, po, ps, pc, no, ns, nc, lower, upper, count)
        mean = hsum[r] / total[r]
        acc = 0.0
        comp = 0.0
        for b in range(m):
            if count[b] == 0:
                continue
            if lower[b] <= 0.0 and upper[b] >= 0.0:
                val = 0.0
            else:
                val = math.sqrt(upper[b] * lower[b])
                if upper[b] < 0:
                    val = -val
            delta = val - mean
            inc = count[b] * delta * delta
            t = acc + inc
            if math.isinf(t):
                comp = 0.0
            elif abs(acc) >= abs(inc):
                comp += (acc - t) + inc
            else:
                comp += (inc - t) + acc
            acc = t
        out[c] = (acc + comp) / total[r]
    return out
