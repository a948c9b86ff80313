"""numba kernels of PromQL's range-vector functions: every series x step window in one call.

A range vector's samples are concatenated per series (``offsets``) and sorted by time; a window
``(end - range, end]`` of series ``i`` at step ``j`` is the slice ``lo[i, j]:hi[i, j]`` that
:func:`window_bounds` finds by binary search. Each kernel then walks only the samples of its
windows and writes ``out[i, j]`` / ``ok[i, j]`` (``ok`` false where Prometheus emits nothing).
Arithmetic follows Prometheus' ``promql/functions.go`` operation by operation (Kahan-Neumaier
sums, the extrapolation of ``rate``, NaN-first ordering of ``quantile``), so results agree to the
last bit where Go does not fuse multiply-adds (amd64).
"""

from __future__ import annotations

import math

import numpy as np

from tsdb_arrow.jit import njit

# over_time kinds: one kernel, one branch per function (the window walk is shared).
SUM, AVG, COUNT, MIN, MAX, LAST, FIRST, PRESENT = 0, 1, 2, 3, 4, 5, 6, 7
STDDEV, STDVAR, CHANGES, RESETS = 8, 9, 10, 11
TS_FIRST, TS_LAST, TS_MIN, TS_MAX = 12, 13, 14, 15


@njit(cache=True, nogil=True, error_model="numpy")
def window_bounds(timestamps, offsets, window_ends, range_ms):
    """Sample index bounds ``lo, hi`` ([series, step]) of every window ``(end - range, end]``."""
    n_series = offsets.shape[0] - 1
    n_steps = window_ends.shape[0]
    lo = np.empty((n_series, n_steps), dtype=np.int64)
    hi = np.empty((n_series, n_steps), dtype=np.int64)
    starts = window_ends - range_ms
    ascending = True
    for j in range(1, n_steps):
        if window_ends[j] < window_ends[j - 1]:
            ascending = False
    for i in range(n_series):
        a = offsets[i]
        b = offsets[i + 1]
        if not ascending:
            seg = timestamps[a:b]
            lo[i, :] = np.searchsorted(seg, starts, side="right") + a
            hi[i, :] = np.searchsorted(seg, window_ends, side="right") + a
            continue
        # Both edges only move forward: one merge pass per series.
        p = a
        q = a
        for j in range(n_steps):
            while p < b and timestamps[p] <= starts[j]:
                p += 1
            while q < b and timestamps[q] <= window_ends[j]:
                q += 1
            lo[i, j] = p
            hi[i, j] = q
    return lo, hi


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def kahan_inc(inc, total, c):
    """Prometheus' ``kahansum.Inc``: Neumaier-compensated ``total + inc``."""
    t = total + inc
    if math.isinf(t):
        c = 0.0
    elif abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


@njit(cache=True, nogil=True, error_model="numpy")
def _avg(values, a, b):
    total = values[a]
    count = 1.0
    mean = 0.0
    c = 0.0
    incremental = False
    for k in range(a + 1, b):
        f = values[k]
        count = float(k - a + 1)
        if not incremental:
            new_total, new_c = kahan_inc(f, total, c)
            if not math.isinf(new_total):
                total, c = new_total, new_c
                continue
            incremental = True
            mean = total / (count - 1)
            c /= count - 1
        q = (count - 1) / count
        mean, c = kahan_inc(f / count, q * mean, q * c)
    if incremental:
        return mean + c
    return total / count + c / count


@njit(cache=True, nogil=True, error_model="numpy")
def _variance(values, a, b):
    count = 0.0
    mean = 0.0
    c_mean = 0.0
    aux = 0.0
    c_aux = 0.0
    for k in range(a, b):
        f = values[k]
        count += 1.0
        delta = f - (mean + c_mean)
        mean, c_mean = kahan_inc(delta / count, mean, c_mean)
        aux, c_aux = kahan_inc(delta * (f - (mean + c_mean)), aux, c_aux)
    return (aux + c_aux) / count


@njit(cache=True, nogil=True, error_model="numpy")
def _compare(values, timestamps, a, b, kind):
    best = values[a]
    best_t = timestamps[a]
    for k in range(a, b):
        cur = values[k]
        if kind == MIN:
            take = cur < best or math.isnan(best)
        elif kind == MAX:
            take = cur > best or math.isnan(best)
        elif kind == TS_MIN:
            take = cur <= best or math.isnan(best)
        else:
            take = cur >= best or math.isnan(best)
        if take:
            best = cur
            best_t = timestamps[k]
    if kind == MIN or kind == MAX:
        return best
    return best_t / 1000.0


