"""Bucket listing of native histograms (``native_buckets``) and Prometheus' bound table."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.promql.native import from_struct, to_struct
from tsdb_arrow.promql.native_bounds import FRACTIONS, go_exp2
from tsdb_arrow.promql.native_buckets import CLOSED, LEFT_OPEN, RIGHT_OPEN, bucket_list
from tsdb_arrow.sketch import ExponentialHistogram, histogram_column


def test_table_equals_prometheus_entries():
    # entries of Prometheus' exponentialBounds (model/histogram/generic.go)
    assert FRACTIONS.size == 511
    assert FRACTIONS[0] == 0.5
    assert FRACTIONS[1:3].tolist() == [0.5, 0.7071067811865475]
    assert FRACTIONS[3:7].tolist() == [0.5, 0.5946035575013605, 0.7071067811865475,
                                       0.8408964152537144]
    assert FRACTIONS[31 + 29] == 0.9370838170551498  # schema 5
    assert FRACTIONS[63 + 63] == 0.9892280131939752  # schema 6, last
    assert FRACTIONS[255 + 1:255 + 4].tolist() == [0.5013556375251013, 0.5027149505564014,
                                                   0.5040779490592088]
    assert FRACTIONS[-1] == 0.9972960560854698  # schema 8, last
    # Go's Exp2 is not correctly rounded: 2**0.5 comes out an ulp low
    assert go_exp2(0.5) == 1.414213562373095 != math.sqrt(2)
    assert go_exp2(-3.0) == 0.125 and go_exp2(0.0) == 1.0


def _bound(idx: int, scale: int) -> float:
    """Slow reference of Prometheus' getBound for exponential schemas."""
    if scale <= 0:
        return math.ldexp(1.0, idx * 2 ** -scale)
    n = 2**scale
    return math.ldexp(float(FRACTIONS[n - 1 + idx % n]), idx // n + 1)


def _reference(h: ExponentialHistogram) -> list[tuple[int, float, float, float]]:
    """Prometheus' AllBucketIterator, non-empty buckets only, in plain Python."""
    out = []
    z = h.zero_threshold
    neg = list(enumerate(h.negative_counts.tolist()))
    for k, c in reversed(neg):
        i = h.negative_offset + k + 1  # Prometheus index
        lo, hi = -_bound(i, h.scale), -_bound(i - 1, h.scale)
        hi = -z if -z < hi < 0 else hi
        if c:
            out.append((RIGHT_OPEN, lo, hi, float(c)))
    if h.zero_count > 0:
        out.append((CLOSED, -z, z, float(h.zero_count)))
    for k, c in enumerate(h.positive_counts.tolist()):
        i = h.positive_offset + k + 1
        lo, hi = _bound(i - 1, h.scale), _bound(i, h.scale)
        lo = z if 0 < lo < z else lo
        if c:
            out.append((LEFT_OPEN, lo, hi, float(c)))
    return out


_counts = st.lists(st.integers(0, 3), max_size=6).map(lambda v: np.array(v, np.uint64))


@st.composite
def _histograms(draw) -> ExponentialHistogram:
    pos, neg = draw(_counts), draw(_counts)
    zc = draw(st.integers(0, 2))
    return ExponentialHistogram(
        scale=draw(st.integers(-4, 8)),
        count=int(pos.sum() + neg.sum()) + zc,
        sum=1.0,
        zero_count=zc,
        zero_threshold=draw(st.sampled_from([0.0, 1e-3, 0.7, 1.5])),
        positive_offset=draw(st.integers(-20, 20)),
        positive_counts=pos,
        negative_offset=draw(st.integers(-20, 20)),
        negative_counts=neg,
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(_histograms(), min_size=1, max_size=5), st.randoms())
def test_bucket_list_matches_the_reference(hists, rnd):
    pool = from_struct(pl.Series("h", histogram_column(hists)))
    rows = np.array([rnd.randrange(len(hists)) for _ in range(7)], np.int64)
    b = bucket_list(pool, rows)
    for k, r in enumerate(rows.tolist()):
        lo, hi = b.starts[k], b.starts[k + 1]
        got = list(zip(b.rule[lo:hi].tolist(), b.lower[lo:hi].tolist(),
                       b.upper[lo:hi].tolist(), b.count[lo:hi].tolist(), strict=True))
        assert got == _reference(hists[r])


@settings(max_examples=50, deadline=None)
@given(st.lists(_histograms(), min_size=1, max_size=5))
def test_to_struct_round_trips_the_pool(hists):
    pool = from_struct(pl.Series("h", histogram_column(hists)))
    rows = np.arange(len(hists))[::-1].copy()
    back = from_struct(to_struct(pool, rows))
    for name in ("scale", "count", "sum", "zero_count", "zero_threshold", "pos_offset",
                 "pos_start", "pos_counts", "neg_offset", "neg_start", "neg_counts"):
        want = getattr(pool, name)
        if name.endswith("_start"):
            want = np.r_[0, np.cumsum(np.diff(want)[rows])]
        elif name.endswith("_counts"):
            start = pool.pos_start if name == "pos_counts" else pool.neg_start
            want = np.concatenate([want[start[r]:start[r + 1]] for r in rows])
        else:
            want = want[rows]
        assert np.array_equal(getattr(back, name), want), name


def test_largest_bucket_ends_at_the_largest_float():
    # Prometheus bucket 1024 of schema 0 is (2**1023, MaxFloat64], not (..., +Inf]
    h = ExponentialHistogram(scale=0, count=1, sum=1.0, positive_offset=1023,
                             positive_counts=np.array([1], np.uint64))
    pool = from_struct(pl.Series("h", histogram_column([h])))
    b = bucket_list(pool, np.zeros(1, np.int64))
    assert b.lower.tolist() == [2.0**1023] and b.upper.tolist() == [np.finfo(float).max]
