"""``rate``, ``increase``, ``delta``, ``irate``, ``idelta``, ``sum_over_time``,
``avg_over_time``, ``last_over_time``, ``count_over_time`` and ``present_over_time`` over the
native histogram samples of a range vector.

Prometheus' ``histogramRate`` and ``instantValue`` make each result a weighted sum of the
window's samples (``last - first``, plus the sample before every counter reset, times the
extrapolation factor of ``extrapolatedRate``), so one numba kernel lists the members and
weights of every ``[series, step]`` window and ``native_arith.weighted_sums`` computes them
all. Counter resets are found once per pair of consecutive samples (``DetectReset``: a lower
count, a finer schema, a narrower zero bucket or any bucket going down).
"""

from __future__ import annotations

import numpy as np

from tsdb_arrow.jit import njit
from tsdb_arrow.promql import labels as lab
from tsdb_arrow.promql import range_kernels as rk
from tsdb_arrow.promql.annotations import warn
from tsdb_arrow.promql.native import HistogramRange, NativeHistograms
from tsdb_arrow.promql.native_arith import weighted_sums, widen_threshold
from tsdb_arrow.promql.native_kernels import _upper
from tsdb_arrow.promql.values import InstantVector, RangeVector

RATE, INCREASE, DELTA, IRATE, IDELTA, LAST, SUM, AVG, COUNT, PRESENT = range(10)


@njit(cache=True, nogil=True)
def _reset(p, c, scale, count, zc, zt, po, ps, pc, no, ns, nc):
    """Prometheus' ``FloatHistogram.DetectReset`` of row ``c`` following row ``p``."""
    if count[c] < count[p] or scale[c] > scale[p] or zt[c] < zt[p]:
        return True
    t = zt[c]
    if widen_threshold(p, t, scale, zc, zt, po, ps, pc, no, ns, nc) != t:
        return True
    pz = zc[p]
    if zt[p] != t:
        for j in range(ps[p], ps[p + 1]):
            if _upper(po[p] + (j - ps[p]) - 1, scale[p]) < t:
                pz += pc[j]
        for j in range(ns[p], ns[p + 1]):
            if _upper(no[p] + (j - ns[p]) - 1, scale[p]) < t:
                pz += nc[j]
    if zc[c] < pz:
        return True
    d = scale[p] - scale[c]
    for side in range(2):
        off, st, cnt = (po, ps, pc) if side == 0 else (no, ns, nc)
        if st[p + 1] == st[p]:
            continue
        lo = off[p] >> d
        hi = ((off[p] + st[p + 1] - st[p] - 1) >> d) + 1
        if st[c + 1] > st[c]:
            lo = min(lo, off[c])
            hi = max(hi, off[c] + st[c + 1] - st[c])
        diff = np.zeros(hi - lo)
        for j in range(st[p], st[p + 1]):
            i = off[p] + (j - st[p])
            if _upper(i, scale[p]) > t:
                diff[(i >> d) - lo] += cnt[j]
        for j in range(st[c], st[c + 1]):
            i = off[c] + (j - st[c])
            if _upper(i, scale[c]) > t:
                diff[i - lo] -= cnt[j]
        for k in range(diff.size):
            if diff[k] > 0.0:
                return True
    return False


@njit(cache=True, nogil=True)
def resets(offsets, rows, scale, count, zc, zt, po, ps, pc, no, ns, nc):
    """Whether sample k is a counter reset after sample k-1 of its series (False at a
    series' first sample)."""
    out = np.zeros(rows.size, np.bool_)
    for s in range(offsets.size - 1):
        for k in range(offsets[s] + 1, offsets[s + 1]):
            out[k] = _reset(rows[k - 1], rows[k], scale, count, zc, zt, po, ps, pc, no, ns, nc)
    return out


@njit(cache=True, nogil=True)
def _members(ts, rows, lo, hi, is_reset, count, ends, range_ms, kind, fill, starts, m_rows,
             m_weights, cells):
    """The members of every window's result; counts them when not ``fill``."""
    n_series, n_steps = lo.shape
    m = 0
    n = 0
    seconds = range_ms / 1000.0
    for i in range(n_series):
        for j in range(n_steps):
            a, b = lo[i, j], hi[i, j]
            if kind == SUM or kind == AVG:
                if b - a < 1:
                    continue
                if fill:
                    starts[n], cells[n] = m, i * n_steps + j
                    for k in range(a, b):
                        m_rows[m + k - a] = rows[k]
                        m_weights[m + k - a] = 1.0 if kind == SUM else 1.0 / (b - a)
                m += b - a
                n += 1
                continue
            if kind == LAST:
                if b - a < 1:
                    continue
                if fill:
                    starts[n], cells[n] = m, i * n_steps + j
                    m_rows[m], m_weights[m] = rows[b - 1], 1.0
                m += 1
                n += 1
                continue
            if b - a < 2:
                continue
            if kind == IRATE or kind == IDELTA:
                dt = ts[b - 1] - ts[b - 2]
                if dt == 0:
                    continue
                w = 1.0 / (dt / 1000.0) if kind == IRATE else 1.0
                if fill:
                    starts[n], cells[n] = m, i * n_steps + j
                    m_rows[m], m_weights[m] = rows[b - 1], w
                    if not (kind == IRATE and is_reset[b - 1]):
                        m_rows[m + 1], m_weights[m + 1] = rows[b - 2], -w
                m += 1 if (kind == IRATE and is_reset[b - 1]) else 2
                n += 1
                continue
            counter = kind != DELTA
            first_t, last_t = ts[a], ts[b - 1]
            result_count = count[rows[b - 1]] - count[rows[a]]
            n_resets = 0
            if counter:
                for k in range(a + 1, b):
                    if is_reset[k]:
                        result_count += count[rows[k - 1]]
                        n_resets += 1
            range_end = ends[j]
            to_start = (first_t - (range_end - range_ms)) / 1000.0
            to_end = (range_end - last_t) / 1000.0
            sampled = (last_t - first_t) / 1000.0
            average = sampled / (b - a - 1)
            threshold = average * 1.1
            if to_start >= threshold:
                to_start = average / 2.0
            if counter:
                to_zero = to_start
                if result_count > 0 and count[rows[a]] >= 0:
                    to_zero = sampled * (count[rows[a]] / result_count)
                if to_zero < to_start:
                    to_start = to_zero
            if to_end >= threshold:
                to_end = average / 2.0
            factor = (sampled + to_start + to_end) / sampled
            if kind == RATE:
                factor /= seconds
            if fill:
                starts[n], cells[n] = m, i * n_steps + j
                m_rows[m], m_weights[m] = rows[b - 1], factor
                m_rows[m + 1], m_weights[m + 1] = rows[a], -factor
                q = m + 2
                if counter:
                    for k in range(a + 1, b):
                        if is_reset[k]:
                            m_rows[q], m_weights[q] = rows[k - 1], factor
                            q += 1
            m += 2 + n_resets
            n += 1
    if fill:
        starts[n] = m
    return n, m


