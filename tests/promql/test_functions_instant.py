"""Instant-vector and scalar functions: math, clamp/round, time and date, sort, labels, absent,
classic histogram_quantile/fraction, with Prometheus' own expected values."""

from __future__ import annotations

import math

import numpy as np
import promql_parser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.promql.helpers import call, instant, rows, scalar
from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql.functions import FUNCTIONS
from tsdb_arrow.promql.values import InstantVector, Scalar, Steps, String

MIN = 60_000
NAN = math.nan


def run(name, *args, steps=None, exprs=None):
    return FUNCTIONS[name](call(name, *args, steps=steps, exprs=exprs))


def s(v: str) -> String:
    return String(v)


DATA = [("positive", 2.5), ("whole", 2), ("negative", -2.5), ("nwhole", -2), ("zero", 0.0),
        ("nzero", -0.0), ("inf", math.inf), ("ninf", -math.inf), ("nan", NAN)]


def data() -> InstantVector:
    return instant([{"__name__": "data", "type": t} for t, _ in DATA], [[v] for _, v in DATA])


def by_type(iv) -> list[float]:
    r = rows(iv)
    return [r[(("type", t),)] for t, _ in DATA]


def test_abs_ceil_floor_round_drop_the_name():
    inf = math.inf
    np.testing.assert_array_equal(by_type(run("abs", data())), [2.5, 2, 2.5, 2, 0, 0, inf, inf,
                                                                 NAN])
    np.testing.assert_array_equal(by_type(run("ceil", data())), [3, 2, -2, -2, 0, 0, inf, -inf,
                                                                  NAN])
    np.testing.assert_array_equal(by_type(run("floor", data())), [2, 2, -3, -2, 0, 0, inf, -inf,
                                                                   NAN])
    np.testing.assert_array_equal(by_type(run("round", data())), [3, 2, -2, -2, 0, 0, inf, -inf,
                                                                   NAN])
    assert "__name__" not in run("abs", data()).labels.columns


def test_round_to_nearest():
    iv = instant([{"a": "1"}], [[12.345], [0.5]][:1])
    assert rows(run("round", iv, scalar(0.1)))[(("a", "1"),)] == pytest.approx(12.3)
    assert rows(run("round", iv, scalar(5)))[(("a", "1"),)] == 10
    assert rows(run("round", instant([{}], [[-2.5]])))[()] == -2


def test_exp_ln_log_sqrt_sgn_trig():
    iv = instant([{"l": "x"}, {"l": "y"}], [[10.0], [20.0]])
    r = rows(run("exp", iv))
    assert r[(("l", "x"),)] == pytest.approx(22026.465794806718, rel=1e-15)
    r = rows(run("ln", instant([{"l": "x"}, {"l": "y"}], [[0.0], [-10.0]])))
    assert r[(("l", "x"),)] == -math.inf and math.isnan(r[(("l", "y"),)])
    assert rows(run("log10", iv))[(("l", "x"),)] == 1
    assert rows(run("log2", iv))[(("l", "x"),)] == pytest.approx(3.3219280948873626, rel=1e-15)
    assert rows(run("sqrt", iv))[(("l", "y"),)] == pytest.approx(4.47213595499958, rel=1e-15)
    sgn = run("sgn", instant([{"i": str(i)} for i in range(6)],
                             [[-math.inf], [math.inf], [NAN], [-50], [0], [100]]))
    np.testing.assert_array_equal([rows(sgn)[(("i", str(i)),)] for i in range(6)],
                                  [-1, 1, NAN, -1, 0, 1])
    one = instant([{}], [[1.0]])
    assert rows(run("rad", instant([{}], [[180.0]])))[()] == math.pi
    assert rows(run("deg", instant([{}], [[math.pi]])))[()] == 180
    for name, f in (("sin", math.sin), ("cos", math.cos), ("tan", math.tan), ("asin", math.asin),
                    ("acos", math.acos), ("atan", math.atan), ("sinh", math.sinh),
                    ("cosh", math.cosh), ("tanh", math.tanh), ("asinh", math.asinh),
                    ("acosh", math.acosh)):
        assert rows(run(name, one))[()] == pytest.approx(f(1.0), rel=1e-15), name
    assert rows(run("atanh", instant([{}], [[0.5]])))[()] == pytest.approx(math.atanh(0.5))
    assert run("pi").values.tolist() == [math.pi]


