"""Weighted sums of native histograms (``native_arith``) against a slow reference: Prometheus'
``FloatHistogram.Mul`` then sequential ``Add`` (zero bucket reconciliation, schema reduction),
written with dicts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tsdb_arrow.promql.native import from_struct
from tsdb_arrow.promql.native_arith import concat, weighted_sums
from tsdb_arrow.promql.native_bounds import FRACTIONS
from tsdb_arrow.sketch import ExponentialHistogram, histogram_column


def _bound(i: int, scale: int) -> float:
    """Upper bound of OpenTelemetry bucket ``i`` (Prometheus ``getBound(i + 1)``)."""
    idx = i + 1
    if scale <= 0:
        return math.ldexp(1.0, idx * 2**-scale)
    n = 2**scale
    return math.ldexp(float(FRACTIONS[n - 1 + idx % n]), idx // n + 1)


@dataclass
class H:
    scale: int
    count: float
    sum: float
    zc: float
    zt: float
    pos: dict[int, float] = field(default_factory=dict)
    neg: dict[int, float] = field(default_factory=dict)


def _of(e: ExponentialHistogram, w: float) -> H:
    return H(e.scale, w * e.count, w * e.sum, w * e.zero_count, e.zero_threshold,
             {e.positive_offset + k: w * float(c) for k, c in enumerate(e.positive_counts)},
             {e.negative_offset + k: w * float(c) for k, c in enumerate(e.negative_counts)})


def _widen(h: H, t: float) -> tuple[float, float]:
    """zeroCountForLargerThreshold."""
    if t == h.zt:
        return h.zc, t
    while True:
        count = h.zc
        for i in sorted(h.pos):
            if _bound(i - 1, h.scale) >= t:
                break
            count += h.pos[i]
            if _bound(i, h.scale) > t:
                if h.pos[i] != 0:
                    t = _bound(i, h.scale)
                break
        again = False
        for i in sorted(h.neg):
            if _bound(i - 1, h.scale) >= t:
                break
            count += h.neg[i]
            if _bound(i, h.scale) > t:
                if h.neg[i] != 0:
                    t, again = _bound(i, h.scale), True
                break
        if not again:
            return count, t


def _add(h: H, o: H) -> None:
    oc, ot = o.zc, o.zt
    while ot != h.zt:
        if h.zt > ot:
            oc, ot = _widen(o, h.zt)
        if ot > h.zt:
            h.zc, h.zt = _widen(h, ot)
            for side in (h.pos, h.neg):
                for i in side:
                    if _bound(i - 1, h.scale) < h.zt:
                        side[i] = 0.0
    h.zc += oc
    h.count += o.count
    h.sum += o.sum
    s = min(h.scale, o.scale)

    def reduce(side: dict[int, float], scale: int) -> dict[int, float]:
        out: dict[int, float] = {}
        for i, c in side.items():
            out[i >> (scale - s)] = out.get(i >> (scale - s), 0.0) + c
        return out

    h.pos, h.neg = reduce(h.pos, h.scale), reduce(h.neg, h.scale)
    o_pos, o_neg = reduce(o.pos, o.scale), reduce(o.neg, o.scale)
    h.scale = s
    for mine, theirs in ((h.pos, o_pos), (h.neg, o_neg)):
        for i, c in theirs.items():
            if _bound(i, s) <= h.zt:  # folded into the zero bucket above
                continue
            mine[i] = mine.get(i, 0.0) + c


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


_counts = st.lists(st.integers(0, 4), max_size=5)


def _rescaled(h: ExponentialHistogram, scale: int) -> ExponentialHistogram:
    return _clean(ExponentialHistogram(
        scale=scale, count=h.count, sum=h.sum, zero_count=h.zero_count,
        zero_threshold=h.zero_threshold, positive_offset=h.positive_offset,
        positive_counts=h.positive_counts, negative_offset=h.negative_offset,
        negative_counts=h.negative_counts))


def _rethreshold(h: ExponentialHistogram, zt: float) -> ExponentialHistogram:
    return _clean(ExponentialHistogram(
        scale=h.scale, count=h.count, sum=h.sum, zero_count=h.zero_count, zero_threshold=zt,
        positive_offset=h.positive_offset, positive_counts=h.positive_counts,
        negative_offset=h.negative_offset, negative_counts=h.negative_counts))


def _clean(h: ExponentialHistogram) -> ExponentialHistogram:
    """No counts in buckets inside the zero bucket, as Prometheus keeps them."""
    def counts(offset: int, c: np.ndarray) -> np.ndarray:
        return np.array([0 if _bound(offset + k, h.scale) <= h.zero_threshold else v
                         for k, v in enumerate(c.tolist())], np.uint64)

    pos = counts(h.positive_offset, h.positive_counts)
    neg = counts(h.negative_offset, h.negative_counts)
    return ExponentialHistogram(
        scale=h.scale, count=int(pos.sum() + neg.sum()) + h.zero_count, sum=h.sum,
        zero_count=h.zero_count, zero_threshold=h.zero_threshold,
        positive_offset=h.positive_offset, positive_counts=pos,
        negative_offset=h.negative_offset, negative_counts=neg)


@st.composite
def _hist(draw) -> ExponentialHistogram:
    scale = draw(st.integers(-2, 3))
    zt = draw(st.sampled_from([0.0, 0.0, 0.7, 1.5]))
    po, no = draw(st.integers(-6, 4)), draw(st.integers(-6, 4))

    def counts(offset: int) -> np.ndarray:
        c = draw(_counts)
        # as Prometheus keeps them: no counts in buckets inside the zero bucket
        return np.array([0 if _bound(offset + k, scale) <= zt else v for k, v in enumerate(c)],
                        np.uint64)

    pos, neg = counts(po), counts(no)
    zc = draw(st.integers(0, 3))
    return ExponentialHistogram(scale=scale, count=int(pos.sum() + neg.sum()) + zc,
                                sum=draw(st.floats(-100, 100)), zero_count=zc,
                                zero_threshold=zt, positive_offset=po, positive_counts=pos,
                                negative_offset=no, negative_counts=neg)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_hist(), st.sampled_from([1.0, -1.0, 0.5, 3.0])), min_size=1,
                max_size=4), st.booleans())
def test_weighted_sum_matches_sequential_prometheus_adds(members, same_scale):
    # Prometheus' result depends on the order of its adds when both the schemas and the zero
    # thresholds differ (a reduced bucket may straddle a threshold); we reconcile at each
    # member's own schema, so only one of the two varies here.
    if same_scale:
        members = [(_rescaled(h, members[0][0].scale), w) for h, w in members]
    else:
        members = [(_rethreshold(h, members[0][0].zero_threshold), w) for h, w in members]
    # Thresholds that differ, with weights of both signs: Prometheus widens a threshold over a
    # bucket only if it is populated in the running sum, so a bucket that cancels out part way
    # decides it by the order of the adds; we ask whether any member populates it (module doc).
    assume(
        len({h.zero_threshold for h, _ in members}) == 1
        or all(w > 0 for _, w in members)
        or all(w < 0 for _, w in members)
    )
    hists = [h for h, _ in members]
    pool = from_struct(pl.Series("h", histogram_column(hists)))
    rows = np.arange(len(hists))
    weights = np.array([w for _, w in members])
    out = weighted_sums(pool, np.array([0, len(hists)]), rows, weights)
    want = _of(hists[0], weights[0])
    for h, w in members[1:]:
        _add(want, _of(h, w))
    assert int(out.scale[0]) == want.scale
    assert out.zero_threshold[0] == want.zt
    for got, exp in ((out.count[0], want.count), (out.sum[0], want.sum),
                     (out.zero_count[0], want.zc)):
        assert _close(got, exp)
    for offset, start, counts, side in (
        (out.pos_offset, out.pos_start, out.pos_counts, want.pos),
        (out.neg_offset, out.neg_start, out.neg_counts, want.neg),
    ):
        got = {int(offset[0]) + k: c for k, c in enumerate(counts[start[0]:start[1]].tolist())}
        keys = {k for k, v in got.items() if v != 0} | {k for k, v in side.items() if v != 0}
        for k in keys:
            assert _close(got.get(k, 0.0), side.get(k, 0.0)), (k, got, side)


def test_many_outputs_and_pool_concat():
    a = ExponentialHistogram(scale=1, count=3, sum=3.0, positive_offset=0,
                             positive_counts=np.array([1, 2], np.uint64))
    b = ExponentialHistogram(scale=0, count=1, sum=1.5, positive_offset=0,
                             positive_counts=np.array([1], np.uint64))
    pa_ = from_struct(pl.Series("h", histogram_column([a])))
    pb = from_struct(pl.Series("h", histogram_column([b])))
    pool = concat(pa_, pb)
    assert len(pool) == 2
    out = weighted_sums(pool, np.array([0, 2, 3, 3]), np.array([0, 1, 1]),
                        np.array([1.0, 1.0, 2.0]))
    # a + b at scale 0: a's buckets 0, 1 (scale 1) both fall in bucket 0
    assert out.scale.tolist() == [0, 0, 0]
    assert out.count.tolist() == [4.0, 2.0, 0.0]
    assert out.pos_start.tolist() == [0, 1, 2, 2]
    assert out.pos_counts.tolist() == [4.0, 2.0]
    assert out.sum.tolist() == [4.5, 3.0, 0.0]
