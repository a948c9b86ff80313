"""Prometheus' JSON number, timestamp and label-set encodings, and its parameter parsing."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.promql.values import InstantVector, RangeVector, Steps
from tsdb_arrow.server import prom_json
from tsdb_arrow.server.prom_params import (
    MAX_TIME,
    MIN_TIME,
    BadData,
    parse_duration,
    parse_form,
    parse_time,
)


def go_format(x: float) -> str:
    """Go's strconv.FormatFloat as Prometheus calls it ('f', or 'e' outside [1e-6, 1e21))."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    if abs(x) < 1e-6 or abs(x) >= 1e21:
        return np.format_float_scientific(x, unique=True, trim="-", exp_digits=2)
    return np.format_float_positional(x, unique=True, trim="-")


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0.0, "0"), (-0.0, "-0"), (1.0, "1"), (0.1, "0.1"), (-2.5, "-2.5"), (1e-6, "0.000001"),
        (9.99e-7, "9.99e-07"), (1e20, "100000000000000000000"), (1e21, "1e+21"),
        (123456789.125, "123456789.125"), (5e-324, "5e-324"), (1.7976931348623157e308,
        "1.7976931348623157e+308"), (1 / 3, "0.3333333333333333"), (float("nan"), "NaN"),
        (float("inf"), "+Inf"), (float("-inf"), "-Inf"),
    ],
)  # fmt: skip
def test_values_format_as_go(x, text):
    assert prom_json.format_values(np.array([x])).to_list() == [text]


@settings(deadline=None)  # the first example loads the kernels
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=50))
def test_values_format_as_go_for_any_float(xs):
    got = prom_json.format_values(np.array(xs, dtype=np.float64)).to_list()
    assert got == [go_format(x) for x in xs]
    finite = [(x, g) for x, g in zip(xs, got) if math.isfinite(x)]
    assert all(float(g) == x for x, g in finite)  # shortest, and exact


def test_stale_marker_and_nan_payloads_are_nan():
    bits = np.array([0x7FF0000000000002, 0x7FF8000000000001, 0xFFF8000000000000], np.uint64)
    assert prom_json.format_values(bits.view(np.float64)).to_list() == ["NaN"] * 3


@settings(deadline=None)
@given(st.lists(st.integers(-(2**62), 2**62), max_size=50))
def test_timestamps_are_seconds_with_millisecond_digits(ms):
    got = prom_json.format_timestamps(np.array(ms, dtype=np.int64)).to_list()
    for m, text in zip(ms, got):
        whole, frac = divmod(abs(m), 1000)
        expected = ("-" if m < 0 else "") + str(whole) + (f".{frac:03d}" if frac else "")
        assert text == expected


def test_metric_objects_escape_and_sort():
    labels = pl.DataFrame(
        {"job": ['a"b\\c\n', None, ""], "__name__": ["up", "x", "y"], "zone": ["é€😀", "z", None]}
    )
    objects = prom_json.metric_objects(labels).to_list()
    assert [json.loads(o) for o in objects] == [
        {"__name__": "up", "job": 'a"b\\c\n', "zone": "é€😀"},
        {"__name__": "x", "zone": "z"},
        {"__name__": "y"},
    ]
    assert objects[1] == '{"__name__":"x","zone":"z"}'  # names in order, no spaces


def test_sort_key_orders_as_prometheus_labels_compare():
    labels = pl.DataFrame({"a": ["1", None, "1", "1"], "b": ["2", "0", None, "10"]})
    order = prom_json.sort_key(labels).arg_sort().to_list()
    # {a=1} < {a=1,b=10} < {a=1,b=2} < {b=0}
    assert order == [2, 3, 0, 1]


def test_range_matrix_drops_empty_series_and_orders_steps():
    labels = pl.DataFrame({"__name__": ["b", "a", "c"]})
    values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    present = np.array([[True, False], [True, True], [False, False]])
    data = prom_json.encode_range(InstantVector(labels, values, present), Steps(1000, 2000, 1000))
    assert json.loads(bytes(data)) == {
        "resultType": "matrix",
        "result": [
            {"metric": {"__name__": "a"}, "values": [[1, "3"], [2, "4"]]},
            {"metric": {"__name__": "b"}, "values": [[1, "1"]]},
        ],
    }


def test_range_vector_window_and_empty_series():
    labels = pl.DataFrame({"__name__": ["b", "empty", "a", "outside", "last"]})
    value = RangeVector(
        labels,
        timestamps=np.array([1000, 2000, 3000, 500, 1500, 100], dtype=np.int64),
        values=np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        offsets=np.array([0, 3, 3, 5, 6, 6], dtype=np.int64),
        window_ends=np.array([3000], dtype=np.int64),
        range=2000,
    )
    assert json.loads(prom_json.encode_instant(value, 3000)) == {
        "resultType": "matrix",
        "result": [
            {"metric": {"__name__": "a"}, "values": [[1.5, "5"]]},
            {"metric": {"__name__": "b"}, "values": [[2, "2"], [3, "3"]]},
        ],
    }


