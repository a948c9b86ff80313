"""Range-vector functions: values from Prometheus' own test cases, worked by hand, and random
windows against a slow per-window reference of Prometheus' formulas."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.promql.helpers import MIN, call, loaded, range_vector, rows, scalar
from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql.functions import FUNCTIONS, STALE_BITS
from tsdb_arrow.promql.values import Steps

SEC = 1000
STALE = np.array([STALE_BITS], dtype=np.uint64).view(np.float64)[0]


def run(name, *args, steps=None):
    return FUNCTIONS[name](call(name, *args, steps=steps))


def one(iv, step=0):
    """The single present value at ``step``."""
    r = rows(iv, step)
    assert len(r) == 1, r
    return next(iter(r.values()))


def test_increase_extrapolates_to_the_zero_point_of_counters():
    names = ["/foo", "/bar", "/dings", "/bumms"]
    values = [[10.0 * i for i in range(11)], [18.0 * (i % 6) for i in range(12)],
              [10 + 10.0 * i for i in range(11)], [1 + 10.0 * i for i in range(11)]]
    labels = [{"__name__": "http_requests_total", "path": p} for p in names]
    rv = loaded(labels, 5 * MIN, values, [50 * MIN], 50 * MIN)
    assert rows(run("increase", rv)) == {
        (("path", "/foo"),): 100, (("path", "/bar"),): 160, (("path", "/dings"),): 100,
        (("path", "/bumms"),): 100}
    rv = loaded(labels, 5 * MIN, values, [50 * MIN], 100 * MIN)
    assert rows(run("increase", rv)) == {
        (("path", "/foo"),): 100, (("path", "/bar"),): 162, (("path", "/dings"),): 105,
        (("path", "/bumms"),): 101}


def test_increase_counts_a_reset_as_a_restart_from_zero():
    rv = loaded([{"path": "/foo"}], 5 * MIN, [[0, 1, 2, 3, 2, 3, 4]], [30 * MIN], 30 * MIN)
    assert one(run("increase", rv)) == 7


def test_rate_resets_in_the_middle_and_at_the_end():
    middle = [27.0 * i for i in range(5)] + [27.0 * i for i in range(6)]
    rv = loaded([{}], 5 * MIN, [middle], [50 * MIN], 50 * MIN)
    assert one(run("rate", rv)) == pytest.approx(0.08, rel=1e-15)
    end = [10.0 * i for i in range(10)] + [0, 10]
    assert rows(run("rate", loaded([{}], 5 * MIN, [end], [50 * MIN], 5 * MIN))) == {}
    assert one(run("rate", loaded([{}], 5 * MIN, [end], [50 * MIN], 6 * MIN))) == 0


def test_rate_zero_cutoff_of_left_extrapolation():
    starts = [0, 60, 120, 180, 240, 300]
    labels = [{"start": f"{s // 60}m"} for s in starts]
    values = [[s + 240.0 * i for i in range(11)] for s in starts]
    at10 = rows(run("rate", loaded(labels, 4 * MIN, values, [10 * MIN], 20 * MIN)))
    assert [at10[(("start", f"{s // 60}m"),)] for s in starts] == pytest.approx(
        [0.5, 0.55, 0.6, 0.6, 0.6, 0.6], rel=1e-14)
    at50 = rows(run("rate", loaded(labels, 4 * MIN, values, [50 * MIN], 20 * MIN)))
    assert list(at50.values()) == pytest.approx([0.6] * 6, rel=1e-14)


def test_rate_per_second_and_offset_windows():
    rv = loaded([{}], 5 * MIN, [[80.0 * i for i in range(11)]], [50 * MIN], 50 * MIN)
    assert one(run("rate", rv)) == pytest.approx(0.26666666666666666, rel=1e-15)
    rv = loaded([{"x": "a"}], 5 * MIN, [[10.0 * i for i in range(11)]], [45 * MIN], 10 * MIN)
    assert one(run("rate", rv)) == pytest.approx(0.03333333333333333, rel=1e-15)


def test_delta_is_not_a_counter():
    rv = loaded([{"p": "/foo"}, {"p": "/bar"}], 5 * MIN,
                [[0, 50, 100, 150, 200], [200, 150, 100, 50, 0]], [20 * MIN], 20 * MIN)
    assert rows(run("delta", rv)) == {(("p", "/foo"),): 200, (("p", "/bar"),): -200}


def test_irate_and_idelta_use_the_last_two_samples():
    labels = [{"path": "/foo"}, {"path": "/bar"}]
    values = [[10.0 * i for i in range(11)], [10.0 * (i % 6) for i in range(12)]]
    rv = loaded(labels, 5 * MIN, values, [50 * MIN, 30 * MIN], 50 * MIN)
    out = run("irate", rv)
    assert rows(out, 0) == {(("path", "/foo"),): 10 / 300, (("path", "/bar"),): 10 / 300}
    assert rows(out, 1) == {(("path", "/foo"),): 10 / 300, (("path", "/bar"),): 0}
    nan = loaded([{}], 5 * MIN, [[1, math.nan, math.nan, 5, 11]],
                 [0, 5 * MIN, 10 * MIN, 15 * MIN, 20 * MIN], 15 * MIN + SEC)
    got = run("irate", nan)
    assert not got.present[0, 0] and got.present[0, 1:].all()
    assert np.isnan(got.values[0, 1:4]).all() and got.values[0, 4] == 0.02
    got = run("idelta", nan)
    assert np.isnan(got.values[0, 1:4]).all() and got.values[0, 4] == 6
    rv = loaded([{"p": "a"}, {"p": "b"}], 5 * MIN, [[0, 50, 100, 150], [0, 50, 100, 50]],
                [20 * MIN], 20 * MIN)
    assert rows(run("idelta", rv)) == {(("p", "a"),): 50, (("p", "b"),): -50}


def test_deriv_and_predict_linear():
    values = [[10.0 * i for i in range(5)] + [10.0 * i for i in range(6)]]
    rv = loaded([{}], 5 * MIN, values, [50 * MIN], 100 * MIN)
    assert one(run("deriv", rv)) == pytest.approx(0.010606060606060607, rel=1e-14)
    rv = loaded([{}], 5 * MIN, values, [50 * MIN], 50 * MIN)
    steps = Steps(50 * MIN, 50 * MIN, 0)
    assert one(run("predict_linear", rv, scalar(3600), steps=steps)) == pytest.approx(70)
    # @ 3000: the window ends at 50m, the prediction starts from the evaluation time.
    rv = loaded([{}], 5 * MIN, values, [50 * MIN, 50 * MIN], 55 * MIN)
    got = run("predict_linear", rv, scalar(3600, 2), steps=Steps(10 * MIN, 70 * MIN, 60 * MIN))
    assert got.values[0] == pytest.approx([51.36363636363637, 89.54545454545455], rel=1e-12)
    inf = loaded([{}], 5 * MIN, [[-math.inf] + [80.0 * i for i in range(11)] + [math.inf]],
                 [100 * MIN], 100 * MIN)
    assert math.isnan(one(run("deriv", inf)))
    const = loaded([{}], 5 * MIN, [[7, 7, 7]], [10 * MIN], 20 * MIN)
    assert one(run("deriv", const)) == 0


def test_double_exponential_smoothing_follows_trends():
    data = [[10.0 * i for i in range(1001)] + [100 + 30.0 * i for i in range(1001)],
            [40.0 * i for i in range(2001)], [8000 - 10.0 * i for i in range(1001)]]
    rv = loaded([{"i": "0"}, {"i": "1"}, {"i": "2"}], 10 * SEC, data, [8000 * SEC], MIN)
    got = rows(run("double_exponential_smoothing", rv, scalar(0.01), scalar(0.1)))
    assert got == pytest.approx({(("i", "0"),): 8000, (("i", "1"),): 32000, (("i", "2"),): 0},
                                abs=1e-6)
    with pytest.raises(QueryError, match="invalid smoothing factor"):
        run("double_exponential_smoothing", rv, scalar(1.0), scalar(0.1))
    with pytest.raises(QueryError, match="invalid trend factor"):
        run("double_exponential_smoothing", rv, scalar(0.5), scalar(0.0))


def test_avg_and_sum_over_time_extremes():
    big = 9.988465674311579e307
    cases = {"m1": [1, 2, 3, 4, 5], "m2": [1, 2, 3, 4, math.inf], "m4": [1, 2, 3, math.inf,
             -math.inf], "m8": [big, big], "m9": [-big] * 3, "m10": [-big, big]}
    labels = [{"m": k} for k in cases]
    rv = loaded(labels, 10 * SEC, list(cases.values()), [55 * SEC], MIN)
    avg = rows(run("avg_over_time", rv))
    assert avg[(("m", "m1"),)] == 3 and avg[(("m", "m2"),)] == math.inf
    assert math.isnan(avg[(("m", "m4"),)])
    assert avg[(("m", "m8"),)] == big and avg[(("m", "m9"),)] == -big
    assert avg[(("m", "m10"),)] == 0
    total = rows(run("sum_over_time", rv))
    assert total[(("m", "m8"),)] == math.inf
    cancel = loaded([{}], 10 * SEC, [[1, 1e100, 1, -1e100]], [MIN], 2 * MIN)
    assert one(run("sum_over_time", cancel)) == 2
    assert one(run("avg_over_time", cancel)) == 0.5
    flat = loaded([{}], 10 * SEC, [[52.0] * 101], [10 * MIN], 130 * SEC)
    assert one(run("avg_over_time", flat)) == 52
    spread = loaded([{}], 5 * SEC, [[1.78264e50, 0.76342771, 1.9592258, 7.69805412, 458.90154]],
                    [55 * SEC], MIN)
    assert one(run("avg_over_time", spread)) == pytest.approx(3.56528e49, rel=1e-12)


def test_window_is_left_open():
    rv = loaded([{}], MIN, [[1.0] * 11], [5 * MIN], 2 * MIN)
    assert one(run("count_over_time", rv)) == 2
    assert one(run("sum_over_time", rv)) == 2


def test_stddev_stdvar_quantile_mad():
    rv = loaded([{}], 10 * SEC, [[0, 8, 8, 2, 3]], [MIN], 2 * MIN)
    assert one(run("stdvar_over_time", rv)) == pytest.approx(10.56, rel=1e-14)
    assert one(run("stddev_over_time", rv)) == pytest.approx(3.249615, rel=1e-6)
    flat = loaded([{}], 10 * SEC, [[1.5990505637277868] * 3], [55 * SEC], MIN)
    assert one(run("stdvar_over_time", flat)) == 0
    data = loaded([{"t": "two"}, {"t": "three"}, {"t": "uneven"}], 10 * SEC,
                  [[0, 1], [0, 1, 2], [0, 1, 4]], [MIN], 2 * MIN)
    expect = {0: [0, 0, 0], 0.5: [0.5, 1, 1], 0.75: [0.75, 1.5, 2.5], 0.8: [0.8, 1.6, 2.8],
              1: [1, 2, 4], -1: [-math.inf] * 3, 2: [math.inf] * 3}
    for q, want in expect.items():
        got = rows(run("quantile_over_time", scalar(q), data))
        assert [got[(("t", t),)] for t in ("two", "three", "uneven")] == pytest.approx(want)
    mad = loaded([{"m": "a"}, {"m": "nan"}], 10 * SEC, [[4, 6, 2, 1, 999, 1, 2], [1, 2, math.nan,
                 4]], [70 * SEC, 30 * SEC], 70 * SEC)
    got = run("mad_over_time", mad)
    assert got.values[0, 0] == 1 and math.isnan(got.values[1, 1])


def test_min_max_changes_resets_with_nan():
    labels = [{"t": t} for t in ("numbers", "some_nan", "some_nan2", "some_nan3", "only_nan")]
    nan = math.nan
    vals = [[2, 0, 3], [2, 0, nan], [2, nan, 1], [nan, 0, 1], [nan, nan, nan]]
    rv = loaded(labels, 10 * SEC, vals, [MIN], 2 * MIN)
    lo = [rows(run("min_over_time", rv))[(("t", t["t"]),)] for t in labels]
    hi = [rows(run("max_over_time", rv))[(("t", t["t"]),)] for t in labels]
    np.testing.assert_array_equal(lo, [0, 0, 1, 0, nan])
    np.testing.assert_array_equal(hi, [3, 2, 2, 1, nan])
    ch = loaded([{"a": "b"}, {"a": "c"}], 5 * MIN, [[nan] * 3, [0, nan, 0]], [15 * MIN],
                20 * MIN)
    assert rows(run("changes", ch)) == {(("a", "b"),): 0, (("a", "c"),): 2}
    foo = loaded([{"p": "f"}], 5 * MIN, [[1, 2, 3, 0, 1, 0, 0, 1, 2, 0]], [50 * MIN], 50 * MIN)
    assert one(run("resets", foo)) == 3
    assert one(run("changes", foo)) == 7


def test_timestamps_of_first_last_min_max():
    step = 10 * SEC + 53
    rv = loaded([{}], step, [[1, 2, 3, 0, 5, 6, 2, 1, 4]], [90 * SEC], 90 * SEC)
    assert one(run("ts_of_min_over_time", rv)) == 30.159
    assert one(run("ts_of_max_over_time", rv)) == 50.265
    rv = loaded([{}], step, [[None, None, 1, 2, 3]], [90 * SEC, 15 * SEC], 90 * SEC)
    got = run("ts_of_first_over_time", rv)
    assert got.values[0, 0] == 20.106 and not got.present[0, 1]
    assert one(run("ts_of_last_over_time", rv)) == 40.212


def test_names_kept_only_by_last_and_first_over_time():
    rv = loaded([{"__name__": "m", "a": "1"}], MIN, [[1, 2]], [MIN], 2 * MIN)
    assert rows(run("last_over_time", rv)) == {(("__name__", "m"), ("a", "1")): 2}
    assert rows(run("first_over_time", rv)) == {(("__name__", "m"), ("a", "1")): 1}
    assert rows(run("max_over_time", rv)) == {(("a", "1"),): 2}
    assert run("rate", rv).labels.columns == ["a"]


def test_dropping_the_name_refuses_duplicate_series():
    rv = loaded([{"__name__": "t1", "src": "a"}, {"__name__": "t2", "src": "a"}], 5 * MIN,
                [[0], [1]], [0], 5 * MIN)
    with pytest.raises(QueryError, match="same labelset"):
        run("changes", rv)
    # Not at the same step: merged into one series.
    rv = loaded([{"__name__": "t1", "src": "a"}, {"__name__": "t2", "src": "a"}], 5 * MIN,
                [[1], [None, 2]], [0, 5 * MIN], MIN)
    got = run("last_over_time", rv)
    assert len(got) == 2
    got = run("count_over_time", rv)
    assert len(got) == 1 and got.present.all()


def test_stale_markers_are_not_samples():
    rv = range_vector([({"a": "1"}, [(0, 1.0), (MIN, STALE), (2 * MIN, 3.0)])], [2 * MIN, MIN],
                      2 * MIN + 1)
    assert run("count_over_time", rv).values[0].tolist() == [2, 1]
    assert run("last_over_time", rv).values[0].tolist() == [3, 1]
    only_stale = range_vector([({"a": "1"}, [(MIN, STALE)])], [MIN], MIN)
    assert len(run("count_over_time", only_stale)) == 0
    assert len(run("absent_over_time", only_stale)) == 1


def test_empty_inputs():
    empty = range_vector([], [0, MIN], MIN)
    for name in ("rate", "irate", "sum_over_time", "quantile_over_time", "deriv"):
        args = (scalar(0.5, 2), empty) if name == "quantile_over_time" else (empty,)
        out = run(name, *args)
        assert len(out) == 0 and out.values.shape == (0, 2)
    absent = run("absent_over_time", empty)
    assert rows(absent, 0) == {(): 1.0} and rows(absent, 1) == {(): 1.0}


def test_absent_over_time_labels_from_the_selector():
    import promql_parser

    expr = promql_parser.parse('absent_over_time(x{job="a", instance=~".*", env="p"}[5m])')
    rv = range_vector([({"job": "a"}, [(0, 1.0)])], [MIN, 10 * MIN], 5 * MIN)
    got = FUNCTIONS["absent_over_time"](call("absent_over_time", rv, exprs=expr.args))
    assert got.present.tolist() == [[False, True]]
    assert rows(got, 1) == {(("env", "p"), ("job", "a")): 1}


def test_wrong_argument_kinds():
    rv = range_vector([], [0], MIN)
    with pytest.raises(QueryError, match=r"rate\(\): argument 1 must be a range vector"):
        run("rate", scalar(1))
    with pytest.raises(QueryError, match="takes 1 argument"):
        run("rate", rv, rv)
    with pytest.raises(QueryError, match="argument 2 must be a scalar"):
        run("predict_linear", rv, rv)


# --- random windows against a slow reference ---------------------------------------------

def ref_rate(samples, end, range_ms, is_counter, is_rate):
    """Prometheus' extrapolatedRate for one window, sample by sample."""
    start = end - range_ms
    w = [(t, v) for t, v in samples if start < t <= end]
    if len(w) < 2:
        return None
    result = w[-1][1] - w[0][1]
    if is_counter:
        for (_, prev), (_, cur) in zip(w, w[1:]):
            if cur < prev:
                result += prev
    to_start = (w[0][0] - start) / 1000
    to_end = (end - w[-1][0]) / 1000
    sampled = (w[-1][0] - w[0][0]) / 1000
    avg = sampled / (len(w) - 1)
    if to_start >= avg * 1.1:
        to_start = avg / 2
    if is_counter and result > 0 and w[0][1] >= 0:
        to_start = min(to_start, sampled * (w[0][1] / result))
    if to_end >= avg * 1.1:
        to_end = avg / 2
    factor = (sampled + to_start + to_end) / sampled
    if is_rate:
        factor /= range_ms / 1000
    return result * factor


