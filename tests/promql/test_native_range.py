"""``rate``/``increase``/``delta``/``irate``/``idelta``/``*_over_time`` over native
histograms (``native_range``) against a slow reference of Prometheus' ``histogramRate``,
``instantValue`` and ``extrapolatedRate``, written with dicts, one window at a time."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.promql import native_range as nr
from tsdb_arrow.promql import range_kernels as rk
from tsdb_arrow.promql.native import HistogramRange, from_struct
from tsdb_arrow.sketch import ExponentialHistogram, histogram_column

Dense = dict[str, object]


def _dense(h: ExponentialHistogram) -> Dense:
    return {"count": float(h.count), "sum": h.sum, "zc": float(h.zero_count),
            "pos": {h.positive_offset + k: float(c) for k, c in enumerate(h.positive_counts)},
            "neg": {h.negative_offset + k: float(c) for k, c in enumerate(h.negative_counts)}}


def _reset(prev: Dense, curr: Dense) -> bool:
    """DetectReset for one schema and zero threshold: any count going down."""
    if curr["count"] < prev["count"] or curr["zc"] < prev["zc"]:
        return True
    for side in ("pos", "neg"):
        for i, c in prev[side].items():  # type: ignore[union-attr]
            if c > curr[side].get(i, 0.0):  # type: ignore[union-attr]
                return True
    return False


def _combine(parts: list[tuple[Dense, float]]) -> Dense:
    out: Dense = {"count": 0.0, "sum": 0.0, "zc": 0.0, "pos": {}, "neg": {}}
    for h, w in parts:
        for k in ("count", "sum", "zc"):
            out[k] += w * h[k]  # type: ignore[operator]
        for side in ("pos", "neg"):
            for i, c in h[side].items():  # type: ignore[union-attr]
                out[side][i] = out[side].get(i, 0.0) + w * c  # type: ignore[index,union-attr]
    return out


def _reference(kind: int, ts: list[int], hs: list[Dense], end: int, rng: int) -> Dense | None:
    win = [(t, h) for t, h in zip(ts, hs, strict=True) if end - rng < t <= end]
    if kind == nr.LAST:
        return _combine([(win[-1][1], 1.0)]) if win else None
    if kind in (nr.SUM, nr.AVG):
        w = 1.0 if kind == nr.SUM else 1.0 / max(len(win), 1)
        return _combine([(h, w) for _, h in win]) if win else None
    if len(win) < 2:
        return None
    if kind in (nr.IRATE, nr.IDELTA):
        (t0, h0), (t1, h1) = win[-2], win[-1]
        if t1 == t0:
            return None
        parts = [(h1, 1.0)]
        if not (kind == nr.IRATE and _reset(h0, h1)):
            parts.append((h0, -1.0))
        w = 1.0 / ((t1 - t0) / 1000.0) if kind == nr.IRATE else 1.0
        return _combine([(h, x * w) for h, x in parts])
    counter = kind != nr.DELTA
    parts = [(win[-1][1], 1.0), (win[0][1], -1.0)]
    if counter:
        parts += [(win[k - 1][1], 1.0) for k in range(1, len(win))
                  if _reset(win[k - 1][1], win[k][1])]
    result = _combine(parts)
    first_t, last_t = win[0][0], win[-1][0]
    to_start = (first_t - (end - rng)) / 1000.0
    to_end = (end - last_t) / 1000.0
    sampled = (last_t - first_t) / 1000.0
    average = sampled / (len(win) - 1)
    if to_start >= average * 1.1:
        to_start = average / 2
    if counter and result["count"] > 0 and win[0][1]["count"] >= 0:  # type: ignore[operator]
        to_start = min(to_start, sampled * (win[0][1]["count"] / result["count"]))  # type: ignore[operator]
    if to_end >= average * 1.1:
        to_end = average / 2
    factor = (sampled + to_start + to_end) / sampled
    if kind == nr.RATE:
        factor /= rng / 1000.0
    return _combine([(result, factor)])


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@st.composite
def _series(draw) -> tuple[list[int], list[ExponentialHistogram]]:
    n = draw(st.integers(1, 8))
    gaps = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    ts = np.cumsum(gaps).tolist()
    ts = [15_000 * t for t in ts]
    hists = []
    for _ in range(n):
        pos = np.array(draw(st.lists(st.integers(0, 6), min_size=3, max_size=3)), np.uint64)
        zc = draw(st.integers(0, 3))
        hists.append(ExponentialHistogram(scale=1, count=int(pos.sum()) + zc, sum=float(zc),
                                          zero_count=zc, positive_offset=0,
                                          positive_counts=pos))
    return ts, hists


@settings(max_examples=150, deadline=None)
@given(st.lists(_series(), min_size=1, max_size=3),
       st.sampled_from([nr.RATE, nr.INCREASE, nr.DELTA, nr.IRATE, nr.IDELTA, nr.LAST, nr.SUM,
                        nr.AVG]),
       st.sampled_from([30_000, 60_000, 120_000]))
def test_range_functions_match_the_reference(series, kind, rng):
    stamps = np.array([t for ts, _ in series for t in ts], np.int64)
    hists = [h for _, hs in series for h in hs]
    offsets = np.r_[0, np.cumsum([len(ts) for ts, _ in series])].astype(np.int64)
    pool = from_struct(pl.Series("h", histogram_column(hists)))
    h = HistogramRange(stamps, offsets, np.arange(len(hists), dtype=np.int64), pool)
    ends = np.arange(0, 200_000, 20_000, dtype=np.int64)
    lo, hi = rk.window_bounds(stamps, offsets, ends, np.int64(rng))
    hist, out = nr.evaluate(kind, h, lo, hi, ends, rng)
    for s, (ts, hs) in enumerate(series):
        dense = [_dense(x) for x in hs]
        for j, end in enumerate(ends.tolist()):
            want = _reference(kind, ts, dense, end, rng)
            r = int(hist[s, j])
            assert (r >= 0) == (want is not None), (s, j)
            if want is None:
                continue
            assert _close(out.count[r], want["count"]) and _close(out.sum[r], want["sum"])
            assert _close(out.zero_count[r], want["zc"])
            got = {int(out.pos_offset[r]) + k: c for k, c in
                   enumerate(out.pos_counts[out.pos_start[r]:out.pos_start[r + 1]].tolist())}
            keys = set(got) | set(want["pos"])  # type: ignore[arg-type]
            for k in keys:
                assert _close(got.get(k, 0.0), want["pos"].get(k, 0.0))  # type: ignore[union-attr]


def test_resets_follow_prometheus_detect_reset():
    def h(scale, counts, zc=0, zt=0.0):
        c = np.array(counts, np.uint64)
        return ExponentialHistogram(scale=scale, count=int(c.sum()) + zc, sum=0.0,
                                    zero_count=zc, zero_threshold=zt, positive_offset=0,
                                    positive_counts=c)

    seq = [h(1, [1, 1]), h(1, [1, 2]),  # grows: no reset
           h(1, [2, 1]),                # a bucket went down: reset
           h(0, [3]),                   # coarser schema, same total: no reset
           h(1, [3, 3]),                # finer schema: reset
           h(1, [3, 3], zc=1, zt=0.5),  # wider zero bucket, nothing populated below: no reset
           h(1, [3, 3], zc=1)]          # narrower zero bucket: reset
    p = from_struct(pl.Series("h", histogram_column(seq)))
    flags = nr.resets(np.array([0, len(seq)]), np.arange(len(seq)), p.scale, p.count,
                      p.zero_count, p.zero_threshold, p.pos_offset, p.pos_start, p.pos_counts,
                      p.neg_offset, p.neg_start, p.neg_counts)
    assert flags.tolist() == [False, False, True, False, True, False, True]
