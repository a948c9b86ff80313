"""The chooser's shortcuts are exact: every bound it skips work with is a true bound, and the
vectorized decimal exponent search finds what the value-by-value search finds."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdb_arrow.blocks.codecs import decimal, intpack, rle, xor

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
any_int64 = st.integers(-(2**63), 2**63 - 1)


def reference_exponent(x: np.ndarray, bits: np.ndarray, kind: int) -> tuple[int, np.ndarray]:
    """The value-by-value search that decimal._exponent must reproduce."""
    n = len(x)
    m = np.zeros(n, dtype=np.int64)
    e, i = 0, 0
    while i < n:
        v = x[i]
        if bits[i] == decimal._NEG_ZERO or v != v or not abs(v) < decimal._LIMIT:
            return -2, m
        if decimal._fits(v, e, kind):
            m[i] = np.int64(np.rint(v * decimal.POW10[e]))
            i += 1
            continue
        while True:
            e += 1
            if e > decimal.MAX_EXPONENT:
                return -1, m
            if decimal._fits(v, e, kind):
                break
        i = 0
    return e, m


@st.composite
def float_chunks(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(0, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from(["decimal", "mixed", "bits"]))
    if shape == "bits":
        return rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64).view(np.float64)
    m = rng.integers(-(10**6), 10**6, n)
    e = draw(st.integers(0, 4))
    x = m / 10.0 ** (rng.integers(0, 5, n) if shape == "mixed" else e)
    specials = [np.nan, np.inf, -0.0, 1e300, 0.1 + 0.2, 1e-7]
    for j in rng.integers(0, max(n, 1), draw(st.integers(0, 2))):
        if n:
            x[j] = specials[int(rng.integers(len(specials)))]
    return np.ascontiguousarray(x, dtype=np.float64)


@SETTINGS
@given(float_chunks(), st.integers(0, decimal.N_KINDS - 1))
def test_exponent_search_matches_value_by_value_search(x: np.ndarray, kind: int) -> None:
    bits = x.view(np.int64)
    m = np.zeros(len(x), dtype=np.int64)
    e = decimal._exponent(x, bits, m, kind)
    want, want_m = reference_exponent(x, bits, kind)
    assert e == want
    if e >= 0:
        assert np.array_equal(m, want_m)


@SETTINGS
@given(st.lists(any_int64, max_size=80), st.integers(0, 400))
def test_capped_rle_size_is_exact_up_to_the_cap(xs: list[int], cap: int) -> None:
    x = np.array(xs, dtype=np.int64)
    exact = rle.delta_size(x) if len(x) else 8
    capped = rle.delta_size_capped(x, cap)
    assert capped == exact if exact <= cap else capped > cap


@SETTINGS
@given(st.lists(any_int64, min_size=1, max_size=80), st.booleans())
def test_xor_lower_bound(xs: list[int], repeat: bool) -> None:
    x = np.array(xs, dtype=np.int64)
    if repeat:
        x = np.repeat(x, 3)
    assert xor.size_lower_bound(x) <= xor.size(x)


@SETTINGS
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=300),
    st.integers(0, 64),
    st.integers(0, 500),
    st.integers(0, 255),
)
def test_planar_estimate_below_agrees_with_the_estimate(
    us: list[int], width: int, limit: int, mask_bits: int
) -> None:
    u = np.array(us, dtype=np.uint64)
    if mask_bits < 64:  # skewed byte distributions too
        u &= np.uint64((1 << mask_bits) - 1) if mask_bits else np.uint64(0)
    if width < 64:
        u &= np.uint64((1 << width) - 1)
    exact = intpack.planar_estimate(u, width)
    below = intpack.planar_estimate_below(u, width, limit)
    assert below == exact if exact < limit else below >= limit
