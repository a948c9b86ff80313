"""``histogram_quantile`` and ``histogram_fraction`` over classic histograms (``le`` buckets).

Bucket series are grouped by their labels other than ``le`` (and ``__name__``), sorted by upper
bound within a group, and one numba kernel computes every group x step as Prometheus'
``BucketQuantile`` / ``BucketFraction`` do: equal bounds coalesced, counts made monotonic
(ignoring relative differences up to 1e-12), NaN without a ``+Inf`` bucket or with fewer than
two buckets. Native (exponential) histograms are not stored as such yet and are not handled here.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from tsdb_arrow.jit import njit
from tsdb_arrow.promql.annotations import info, warn
from tsdb_arrow.promql.label_ops import drop_name, group_rows
from tsdb_arrow.promql.values import InstantVector

BUCKET_LABEL = "le"
SMALL_DELTA = 1e-12
_MIN_NORMAL = 2.2250738585072014e-308


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def almost_equal(a, b, epsilon):
    """Prometheus' ``almost.Equal`` (relative tolerance, NaNs equal)."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, 1.7976931348623157e308) < epsilon


@njit(cache=True, nogil=True, error_model="numpy")
def _gather(bounds, counts_in, present, a, b, j, ub, cnt):
    """Coalesced buckets of one group at step ``j`` into ``ub``/``cnt``; returns their number."""
    m = 0
    for r in range(a, b):
        if not present[r, j]:
            continue
        if m > 0 and bounds[r] == ub[m - 1]:
            cnt[m - 1] += counts_in[r, j]
        else:
            ub[m] = bounds[r]
            cnt[m] = counts_in[r, j]
            m += 1
    return m


@njit(cache=True, nogil=True, error_model="numpy")
def _monotonic(cnt, m):
    """Remove decreases (and relative noise up to 1e-12); True where a decrease was removed."""
    forced = False
    prev = cnt[0]
    for k in range(1, m):
        cur = cnt[k]
        if cur == prev:
            continue
        if almost_equal(prev, cur, SMALL_DELTA):
            cnt[k] = prev
            continue
        if cur < prev:
            cnt[k] = prev
            forced = True
            continue
        prev = cur
    return forced


@njit(cache=True, nogil=True, error_model="numpy")
def bucket_quantile(q, ub, cnt, m):
    """Prometheus' ``BucketQuantile`` of ``m`` sorted, coalesced buckets, and whether the
    counts had to be made monotonic."""
    if math.isnan(q):
        return math.nan, False
    if q < 0:
        return -math.inf, False
    if q > 1:
        return math.inf, False
    if not (math.isinf(ub[m - 1]) and ub[m - 1] > 0):
        return math.nan, False
    forced = _monotonic(cnt, m)
    if m < 2:
        return math.nan, forced
    observations = cnt[m - 1]
    if observations == 0:
        return math.nan, forced
    rank = q * observations
    b = m - 1
    for k in range(m - 1):
        if cnt[k] >= rank:
            b = k
            break
    if b == m - 1:
        return ub[m - 2], forced
    if b == 0 and ub[0] <= 0:
        return ub[0], forced
    start = 0.0
    end = ub[b]
    count = cnt[b]
    if b > 0:
        start = ub[b - 1]
        count -= cnt[b - 1]
        rank -= cnt[b - 1]
    return start + (end - start) * (rank / count), forced


@njit(cache=True, nogil=True, error_model="numpy")
def bucket_fraction(lower, upper, ub, cnt, m):
    """Prometheus' ``BucketFraction``: share of observations between ``lower`` and ``upper``."""
    if not (math.isinf(ub[m - 1]) and ub[m - 1] > 0):
        return math.nan
    count = cnt[m - 1]
    if count == 0 or math.isnan(lower) or math.isnan(upper):
        return math.nan
    if lower >= upper:
        return 0.0
    rank = 0.0
    lower_rank = 0.0
    upper_rank = 0.0
    lower_set = False
    upper_set = False
    lower_bound = 0.0 if ub[0] > 0 else -math.inf
    for k in range(m):
        if k > 0:
            lower_bound = ub[k - 1]
        upper_bound = ub[k]
        if not lower_set and lower_bound >= lower:
            lower_rank = rank
            lower_set = True
        if not upper_set and lower_bound >= upper:
            upper_rank = rank
            upper_set = True
        if lower_set and upper_set:
            break
        if not lower_set and lower_bound < lower and upper_bound > lower:
            if lower_bound == -math.inf:
                lower_rank = cnt[k]
            else:
                lower_rank = rank + (cnt[k] - rank) * (lower - lower_bound) / (
                    upper_bound - lower_bound
                )
            lower_set = True
        if not upper_set and lower_bound < upper and upper_bound > upper:
            if lower_bound == -math.inf:
                upper_rank = cnt[k]
            else:
                upper_rank = rank + (cnt[k] - rank) * (upper - lower_bound) / (
                    upper_bound - lower_bound
                )
            upper_set = True
        if lower_set and upper_set:
            break
        rank = cnt[k]
    if not lower_set or lower_rank > count:
        lower_rank = count
    if not upper_set or upper_rank > count:
        upper_rank = count
    return (upper_rank - lower_rank) / count