@njit(cache=True, nogil=True, error_model="numpy")
def over_time(timestamps, values, lo, hi, kind):
    """The ``*_over_time`` family, ``changes`` and ``resets``; no output for an empty window."""
    n_series, n_steps = lo.shape
    out = np.zeros((n_series, n_steps), dtype=np.float64)
    ok = np.zeros((n_series, n_steps), dtype=np.bool_)
    for i in range(n_series):
        for j in range(n_steps):
            a = lo[i, j]
            b = hi[i, j]
            if b <= a:
                continue
            ok[i, j] = True
            if kind == SUM:
                total = 0.0
                c = 0.0
                for k in range(a, b):
                    total, c = kahan_inc(values[k], total, c)
                out[i, j] = total if math.isinf(total) else total + c
            elif kind == AVG:
                out[i, j] = _avg(values, a, b)
            elif kind == COUNT:
                out[i, j] = b - a
            elif kind == PRESENT:
                out[i, j] = 1.0
            elif kind == LAST:
                out[i, j] = values[b - 1]
            elif kind == FIRST:
                out[i, j] = values[a]
            elif kind == TS_LAST:
                out[i, j] = timestamps[b - 1] / 1000.0
            elif kind == TS_FIRST:
                out[i, j] = timestamps[a] / 1000.0
            elif kind == STDVAR:
                out[i, j] = _variance(values, a, b)
            elif kind == STDDEV:
                out[i, j] = math.sqrt(_variance(values, a, b))
            elif kind == CHANGES:
                n = 0
                for k in range(a + 1, b):
                    prev = values[k - 1]
                    cur = values[k]
                    if cur != prev and not (math.isnan(cur) and math.isnan(prev)):
                        n += 1
                out[i, j] = n
            elif kind == RESETS:
                n = 0
                for k in range(a + 1, b):
                    if values[k] < values[k - 1]:
                        n += 1
                out[i, j] = n
            else:
                out[i, j] = _compare(values, timestamps, a, b, kind)
    return out, ok


