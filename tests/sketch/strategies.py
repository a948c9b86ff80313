"""Hypothesis strategies shared by the sketch tests."""

from __future__ import annotations

from hypothesis import strategies as st

accuracies = st.one_of(
    st.sampled_from([0.01, 0.02, 0.05, 0.001, 0.2]),
    st.floats(min_value=1e-4, max_value=0.5),
)
# Finite values of every kind a sketch meets: signs, zeros, the zero bucket, wide magnitudes
# (up to 1e307: above max_possible the package's representative value overflows).
values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(-1e307, 1e307, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-320, -1e-320, 2.2250738585072014e-308]),
)
value_lists = st.lists(values, max_size=300)
quantile_lists = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=10)
# Values whose keys span a narrower range: the package's dense stores and protobuf stay small.
narrow_value_lists = st.lists(
    st.one_of(
        st.builds(lambda m, s: m * s, st.floats(1e-6, 1e6), st.sampled_from([1.0, -1.0])),
        st.sampled_from([0.0, 1e-320, -1e-3]),
    ),
    max_size=300,
)