@njit(cache=True, nogil=True, error_model="numpy")
def groups_kernel(bounds, counts, present, group_offsets, p1, p2, fraction):
    """Every group x step: quantile ``p1[j]`` or, with ``fraction``, share in ``(p1, p2]``;
    also whether any quantile needed its bucket counts made monotonic."""
    n_groups = group_offsets.shape[0] - 1
    n_steps = counts.shape[1]
    out = np.zeros((n_groups, n_steps), dtype=np.float64)
    ok = np.zeros((n_groups, n_steps), dtype=np.bool_)
    width = 1
    for g in range(n_groups):
        width = max(width, group_offsets[g + 1] - group_offsets[g])
    ub = np.empty(width, dtype=np.float64)
    cnt = np.empty(width, dtype=np.float64)
    any_forced = False
    for g in range(n_groups):
        a = group_offsets[g]
        b = group_offsets[g + 1]
        for j in range(n_steps):
            m = _gather(bounds, counts, present, a, b, j, ub, cnt)
            if m == 0:
                continue
            ok[g, j] = True
            if fraction:
                out[g, j] = bucket_fraction(p1[j], p2[j], ub, cnt, m)
            else:
                out[g, j], forced = bucket_quantile(p1[j], ub, cnt, m)
                any_forced = any_forced or forced
    return out, ok, any_forced


def _first_name(labels: pl.DataFrame, rows: np.ndarray) -> str:
    if "__name__" not in labels.columns or rows.size == 0:
        return ""
    return labels["__name__"][int(rows[0])] or ""


def _warn_bad_buckets(labels: pl.DataFrame, bad: np.ndarray, where: str) -> None:
    """Prometheus' warning for a series whose ``le`` is missing or not a number."""
    if not bad.any():
        return
    row = labels.row(int(np.flatnonzero(bad)[0]), named=True)
    warn(f'PromQL warning: bucket label "le" is missing or has a malformed value of '
         f'"{row.get(BUCKET_LABEL) or ""}" for metric name "{row.get("__name__") or ""}"{where}')


def over_buckets(
    iv: InstantVector, p1: np.ndarray, p2: np.ndarray, fraction: bool, where: str = ""
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Group ``iv``'s bucket series and run the kernel: (group labels, values, present).

    Groups are label sets without ``le`` but with ``__name__`` (dropped from the result), so
    two histograms that differ only by name collide afterwards, as in Prometheus.
    """
    labels = iv.labels
    n_steps = iv.values.shape[1]
    if BUCKET_LABEL in labels.columns:
        bounds = labels[BUCKET_LABEL].cast(pl.Float64, strict=False).to_numpy()
    else:
        bounds = np.full(labels.height, np.nan)
    _warn_bad_buckets(labels, np.isnan(bounds) & iv.present.any(axis=1), where)
    usable = np.flatnonzero(~np.isnan(bounds))
    if usable.size == 0:
        empty = np.zeros((0, n_steps))
        return pl.DataFrame(), empty, empty.astype(bool)
    rest = labels[usable].drop(BUCKET_LABEL)
    ids, groups = group_rows(rest)
    groups = drop_name(groups)
    order = np.lexsort((bounds[usable], ids))
    rows = usable[order]
    sizes = np.bincount(ids, minlength=groups.height)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    out, ok, forced = groups_kernel(
        np.ascontiguousarray(bounds[rows]),
        np.ascontiguousarray(iv.values[rows], dtype=np.float64),
        np.ascontiguousarray(iv.present[rows]),
        offsets,
        np.ascontiguousarray(p1, dtype=np.float64),
        np.ascontiguousarray(p2, dtype=np.float64),
        fraction,
    )
    if forced:
        info("PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see "
             "https://prometheus.io/docs/prometheus/latest/querying/functions/"
             "#histogram_quantile) for metric name "
             f'"{_first_name(labels, rows)}"{where}')
    return groups, out, ok
