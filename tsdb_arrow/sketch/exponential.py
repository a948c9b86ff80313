"""OpenTelemetry exponential histograms: one sample held exactly, merged exactly, stored compactly.

An OTel exponential histogram at *scale* ``s`` has base ``b = 2 ** (2 ** -s)``; bucket index ``i``
counts the values ``v`` with ``b ** i < |v| <= b ** (i + 1)`` (upper-inclusive, like a
Prometheus ``le`` bucket). Positive and negative values have separate bucket arrays, each a
contiguous run of counts starting at an ``offset`` (the index of its first bucket); values with
``|v| <= zero_threshold`` go to ``zero_count``. Scales run from -10 (base ``2 ** 1024``) to 20.

Downscaling and merging
    Going from scale ``s`` to ``s - d`` merges ``2 ** d`` neighbouring buckets: index ``i``
    becomes ``i >> d`` (an arithmetic shift, i.e. floor division, also for negative indices).
    Merging two histograms downscales the finer one to the coarser scale and adds counts bucket by
    bucket; with ``max_size`` it keeps downscaling until each side spans fewer than ``max_size``
    buckets, which is what the OpenTelemetry SDK's ``ExponentialBucketHistogramAggregation``
    does. Counts stay exact integers throughout (uint64, never float).

DDSketch correspondence
    A DDSketch logarithmic mapping with ``gamma = b`` and offset 0 gives key
    ``k = ceil(log_gamma(v))``, so key ``k`` covers ``(gamma ** (k - 1), gamma ** k]``: the very
    same interval as OTel bucket ``i = k - 1``. The correspondence is exact and lossless:

    * positive bucket ``i``  <->  positive key ``k = i + 1`` (same count);
    * negative bucket ``i`` (of ``|v|``)  <->  negative key ``k = i + 1`` (DDSketch also keys
      negative values by their magnitude);
    * ``zero_count``  <->  the sketch's zero bucket.

    The sketch's representative of key ``k`` is ``2 * gamma ** k / (1 + gamma)``, within relative
    accuracy ``alpha = (gamma - 1) / (gamma + 1)`` of every value of the bucket. The ``ddsketch``
    package's ``key(v)`` agrees with ``i + 1`` except for values on (or within float rounding of)
    a bucket boundary: it computes ``log2(v) * multiplier`` in floating point, so an exact power
    of the base, which OTel puts in bucket ``i`` (its upper edge), can come out one key higher.
    The conversion here works on bucket indices, never on re-mapped values, so it is exact; see
    ``docs/sketches.md``. Scales below -5 have no DDSketch counterpart: their ``alpha`` rounds to
    1.0 in float64, which no DDSketch mapping accepts.

Byte layout
    ``to_bytes`` / ``from_bytes`` use a fixed 60-byte little-endian header followed by the
    positive then the negative bucket counts at 1, 2, 4 or 8 bytes each (the smallest width that
    holds the largest count); the table is in ``docs/sketches.md``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tsdb_arrow.errors import SketchError

if TYPE_CHECKING:
    from tsdb_arrow.sketch.ddsketch import Sketch
    from tsdb_arrow.sketch.mapping import LogarithmicMapping

__all__ = [
    "MIN_SCALE",
    "MAX_SCALE",
    "ExponentialHistogram",
    "map_to_index",
    "lower_boundary",
    "from_sketch",
    "to_sketch",
]

MIN_SCALE = -10
MAX_SCALE = 20

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_UINT64_MAX = 2**64 - 1

# IEEE 754 binary64 fields, as the OTel SDK's ieee_754 module defines them.
_MANTISSA_WIDTH = 52
_MANTISSA_MASK = np.uint64((1 << _MANTISSA_WIDTH) - 1)
_EXPONENT_BIAS = 1023
_MIN_NORMAL_EXPONENT = -_EXPONENT_BIAS + 1
_MAX_NORMAL_EXPONENT = _EXPONENT_BIAS
_MIN_NORMAL_VALUE = np.finfo(np.float64).tiny

# Header of to_bytes: version, scale, count width code, reserved, zero_count, zero_threshold,
# sum, min, max, positive offset and length, negative offset and length.
_HEADER = struct.Struct("<BbBxQdddd iIiI")
_FORMAT_VERSION = 1
_WIDTHS = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<u8"))

# Below this scale alpha = (b - 1) / (b + 1) rounds to 1.0 (scale -6: b = 2**64).
_MIN_SKETCH_SCALE = -5

_EMPTY = np.zeros(0, dtype=np.uint64)
_EMPTY.setflags(write=False)


# --------------------------------------------------------------------------- index mapping


def map_to_index(magnitudes: np.ndarray | Sequence[float], scale: int) -> np.ndarray:
    """Bucket index of each positive value at ``scale``, exactly as the OpenTelemetry SDK maps it.

    Parameters
    ----------
    magnitudes
        Positive finite values (for a negative value pass its absolute value).
    scale
        OTel scale, -10..20.

    Returns
    -------
    numpy.ndarray
        int64 indices ``i`` with ``base ** i < v <= base ** (i + 1)``. Exact powers of two are
        mapped from their IEEE exponent (never through a logarithm) and subnormals go to the
        bucket below the smallest normal value, as in the SDK's ``ExponentMapping`` (scale <= 0)
        and ``LogarithmMapping`` (scale > 0).

    Notes
    -----
    Vectorised with numpy. numpy's ``log`` may differ from the C library's by an ulp; the few
    values whose scaled logarithm lies within 1e-6 of an integer are re-mapped with ``math.log``
    so that every index equals the SDK's.
    """
    scale = _check_scale(scale)
    v = np.ascontiguousarray(magnitudes, dtype=np.float64).reshape(-1)
    if v.size and not (np.all(np.isfinite(v)) and np.all(v > 0.0)):
        bad = int(np.flatnonzero(~(np.isfinite(v) & (v > 0.0)))[0])
        raise SketchError(
            f"map_to_index needs positive finite magnitudes; value #{bad} is {float(v[bad])!r} "
            "(route zeros to zero_count and drop NaN/inf before mapping)"
        )
    bits = v.view(np.uint64)
    exponent = ((bits >> np.uint64(_MANTISSA_WIDTH)).astype(np.int64)) - _EXPONENT_BIAS
    power_of_two = (bits & _MANTISSA_MASK) == 0
    if scale <= 0:
        shift = -scale
        min_index = _MIN_NORMAL_EXPONENT >> shift
        if shift < 2:
            min_index -= 1
        index = (exponent - power_of_two.astype(np.int64)) >> shift
        return np.where(v < _MIN_NORMAL_VALUE, min_index, index)
    scale_factor = math.ldexp(1.0 / math.log(2.0), scale)
    scaled = np.log(v) * scale_factor
    index = np.floor(scaled).astype(np.int64)
    near = np.flatnonzero(np.abs(scaled - np.rint(scaled)) < 1e-6)
    if near.size:
        index[near] = [math.floor(math.log(x) * scale_factor) for x in v[near].tolist()]
    max_index = ((_MAX_NORMAL_EXPONENT + 1) << scale) - 1
    index = np.minimum(index, max_index)
    index = np.where(power_of_two, (exponent << scale) - 1, index)
    return np.where(v <= _MIN_NORMAL_VALUE, (_MIN_NORMAL_EXPONENT << scale) - 1, index)


def lower_boundary(indices: np.ndarray | Sequence[int], scale: int) -> np.ndarray:
    """Lower (exclusive) boundary ``base ** i`` of each bucket index at ``scale``, as float64.

    Exact (a power of two) for scale <= 0; ``exp2(i * 2 ** -scale)`` otherwise. Boundaries beyond
    the float64 range come out as 0 or inf.
    """
    scale = _check_scale(scale)
    i = np.asarray(indices, dtype=np.int64)
    with np.errstate(over="ignore", under="ignore"):
        if scale <= 0:
            return np.ldexp(1.0, np.clip(i << -scale, -1100, 1100))
        return np.exp2(i.astype(np.float64) * math.ldexp(1.0, -scale))


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
    positive_counts: np.ndarray = field(default_factory=lambda: _EMPTY)
    negative_offset: int = 0
    negative_counts: np.ndarray = field(default_factory=lambda: _EMPTY)
    sum: float = math.nan
    min: float = math.nan
    max: float = math.nan

    def __post_init__(self) -> None:
        scale = _check_scale(self.scale)
        zero_count = _check_uint("zero_count", self.zero_count)
        count = _check_uint("count", self.count)
        zero_threshold = _check_float("zero_threshold", self.zero_threshold)
        if not (math.isfinite(zero_threshold) and zero_threshold >= 0.0):
            raise SketchError(
                f"ExponentialHistogram.zero_threshold must be a finite float >= 0, got "
                f"{zero_threshold!r}; use 0.0 when only exact zeros go to zero_count"
            )
        pos = _check_counts("ExponentialHistogram.positive_counts", self.positive_counts)
        neg = _check_counts("ExponentialHistogram.negative_counts", self.negative_counts)
        pos_off = _check_offset("positive", self.positive_offset, pos.size)
        neg_off = _check_offset("negative", self.negative_offset, neg.size)
        total = zero_count + _exact_sum(pos) + _exact_sum(neg)
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
        scale: int = MAX_SCALE,
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
            change = _fit_change(
                scale, [_span(pos_index), _span(neg_index)], _check_max_size(max_size)
            )
            scale, pos_index, neg_index = scale - change, pos_index >> change, neg_index >> change
        pos = _bucketize(pos_index)
        neg = _bucketize(neg_index)
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
        pos = _combine([(self.positive_offset, self.positive_counts)], 0)
        neg = _combine([(self.negative_offset, self.negative_counts)], 0)
        return self._with_buckets(self.scale, pos, neg)

    def downscale(self, scale: int) -> ExponentialHistogram:
        """This histogram at a coarser (or the same) ``scale``: index ``i`` becomes ``i >> d``.

        Raises
        ------
        SketchError
            If ``scale`` is finer than the current one (buckets cannot be split) or out of range.
        """
        scale = _check_scale(scale)
        if scale > self.scale:
            raise SketchError(
                f"cannot downscale a scale-{self.scale} histogram to the finer scale {scale}; "
                "buckets can only be merged, pass a scale <= the current one"
            )
        shift = self.scale - scale
        pos = _combine([(self.positive_offset, self.positive_counts)], shift)
        neg = _combine([(self.negative_offset, self.negative_counts)], shift)
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
        change = _fit_change(h.scale, spans, _check_max_size(max_size))
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
        pos = _combine(
            [(h.positive_offset, h.positive_counts) for h in parts],
            shifts=[h.scale - scale for h in parts],
        )
        neg = _combine(
            [(h.negative_offset, h.negative_counts) for h in parts],
            shifts=[h.scale - scale for h in parts],
        )
        zero_count = self.zero_count + other.zero_count
        zero_threshold = max(self.zero_threshold, other.zero_threshold)
        if self.zero_threshold != other.zero_threshold:
            pos, moved_pos = _absorb_into_zero(pos, scale, zero_threshold)
            neg, moved_neg = _absorb_into_zero(neg, scale, zero_threshold)
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
        pos, neg = self.positive_counts, self.negative_counts
        largest = max(int(pos.max()) if pos.size else 0, int(neg.max()) if neg.size else 0)
        code = next(c for c, w in enumerate(_WIDTHS) if largest <= np.iinfo(w).max)
        header = _HEADER.pack(
            _FORMAT_VERSION,
            self.scale,
            code,
            self.zero_count,
            self.zero_threshold,
            self.sum,
            self.min,
            self.max,
            self.positive_offset,
            pos.size,
            self.negative_offset,
            neg.size,
        )
        width = _WIDTHS[code]
        return header + pos.astype(width).tobytes() + neg.astype(width).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> ExponentialHistogram:
        """Inverse of ``to_bytes``; truncated, oversized or unknown-version input -> SketchError."""
        buf = memoryview(data).cast("B")
        if len(buf) < _HEADER.size:
            raise SketchError(
                f"exponential histogram bytes are truncated: {len(buf)} bytes, the header alone "
                f"is {_HEADER.size}; pass the whole value written by to_bytes()"
            )
        (
            version,
            scale,
            code,
            zero_count,
            zero_threshold,
            total_sum,
            lo,
            hi,
            pos_off,
            pos_len,
            neg_off,
            neg_len,
        ) = _HEADER.unpack_from(buf, 0)
        if version != _FORMAT_VERSION:
            raise SketchError(
                f"exponential histogram bytes have format version {version}, this build reads "
                f"version {_FORMAT_VERSION}; upgrade tsdb-arrow to read them"
            )
        if code >= len(_WIDTHS):
            raise SketchError(
                f"exponential histogram bytes have an unknown count width code {code}"
            )
        width = _WIDTHS[code]
        expected = _HEADER.size + (pos_len + neg_len) * width.itemsize
        if len(buf) != expected:
            raise SketchError(
                f"exponential histogram bytes are {len(buf)} bytes long, the header announces "
                f"{expected}; the value is truncated or has trailing bytes"
            )
        counts = np.frombuffer(buf, dtype=width, offset=_HEADER.size).astype(np.uint64)
        pos, neg = counts[:pos_len], counts[pos_len:]
        return cls(
            scale=scale,
            count=zero_count + _exact_sum(pos) + _exact_sum(neg),
            zero_count=zero_count,
            zero_threshold=zero_threshold,
            positive_offset=pos_off,
            positive_counts=pos,
            negative_offset=neg_off,
            negative_counts=neg,
            sum=total_sum,
            min=lo,
            max=hi,
        )


# --------------------------------------------------------------------------- DDSketch


def to_sketch(hist: ExponentialHistogram) -> Sketch:
    """Lossless DDSketch of an exponential histogram: key ``k = i + 1`` for bucket ``i``.

    The mapping is ``LogarithmicMapping.from_gamma(2 ** (2 ** -scale))`` with offset 0; negative
    buckets become negative-side keys (by magnitude), ``zero_count`` the zero bucket, and
    ``count``/``sum``/``min``/``max`` are carried over. ``zero_threshold`` is not: a DDSketch's
    zero bucket is fixed by its mapping (``|v| <= mapping.min_possible``).

    Raises
    ------
    SketchError
        For scales below -5, whose base is too large for a DDSketch mapping, and for bucket
        counts above 2**53, which the sketch's float64 counts would round.
    """
    from tsdb_arrow.sketch.ddsketch import Sketch

    mapping = _sketch_mapping(hist.scale)
    h = hist.trimmed()
    if h.count > 2**53:
        raise SketchError(
            f"this histogram counts {h.count} values; DDSketch counts are float64 and exact "
            "only up to 2**53, so the conversion would not be lossless"
        )
    pos_keys, pos_counts = _keys_and_counts(h.positive_offset, h.positive_counts)
    neg_keys, neg_counts = _keys_and_counts(h.negative_offset, h.negative_counts)
    return Sketch(
        mapping=mapping,
        zero_count=float(h.zero_count),
        positive_keys=pos_keys,
        positive_counts=pos_counts,
        negative_keys=neg_keys,
        negative_counts=neg_counts,
        count=float(h.count),
        sum=h.sum,
        min=h.min,
        max=h.max,
    )


def from_sketch(sketch: Sketch) -> ExponentialHistogram:
    """The exponential histogram a sketch is exactly equal to, when there is one.

    Requires the mapping ``to_sketch`` uses for some scale ``s`` in -5..20
    (``LogarithmicMapping.from_gamma(2 ** (2 ** -s))``, offset 0: for ``s >= 0`` that is
    ``gamma == 2 ** (2 ** -s)`` bit for bit) and whole-number counts; then
    ``from_sketch(to_sketch(h)) == h.trimmed()`` up to ``zero_threshold`` (always 0 here) and
    an empty histogram's NaN ``sum`` (an empty sketch's sum is 0).

    Raises
    ------
    SketchError
        When the sketch's gamma is not an OTel base, its offset is not 0, or a count is not an
        integer; use the sketch directly (or ``ddsketch``) in that case.
    """
    mapping = sketch.mapping
    scale = _scale_of_mapping(mapping)
    if scale is None:
        raise SketchError(
            f"this sketch (gamma={mapping.gamma!r}, offset={mapping.offset!r}) is not an "
            "exponential histogram: from_sketch needs offset 0 and gamma == 2**(2**-s) for an "
            f"integer scale s in {_MIN_SKETCH_SCALE}..{MAX_SCALE}; keep it as a DDSketch"
        )
    pos = _buckets_from_keys("positive", sketch.positive_keys, sketch.positive_counts)
    neg = _buckets_from_keys("negative", sketch.negative_keys, sketch.negative_counts)
    zero_count = int(_whole("zero_count", np.asarray([sketch.zero_count], dtype=np.float64))[0])
    count = zero_count + _exact_sum(pos[1]) + _exact_sum(neg[1])
    lo, hi = float(sketch.min), float(sketch.max)
    if count == 0:  # an empty sketch holds the merge identities +inf / -inf
        lo = hi = math.nan
    return ExponentialHistogram(
        scale=scale,
        count=count,
        zero_count=zero_count,
        positive_offset=pos[0],
        positive_counts=pos[1],
        negative_offset=neg[0],
        negative_counts=neg[1],
        sum=float(sketch.sum),
        min=lo,
        max=hi,
    )


def _sketch_mapping(scale: int) -> LogarithmicMapping:
    from tsdb_arrow.sketch.mapping import LogarithmicMapping

    if scale < _MIN_SKETCH_SCALE:
        raise SketchError(
            f"a scale-{scale} exponential histogram has no DDSketch counterpart: its base "
            f"2**(2**{-scale}) gives a relative accuracy that rounds to 1.0; merge it into a "
            f"histogram of scale >= {_MIN_SKETCH_SCALE} first"
        )
    return LogarithmicMapping.from_gamma(2.0 ** math.ldexp(1.0, -scale))


def _scale_of_mapping(mapping: LogarithmicMapping) -> int | None:
    gamma = float(mapping.gamma)
    if not (math.isfinite(gamma) and gamma > 1.0) or mapping.offset != 0.0:
        return None
    guess = -round(math.log2(math.log2(gamma)))
    if _MIN_SKETCH_SCALE <= guess <= MAX_SCALE and _sketch_mapping(guess).gamma == gamma:
        return guess
    return None


def _keys_and_counts(offset: int, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nonzero = np.flatnonzero(counts)
    return (nonzero + (offset + 1)).astype(np.int64), counts[nonzero].astype(np.float64)


def _whole(name: str, counts: np.ndarray) -> np.ndarray:
    if counts.size and not (
        np.all(np.isfinite(counts))
        and np.all(counts >= 0)
        and np.all(counts == np.floor(counts))
        and np.all(counts <= 2.0**53)
    ):
        raise SketchError(
            f"sketch {name} holds non-integer, negative or too large weights; an exponential "
            "histogram counts whole values only, keep this one as a DDSketch"
        )
    return counts.astype(np.uint64)


def _buckets_from_keys(side: str, keys: np.ndarray, counts: np.ndarray) -> tuple[int, np.ndarray]:
    k = np.asarray(keys, dtype=np.int64)
    c = _whole(f"{side}_counts", np.asarray(counts, dtype=np.float64))
    if k.shape != c.shape:
        raise SketchError(
            f"sketch {side}_keys ({k.size}) and {side}_counts ({c.size}) differ in length"
        )
    return (0, _EMPTY) if k.size == 0 else _scatter(k - 1, c)


# --------------------------------------------------------------------------- helpers


def _check_scale(scale: object) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)):
        raise SketchError(f"scale must be an int in {MIN_SCALE}..{MAX_SCALE}, got {scale!r}")
    if not MIN_SCALE <= int(scale) <= MAX_SCALE:
        raise SketchError(
            f"scale {int(scale)} is out of range: OpenTelemetry scales run from {MIN_SCALE} "
            f"to {MAX_SCALE}; downscale finer histograms to {MAX_SCALE} before storing them"
        )
    return int(scale)


def _check_uint(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SketchError(f"ExponentialHistogram.{name} must be an int >= 0, got {value!r}")
    if not 0 <= int(value) <= _UINT64_MAX:
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


def _check_counts(name: str, counts: object) -> np.ndarray:
    """``counts`` as a read-only uint64 copy, or a ``SketchError`` naming ``name``.

    Accepts integer arrays and sequences of Python ints (as protobuf repeated fields give
    them; a list mixing small ints with ints >= 2**63 is read exactly, not through float64).
    """
    try:
        arr = np.asarray(counts)
        if arr.dtype.kind in "fO" and not isinstance(counts, np.ndarray):
            arr = np.array(list(counts), dtype=object)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError) as exc:
        raise SketchError(f"{name} is not an array of counts: {exc}") from exc
    if arr.ndim != 1:
        raise SketchError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return _EMPTY
    if arr.dtype.kind == "O":
        items = arr.tolist()
        if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in items):
            raise SketchError(
                f"{name} must hold integers; pass whole counts rather than floats or booleans"
            )
        arr = np.array([int(c) for c in items], dtype=object)
    if arr.dtype.kind not in "iuO":
        raise SketchError(
            f"{name} must hold integers, got dtype {arr.dtype}; pass whole counts (uint64) "
            "rather than floats or booleans"
        )
    negative = np.flatnonzero(arr < 0)
    if negative.size:
        i = int(negative[0])
        raise SketchError(
            f"{name}[{i}] is {int(arr[i])}: bucket counts cannot be negative; pass the "
            "number of values recorded in each bucket"
        )
    if arr.dtype.kind == "O" and any(c > _UINT64_MAX for c in arr.tolist()):
        raise SketchError(f"{name} has a count above 2**64-1; counts are 64-bit")
    return _readonly(arr.astype(np.uint64))  # astype copies: the caller's array stays theirs


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


def _exact_sum(counts: np.ndarray) -> int:
    """Sum of uint64 counts as a Python int (numpy's uint64 sum would wrap silently)."""
    return int(counts.astype(object).sum()) if counts.size else 0


def _float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _add_sums(sums: list[float]) -> float:
    """Sums added left to right; 0.0 when there are none."""
    return sum(sums[1:], sums[0]) if sums else 0.0


def _nan_first(x: float) -> tuple[int, float]:
    return (0, 0.0) if math.isnan(x) else (1, x)


def _nan_last(x: float) -> tuple[int, float]:
    return (1, 0.0) if math.isnan(x) else (0, x)


def _scatter(indices: np.ndarray, counts: np.ndarray) -> tuple[int, np.ndarray]:
    """Add ``counts`` into buckets ``indices``; trimmed (offset, uint64 counts)."""
    keep = counts != 0
    indices, counts = indices[keep], counts[keep]
    if indices.size == 0:
        return 0, _EMPTY
    lo = int(indices.min())
    out = np.zeros(int(indices.max()) - lo + 1, dtype=np.uint64)
    np.add.at(out, indices - lo, counts)
    return lo, _readonly(out)


def _combine(
    sides: list[tuple[int, np.ndarray]], shifts: int | list[int]
) -> tuple[int, np.ndarray]:
    """Downscale each (offset, counts) by its shift and add them up: index ``i -> i >> shift``."""
    if isinstance(shifts, int):
        shifts = [shifts] * len(sides)
    indices = [
        (offset + np.arange(counts.size, dtype=np.int64)) >> shift
        for (offset, counts), shift in zip(sides, shifts)
    ]
    return _scatter(
        np.concatenate(indices), np.concatenate([c for _, c in sides]).astype(np.uint64)
    )


def _bucketize(indices: np.ndarray) -> tuple[int, np.ndarray]:
    if indices.size == 0:
        return 0, _EMPTY
    lo = int(indices.min())
    return lo, _readonly(np.bincount(indices - lo).astype(np.uint64))


def _check_max_size(max_size: object) -> int:
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2:
        raise SketchError(f"max_size must be an int >= 2 (the SDK's minimum), got {max_size!r}")
    return max_size


def _span(indices: np.ndarray) -> tuple[int, int] | None:
    return (int(indices.min()), int(indices.max())) if indices.size else None


def _fit_change(scale: int, spans: list[tuple[int, int] | None], max_size: int) -> int:
    """The SDK's ``_get_scale_change``, over both sides: shift the lowest and highest index right
    until ``high - low < max_size`` and return the largest number of shifts needed."""
    change = 0
    for span in spans:
        if span is None:
            continue
        low, high, side = span[0], span[1], 0
        while high - low >= max_size:
            low, high, side = low >> 1, high >> 1, side + 1
        change = max(change, side)
    if scale - change < MIN_SCALE:
        raise SketchError(
            f"a scale-{scale} histogram needs scale {scale - change} to fit in {max_size} "
            f"buckets, below the minimum {MIN_SCALE}; use a larger max_size"
        )
    return change


def _absorb_into_zero(
    side: tuple[int, np.ndarray], scale: int, zero_threshold: float
) -> tuple[tuple[int, np.ndarray], int]:
    """Move the buckets whose upper boundary is <= ``zero_threshold`` into the zero bucket."""
    offset, counts = side
    if counts.size == 0:
        return side, 0
    upper = lower_boundary(offset + 1 + np.arange(counts.size, dtype=np.int64), scale)
    inside = upper <= zero_threshold
    moved = _exact_sum(counts[inside])
    kept = np.where(inside, np.uint64(0), counts)
    return _combine([(offset, kept)], 0), moved
