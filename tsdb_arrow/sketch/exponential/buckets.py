"""Bucket arithmetic of exponential histograms on (offset, uint64 counts) sides: scatter counts
into buckets, downscale and add sides, the SDK's scale change to fit ``max_size``, and the zero
bucket absorbing the buckets below its threshold."""

from __future__ import annotations

import numpy as np

from tsdb_arrow.errors import SketchError
from tsdb_arrow.model import HISTOGRAM_MIN_SCALE
from tsdb_arrow.sketch.counts import EMPTY_COUNTS, exact_sum, readonly
from tsdb_arrow.sketch.exponential.index import lower_boundary


def scatter(indices: np.ndarray, counts: np.ndarray) -> tuple[int, np.ndarray]:
    """Add ``counts`` into buckets ``indices``; trimmed (offset, uint64 counts)."""
    keep = counts != 0
    indices, counts = indices[keep], counts[keep]
    if indices.size == 0:
        return 0, EMPTY_COUNTS
    lo = int(indices.min())
    out = np.zeros(int(indices.max()) - lo + 1, dtype=np.uint64)
    np.add.at(out, indices - lo, counts)
    return lo, readonly(out)


def combine(sides: list[tuple[int, np.ndarray]], shifts: int | list[int]) -> tuple[int, np.ndarray]:
    """Downscale each (offset, counts) by its shift and add them up: index ``i -> i >> shift``."""
    if isinstance(shifts, int):
        shifts = [shifts] * len(sides)
    indices = [
        (offset + np.arange(counts.size, dtype=np.int64)) >> shift
        for (offset, counts), shift in zip(sides, shifts)
    ]
    return scatter(np.concatenate(indices), np.concatenate([c for _, c in sides]).astype(np.uint64))


def bucketize(indices: np.ndarray) -> tuple[int, np.ndarray]:
    """Count the values of each bucket index: (offset, uint64 counts)."""
    if indices.size == 0:
        return 0, EMPTY_COUNTS
    lo = int(indices.min())
    return lo, readonly(np.bincount(indices - lo).astype(np.uint64))


def check_max_size(max_size: object) -> int:
    """``max_size`` if it is an int >= 2, else a ``SketchError``."""
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2:
        raise SketchError(f"max_size must be an int >= 2 (the SDK's minimum), got {max_size!r}")
    return max_size


def index_span(indices: np.ndarray) -> tuple[int, int] | None:
    """The lowest and highest index, or None when there are none."""
    return (int(indices.min()), int(indices.max())) if indices.size else None


def fit_change(scale: int, spans: list[tuple[int, int] | None], max_size: int) -> int:
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
    if scale - change < HISTOGRAM_MIN_SCALE:
        raise SketchError(
            f"a scale-{scale} histogram needs scale {scale - change} to fit in {max_size} "
            f"buckets, below the minimum {HISTOGRAM_MIN_SCALE}; use a larger max_size"
        )
    return change


def absorb_into_zero(
    side: tuple[int, np.ndarray], scale: int, zero_threshold: float
) -> tuple[tuple[int, np.ndarray], int]:
    """Move the buckets whose upper boundary is <= ``zero_threshold`` into the zero bucket."""
    offset, counts = side
    if counts.size == 0:
        return side, 0
    upper = lower_boundary(offset + 1 + np.arange(counts.size, dtype=np.int64), scale)
    inside = upper <= zero_threshold
    moved = exact_sum(counts[inside])
    kept = np.where(inside, np.uint64(0), counts)
    return combine([(offset, kept)], 0), moved
