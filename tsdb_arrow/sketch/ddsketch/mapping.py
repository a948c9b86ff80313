"""The logarithmic value-to-key mapping of DDSketch, bit-compatible with the ``ddsketch`` package.

A key ``k`` stands for the values ``v`` with ``gamma**(k - 1 - offset) < v <= gamma**(k - offset)``;
its representative value is within ``relative_accuracy`` of every value it stands for. The
constants (``gamma``, the multiplier with its ``*= log(2)``, ``min_possible``, ``max_possible``)
are computed with the same floating-point operations as ``ddsketch.mapping.LogarithmicMapping``,
and the keys with the same libm ``log`` that CPython's ``math.log(value, 2)`` calls, so that
every positive float gets exactly the key the package gives it.

The vectorised keys first use numpy's SIMD ``log``, which may differ from libm's in the last
bit; wherever that could change the key (the scaled logarithm lies within a tiny distance of an
integer), the key is recomputed with libm's ``log`` in a numba kernel.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import numpy as np

from tsdb_arrow.config import check_relative_accuracy
from tsdb_arrow.errors import ConfigError, SketchError
from tsdb_arrow.jit import njit

# Keys are int64: |log2(v)| <= 1074 for every positive float, so |key| <= 1075 * multiplier.
_KEY_LIMIT = float(2**62)
# Relative margin under which numpy's log may disagree with libm's about ceil(): recompute.
_NEAR_INTEGER = 1e-11
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class LogarithmicMapping:
    """DDSketch's memory-optimal mapping between positive floats and integer keys.

    Parameters
    ----------
    relative_accuracy
        The guarantee (``alpha`` in the DDSketch paper), strictly between 0 and 1.
    offset
        Added to every key (``int(ceil(log_gamma(v)) + offset)``, truncated towards zero as
        the package does). OpenTelemetry index ``i`` is key ``i + 1`` with offset 0.

    Attributes
    ----------
    gamma
        The base: ``1 + 2 * alpha / (1 - alpha)``.
    multiplier
        ``log(2) / log1p(gamma - 1)``: keys are ``ceil(log2(v) * multiplier) + offset``.
    min_possible, max_possible
        ``|v| <= min_possible`` counts as zero in a sketch; ``max_possible`` is the package's
        stated largest value (it does not refuse larger finite values, nor do we).
    """

    relative_accuracy: float
    offset: float = 0.0
    gamma: float = field(init=False, repr=False)
    multiplier: float = field(init=False, repr=False)
    min_possible: float = field(init=False, repr=False)
    max_possible: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        alpha = check_relative_accuracy(self.relative_accuracy)
        offset = float(self.offset)
        if not math.isfinite(offset):
            raise ConfigError(f"LogarithmicMapping offset must be finite, got {self.offset!r}")
        gamma_mantissa = 2 * alpha / (1 - alpha)
        gamma = 1 + gamma_mantissa
        multiplier = 1 / math.log1p(gamma_mantissa)
        multiplier *= math.log(2)
        if 1075 * multiplier + abs(offset) >= _KEY_LIMIT:
            raise ConfigError(
                f"relative_accuracy {alpha!r} is too small: keys would not fit in 64 bits; "
                "use 1e-12 or more"
            )
        object.__setattr__(self, "relative_accuracy", alpha)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "multiplier", multiplier)
        object.__setattr__(self, "min_possible", sys.float_info.min * gamma)
        object.__setattr__(self, "max_possible", sys.float_info.max / gamma)

    @classmethod
    def from_gamma(cls, gamma: float, offset: float = 0.0) -> LogarithmicMapping:
        """The mapping of base ``gamma`` (OpenTelemetry scale ``s``: ``gamma = 2**(2**-s)``).

        The package's ``from_gamma_offset`` takes ``alpha = (gamma - 1) / (gamma + 1)``, whose
        recomputed gamma and multiplier can be an ulp off the original mapping's. Here the
        relative accuracy is the shortest decimal rounding of that alpha (then its float
        neighbours) that gives back ``gamma`` exactly: a sketch made with
        ``relative_accuracy=0.01`` comes back from its protobuf with exactly that mapping.
        If no candidate reproduces ``gamma``, the package's alpha is used.
        """
        gamma = float(gamma)
        if not (math.isfinite(gamma) and gamma > 1.0):
            raise ConfigError(f"gamma must be a finite float > 1, got {gamma!r}")
        alpha = (gamma - 1.0) / (gamma + 1.0)
        candidates = [float(f"{alpha:.{digits}g}") for digits in range(1, 18)]
        near = alpha
        for _ in range(8):
            candidates.append(near)
            near = math.nextafter(near, 1.0 if _gamma_of(near) < gamma else 0.0)
        for candidate in candidates:
            if 0.0 < candidate < 1.0 and _gamma_of(candidate) == gamma:
                return cls(candidate, offset)
        return cls(alpha, offset)

    def key(self, value: float) -> int:
        """The key of one positive float, exactly as ``ddsketch`` computes it."""
        return int(self.keys(np.array([value], dtype=np.float64))[0])

    def value(self, key: int) -> float:
        """The representative value of one key, exactly as ``ddsketch`` computes it."""
        return float(self.values(np.array([key], dtype=np.int64))[0])

    def keys(self, values: np.ndarray) -> np.ndarray:
        """The int64 keys of an array of positive, finite floats.

        Raises
        ------
        SketchError
            If a value is not a positive finite float (the package would fail on it too).
        """
        values = np.ascontiguousarray(values, dtype=np.float64)
        if values.ndim != 1:
            values = values.ravel()
        out = np.empty(values.size, dtype=np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(values)
        bad = _keys_kernel(values, logs, self.multiplier, self.offset, out)
        if bad >= 0:
            raise SketchError(
                f"values[{bad}] = {float(values[bad])!r} has no key: keys exist for positive "
                "finite floats only (route zeros and negatives through Sketch.from_values)"
            )
        return out

    def values(self, keys: np.ndarray) -> np.ndarray:
        """The float64 representative values of an array of keys (``ddsketch``'s ``value``)."""
        keys = np.ascontiguousarray(keys, dtype=np.int64).ravel()
        # CPython's math.pow (the platform libm), as the package computes it: a compiled pow
        # can differ in the last bit. Only the distinct keys a query reads are computed here.
        uniq, inverse = np.unique(keys, return_inverse=True)
        scale = 2.0 / (1 + self.gamma)
        offset, multiplier = self.offset, self.multiplier
        values = [math.pow(2.0, (k - offset) / multiplier) * scale for k in uniq.tolist()]
        return np.array(values, dtype=np.float64)[inverse]


def _gamma_of(alpha: float) -> float:
    """The gamma the package computes from ``alpha``."""
    return 1 + 2 * alpha / (1 - alpha)


@njit(cache=True)
def exact_key(value: float, multiplier: float, offset: float) -> int:
    """``int(ceil(math.log(value, 2) * multiplier) + offset)`` with libm's ``log``."""
    return int(math.ceil(math.log(value) / math.log(2.0) * multiplier) + offset)


@njit(cache=True)
def fast_key(value: float, log_value: float, multiplier: float, offset: float) -> int:
    """The key from an approximate ``log(value)``, recomputed exactly near a key boundary."""
    x = log_value / _LN2 * multiplier
    c = math.ceil(x)
    if c - x < _NEAR_INTEGER * (abs(x) + 1.0) or x - (c - 1.0) < _NEAR_INTEGER * (abs(x) + 1.0):
        return exact_key(value, multiplier, offset)
    return int(c + offset)


@njit(cache=True)
def _keys_kernel(
    values: np.ndarray, logs: np.ndarray, multiplier: float, offset: float, out: np.ndarray
) -> int:
    """Fill ``out`` with keys; the index of the first value without a key, or -1."""
    for i in range(values.size):
        v = values[i]
        if not (v > 0.0 and v < np.inf):
            return i
        out[i] = fast_key(v, logs[i], multiplier, offset)
    return -1