def test_empty_results():
    empty = InstantVector(pl.DataFrame(), np.zeros((0, 1)), np.zeros((0, 1), dtype=bool))
    assert json.loads(prom_json.encode_instant(empty, 0)) == {"resultType": "vector", "result": []}
    assert json.loads(bytes(prom_json.encode_range(empty, Steps(0, 0, 1)))) == {
        "resultType": "matrix",
        "result": [],
    }
    assert prom_json.label_sets(pl.DataFrame()) == "[]"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1700000000", 1_700_000_000_000), ("1700000000.5", 1_700_000_000_500),
        ("0.0015", 2), ("-0.0015", -2), ("-1.5", -1500), ("1e9", 1_000_000_000_000),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123),
        ("2023-11-15T00:13:20.5+02:00", 1_700_000_000_500),
        ("-292273086-05-16T16:47:06Z", MIN_TIME),
        ("292277025-08-18T07:12:54.999999999Z", MAX_TIME),
        ("-9223372036854775", MIN_TIME),
    ],
)  # fmt: skip
def test_parse_time(text, ms):
    assert parse_time(text, "time") == ms


@pytest.mark.parametrize("text", ["", "now", "NaN", "inf", "2023-11-14", "2023-13-14T00:00:00Z"])
def test_parse_time_refuses(text):
    with pytest.raises(BadData, match=f'invalid parameter "t": cannot parse "{text}"'):
        parse_time(text, "t")


@pytest.mark.parametrize(
    ("text", "ms"),
    [("15s", 15_000), ("1h30m", 5_400_000), ("250ms", 250), ("1d", 86_400_000),
     ("2w", 1_209_600_000), ("1y", 31_536_000_000), ("0", 0), ("0.5", 500), ("14", 14_000)],
)  # fmt: skip
def test_parse_duration(text, ms):
    assert parse_duration(text, "step") == ms


@pytest.mark.parametrize("text", ["", "m5", "1.5m", "5M", "1e30"])
def test_parse_duration_refuses(text):
    with pytest.raises(BadData, match='invalid parameter "step"'):
        parse_duration(text, "step")


def test_form_body_values_win_and_match_lists_join():
    form = parse_form(b"query=a&match[]=x&time=1", b"query=b&match[]=y")
    assert form["query"][0] == "b" and form["match[]"] == ["y", "x"] and form["time"] == ["1"]
    with pytest.raises(BadData, match="not UTF-8"):
        parse_form(b"", b"query=%ff\xff")


def _reference_range(value: InstantVector, steps: Steps, limit: int = 0) -> bytes:
    """The matrix through the per-sample ``series_list`` kernel: gathered samples, each
    timestamp formatted where it is written."""
    present = np.asarray(value.present)
    series, step = np.nonzero(present)
    starts = np.concatenate(([0], np.cumsum(present.sum(axis=1)))).astype(np.int64)
    values = np.asarray(value.values)[series, step]
    matrix = prom_json._matrix(value.labels, starts, steps.times[step], values, limit)
    return ('{"resultType":"matrix","result":' + matrix + "}").encode()


_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from(
    [1e20, -1e20, 1e21, 9.999999999999999e20, -1.2345678901234567e20, 1e-6, -1.2345678901234567e-6,
     9.99e-7, 5e-324, -0.0, 1e16, 1e-5]
)  # fmt: skip


@settings(deadline=None, max_examples=200)
@given(
    st.integers(1, 6).flatmap(
        lambda steps: st.tuples(
            st.lists(
                st.lists(st.tuples(st.booleans(), _FLOATS), min_size=steps, max_size=steps),
                min_size=0,
                max_size=6,
            ),
            st.integers(-(2**40), 2**40),
            st.integers(1, 10**6),
            st.just(steps),
        )
    ),
    st.integers(0, 3),
)
def test_range_matrix_bytes_match_the_per_sample_encoding(case, limit):
    cells, start, step, n_steps = case
    labels = pl.DataFrame({"__name__": [f"m{(i * 7) % 5}" for i in range(len(cells))]})
    labels = labels.with_columns(pl.Series("i", [str(i) for i in range(len(cells))]))
    present = np.array([[p for p, _ in row] for row in cells], dtype=bool).reshape(-1, n_steps)
    values = np.array([[v for _, v in row] for row in cells], dtype=np.float64)
    value = InstantVector(labels, values.reshape(-1, n_steps), present)
    steps = Steps(start, start + (n_steps - 1) * step, step)
    got = prom_json.success(prom_json.encode_range(value, steps, limit=limit))
    want = prom_json.success(_reference_range(value, steps, limit))
    assert got == want


@pytest.mark.parametrize("fill", [1.0, 0.3])  # the dense (in place) and sparse (gathered) paths
@pytest.mark.parametrize(
    "x", [1e20, -1.2345678901234567e20, -1.2345678901234567e-6, 5e-324, float("-inf")]
)
def test_range_matrix_of_the_longest_numbers_fits_its_buffer(x, fill):
    rng = np.random.default_rng(3)
    present = rng.random((40, 300)) < fill
    values = np.full((40, 300), x)
    labels = pl.DataFrame({"__name__": ["m"] * 40, "i": [str(i) for i in range(40)]})
    value = InstantVector(labels, values, present)
    steps = Steps(-1_500_000_123, -1_500_000_123 + 299 * 15_001, 15_001)
    got = bytes(prom_json.encode_range(value, steps))
    assert got == _reference_range(value, steps)
    assert json.loads(got)["result"][0]["values"][0][1] == go_format(x)
