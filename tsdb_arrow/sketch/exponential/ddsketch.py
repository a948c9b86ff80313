"""ExponentialHistogram <-> DDSketch ``Sketch``, losslessly: bucket ``i`` is key ``k = i + 1`` of
the mapping with ``gamma = 2 ** (2 ** -scale)`` and offset 0 (see this package's docstring and
``docs/sketches.md``). A conversion above both types: neither imports it.
"""

from __future__ import annotations

import math

import numpy as np

from tsdb_arrow.errors import SketchError
from tsdb_arrow.model import HISTOGRAM_MAX_SCALE
from tsdb_arrow.sketch.counts import EMPTY_COUNTS, exact_sum
from tsdb_arrow.sketch.ddsketch.mapping import LogarithmicMapping
from tsdb_arrow.sketch.ddsketch.sketch import Sketch
from tsdb_arrow.sketch.exponential.buckets import scatter
from tsdb_arrow.sketch.exponential.histogram import ExponentialHistogram

# Below this scale alpha = (b - 1) / (b + 1) rounds to 1.0 (scale -6: b = 2**64).
MIN_SKETCH_SCALE = -5


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
    mapping = sketch_mapping(hist.scale)
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
            f"integer scale s in {MIN_SKETCH_SCALE}..{HISTOGRAM_MAX_SCALE}; keep it as a DDSketch"
        )
    pos = _buckets_from_keys("positive", sketch.positive_keys, sketch.positive_counts)
    neg = _buckets_from_keys("negative", sketch.negative_keys, sketch.negative_counts)
    zero_count = int(_whole("zero_count", np.asarray([sketch.zero_count], dtype=np.float64))[0])
    count = zero_count + exact_sum(pos[1]) + exact_sum(neg[1])
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


def sketch_mapping(scale: int) -> LogarithmicMapping:
    """The DDSketch mapping of a scale: ``from_gamma(2 ** (2 ** -scale))``, offset 0."""
    if scale < MIN_SKETCH_SCALE:
        raise SketchError(
            f"a scale-{scale} exponential histogram has no DDSketch counterpart: its base "
            f"2**(2**{-scale}) gives a relative accuracy that rounds to 1.0; merge it into a "
            f"histogram of scale >= {MIN_SKETCH_SCALE} first"
        )
    return LogarithmicMapping.from_gamma(2.0 ** math.ldexp(1.0, -scale))


def _scale_of_mapping(mapping: LogarithmicMapping) -> int | None:
    gamma = float(mapping.gamma)
    if not (math.isfinite(gamma) and gamma > 1.0) or mapping.offset != 0.0:
        return None
    guess = -round(math.log2(math.log2(gamma)))
    if MIN_SKETCH_SCALE <= guess <= HISTOGRAM_MAX_SCALE and sketch_mapping(guess).gamma == gamma:
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
    return (0, EMPTY_COUNTS) if k.size == 0 else scatter(k - 1, c)
