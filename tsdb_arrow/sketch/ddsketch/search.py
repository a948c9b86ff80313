"""Quantiles of DDSketches: every (sketch, quantile) rank found at once with ``np.searchsorted``.

``Sketch.quantiles`` and the Polars aggregations both call ``search_quantiles``, so a quantile is
the same number however the sketch was reached (see ``sketch`` for how it compares with the
``ddsketch`` package).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tsdb_arrow.errors import SketchError
from tsdb_arrow.sketch.ddsketch.arrays import SketchArrays
from tsdb_arrow.sketch.ddsketch.mapping import LogarithmicMapping


def check_quantiles(qs: Sequence[float] | np.ndarray | float) -> np.ndarray:
    """``qs`` as a 1-D float64 array in [0, 1], or a ``SketchError`` naming the bad one."""
    arr = np.atleast_1d(np.asarray(qs, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise SketchError(f"qs must be a non-empty list of quantiles in [0, 1], got {qs!r}")
    bad = np.flatnonzero(~((arr >= 0.0) & (arr <= 1.0)))
    if bad.size:
        raise SketchError(
            f"quantile {float(arr[bad[0]])!r} is outside [0, 1] (use 0.99 for the 99th percentile)"
        )
    return arr


def search_quantiles(
    mapping: LogarithmicMapping, arrays: SketchArrays, qs: np.ndarray
) -> np.ndarray:
    """The (groups, len(qs)) quantile values of many sketches, NaN for empty ones.

    The DDSketch rank ``q * (count - 1)`` falls in the negative buckets (scanned from the
    smallest ``|v|`` key, as the package's ``key_at_rank(lower=False)`` does), the zero
    bucket, or the positive buckets (``key_at_rank`` with ``running > rank``). All groups and
    quantiles are searched at once with ``np.searchsorted`` over global running sums; a
    group's running sum is the global one minus the group's base. With integer counts those
    differences are exact, and the float thresholds are rounded to the integers that decide
    the same comparisons, so results match the package bit for bit.
    """
    g = arrays.groups
    out = np.full((g, qs.size), np.nan)
    if g == 0:
        return out
    c_neg = np.concatenate([[0.0], np.cumsum(arrays.neg_counts)])
    c_pos = np.concatenate([[0.0], np.cumsum(arrays.pos_counts)])
    base_neg, base_pos = c_neg[arrays.neg_offsets[:-1]], c_pos[arrays.pos_offsets[:-1]]
    n_neg = (c_neg[arrays.neg_offsets[1:]] - base_neg)[:, None]
    zero = arrays.zero_count[:, None]
    count = arrays.count[:, None]
    integral = all(np.array_equal(c, np.floor(c)) for c in (arrays.neg_counts, arrays.pos_counts))
    # A total count below 1 (fractional weights) would give a negative rank: clamp it to 0.
    rank = np.maximum(qs[None, :] * (count - 1), 0.0)
    is_neg = (rank < n_neg) & (count > 0)
    is_zero = ~is_neg & (rank < zero + n_neg) & (count > 0)
    is_pos = ~is_neg & ~is_zero & (count > 0)

    t = (n_neg - rank - 1) + 1
    if integral:
        idx = np.searchsorted(c_neg[1:], base_neg[:, None] + np.ceil(t), side="left")
    else:
        idx = np.searchsorted(c_neg[1:], base_neg[:, None] + t, side="left")
    neg_val = -_values_at(mapping, arrays.neg_keys, arrays.neg_offsets, idx, is_neg)

    r = (rank - zero) - n_neg
    if integral:
        idx = np.searchsorted(c_pos[1:], base_pos[:, None] + np.floor(r) + 1, side="left")
    else:
        idx = np.searchsorted(c_pos[1:], base_pos[:, None] + r, side="right")
    pos_val = _values_at(mapping, arrays.pos_keys, arrays.pos_offsets, idx, is_pos)

    out[is_neg] = neg_val[is_neg]
    out[is_zero] = 0.0
    out[is_pos] = pos_val[is_pos]
    return out


def _values_at(
    mapping: LogarithmicMapping,
    keys: np.ndarray,
    offsets: np.ndarray,
    idx: np.ndarray,
    wanted: np.ndarray,
) -> np.ndarray:
    """The representative values of ``keys[idx]``, clipped to each group's last bucket
    (the package's ``max_key`` fallback); only the ``wanted`` cells are computed."""
    out = np.zeros(idx.shape)
    if not wanted.any():
        return out
    last = np.broadcast_to((offsets[1:] - 1)[:, None], idx.shape)
    picked = np.minimum(idx, last)[wanted]
    out[wanted] = mapping.values(keys[picked])
    return out
