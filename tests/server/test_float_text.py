"""The float kernel writes every double as Prometheus does: checked against Python's repr.

Python's ``repr`` gives the shortest digits that read back as the same double (David Gay's
algorithm); Go's ``strconv.FormatFloat(f, 'f'/'e', -1, 64)`` gives the same digits, laid out
positionally from 1e-6 up to 1e21 and as ``d.ddde±XX`` outside (Prometheus' JSON).
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.server import float_text


def expected(x: float) -> str:
    """Prometheus' text of ``x`` from ``repr``'s digits."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    _, digit_tuple, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # x = 0.DIGITS x 10^point
    if point >= 22 or point <= -6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        e = point - 1
        return f"{sign}{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def texts(values: np.ndarray) -> list[str]:
    """The kernel's text of each value, and the sizing pass agrees with the writing pass."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    offsets = np.zeros(len(bits) + 1, dtype=np.int64)
    size = float_text.float_texts(bits, offsets, np.empty(0, np.uint8), False)
    out = np.empty(size, dtype=np.uint8)
    assert float_text.float_texts(bits, offsets, out, True) == size
    assert np.diff(offsets).max(initial=0) <= float_text.MAX_BYTES
    raw = out.tobytes().decode()
    return [raw[offsets[i] : offsets[i + 1]] for i in range(len(bits))]


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0.0, "0"), (-0.0, "-0"), (1.0, "1"), (-1.0, "-1"), (10.0, "10"), (0.1, "0.1"),
        (123.456, "123.456"), (2.0**53, "9007199254740992"), (2.0**53 + 2, "9007199254740994"),
        (2.0**63, "9223372036854776000"), (1e20, "100000000000000000000"),
        (9.999999999999999e20, "999999999999999900000"), (1e21, "1e+21"), (-1e21, "-1e+21"),
        (1.5e300, "1.5e+300"), (1.7976931348623157e308, "1.7976931348623157e+308"),
        (1e-6, "0.000001"), (9.99e-7, "9.99e-07"), (1e-7, "1e-07"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"), (5e-324, "5e-324"),
        (-5e-324, "-5e-324"), (1 / 3, "0.3333333333333333"), (2 / 3, "0.6666666666666666"),
        (0.30000000000000004, "0.30000000000000004"), (1e23, "1e+23"), (8.41e21, "8.41e+21"),
        (5e-7, "5e-07"), (123456789012345680.0, "123456789012345680"),
        (float("nan"), "NaN"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"),
    ],
)  # fmt: skip
def test_known_values(x, text):
    assert texts(np.array([x])) == [text]
    assert expected(x) == text  # the reference agrees too


def test_nan_payloads_and_stale_markers_are_nan():
    bits = np.array(
        [0x7FF0000000000002, 0x7FF8000000000001, 0xFFF8000000000000, 0x7FFFFFFFFFFFFFFF],
        dtype=np.uint64,
    )
    assert texts(bits.view(np.float64)) == ["NaN"] * 4


def test_many_doubles_of_every_kind_match_repr():
    """Random bit patterns (every exponent, subnormals), small integers, powers of two times
    small odd numbers (exact decimals: the rounding ties), and both neighbours of powers of
    ten."""
    rng = np.random.default_rng(20261130)
    random_bits = rng.integers(0, 2**64, 200_000, dtype=np.uint64, endpoint=False)
    tens = 10.0 ** np.arange(-323, 309)
    values = np.concatenate(
        [
            random_bits.view(np.float64),
            rng.integers(-(2**53), 2**53, 20_000).astype(np.float64),
            np.ldexp(
                rng.integers(1, 2_000, 40_000).astype(np.float64), rng.integers(-1100, 1000, 40_000)
            ),  # fmt: skip
            tens,
            np.nextafter(tens, 0),
            np.nextafter(tens, np.inf),
            -tens,
            np.arange(1, 20_000) * 0.001,
            np.arange(1, 20_000) * 1e-7,
        ]
    )
    got = texts(values)
    wrong = [(repr(float(x)), g) for x, g in zip(values, got, strict=True) if g != expected(x)]
    assert wrong == []


@settings(deadline=None, max_examples=300)
@given(
    st.lists(
        st.floats(width=64)
        | st.integers(0, 2**64 - 1).map(lambda b: float(np.uint64(b).view(np.float64)))
        | st.integers(-(2**70), 2**70).map(float),
        max_size=100,
    )
)
def test_any_double_matches_repr_and_reads_back(xs):
    got = texts(np.array(xs, dtype=np.float64))
    assert got == [expected(x) for x in xs]
    for x, text in zip(xs, got, strict=True):
        if math.isfinite(x):
            assert float(text) == x  # exact: the text reads back as the same double
