"""The OpenTelemetry exponential histogram sample, ``ExponentialHistogram``: held exactly,
merged exactly (downscaling to the coarser scale), stored compactly (``codec``).

The scheme (scales, bucket indices, the DDSketch correspondence) is described in this
package's docstring and in ``docs/sketches.md``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tsdb_arrow.errors import SketchError
from tsdb_arrow.model import HISTOGRAM_MAX_SCALE
from tsdb_arrow.sketch.counts import EMPTY_COUNTS, UINT64_MAX, check_counts, exact_sum
from tsdb_arrow.sketch.exponential import codec
from tsdb_arrow.sketch.exponential.buckets import (
    absorb_into_zero,
    bucketize,
    check_max_size,
    combine,
    fit_change,
    index_span,
)
from tsdb_arrow.sketch.exponential.index import check_scale, map_to_index

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


# --------------------------------------------------------------------------- the sample


@dataclass(frozen=True, kw_only=True, eq=False)
class ExponentialHistogram:
    """One OpenTelemetry exponential histogram sample, held exactly and validated on construction.

    Parameters
    ----------
    scale
        Resolution, -10..20; base ``2 ** (2 ** -scale)``.
    count
        Number of recorded values: must equal ``zero_count`` plus every bucket count.
    zero_count
        Values with ``|v| <= zero_threshold``.
    zero_threshold
        Width of the zero bucket, >= 0 and finite (0 in the OTel SDK).
    positive_offset, positive_counts
        Index of the first positive bucket and the counts from there on (stored as read-only
        uint64; zero buckets inside or at the ends are kept as given).
    negative_offset, negative_counts
        The same for negative values, indexed by ``|v|``.
    sum, min, max
        Sum, smallest and largest recorded value; NaN when absent.

    Raises
    ------
    SketchError
        Naming the field: a negative or non-integer count, ``count`` not matching the buckets,
        scale out of range, a NaN/negative/infinite ``zero_threshold``, ``min > max``, or bucket
        indices that do not fit OTel's signed 32 bits.
    """

    scale: int
    count: int
    zero_count: int = 0
    zero_threshold: float = 0.0
    positive_offset: int = 0
    positive_counts: np.ndarray = field(default_factory=lambda: EMPTY_COUNTS)
    negative_offset: int = 0
    negative_counts: np.ndarray = field(default_factory=lambda: EMPTY_COUNTS)
    sum: float = math.nan
    min: float = math.nan
    max: float = math.nan

    def __post_init__(self) -> None:
        scale = check_scale(self.scale)
        zero_count = _check_uint("zero_count", self.zero_count)
        count = _check_uint("count", self.count)
        zero_threshold = _check_float("zero_threshold", self.zero_threshold)
        if not (math.isfinite(zero_threshold) and zero_threshold >= 0.0):
            raise SketchError(
                f"ExponentialHistogram.zero_threshold must be a finite float >= 0, got "
                f"{zero_threshold!r}; use 0.0 when only exact zeros go to zero_count"
            )
        pos = check_counts("ExponentialHistogram.positive_counts", self.positive_counts)
        neg = check_counts("ExponentialHistogram.negative_counts", self.negative_counts)
        pos_off = _check_offset("positive", self.positive_offset, pos.size)
        neg_off = _check_offset("negative", self.negative_offset, neg.size)
        total = zero_count + exact_sum(pos) + exact_sum(neg)
        if count != total:
            raise SketchError(
                f"ExponentialHistogram.count is {count} but zero_count + bucket counts = {total}; "
                "pass count equal to zero_count plus the sum of both bucket arrays"
            )
        total_sum = _check_float("sum", self.sum)
        lo = _check_float("min", self.min)
        hi = _check_float("max", self.max)
        if lo > hi:
            raise SketchError(
                f"ExponentialHistogram.min ({lo!r}) is greater than max ({hi!r}); "
                "use NaN for an absent min or max"
            )
        for name, value in (
            ("scale", scale),
            ("count", count),
            ("zero_count", zero_count),
            ("zero_threshold", zero_threshold),
            ("positive_offset", pos_off),
            ("positive_counts", pos),
            ("negative_offset", neg_off),
            ("negative_counts", neg),
            ("sum", total_sum),
            ("min", lo),
            ("max", hi),
        ):
            object.__setattr__(self, name, value)

    # ---- identity

    def __eq__(self, other: object) -> bool:
        """Field-by-field equality; bucket arrays compared exactly, floats bit for bit."""
        if not isinstance(other, ExponentialHistogram):
            return NotImplemented
        return (
            self.scale == other.scale
            and self.count == other.count
            and self.zero_count == other.zero_count
            and self.positive_offset == other.positive_offset
            and self.negative_offset == other.negative_offset
            and np.array_equal(self.positive_counts, other.positive_counts)
            and np.array_equal(self.negative_counts, other.negative_counts)
            and all(
                _float_bits(a) == _float_bits(b)
                for a, b in (
                    (self.zero_threshold, other.zero_threshold),
                    (self.sum, other.sum),
                    (self.min, other.min),
                    (self.max, other.max),
                )
            )
        )

    __hash__ = None  # type: ignore[assignment]

    # ---- construction from raw values

    @classmethod
    def from_values(
        cls,
        values: np.ndarray | Sequence[float],
        *,
        scale: int = HISTOGRAM_MAX_SCALE,
        max_size: int | None = 160,
        zero_threshold: float = 0.0,
    ) -> ExponentialHistogram:
        """Histogram of raw values, bucketed as the OTel SDK would (vectorised).

        Parameters
        ----------
        values
            Finite floats; NaN or infinities are refused.
        scale
            Starting scale (the SDK's ``max_scale``).
        max_size
            Downscale until each side spans at most ``max_size`` buckets, as the SDK's
            aggregation does with the same ``max_size`` (its default is 160). ``None`` keeps
            ``scale`` whatever the span, which at fine scales can mean millions of buckets.
        zero_threshold
            Values with ``|v| <= zero_threshold`` are counted in ``zero_count``.

        Notes
        -----
        ``sum`` adds the values one after another in the order given (a cumulative sum), as the
        SDK does when it records them, so it equals the SDK's sum bit for bit.
        """
        v = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(v)):
            bad = int(np.flatnonzero(~np.isfinite(v))[0])
            raise SketchError(
                f"ExponentialHistogram.from_values: value #{bad} is {float(v[bad])!r}; "
                "exponential histograms hold finite values only, drop NaN/inf first"
            )
        zt = _check_float("zero_threshold", zero_threshold)
        magnitude = np.abs(v)
        is_zero = magnitude <= zt
        positive = v[(v > 0) & ~is_zero]
        negative = -v[(v < 0) & ~is_zero]
        pos_index = map_to_index(positive, scale)
        neg_index = map_to_index(negative, scale)
        if max_size is not None:
            change = fit_change(
                scale, [index_span(pos_index), index_span(neg_index)], check_max_size(max_size)
            )
            scale, pos_index, neg_index = scale - change, pos_index >> change, neg_index >> change
        pos = bucketize(pos_index)
        neg = bucketize(neg_index)
        return cls(
            scale=scale,
            count=v.size,
            zero_count=int(np.count_nonzero(is_zero)),
            zero_threshold=zt,
            positive_offset=pos[0],
            positive_counts=pos[1],
            negative_offset=neg[0],
            negative_counts=neg[1],
            sum=float(np.cumsum(v)[-1]) if v.size else 0.0,
            min=float(v.min()) if v.size else math.nan,
            max=float(v.max()) if v.size else math.nan,
        )

    # ---- bucket arithmetic

    def trimmed(self) -> ExponentialHistogram:
        """The same histogram without empty buckets at either end (an empty side gets offset 0)."""
        pos = combine([(self.positive_offset, self.positive_counts)], 0)
        neg = combine([(self.negative_offset, self.negative_counts)], 0)
        return self._with_buckets(self.scale, pos, neg)

    def downscale(self, scale: int) -> ExponentialHistogram:
        """This histogram at a coarser (or the same) ``scale``: index ``i`` becomes ``i >> d``.

        Raises
        ------
        SketchError
            If ``scale`` is finer than the current one (buckets cannot be split) or out of range.
        """
        scale = check_scale(scale)
        if scale > self.scale:
            raise SketchError(
                f"cannot downscale a scale-{self.scale} histogram to the finer scale {scale}; "
                "buckets can only be merged, pass a scale <= the current one"
            )
        shift = self.scale - scale
        pos = combine([(self.positive_offset, self.positive_counts)], shift)
        neg = combine([(self.negative_offset, self.negative_counts)], shift)
        return self._with_buckets(scale, pos, neg)

    def fit(self, max_size: int) -> ExponentialHistogram:
        """Downscale just enough that each side spans at most ``max_size`` buckets (SDK rule).

        The change of scale is the SDK's ``_get_scale_change``: shift the lowest and highest
        non-empty index right until ``high - low < max_size``, on both sides, and take the larger
        shift. The result is trimmed.
        """
        h = self.trimmed()
        spans = [
            (h.positive_offset, h.positive_offset + h.positive_counts.size - 1)
            if h.positive_counts.size
            else None,
            (h.negative_offset, h.negative_offset + h.negative_counts.size - 1)
            if h.negative_counts.size
            else None,
        ]
        change = fit_change(h.scale, spans, check_max_size(max_size))
        return h.downscale(h.scale - change) if change else h

    def merge(
        self, other: ExponentialHistogram, *, max_size: int | None = None
    ) -> ExponentialHistogram:
        """Exact merge: downscale the finer histogram to the coarser scale, add bucket counts.

        Parameters
        ----------
        other
            The histogram to merge in.
        max_size
            If given, keep downscaling until each side spans fewer than ``max_size`` buckets,
            as the OTel SDK does when it merges into an aggregation of that ``max_size``.

        Returns
        -------
        ExponentialHistogram
            Trimmed; ``count`` and ``zero_count`` add; ``sum`` adds; ``min``/``max`` combine.
            A statistic is NaN when a non-empty operand lacks it (empty operands are ignored).
            With different ``zero_threshold`` the larger one wins and every bucket whose upper
            boundary is at or below it moves into ``zero_count``.
        """
        if not isinstance(other, ExponentialHistogram):
            raise SketchError(f"can only merge an ExponentialHistogram, got {type(other).__name__}")
        parts = (self, other)
        scale = min(self.scale, other.scale)
        pos = combine(
            [(h.positive_offset, h.positive_counts) for h in parts],
            shifts=[h.scale - scale for h in parts],
        )
        neg = combine(
            [(h.negative_offset, h.negative_counts) for h in parts],
            shifts=[h.scale - scale for h in parts],
        )
        zero_count = self.zero_count + other.zero_count
        zero_threshold = max(self.zero_threshold, other.zero_threshold)
        if self.zero_threshold != other.zero_threshold:
            pos, moved_pos = absorb_into_zero(pos, scale, zero_threshold)
            neg, moved_neg = absorb_into_zero(neg, scale, zero_threshold)
            zero_count += moved_pos + moved_neg
        live = [h for h in parts if h.count > 0]
        merged = ExponentialHistogram(
            scale=scale,
            count=self.count + other.count,
            zero_count=zero_count,
            zero_threshold=zero_threshold,
            positive_offset=pos[0],
            positive_counts=pos[1],
            negative_offset=neg[0],
            negative_counts=neg[1],
            sum=_add_sums([h.sum for h in live]),
            min=min((h.min for h in live), default=math.nan, key=_nan_first),
            max=max((h.max for h in live), default=math.nan, key=_nan_last),
        )
        return merged if max_size is None else merged.fit(max_size)

    def _with_buckets(
        self, scale: int, pos: tuple[int, np.ndarray], neg: tuple[int, np.ndarray]
    ) -> ExponentialHistogram:
        return ExponentialHistogram(
            scale=scale,
            count=self.count,
            zero_count=self.zero_count,
            zero_threshold=self.zero_threshold,
            positive_offset=pos[0],
            positive_counts=pos[1],
            negative_offset=neg[0],
            negative_counts=neg[1],
            sum=self.sum,
            min=self.min,
            max=self.max,
        )

    # ---- bytes

    def to_bytes(self) -> bytes:
        """Compact little-endian encoding (layout in ``docs/sketches.md``); floats bit-exact."""
        return codec.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> ExponentialHistogram:
        """Inverse of ``to_bytes``; truncated, oversized or unknown-version input -> SketchError."""
        return cls(**codec.decode(data))


# --------------------------------------------------------------------------- helpers


def _check_uint(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SketchError(f"ExponentialHistogram.{name} must be an int >= 0, got {value!r}")
    if not 0 <= int(value) <= UINT64_MAX:
        raise SketchError(
            f"ExponentialHistogram.{name} must be between 0 and 2**64-1, got {int(value)}"
        )
    return int(value)


def _check_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SketchError(f"ExponentialHistogram.{name} must be a float, got {value!r}")
    return float(value)


def _check_offset(side: str, offset: object, size: int) -> int:
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise SketchError(f"ExponentialHistogram.{side}_offset must be an int, got {offset!r}")
    off = int(offset)
    if off < _INT32_MIN or off + max(size - 1, 0) > _INT32_MAX:
        raise SketchError(
            f"ExponentialHistogram.{side} buckets run from index {off} to {off + size - 1}, "
            "outside OTel's signed 32-bit index range; downscale the histogram first"
        )
    return off


def _float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _add_sums(sums: list[float]) -> float:
    """Sums added left to right; 0.0 when there are none."""
    return sum(sums[1:], sums[0]) if sums else 0.0


def _nan_first(x: float) -> tuple[int, float]:
    return (0, 0.0) if math.isnan(x) else (1, x)


def _nan_last(x: float) -> tuple[int, float]:
    return (1, 0.0) if math.isnan(x) else (0, x)
