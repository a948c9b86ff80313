"""FixedBucketHistogram: Prometheus ``le`` buckets and ``histogram_quantile``, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.errors import SketchError
from tsdb_arrow.sketch import FixedBucketHistogram

BOUNDS = [0.1, 0.5, 1.0, 5.0]


def test_le_semantics_and_cumulative_view() -> None:
    values = [0.1, 0.10000001, 0.5, 0.7, 1.0, 5.0, 5.0000001, 100.0, -3.0, math.inf, math.nan]
    h = FixedBucketHistogram.from_values(values, BOUNDS)
    # -3, 0.1 | 0.10000001, 0.5 | 0.7, 1.0 | 5.0 | 5.0000001, 100, inf   (NaN ignored)
    assert h.counts.tolist() == [2, 2, 2, 1, 3]
    assert h.cumulative_counts.tolist() == [2, 4, 6, 7, 10]
    assert h.count == 10
    assert h.sum == math.inf


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # counts [1, 2, 3, 4, 0] -> cumulative [1, 3, 6, 10, 10], 10 observations
        (0.5, 0.5 + (1.0 - 0.5) * (2 / 3)),  # rank 5 in (0.5, 1]: 2 of its 3
        (0.05, 0.0 + 0.1 * (0.5 / 1)),  # rank 0.5 in the lowest bucket, from 0
        (0.0, 0.0),  # rank 0: lowest bucket, from 0
        (0.3, 0.1 + 0.4 * (2 / 2)),  # rank 3 = cumulative of (0.1, 0.5]: its top
        (1.0, 1.0 + 4.0 * (4 / 4)),  # rank 10 in (1, 5]
        (0.95, 1.0 + 4.0 * (3.5 / 4)),
        (-0.5, -math.inf),
        (1.5, math.inf),
        (math.nan, math.nan),
    ],
)
def test_quantile_by_hand(q: float, expected: float) -> None:
    h = FixedBucketHistogram(BOUNDS, [1, 2, 3, 4, 0])
    got = h.quantile(q)
    assert got == expected or (math.isnan(got) and math.isnan(expected))


def test_quantile_in_the_inf_bucket_is_the_last_finite_bound() -> None:
    h = FixedBucketHistogram(BOUNDS, [1, 2, 3, 4, 5])  # cumulative [1, 3, 6, 10, 15]
    assert h.quantile(0.9) == 5.0  # rank 13.5 > 10
    assert h.quantile(2 / 3) == 5.0  # rank 10: still in (1, 5] -> its top
    assert h.quantile(0.6) == 1.0 + 4.0 * (3 / 4)  # rank 9


def test_lowest_bucket_with_bound_at_or_below_zero() -> None:
    h = FixedBucketHistogram([-1.0, 0.0, 1.0], [2, 1, 1, 0])  # cumulative [2, 3, 4, 4]
    assert h.quantile(0.25) == -1.0  # rank 1 in the lowest bucket: its bound
    assert h.quantile(0.7) == -1.0 + 1.0 * ((0.7 * 4 - 2) / 1)  # rank 2.8 in (-1, 0]
    assert h.quantile(1.0) == 0.0 + 1.0 * (1 / 1)


def test_empty_and_boundless_histograms_give_nan() -> None:
    empty = FixedBucketHistogram(BOUNDS, [0, 0, 0, 0, 0])
    assert math.isnan(empty.quantile(0.5))
    assert empty.quantile(-1) == -math.inf  # the q rules come first, as in Prometheus
    only_inf = FixedBucketHistogram([], [7])
    assert math.isnan(only_inf.quantile(0.5))


def test_quantiles_vectorised_equal_one_by_one() -> None:
    h = FixedBucketHistogram.from_values(np.random.default_rng(1).lognormal(size=1000), BOUNDS)
    qs = np.linspace(0, 1, 21)
    np.testing.assert_array_equal(h.quantiles(qs), [h.quantile(q) for q in qs])


@settings(max_examples=50, deadline=None)
@given(
    parts=st.lists(
        st.lists(st.floats(-10, 10, allow_nan=False), max_size=50), min_size=1, max_size=4
    )
)
def test_merge_equals_histogram_of_union(parts: list[list[float]]) -> None:
    merged = FixedBucketHistogram.from_values(parts[0], BOUNDS)
    for p in parts[1:]:
        merged = merged.merge(FixedBucketHistogram.from_values(p, BOUNDS))
    union = FixedBucketHistogram.from_values([v for p in parts for v in p], BOUNDS)
    assert merged.counts.tolist() == union.counts.tolist()
    assert merged.count == union.count
    assert merged.sum == pytest.approx(union.sum, abs=1e-9)


def test_merge_refuses_other_bounds() -> None:
    with pytest.raises(SketchError, match="different bounds"):
        FixedBucketHistogram.from_values([1], BOUNDS).merge(
            FixedBucketHistogram.from_values([1], [1.0])
        )


@pytest.mark.parametrize(
    ("bounds", "counts", "message"),
    [
        ([1.0, 0.5], [0, 0, 0], r"strictly increasing: bounds\[0\] = 1.0"),
        ([1.0, 1.0], [0, 0, 0], "strictly increasing"),
        ([1.0, math.nan], [0, 0, 0], r"bounds\[1\] = nan"),
        ([1.0, math.inf], [0, 0, 0], "finite"),
        ([1.0], [1, 2, 3], "expected len"),
        ([1.0], [1], "expected len"),
        ([1.0], [1, -2], r"counts\[1\] = -2.0"),
        ([1.0], [1, math.nan], r"counts\[1\] = nan"),
    ],
)
def test_validation(bounds: list[float], counts: list[float], message: str) -> None:
    with pytest.raises(SketchError, match=message):
        FixedBucketHistogram(bounds, counts)


def test_from_values_validates_bounds_and_count() -> None:
    with pytest.raises(SketchError, match="strictly increasing"):
        FixedBucketHistogram.from_values([1.0], [2.0, 1.0])
    with pytest.raises(SketchError, match="does not match"):
        FixedBucketHistogram([1.0], [1, 1], count=5)