@njit(cache=True, nogil=True, error_model="numpy")
def range_seconds(range_ms):
    """Go's ``time.Duration.Seconds()`` of a range in ms (whole seconds plus the fraction)."""
    return float(range_ms // 1000) + float((range_ms % 1000) * 1_000_000) / 1e9


@njit(cache=True, nogil=True, error_model="numpy")
def extrapolated_rate(timestamps, values, lo, hi, window_ends, range_ms, is_counter, is_rate):
    """``rate`` / ``increase`` / ``delta``: Prometheus' extrapolation to the window edges."""
    n_series, n_steps = lo.shape
    out = np.zeros((n_series, n_steps), dtype=np.float64)
    ok = np.zeros((n_series, n_steps), dtype=np.bool_)
    seconds = range_seconds(range_ms)
    # drops[k]: how many samples up to k are below the one before; a window without any is
    # not walked (the correction adds nothing there)
    drops = np.zeros(values.shape[0], dtype=np.int64)
    if is_counter:
        for k in range(1, values.shape[0]):
            drops[k] = drops[k - 1] + (1 if values[k] < values[k - 1] else 0)
    for i in range(n_series):
        for j in range(n_steps):
            a = lo[i, j]
            b = hi[i, j]
            if b - a < 2:
                continue
            first_t = timestamps[a]
            last_t = timestamps[b - 1]
            result = values[b - 1] - values[a]
            if is_counter and drops[b - 1] != drops[a]:
                for k in range(a + 1, b):
                    if values[k] < values[k - 1]:
                        result += values[k - 1]
            range_end = window_ends[j]
            range_start = range_end - range_ms
            to_start = float(first_t - range_start) / 1000.0
            to_end = float(range_end - last_t) / 1000.0
            sampled = float(last_t - first_t) / 1000.0
            average = sampled / float(b - a - 1)
            threshold = average * 1.1
            if to_start >= threshold:
                to_start = average / 2.0
            if is_counter:
                to_zero = to_start
                if result > 0 and values[a] >= 0:
                    to_zero = sampled * (values[a] / result)
                if to_zero < to_start:
                    to_start = to_zero
            if to_end >= threshold:
                to_end = average / 2.0
            factor = (sampled + to_start + to_end) / sampled
            if is_rate:
                factor /= seconds
            out[i, j] = result * factor
            ok[i, j] = True
    return out, ok


@njit(cache=True, nogil=True, error_model="numpy")
def instant_rate(timestamps, values, lo, hi, is_rate):
    """``irate`` / ``idelta``: the last two samples of each window."""
    n_series, n_steps = lo.shape
    out = np.zeros((n_series, n_steps), dtype=np.float64)
    ok = np.zeros((n_series, n_steps), dtype=np.bool_)
    for i in range(n_series):
        for j in range(n_steps):
            a = lo[i, j]
            b = hi[i, j]
            if b - a < 2:
                continue
            interval = timestamps[b - 1] - timestamps[b - 2]
            if interval == 0:
                continue
            v0 = values[b - 2]
            v1 = values[b - 1]
            result = v1
            if not is_rate or not v1 < v0:
                result = v1 - v0
            if is_rate:
                result /= float(interval) / 1000.0
            out[i, j] = result
            ok[i, j] = True
    return out, ok


@njit(cache=True, nogil=True, error_model="numpy")
def _regression(timestamps, values, a, b, intercept_time):
    n = 0.0
    sx = cx = sy = cy = sxy = cxy = sx2 = cx2 = 0.0
    init_y = values[a]
    const_y = True
    for k in range(a, b):
        y = values[k]
        if const_y and k > a and y != init_y:
            const_y = False
        n += 1.0
        x = float(timestamps[k] - intercept_time) / 1e3
        sx, cx = kahan_inc(x, sx, cx)
        sy, cy = kahan_inc(y, sy, cy)
        sxy, cxy = kahan_inc(x * y, sxy, cxy)
        sx2, cx2 = kahan_inc(x * x, sx2, cx2)
    if const_y:
        if math.isinf(init_y):
            return math.nan, math.nan
        return 0.0, init_y
    sx += cx
    sy += cy
    sxy += cxy
    sx2 += cx2
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = cov / var
    return slope, sy / n - slope * sx / n


@njit(cache=True, nogil=True, error_model="numpy")
def linear(timestamps, values, lo, hi, eval_times, durations, predict):
    """``deriv`` (slope), or ``predict_linear`` (``durations[j]`` s after ``eval_times[j]``)."""
    n_series, n_steps = lo.shape
    out = np.zeros((n_series, n_steps), dtype=np.float64)
    ok = np.zeros((n_series, n_steps), dtype=np.bool_)
    for i in range(n_series):
        for j in range(n_steps):
            a = lo[i, j]
            b = hi[i, j]
            if b - a < 2:
                continue
            if predict:
                slope, intercept = _regression(timestamps, values, a, b, eval_times[j])
                out[i, j] = slope * durations[j] + intercept
            else:
                slope, _ = _regression(timestamps, values, a, b, timestamps[a])
                out[i, j] = slope
            ok[i, j] = True
    return out, ok


@njit(cache=True, nogil=True, error_model="numpy")
def double_exponential_smoothing(values, lo, hi, sf, tf):
    """``double_exponential_smoothing`` (``holt_winters``) with factors ``sf[j]``, ``tf[j]``."""
    n_series, n_steps = lo.shape
    out = np.zeros((n_series, n_steps), dtype=np.float64)
    ok = np.zeros((n_series, n_steps), dtype=np.bool_)
    for i in range(n_series):
        for j in range(n_steps):
            a = lo[i, j]
            b = hi[i, j]
            if b - a < 2:
                continue
            s, t = sf[j], tf[j]
            s0 = 0.0
            s1 = values[a]
            trend = values[a + 1] - values[a]
            for k in range(a + 1, b):
                x = s * values[k]
                if k - 1 > a:
                    trend = t * (s1 - s0) + (1 - t) * trend
                y = (1 - s) * (s1 + trend)
                s0, s1 = s1, x + y
            out[i, j] = s1
            ok[i, j] = True
    return out, ok


@njit(cache=True, nogil=True, error_model="numpy")
def _sort_nan_first(buf):
    """Sort in place with NaNs first (the order of Prometheus' ``vectorByValueHeap``)."""
    m = buf.shape[0]
    if m > 32:
        nans = 0
        for k in range(m):
            if math.isnan(buf[k]):
                nans += 1
        rest = np.sort(buf)  # NaNs last in numpy
        for k in range(nans):
            buf[k] = math.nan
        for k in range(m - nans):
            buf[nans + k] = rest[k]
        return
    for k in range(1, m):  # insertion sort: windows are short
        x = buf[k]
        x_nan = math.isnan(x)
        p = k - 1
        while p >= 0 and (x_nan and not math.isnan(buf[p]) or (not x_nan and x < buf[p])):
            buf[p + 1] = buf[p]
            p -= 1
        buf[p + 1] = x


@njit(cache=True, nogil=True, error_model="numpy")
def quantile_sorted(q, buf):
    """Prometheus' ``quantile`` of already sorted values (linear between closest ranks)."""
    m = buf.shape[0]
    if m == 0 or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    n = float(m)
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return buf[int(lower)] * (1 - weight) + buf[int(upper)] * weight


@njit(cache=True, nogil=True, error_model="numpy")
def quantile_over_time(values, lo, hi, qs, mad):
    """``quantile_over_time(qs[j])``, or ``mad_over_time`` (median absolute deviation)."""
    n_series, n_steps = lo.shape
    out = np.zeros((n_series, n_steps), dtype=np.float64)
    ok = np.zeros((n_series, n_steps), dtype=np.bool_)
    width = 0
    for i in range(n_series):
        for j in range(n_steps):
            width = max(width, hi[i, j] - lo[i, j])
    scratch = np.empty(width, dtype=np.float64)
    for i in range(n_series):
        for j in range(n_steps):
            a = lo[i, j]
            b = hi[i, j]
            if b <= a:
                continue
            ok[i, j] = True
            buf = scratch[: b - a]
            buf[:] = values[a:b]
            _sort_nan_first(buf)
            if not mad:
                out[i, j] = quantile_sorted(qs[j], buf)
                continue
            if math.isnan(buf[0]):  # a NaN sample makes the MAD NaN (Prometheus' test data)
                out[i, j] = math.nan
                continue
            median = quantile_sorted(0.5, buf)
            dev = scratch[: b - a]
            for k in range(a, b):
                dev[k - a] = abs(values[k] - median)
            _sort_nan_first(dev)
            out[i, j] = quantile_sorted(0.5, dev)
    return out, ok
