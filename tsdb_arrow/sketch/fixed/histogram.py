"""Fixed-bucket histograms with Prometheus semantics: explicit ``le`` upper bounds, +Inf implicit.

A value ``v`` falls in the first bucket whose upper bound is ``>= v`` (so a value equal to a
bound counts in that bucket), or in the +Inf bucket. Quantiles interpolate linearly within a
bucket, exactly as PromQL's ``histogram_quantile`` (``bucketQuantile`` in Prometheus'
``promql/quantile.go``) does on the cumulative ``le`` counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tsdb_arrow.errors import SketchError

# Prometheus' correctPrecisionErrors tolerance on cumulative counts.
_PRECISION_TOLERANCE = 1e-12


@dataclass(frozen=True, eq=False)
class FixedBucketHistogram:
    """Counts of values per explicit bucket; immutable.

    Parameters
    ----------
    bounds
        Finite upper bounds, strictly increasing; the +Inf bucket is implicit.
    counts
        ``len(bounds) + 1`` non-cumulative counts (finite, >= 0), the last one +Inf's.
    sum
        Sum of the values (may be +-inf or NaN, as in Prometheus).
    count
        Total count; ``None`` computes it from ``counts``, which it must match otherwise.
    """

    bounds: np.ndarray
    counts: np.ndarray
    sum: float = 0.0
    count: float | None = None

    def __post_init__(self) -> None:
        bounds = np.array(self.bounds, dtype=np.float64, ndmin=1)
        counts = np.array(self.counts, dtype=np.float64, ndmin=1)
        if bounds.ndim != 1 or counts.ndim != 1:
            raise SketchError("bounds and counts must be one-dimensional")
        _check_bounds(bounds)
        if counts.size != bounds.size + 1:
            raise SketchError(
                f"counts has {counts.size} entries, expected len(bounds) + 1 = "
                f"{bounds.size + 1} (one per bound plus the +Inf bucket)"
            )
        bad = np.flatnonzero(~(np.isfinite(counts) & (counts >= 0)))
        if bad.size:
            raise SketchError(
                f"counts[{bad[0]}] = {float(counts[bad[0]])!r}: counts must be finite and >= 0"
            )
        total = float(counts.sum())
        count = total if self.count is None else float(self.count)
        if not math.isclose(count, total, rel_tol=1e-9, abs_tol=1e-9):
            raise SketchError(f"count {count!r} does not match the bucket counts ({total!r})")
        bounds.flags.writeable = False
        counts.flags.writeable = False
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "sum", float(self.sum))
        object.__setattr__(self, "count", count)

    @classmethod
    def from_values(
        cls, values: Iterable[float] | np.ndarray, bounds: Sequence[float] | np.ndarray
    ) -> FixedBucketHistogram:
        """The histogram of ``values`` (NaN ignored; +-inf fall in the first/+Inf bucket)."""
        bounds = np.asarray(bounds, dtype=np.float64)
        _check_bounds(bounds)
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[~np.isnan(v)]
        index = np.searchsorted(bounds, v, side="left")
        counts = np.bincount(index, minlength=bounds.size + 1).astype(np.float64)
        return cls(bounds, counts, float(v.sum()), float(v.size))

    @property
    def cumulative_counts(self) -> np.ndarray:
        """Prometheus' ``_bucket`` series: counts of values ``<= bound``, +Inf last."""
        return np.cumsum(self.counts)

    def merge(self, other: FixedBucketHistogram) -> FixedBucketHistogram:
        """The histogram of the values of both (bounds must be equal)."""
        if not isinstance(other, FixedBucketHistogram):
            raise SketchError(f"can only merge a FixedBucketHistogram, got {type(other).__name__}")
        if not np.array_equal(self.bounds, other.bounds):
            raise SketchError(
                f"cannot merge histograms with different bounds: {self.bounds.tolist()} vs "
                f"{other.bounds.tolist()}"
            )
        return FixedBucketHistogram(
            self.bounds, self.counts + other.counts, self.sum + other.sum, self.count + other.count
        )

    def quantile(self, q: float) -> float:
        """``histogram_quantile(q, ...)`` of this histogram."""
        return float(self.quantiles([q])[0])

    def quantiles(self, qs: Sequence[float] | np.ndarray) -> np.ndarray:
        """``histogram_quantile`` at every ``q``: NaN for NaN ``q`` or an empty histogram (or
        one without finite bounds), -Inf below 0, +Inf above 1, the last finite bound in the
        +Inf bucket, the first bound itself when it is <= 0, else linear interpolation (from 0
        in the lowest bucket)."""
        qs = np.atleast_1d(np.asarray(qs, dtype=np.float64))
        cum = _correct_precision_errors(self.cumulative_counts)
        out = np.full(qs.shape, np.nan)
        observations = cum[-1]
        n = cum.size
        valid = ~np.isnan(qs) & (qs >= 0) & (qs <= 1)
        if n >= 2 and observations != 0:
            rank = qs * observations
            b = np.searchsorted(cum[:-1], rank, side="left")
            in_inf = b == n - 1
            bi = np.minimum(b, n - 2)
            upper = self.bounds[bi]
            lower = np.where(bi > 0, self.bounds[np.maximum(bi - 1, 0)], 0.0)
            below = np.where(bi > 0, cum[np.maximum(bi - 1, 0)], 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                interpolated = lower + (upper - lower) * ((rank - below) / (cum[bi] - below))
            value = np.where(in_inf, self.bounds[-1], interpolated)
            value = np.where(~in_inf & (b == 0) & (self.bounds[0] <= 0), self.bounds[0], value)
            out[valid] = value[valid]
        out[qs < 0] = -np.inf
        out[qs > 1] = np.inf
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FixedBucketHistogram):
            return NotImplemented
        return (
            np.array_equal(self.bounds, other.bounds)
            and np.array_equal(self.counts, other.counts)
            and self.count == other.count
            and (self.sum == other.sum or (math.isnan(self.sum) and math.isnan(other.sum)))
        )

    __hash__ = None  # type: ignore[assignment]


def _check_bounds(bounds: np.ndarray) -> None:
    if bounds.ndim != 1:
        raise SketchError(f"bounds must be one-dimensional, got shape {bounds.shape}")
    bad = np.flatnonzero(~np.isfinite(bounds))
    if bad.size:
        raise SketchError(
            f"bounds[{bad[0]}] = {float(bounds[bad[0]])!r}: bounds must be finite (no NaN; "
            "the +Inf bucket is implicit)"
        )
    unsorted = np.flatnonzero(np.diff(bounds) <= 0)
    if unsorted.size:
        i = int(unsorted[0])
        raise SketchError(
            f"bounds must be strictly increasing: bounds[{i}] = {float(bounds[i])!r} >= "
            f"bounds[{i + 1}] = {float(bounds[i + 1])!r}"
        )


def _correct_precision_errors(cum: np.ndarray) -> np.ndarray:
    """Prometheus' ``correctPrecisionErrors``: a cumulative count within a relative 1e-12 of
    the previous kept one is set to it (a loop over buckets, not values)."""
    out = cum.copy()
    if out.size == 0:
        return out
    prev = out[0]
    for i in range(1, out.size):
        delta = abs(out[i] - prev)
        if delta == 0:
            continue
        if delta / out[i] <= _PRECISION_TOLERANCE:
            out[i] = prev
        else:
            prev = out[i]
    return out
