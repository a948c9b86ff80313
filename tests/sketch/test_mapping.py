"""LogarithmicMapping: keys and values bit-identical to the ``ddsketch`` package's."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from ddsketch.mapping import LogarithmicMapping as PackageMapping
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.errors import ConfigError, SketchError
from tsdb_arrow.sketch import LogarithmicMapping

accuracies = st.one_of(
    st.sampled_from([0.01, 0.02, 0.05, 0.001, 0.1, 0.5, 0.9]),
    st.floats(min_value=1e-6, max_value=0.99),
)
positive = st.floats(min_value=5e-324, allow_nan=False, allow_infinity=False)
offsets = st.one_of(st.just(0.0), st.floats(-1000, 1000), st.integers(-50, 50).map(float))


def _boundary_values(mapping: PackageMapping, keys: np.ndarray) -> np.ndarray:
    """Floats around the boundaries 2**(k / multiplier), a few ulps either side."""
    with np.errstate(over="ignore", under="ignore"):
        centres = np.exp2(keys / mapping._multiplier)
    centres = centres[np.isfinite(centres) & (centres > 0)]
    out = [centres]
    up, down = centres.copy(), centres.copy()
    for _ in range(3):
        up, down = np.nextafter(up, np.inf), np.nextafter(down, 0)
        out += [up, down]
    values = np.concatenate(out)
    return values[np.isfinite(values) & (values > 0)]


@settings(max_examples=60, deadline=None)
@given(
    alpha=accuracies,
    offset=offsets,
    values=st.lists(positive, min_size=1, max_size=50),
    seed=st.integers(0, 2**32 - 1),
)
def test_keys_match_package(alpha: float, offset: float, values: list[float], seed: int) -> None:
    ours, ref = LogarithmicMapping(alpha, offset), PackageMapping(alpha, offset=offset)
    rng = np.random.default_rng(seed)
    key_range = int(1074 * ref._multiplier)
    boundary = _boundary_values(ref, rng.integers(-key_range, key_range, 40))
    subnormal = rng.integers(1, 2**52, 20, dtype=np.int64).view(np.float64)
    huge = np.nextafter(sys.float_info.max, 0) / rng.uniform(1, 4, 5)
    arr = np.concatenate([values, boundary, subnormal, huge, [sys.float_info.max, 5e-324]])
    expected = np.array([ref.key(float(v)) for v in arr], dtype=np.int64)
    np.testing.assert_array_equal(ours.keys(arr), expected)
    assert ours.key(float(arr[0])) == expected[0]


@settings(max_examples=40, deadline=None)
@given(alpha=accuracies, offset=offsets, where=st.lists(st.floats(-1, 1), min_size=1))
def test_values_match_package(alpha: float, offset: float, where: list[float]) -> None:
    ours, ref = LogarithmicMapping(alpha, offset), PackageMapping(alpha, offset=offset)
    # keys of the values between the smallest normal float and the largest
    keys = [int(w * 1000 * ref._multiplier + offset) for w in where]
    got = ours.values(np.array(keys))
    expected = np.array([ref.value(k) for k in keys])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("alpha", [0.01, 0.02, 0.005, 1e-4, 0.3, 0.123456789])
def test_constants_match_package(alpha: float) -> None:
    ours, ref = LogarithmicMapping(alpha), PackageMapping(alpha)
    assert ours.gamma == ref.gamma
    assert ours.multiplier == ref._multiplier
    assert ours.min_possible == ref.min_possible
    assert ours.max_possible == ref.max_possible
    # a protobuf-style round trip through gamma gives back the same mapping
    assert LogarithmicMapping.from_gamma(ours.gamma) == ours


@pytest.mark.parametrize("scale", range(-4, 9))
def test_from_gamma_for_opentelemetry_scales(scale: int) -> None:
    gamma = 2.0 ** (2.0**-scale)
    mapping = LogarithmicMapping.from_gamma(gamma, offset=1.0)
    # alpha = (gamma - 1) / (gamma + 1) loses bits for large gammas (negative scales)
    assert mapping.gamma == pytest.approx(gamma, rel=1e-13)
    if scale >= 0:
        assert mapping.gamma == gamma
    assert mapping.multiplier == pytest.approx(2.0**scale, rel=1e-12)
    assert mapping.offset == 1.0


def test_from_gamma_any_alpha_round_trips() -> None:
    rng = np.random.default_rng(3)
    for alpha in rng.uniform(1e-4, 0.9, 300):
        mapping = LogarithmicMapping(float(alpha))
        assert LogarithmicMapping.from_gamma(mapping.gamma).gamma == mapping.gamma


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, math.nan, "0.01", True])
def test_bad_relative_accuracy(alpha: object) -> None:
    with pytest.raises(ConfigError, match="relative_accuracy"):
        LogarithmicMapping(alpha)  # type: ignore[arg-type]


def test_too_small_relative_accuracy() -> None:
    with pytest.raises(ConfigError, match="64 bits"):
        LogarithmicMapping(1e-17)


@pytest.mark.parametrize("gamma", [1.0, 0.5, math.inf, math.nan])
def test_bad_gamma(gamma: float) -> None:
    with pytest.raises(ConfigError, match="gamma"):
        LogarithmicMapping.from_gamma(gamma)


@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan])
def test_keys_refuse_values_without_key(value: float) -> None:
    with pytest.raises(SketchError, match=r"values\[1\]"):
        LogarithmicMapping(0.01).keys(np.array([1.0, value]))
