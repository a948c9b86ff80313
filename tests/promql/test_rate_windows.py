"""``extrapolated_rate`` skips the reset walk of windows without a reset: bit for bit the same
as walking every window (Prometheus' ``extrapolatedRate``, written out plainly here)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.promql import range_kernels as rk


def reference(ts, values, lo, hi, ends, range_ms, is_counter, is_rate):
    """Every window walked for counter resets, as the kernel did before it skipped any."""
    out = np.zeros(lo.shape)
    ok = np.zeros(lo.shape, dtype=bool)
    seconds = rk.range_seconds(range_ms)
    for i in range(lo.shape[0]):
        for j in range(lo.shape[1]):
            a, b = lo[i, j], hi[i, j]
            if b - a < 2:
                continue
            result = values[b - 1] - values[a]
            if is_counter:
                for k in range(a + 1, b):
                    if values[k] < values[k - 1]:
                        result += values[k - 1]
            range_start = ends[j] - range_ms
            to_start = float(ts[a] - range_start) / 1000.0
            to_end = float(ends[j] - ts[b - 1]) / 1000.0
            sampled = float(ts[b - 1] - ts[a]) / 1000.0
            average = sampled / float(b - a - 1)
            if to_start >= average * 1.1:
                to_start = average / 2.0
            if is_counter:
                to_zero = to_start
                if result > 0 and values[a] >= 0:
                    to_zero = sampled * (values[a] / result)
                to_start = min(to_start, to_zero)
            if to_end >= average * 1.1:
                to_end = average / 2.0
            factor = (sampled + to_start + to_end) / sampled
            if is_rate:
                factor /= seconds
            out[i, j] = result * factor
            ok[i, j] = True
    return out, ok


@settings(deadline=None, max_examples=60)
@given(
    st.lists(
        st.lists(
            st.one_of(st.integers(0, 50).map(float), st.just(float("nan"))), min_size=0, max_size=30
        ),  # fmt: skip
        min_size=1,
        max_size=5,
    ),
    st.integers(1, 10),
    st.booleans(),
)
def test_skipping_windows_without_resets_changes_no_bit(series, range_steps, is_rate):
    values = np.array([v for s in series for v in s], dtype=np.float64)
    offsets = np.r_[0, np.cumsum([len(s) for s in series])].astype(np.int64)
    ts = np.concatenate([np.arange(len(s), dtype=np.int64) * 15_000 + 7 for s in series])
    ends = np.arange(0, 32 * 15_000, 15_000, dtype=np.int64)
    range_ms = np.int64(range_steps * 15_000)
    lo, hi = rk.window_bounds(ts, offsets, ends, range_ms)
    for is_counter in (True, False):
        got = rk.extrapolated_rate(ts, values, lo, hi, ends, range_ms, is_counter, is_rate)
        want = reference(ts, values, lo, hi, ends, range_ms, is_counter, is_rate)
        assert np.array_equal(got[1], want[1])
        assert np.array_equal(got[0].view(np.uint64), want[0].view(np.uint64))