def evaluate(
    kind: int, h: HistogramRange, lo: np.ndarray, hi: np.ndarray, ends: np.ndarray,
    range_ms: int,
) -> tuple[np.ndarray, NativeHistograms]:
    """The histogram result of every window ``[lo, hi)`` of ``h``'s samples (``hist`` matrix,
    -1 where there is none) and the pool holding them."""
    p = h.pool
    rows = np.ascontiguousarray(h.rows, np.int64)
    ts = np.ascontiguousarray(h.timestamps, np.int64)
    is_reset = np.zeros(rows.size, np.bool_)
    if kind in (RATE, INCREASE, IRATE):
        is_reset = resets(np.ascontiguousarray(h.offsets, np.int64), rows, p.scale, p.count,
                          p.zero_count, p.zero_threshold, p.pos_offset, p.pos_start,
                          p.pos_counts, p.neg_offset, p.neg_start, p.neg_counts)
    args = (ts, rows, lo, hi, is_reset, p.count, np.ascontiguousarray(ends, np.int64),
            np.int64(range_ms), kind)
    empty_i, empty_f = np.zeros(1, np.int64), np.zeros(1)
    n, m = _members(*args, False, empty_i, empty_i, empty_f, empty_i)
    starts, cells = np.zeros(n + 1, np.int64), np.zeros(n, np.int64)
    m_rows, m_weights = np.zeros(m, np.int64), np.zeros(m)
    _members(*args, True, starts, m_rows, m_weights, cells)
    hist = np.full(lo.shape, -1, np.int64)
    hist.reshape(-1)[cells] = np.arange(n)
    return hist, weighted_sums(p, starts, m_rows, m_weights)


def combine(
    kind: int, rv: RangeVector, f_ts: np.ndarray, f_lo: np.ndarray, f_hi: np.ndarray,
    out: np.ndarray, ok: np.ndarray, where: str, *, keep_name: bool = False,
) -> InstantVector:
    """The float results ``out``/``ok`` of a range function over ``rv`` with its histogram
    results added: ``last_over_time`` takes the later sample of either kind,
    ``count_over_time`` and ``present_over_time`` count both kinds; the others give nothing
    for a window holding both kinds, with Prometheus' warning."""
    h = rv.hists
    assert h is not None
    ends = np.ascontiguousarray(rv.window_ends, np.int64)
    h_lo, h_hi = rk.window_bounds(np.ascontiguousarray(h.timestamps, np.int64),
                                  np.ascontiguousarray(h.offsets, np.int64), ends,
                                  np.int64(rv.range))
    has_f, has_h = f_hi > f_lo, h_hi > h_lo
    if kind in (COUNT, PRESENT):  # samples of both kinds count
        n = (f_hi - f_lo) + (h_hi - h_lo)
        values = n.astype(np.float64) if kind == COUNT else np.ones(n.shape)
        return lab.merge_same_labels(lab.only_present(
            InstantVector(lab.drop_name(rv.labels), values, n > 0)))
    hist, pool = evaluate(kind, h, h_lo, h_hi, ends, rv.range)
    if kind == LAST:
        never = np.iinfo(np.int64).min
        f_last = np.where(has_f, np.r_[f_ts, never][np.maximum(f_hi - 1, 0)], never)
        h_last = np.where(has_h, np.r_[h.timestamps, never][np.maximum(h_hi - 1, 0)], never)
        later_h = has_h & (h_last >= f_last)
        ok = ok & ~later_h
        hist = np.where(later_h, hist, -1)
    else:
        mixed = has_f & has_h
        if mixed.any():
            i = int(np.flatnonzero(mixed.any(axis=1))[0])
            names = rv.labels["__name__"] if "__name__" in rv.labels.columns else None
            name = "" if names is None or names[i] is None else names[i]
            warn("PromQL warning: encountered a mix of histograms and floats for metric "
                 f'name "{name}"{where}')
            ok = ok & ~mixed
            hist = np.where(mixed, -1, hist)
    labels = rv.labels if keep_name else lab.drop_name(rv.labels)
    vec = InstantVector(labels, out, ok & (hist < 0), None, hist, pool)
    return lab.merge_same_labels(lab.only_present(vec))