@st.composite
def windows(draw):
    times = sorted(draw(st.sets(st.integers(0, 600), min_size=0, max_size=40)))
    values = draw(st.lists(st.integers(0, 1000), min_size=len(times), max_size=len(times)))
    samples = [(t * SEC, float(v)) for t, v in zip(times, values)]
    ends = draw(st.lists(st.integers(0, 700), min_size=1, max_size=8))
    range_s = draw(st.integers(1, 300))
    return samples, [e * SEC for e in ends], range_s * SEC


@settings(max_examples=150, deadline=None)
@given(windows())
def test_rate_increase_delta_match_the_reference(case):
    samples, ends, range_ms = case
    rv = range_vector([({"a": "x"}, samples)], ends, range_ms)
    for name, counter, per_second in (("rate", True, True), ("increase", True, False),
                                      ("delta", False, False)):
        got = run(name, rv)
        for j, end in enumerate(ends):
            want = ref_rate(samples, end, range_ms, counter, per_second)
            if want is None:
                assert len(got) == 0 or not got.present[0, j]
            else:
                assert got.present[0, j] and got.values[0, j] == pytest.approx(want, rel=1e-12)


@settings(max_examples=150, deadline=None)
@given(windows())
def test_over_time_match_the_reference(case):
    samples, ends, range_ms = case
    rv = range_vector([({"a": "x"}, samples)], ends, range_ms)
    refs = {
        "sum_over_time": lambda v: float(sum(v)),
        "avg_over_time": lambda v: sum(v) / len(v),
        "count_over_time": len, "min_over_time": min, "max_over_time": max,
        "last_over_time": lambda v: v[-1], "first_over_time": lambda v: v[0],
        "present_over_time": lambda v: 1.0,
        "changes": lambda v: sum(a != b for a, b in zip(v, v[1:])),
        "resets": lambda v: sum(b < a for a, b in zip(v, v[1:])),
    }
    for name, ref in refs.items():
        got = run(name, rv)
        for j, end in enumerate(ends):
            w = [v for t, v in samples if end - range_ms < t <= end]
            if not w:
                assert len(got) == 0 or not got.present[0, j]
            else:
                assert got.present[0, j] and got.values[0, j] == ref(w), name
    got = run("stdvar_over_time", rv)
    q = run("quantile_over_time", scalar(0.3, len(ends)), rv)
    for j, end in enumerate(ends):
        w = [v for t, v in samples if end - range_ms < t <= end]
        if w:
            assert got.values[0, j] == pytest.approx(statistics.pvariance(w), rel=1e-9, abs=1e-9)
            assert q.values[0, j] == pytest.approx(float(np.quantile(w, 0.3)), rel=1e-12)