def test_clamp():
    iv = instant([{"src": "a"}, {"src": "b"}, {"src": "c"}], [[-50], [0], [100]])
    assert list(rows(run("clamp_max", iv, scalar(75))).values()) == [-50, 0, 75]
    assert list(rows(run("clamp_min", iv, scalar(-25))).values()) == [-25, 0, 100]
    assert list(rows(run("clamp", iv, scalar(-25), scalar(75))).values()) == [-25, 0, 75]
    assert all(math.isnan(v) for v in rows(run("clamp", iv, scalar(0), scalar(NAN))).values())
    assert all(math.isnan(v) for v in rows(run("clamp", iv, scalar(NAN), scalar(0))).values())
    assert len(run("clamp", iv, scalar(5), scalar(-5))) == 0


def test_time_timestamp_vector_scalar():
    steps = Steps(0, 61_000, 1000)
    assert run("time", steps=steps).values[:3].tolist() == [0, 1, 2]
    sample_times = (np.arange(62, dtype=np.int64) * 1000 // MIN * MIN)[None, :]
    iv = InstantVector(instant([{"__name__": "metric"}], [[1.0] * 62]).labels,
                       np.ones((1, 62)), np.ones((1, 62), bool), sample_times)
    got = run("timestamp", iv, steps=steps)
    assert got.values[0].tolist() == [0.0] * 60 + [60.0, 60.0]
    assert got.labels.columns == []
    plain = run("timestamp", instant([{"a": "1"}], [[5.0, 6.0]]), steps=Steps(0, 10_000, 10_000))
    assert plain.values.tolist() == [[0, 10]]
    vec = run("vector", scalar(3, 2))
    assert vec.labels.shape == (1, 0) and vec.values.tolist() == [[3, 3]]
    two = instant([{"l": "x"}, {"l": "y"}], [[1.0, 1.0], [2.0, None]])
    got = run("scalar", two)
    assert isinstance(got, Scalar) and math.isnan(got.values[0]) and got.values[1] == 1
    assert math.isnan(run("scalar", instant([], [])).values[0])


def test_date_functions():
    steps = Steps(0, 0, 0)
    expect = {"year": 1970, "month": 1, "day_of_month": 1, "day_of_year": 1, "day_of_week": 4,
              "hour": 0, "minute": 0, "days_in_month": 31}
    for name, want in expect.items():
        assert run(name, steps=steps).values.tolist() == [[want]], name
    t = instant([{"__name__": "x"}], [[1136239445.0]])
    got = {n: rows(run(n, t))[()] for n in expect}
    assert got == {"year": 2006, "month": 1, "day_of_month": 2, "day_of_year": 2,
                   "day_of_week": 1, "hour": 22, "minute": 4, "days_in_month": 31}
    cases = [(1230767999, "year", 2008), (1230768000, "year", 2009),
             (1456790399, "day_of_month", 29), (1456790400, "month", 3),
             (1483191420, "day_of_year", 366), (1672493820, "day_of_year", 365),
             (1454284800, "days_in_month", 29), (1485907200, "days_in_month", 28)]
    for secs, name, want in cases:
        assert rows(run(name, instant([{}], [[float(secs)]])))[()] == want, (secs, name)


@settings(max_examples=100, deadline=None)
@given(st.integers(-2_000_000_000, 4_000_000_000))
def test_date_functions_match_python_datetime(secs):
    import datetime as dt

    d = dt.datetime.fromtimestamp(secs, dt.timezone.utc)
    iv = instant([{}], [[float(secs)]])
    nxt = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    want = {"year": d.year, "month": d.month, "day_of_month": d.day, "hour": d.hour,
            "minute": d.minute, "day_of_week": d.isoweekday() % 7,
            "day_of_year": d.timetuple().tm_yday, "days_in_month": (nxt - d.replace(day=1)).days}
    for name, value in want.items():
        assert rows(run(name, iv))[()] == value, name


def test_sort_and_sort_desc_put_nan_last():
    labels = [{"__name__": "h", "i": str(i)} for i in range(4)]
    iv = instant(labels, [[300.0], [NAN], [100.0], [200.0]])
    up = run("sort", iv)
    assert up.labels["i"].to_list() == ["2", "3", "0", "1"]
    assert "__name__" in up.labels.columns
    down = run("sort_desc", iv)
    assert down.labels["i"].to_list() == ["0", "3", "2", "1"]


def test_sort_by_label_natural_order():
    cpus = ["0", "1", "2", "3", "10", "11", "12", "20", "21", "100"]
    iv = instant([{"cpu": c, "job": "cpu"} for c in reversed(cpus)], [[1.0]] * len(cpus))
    assert run("sort_by_label", iv, s("cpu")).labels["cpu"].to_list() == cpus
    inst = ["4m600", "4m5", "4m1000"]
    rel = ["1.2.3", "1.11.3", "1.111.3"]
    iv = instant([{"instance": i, "release": r} for i, r in zip(inst, rel)], [[1.0]] * 3)
    assert run("sort_by_label", iv, s("instance")).labels["instance"].to_list() == [
        "4m5", "4m600", "4m1000"]
    assert run("sort_by_label", iv, s("release")).labels["release"].to_list() == rel
    groups = [("production", "0", "api"), ("canary", "0", "api"), ("canary", "1", "app"),
              ("production", "1", "app"), ("canary", "0", "app")]
    iv = instant([{"group": g, "instance": i, "job": j} for g, i, j in groups], [[1.0]] * 5)
    got = run("sort_by_label", iv, s("instance")).labels.rows()
    assert got == [("canary", "0", "api"), ("canary", "0", "app"), ("production", "0", "api"),
                   ("canary", "1", "app"), ("production", "1", "app")]
    got = run("sort_by_label_desc", iv, s("instance")).labels.rows()
    assert got == [("production", "1", "app"), ("canary", "1", "app"), ("production", "0", "api"),
                   ("canary", "0", "app"), ("canary", "0", "api")]


def test_label_replace():
    iv = instant([{"__name__": "t", "src": "source-value-10", "dst": "orig"},
                  {"__name__": "t", "src": "source-value-20", "dst": "orig"}], [[0.0], [1.0]])
    got = run("label_replace", iv, s("dst"), s("destination-value-$1"), s("src"),
              s("source-value-(.*)"))
    assert got.labels["dst"].to_list() == ["destination-value-10", "destination-value-20"]
    assert got.labels["__name__"].to_list() == ["t", "t"]
    got = run("label_replace", iv, s("dst"), s("x-$1"), s("src"), s("value-(.*)"))
    assert got.labels["dst"].to_list() == ["orig", "orig"]
    got = run("label_replace", iv, s("dst"), s("$1-value-$2"), s("src"), s("(.*)-value-(.*)"))
    assert got.labels["dst"].to_list() == ["source-value-10", "source-value-20"]
    got = run("label_replace", iv, s("dst"), s("value-$1"), s("nonexistent"), s("(.*)"))
    assert got.labels["dst"].to_list() == ["value-", "value-"]
    got = run("label_replace", iv, s("dst"), s("value-$1"), s("nonexistent"), s("x(.*)"))
    assert got.labels["dst"].to_list() == ["orig", "orig"]
    got = run("label_replace", iv, s("dst"), s(""), s("dst"), s(".*"))
    assert "dst" not in got.labels.columns
    got = run("label_replace", iv, s("new"), s("${1}x"), s("src"), s("source-(v)alue-10"))
    assert got.labels["new"].to_list() == ["vx", None]
    with pytest.raises(QueryError, match="invalid regular expression"):
        run("label_replace", iv, s("dst"), s("value-$1"), s("src"), s("(.*"))
    with pytest.raises(QueryError, match="invalid destination label name"):
        run("label_replace", iv, s("\xff"), s(""), s("src"), s("(.*)"))
    with pytest.raises(QueryError, match="same labelset"):
        run("label_replace", iv, s("src"), s(""), s(""), s(""))


def test_label_replace_merges_series_that_never_overlap():
    iv = instant([{"label": "a", "idx": "1"}, {"label": "a", "idx": "2"}], [[2.0, None],
                                                                             [None, 4.0]])
    got = run("label_replace", iv, s("idx"), s("replaced"), s("idx"), s(".*"))
    assert got.labels.to_dicts() == [{"idx": "replaced", "label": "a"}]
    assert got.values.tolist() == [[2, 4]]
    got = run("label_join", iv, s("idx"), s(","), s("label"), s("label"))
    assert got.labels["idx"].to_list() == ["a,a"] and got.present.all()
    both = instant([{"label": "a", "idx": "1"}, {"label": "a", "idx": "2"}], [[1.0], [2.0]])
    with pytest.raises(QueryError, match="same labelset"):
        run("label_join", both, s("idx"), s(","), s("label"), s("label"))


def test_label_join():
    iv = instant([{"src": "a", "src1": "b", "src2": "c", "dst": "o"},
                  {"src": "d", "src1": "e", "src2": "f", "dst": "o"}], [[0.0], [1.0]])
    got = run("label_join", iv, s("dst"), s("-"), s("src"), s("src1"), s("src2"))
    assert got.labels["dst"].to_list() == ["a-b-c", "d-e-f"]
    got = run("label_join", iv, s("dst"), s("-"), s("src"), s("src3"), s("src1"))
    assert got.labels["dst"].to_list() == ["a--b", "d--e"]
    assert "dst" not in run("label_join", iv, s("dst"), s(", ")).labels.columns
    got = run("label_join", iv, s("new"), s(", "), s("src"), s("src1"))
    assert got.labels["new"].to_list() == ["a, b", "d, e"]
    with pytest.raises(QueryError, match="invalid source label name"):
        run("label_join", iv, s("dst"), s("-"), s("1src"))


def absent_call(expr: str, iv: InstantVector):
    node = promql_parser.parse(expr)
    return FUNCTIONS[node.func.name](call(node.func.name, iv, exprs=node.args))


def test_absent_labels_come_from_equality_matchers():
    nothing = instant([], [])
    assert rows(absent_call("absent(nonexistent)", nothing)) == {(): 1}
    got = absent_call('absent(n{job="testjob", instance="testinstance", method=~".x"})', nothing)
    assert rows(got) == {(("instance", "testinstance"), ("job", "testjob")): 1}
    got = absent_call('absent(n{job="testjob",job="testjob2",foo="bar"})', nothing)
    assert rows(got) == {(("foo", "bar"),): 1}
    got = absent_call('absent(n{job="testjob",job=~"testjob2",foo="bar"})', nothing)
    assert rows(got) == {(("foo", "bar"),): 1}
    got = absent_call('absent(sum(n{job="testjob"}))', nothing)
    assert rows(got) == {(): 1}
    assert len(absent_call("absent(x)", instant([{"a": "b"}], [[1.0]]))) == 0


def test_classic_histogram_quantile():
    le = ["0.1", ".2", "1e0", "+Inf", "-.2", "-0.1", "0.3", "+Inf"]
    start = ["positive"] * 4 + ["negative"] * 4
    counts = [50, 70, 110, 120, 10, 20, 20, 30]
    iv = instant([{"__name__": "b", "le": x, "start": st_} for x, st_ in zip(le, start)],
                 [[float(c)] for c in counts])
    expect = {0: (0, -0.2), 1: (1, 0.3), 0.2: (0.048, -0.2), 0.5: (0.15, -0.15),
              0.8: (0.72, 0.3), -0.1: (-math.inf, -math.inf), 1.01: (math.inf, math.inf)}
    for q, (pos, neg) in expect.items():
        r = rows(run("histogram_quantile", scalar(q), iv))
        assert r[(("start", "positive"),)] == pytest.approx(pos, rel=1e-12), q
        assert r[(("start", "negative"),)] == pytest.approx(neg, rel=1e-12), q
    r = rows(run("histogram_quantile", scalar(NAN), iv))
    assert all(math.isnan(v) for v in r.values())


def test_histogram_quantile_edge_rules():
    two = instant([{"le": "0"}, {"le": "2"}, {"le": "4"}, {"le": "6"}, {"le": "+Inf"}],
                  [[0.0], [1.0], [2.0], [3.0], [3.0]])
    for q, want in ((1 / 6, 1), (0.5, 3), (5 / 6, 5)):
        assert rows(run("histogram_quantile", scalar(q), two))[()] == pytest.approx(want)
    no_inf = instant([{"le": "1"}, {"le": "2"}], [[1.0], [2.0]])
    assert math.isnan(rows(run("histogram_quantile", scalar(0.5), no_inf))[()])
    only_inf = instant([{"le": "+Inf"}], [[5.0]])
    assert math.isnan(rows(run("histogram_quantile", scalar(0.5), only_inf))[()])
    empty = instant([{"le": "1"}, {"le": "+Inf"}], [[0.0], [0.0]])
    assert math.isnan(rows(run("histogram_quantile", scalar(0.5), empty))[()])
    # Non-monotonic counts are made monotonic; equal bounds written differently coalesce.
    bumpy = instant([{"le": "1"}, {"le": "2"}, {"le": "2.0"}, {"le": "3"}, {"le": "+Inf"}],
                    [[4.0], [3.0], [1.0], [2.0], [8.0]])
    assert rows(run("histogram_quantile", scalar(0.5), bumpy))[()] == pytest.approx(1.0)
    # 0/0 inside the kernel is NaN, as in Go (no ZeroDivisionError).
    first_empty = instant([{"le": "0.5"}, {"le": "+Inf"}], [[0.0], [1.0]])
    assert math.isnan(rows(run("histogram_quantile", scalar(0), first_empty))[()])
    no_le = instant([{"x": "1"}], [[1.0]])
    assert len(run("histogram_quantile", scalar(0.5), no_le)) == 0
    assert rows(run("histogram_fraction", scalar(0), scalar(4), two))[()] == pytest.approx(2 / 3)
    assert rows(run("histogram_fraction", scalar(0), scalar(6), two))[()] == 1
    assert rows(run("histogram_fraction", scalar(0), scalar(3.5), two))[()] == pytest.approx(
        0.5833333333333334)


def test_query_scalars_and_min_max_of():
    steps = Steps(10_000, 50_000, 10_000)
    assert run("step", steps=steps).values.tolist() == [10] * 5
    assert run("range", steps=steps).values.tolist() == [40] * 5
    assert run("start", steps=steps).values.tolist() == [10] * 5
    assert run("end", steps=steps).values.tolist() == [50] * 5
    assert run("step", steps=Steps(0, 0, 0)).values.tolist() == [0]
    assert run("min_of", scalar(3), scalar(5)).values.tolist() == [3]
    assert run("max_of", scalar(3), scalar(5)).values.tolist() == [5]
    assert math.isnan(run("max_of", scalar(NAN), scalar(3)).values[0])


def test_wrong_argument_kinds():
    iv = instant([{}], [[1.0]])
    with pytest.raises(QueryError, match=r"abs\(\): argument 1 must be an instant vector"):
        run("abs", scalar(1))
    with pytest.raises(QueryError, match="argument 2 must be a string"):
        run("label_join", iv, scalar(1), s(","))
    with pytest.raises(QueryError, match="takes 2 argument"):
        run("clamp_min", iv)
    with pytest.raises(QueryError, match="takes 0 argument"):
        run("time", iv)


DOCUMENTED = """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil
changes clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
days_in_month deg delta deriv exp floor histogram_quantile holt_winters hour idelta increase
irate label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time
min_over_time minute month pi predict_linear present_over_time quantile_over_time rad rate resets
round scalar sgn sin sinh sort sort_desc sort_by_label sort_by_label_desc sqrt stddev_over_time
stdvar_over_time sum_over_time tan tanh time timestamp vector year"""


def test_every_documented_function_is_there():
    assert set(DOCUMENTED.split()) - set(FUNCTIONS) == set()


def ref_bucket_quantile(q, buckets):
    """Prometheus' BucketQuantile, written out bucket by bucket."""
    if math.isnan(q):
        return NAN
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets)
    if buckets[-1][0] != math.inf:
        return NAN
    merged = []
    for ub, c in buckets:
        if merged and merged[-1][0] == ub:
            merged[-1][1] += c
        else:
            merged.append([ub, c])
    prev = merged[0][1]
    for b in merged[1:]:
        if b[1] == prev:
            continue
        if abs(b[1] - prev) / (abs(b[1]) + abs(prev)) < 1e-12:
            b[1] = prev
        elif b[1] < prev:
            b[1] = prev
        else:
            prev = b[1]
    if len(merged) < 2 or merged[-1][1] == 0:
        return NAN
    rank = q * merged[-1][1]
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, count = 0.0, merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (merged[b][0] - start) * (rank / count if count else NAN)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.5, 10.0, math.inf]),
                          st.integers(0, 50)), min_size=1, max_size=8),
       st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0, -0.5, 1.5]))
def test_histogram_quantile_matches_the_reference(buckets, q):
    # Equal bounds spelled differently ("1e+00", "1.0e+00") are distinct series of one bucket.
    labels = [{"le": f"{ub:.{i + 2}e}" if ub != math.inf else ("+Inf", "+inf", "Inf")[i % 3]}
              for i, (ub, _) in enumerate(buckets)]
    iv = instant(labels, [[float(c)] for _, c in buckets])
    if iv.labels.n_unique() != iv.labels.height:
        return
    got = rows(run("histogram_quantile", scalar(q), iv))[()]
    want = ref_bucket_quantile(q, [(ub, float(c)) for ub, c in buckets])
    if math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
