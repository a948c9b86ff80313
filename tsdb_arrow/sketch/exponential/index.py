"""OpenTelemetry exponential-histogram index mapping: the bucket index of a value at a scale
(``map_to_index``, exactly the SDK's) and a bucket's lower boundary (``lower_boundary``).

At scale ``s`` the base is ``b = 2 ** (2 ** -s)`` and index ``i`` covers ``(b ** i, b ** (i + 1)]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tsdb_arrow.errors import SketchError
from tsdb_arrow.model import HISTOGRAM_MAX_SCALE, HISTOGRAM_MIN_SCALE

# IEEE 754 binary64 fields, as the OTel SDK's ieee_754 module defines them.
_MANTISSA_WIDTH = 52
_MANTISSA_MASK = np.uint64((1 << _MANTISSA_WIDTH) - 1)
_EXPONENT_BIAS = 1023
_MIN_NORMAL_EXPONENT = -_EXPONENT_BIAS + 1
_MAX_NORMAL_EXPONENT = _EXPONENT_BIAS
_MIN_NORMAL_VALUE = np.finfo(np.float64).tiny


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
    scale = check_scale(scale)
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
    scale = check_scale(scale)
    i = np.asarray(indices, dtype=np.int64)
    with np.errstate(over="ignore", under="ignore"):
        if scale <= 0:
            return np.ldexp(1.0, np.clip(i << -scale, -1100, 1100))
        return np.exp2(i.astype(np.float64) * math.ldexp(1.0, -scale))


def check_scale(scale: object) -> int:
    """``scale`` as an int from ``HISTOGRAM_MIN_SCALE`` to ``HISTOGRAM_MAX_SCALE``, else a
    ``SketchError``."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)):
        raise SketchError(
            f"scale must be an int in {HISTOGRAM_MIN_SCALE}..{HISTOGRAM_MAX_SCALE}, got {scale!r}"
        )
    if not HISTOGRAM_MIN_SCALE <= int(scale) <= HISTOGRAM_MAX_SCALE:
        raise SketchError(
            f"scale {int(scale)} is out of range: OpenTelemetry scales run from "
            f"{HISTOGRAM_MIN_SCALE} to {HISTOGRAM_MAX_SCALE}; downscale finer histograms to "
            f"{HISTOGRAM_MAX_SCALE} before storing them"
        )
    return int(scale)