@settings(max_examples=50, deadline=None)
@given(windows())
def test_window_bounds_merge_pass_matches_binary_search(case):
    samples, ends, range_ms = case
    ascending = sorted(ends)
    up = run("count_over_time", range_vector([({}, samples)], ascending, range_ms))
    down = run("count_over_time", range_vector([({}, samples)], ascending[::-1], range_ms))
    assert up.values.shape == down.values.shape
    np.testing.assert_array_equal(up.values, down.values[:, ::-1])
    np.testing.assert_array_equal(up.present, down.present[:, ::-1])


def test_quantile_orders_nan_first_as_prometheus():
    rv = range_vector([({}, [(1000, 2.0), (2000, math.nan), (3000, 1.0)])], [3000], 3000)
    assert math.isnan(one(run("quantile_over_time", scalar(0), rv)))
    assert one(run("quantile_over_time", scalar(0.5), rv)) == 1
    assert one(run("quantile_over_time", scalar(1), rv)) == 2
    many = [(1000 * (k + 1), float((k * 7) % 50)) for k in range(50)]
    rv = range_vector([({}, many)], [50_000], 50_000)
    assert one(run("quantile_over_time", scalar(0.9, 1), rv)) == pytest.approx(
        float(np.quantile([v for _, v in many], 0.9)))


def test_benchmark_runs_at_tiny_size():
    from benchmarks.promql_functions import NAMES, range_vector
    from benchmarks.promql_functions import run as bench

    rv, steps = range_vector(3, 40)
    assert len(rv.window_ends) == len(steps) == 20
    assert set(bench(3, 40)) == set(NAMES)
