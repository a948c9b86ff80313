"""Native histogram samples in PromQL: selectors load them beside floats, and the
``histogram_*`` functions read them (values worked out by hand from Prometheus 3's rules)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

import tsdb_arrow as ta
from tsdb_arrow.promql.engine import evaluate
from tsdb_arrow.promql.values import InstantVector, Steps
from tsdb_arrow.sketch import ExponentialHistogram, histogram_column

# Prometheus {{schema:0 sum:5 count:4 buckets:[1 2 1]}}: buckets (0.5,1] (1,2] (2,4], which
# are OpenTelemetry buckets -1, 0, 1 at scale 0.
H = ExponentialHistogram(scale=0, count=4, sum=5.0, positive_offset=-1,
                         positive_counts=np.array([1, 2, 1], np.uint64))
# {{schema:1 sum:-3 count:3 z_bucket:1 z_bucket_w:0.5 n_buckets:[2]}}: buckets [-0.5,0.5]
# (zero) and [-sqrt2, -1) (negative Prometheus bucket 1 = OpenTelemetry bucket 0).
NEG = ExponentialHistogram(scale=1, count=3, sum=-3.0, zero_count=1, zero_threshold=0.5,
                           negative_offset=0, negative_counts=np.array([2], np.uint64))


@pytest.fixture
def db(tmp_path):
    d = ta.open(tmp_path / "db")
    d.write(pa.table({
        "timestamp": [0, 0, 60_000],
        "histogram": histogram_column([H, NEG, H]),
        "__name__": ["lat", "lat", "mixed"],
        "job": ["a", "b", "m"],
    }))
    d.write(pa.table({
        "timestamp": [0, 0],
        "value": [7.0, 1.0],
        "__name__": ["lat", "mixed"],
        "job": ["f", "m"],
    }))
    yield d
    d.close()


def _at(db, expr: str, t: int = 30_000) -> dict[str, float]:
    v = evaluate(db, expr, Steps(t, t, 0))
    assert isinstance(v, InstantVector)
    if "job" not in v.labels.columns:
        return {}
    jobs = v.labels["job"].to_list()
    return {j: float(v.values[i, 0]) for i, j in enumerate(jobs) if v.present[i, 0]}


def test_selector_holds_both_kinds(db):
    v = evaluate(db, "lat", Steps(30_000, 30_000, 0))
    assert sorted(v.labels["job"].to_list()) == ["a", "b", "f"]
    by_job = dict(zip(v.labels["job"].to_list(), range(3), strict=True))
    assert v.present[by_job["f"], 0] and v.values[by_job["f"], 0] == 7.0
    assert v.hist[by_job["f"], 0] == -1
    assert not v.present[by_job["a"], 0] and v.hist[by_job["a"], 0] >= 0


def test_series_with_both_kinds_takes_the_later_sample(db):
    v = evaluate(db, "mixed", Steps(30_000, 90_000, 60_000))
    assert v.labels.height == 1
    assert v.present.tolist() == [[True, False]]
    assert v.values[0, 0] == 1.0
    assert v.hist[0, 0] == -1 and v.hist[0, 1] >= 0
    assert v.timestamps.tolist() == [[0, 60_000]]


def test_count_sum_avg(db):
    assert _at(db, "histogram_count(lat)") == {"a": 4.0, "b": 3.0}
    assert _at(db, "histogram_sum(lat)") == {"a": 5.0, "b": -3.0}
    assert _at(db, "histogram_avg(lat)") == {"a": 1.25, "b": -1.0}
    assert _at(db, "histogram_count(mixed)", 90_000) == {"m": 4.0}
    assert _at(db, "histogram_count(mixed)", 30_000) == {}


def test_quantile_interpolates_exponentially(db):
    # q=0.5 walks down from the top: rank 2 falls half way into (1,2], so 2**0.5. For b it
    # passes the zero bucket (1) and lies 0.5 of 2 up from the bottom of [-sqrt2,-1).
    assert _at(db, "histogram_quantile(0.5, lat)") == {"a": math.sqrt(2), "b": -(2 ** 0.125)}
    # q=0.25 walks up: rank 1 is the top of (0.5,1]. For b, rank 0.75 of 3 lies in the
    # negative bucket [-sqrt2,-1): fraction 0.375, mirrored.
    got = _at(db, "histogram_quantile(0.25, lat)")
    assert got["a"] == 1.0
    assert got["b"] == -(2 ** (0.5 * (1 - 0.375)))
    assert _at(db, "histogram_quantile(1.5, lat)") == {"a": math.inf, "b": math.inf}
    assert _at(db, "histogram_quantile(-1, lat)") == {"a": -math.inf, "b": -math.inf}


def test_quantile_in_the_zero_bucket_is_linear(db):
    # b: 2 counts in [-sqrt2,-1), 1 in the zero bucket, which with only negative buckets ends
    # at 0: q=0.9 walks down, rank 0.3 of the zero bucket [-0.5, 0] from the top.
    assert _at(db, "histogram_quantile(0.9, lat)")["b"] == pytest.approx(-0.5 * 0.3, rel=1e-15)


def test_fraction(db):
    assert _at(db, "histogram_fraction(0, 2, lat)") == {"a": 0.75, "b": 0.0}
    got = _at(db, "histogram_fraction(-inf, 0, lat)")
    assert got == {"a": 0.0, "b": 1.0}
    # half of (1,2] in log scale lies below sqrt(2)
    assert _at(db, f"histogram_fraction(0, {math.sqrt(2)!r}, lat)")["a"] == 0.5


def test_stdvar_stddev(db):
    mids = [math.sqrt(0.5), math.sqrt(2.0), math.sqrt(8.0)]
    want = (1 * (mids[0] - 1.25) ** 2 + 2 * (mids[1] - 1.25) ** 2 + 1 * (mids[2] - 1.25) ** 2) / 4
    got = _at(db, "histogram_stdvar(lat)")
    assert got["a"] == pytest.approx(want, rel=1e-15)
    assert got["b"] == pytest.approx((2 * (-math.sqrt(2 ** 0.5) + 1) ** 2 + 1) / 3, rel=1e-15)
    assert _at(db, "histogram_stddev(lat)")["a"] == pytest.approx(math.sqrt(want), rel=1e-15)


def test_float_functions_skip_histograms(db):
    assert _at(db, "abs(lat)") == {"f": 7.0}
    assert _at(db, "histogram_count(lat{job='f'})") == {}


def test_script_histogram_notation():
    from tsdb_arrow.promql.testfile import parse_series
    from tsdb_arrow.promql.testfile_histograms import TestHistogram

    s = parse_series('m{a="b"} {{schema:0 sum:5 count:4 buckets:[1 2 1] offset:-1}}'
                     '-{{schema:0 sum:1 count:1 buckets:[0 1]}}x1 _ 3 {{count:2.5 buckets:[2.5]}}')
    assert s.histogram and len(s.points) == 5
    first, second = s.points[:2]
    assert isinstance(first, TestHistogram) and first.positive == {-1: 1.0, 0: 2.0, 1: 1.0}
    assert second.positive == {-1: 1.0, 0: 2.0, 1: 0.0} and second.count == 3.0
    assert second.sum == 4.0
    assert s.points[2:4] == [None, 3.0]
    assert not s.points[4].storable  # fractional counts: kept for expected results, not loaded
    h = first.to_sample()
    assert (h.scale, h.count, h.positive_offset) == (0, 4, -2)
    assert h.positive_counts.tolist() == [1, 2, 1]
    assert not TestHistogram(count=3, positive={0: 1.0}).storable


def test_query_frames_hold_histogram_samples(db):
    frame = db.query("lat", 30_000).sort("job")
    assert frame.columns == ["__name__", "job", "timestamp", "value", "histogram"]
    assert frame["value"].to_list() == [None, None, 7.0]
    a, b, f = frame["histogram"].to_list()
    assert f is None
    assert a == {"scale": 0, "count": 4.0, "zero_count": 0.0, "zero_threshold": 0.0,
                 "positive_offset": -1, "positive_counts": [1.0, 2.0, 1.0],
                 "negative_offset": 0, "negative_counts": [], "sum": 5.0,
                 "min": a["min"], "max": a["max"]}
    assert math.isnan(a["min"]) and math.isnan(a["max"])
    assert (b["scale"], b["zero_count"], b["negative_counts"]) == (1, 1.0, [2.0])
    # a range vector: raw samples of both kinds in the window, series by series in time order
    raw = db.query("mixed[2m]", 90_000)
    assert raw["value"].to_list() == [1.0, None]
    assert raw["timestamp"].dt.epoch("ms").to_list() == [0, 60_000]
    assert raw["histogram"][1]["positive_counts"] == [1.0, 2.0, 1.0]
    # a range query: the histogram at every step the lookback reaches
    steps = db.query_range("mixed", 0, 120_000, 60_000)
    assert steps["value"].to_list() == [1.0, None, None]
    assert [h is None for h in steps["histogram"].to_list()] == [True, False, False]


def test_float_only_frames_have_no_histogram_column(db):
    assert db.query('lat{job="f"}', 30_000).columns == ["__name__", "job", "timestamp", "value"]


def _hists(db, expr: str, t: int = 30_000) -> dict[str | None, object]:
    """Histogram results by job (None without the label), as script histograms."""
    from tsdb_arrow.promql.testfile_histograms import from_pool

    v = evaluate(db, expr, Steps(t, t, 0))
    assert isinstance(v, InstantVector)
    jobs = v.labels["job"].to_list() if "job" in v.labels.columns else [None] * len(v)
    hist = v.hist if v.hist is not None else np.full((len(v), 1), -1)
    return {j: from_pool(v.pool, int(hist[i, 0])) for i, j in enumerate(jobs) if hist[i, 0] >= 0}


def test_sum_and_avg_of_histograms(db):
    from tsdb_arrow.promql import annotations

    # H (schema 0) + NEG (schema 1, zero bucket 0.5): schema 0, NEG's bucket [-sqrt2,-1) falls
    # into [-2,-1) (Prometheus index 1), the wider zero bucket wins
    s = _hists(db, 'sum(lat{job=~"a|b"})')[None]
    assert (s.schema, s.count, s.sum, s.zero_count, s.zero_threshold) == (0, 7.0, 2.0, 1.0, 0.5)
    assert s.positive == {0: 1.0, 1: 2.0, 2: 1.0} and s.negative == {1: 2.0}
    a = _hists(db, 'avg(lat{job=~"a|b"})')[None]
    assert (a.count, a.sum, a.zero_count) == (3.5, 1.0, 0.5)
    assert a.positive == {0: 0.5, 1: 1.0, 2: 0.5} and a.negative == {1: 1.0}
    with annotations.collect() as notes:
        assert _hists(db, "sum(lat)") == {} and _at(db, "sum(lat)") == {}
    assert notes.warnings == ["PromQL warning: encountered a mix of histograms and floats for "
                              "aggregation (1:5)"]
    by_job = _hists(db, "sum by (job) (lat)")
    assert set(by_job) == {"a", "b"} and _at(db, "sum by (job) (lat)") == {"f": 7.0}


def test_histogram_operators(db):
    for expr in ("lat * 2", "2 * lat"):
        doubled = _hists(db, expr)
        assert doubled["a"].count == 8.0 and doubled["a"].positive == {0: 2.0, 1: 4.0, 2: 2.0}
        assert _at(db, expr) == {"f": 14.0}
    halved = _hists(db, "lat / 2")["b"]
    assert (halved.count, halved.sum, halved.zero_count, halved.negative) == (
        1.5, -1.5, 0.5, {1: 1.0})
    assert _hists(db, "-lat")["a"].count == -4.0
    assert _hists(db, "lat + 1") == {} and _at(db, "lat + 1") == {"f": 8.0}
    assert _hists(db, "2 / lat") == {}
    zero = _hists(db, 'lat{job="a"} - lat{job="a"}')["a"]
    assert (zero.count, zero.sum) == (0.0, 0.0) and set(zero.positive.values()) == {0.0}
    twice = _hists(db, "lat + on(job) lat")
    assert twice["b"].negative == {1: 4.0} and twice["b"].zero_count == 2.0
    assert _hists(db, "lat * lat") == {}
    # == and != compare whole histograms; bool gives 1 or 0
    assert set(_hists(db, 'lat == lat')) == {"a", "b"}
    assert _hists(db, 'lat != lat') == {}
    assert _at(db, 'lat == bool on(job) lat') == {"a": 1.0, "b": 1.0, "f": 1.0}
    assert _at(db, 'lat{job="a"} == bool ignoring(job) lat{job="b"}') == {}
    # set operators treat a histogram sample as a sample
    assert set(_hists(db, 'lat unless lat{job="a"}')) == {"b"}
    assert set(_hists(db, 'lat{job="a"} or lat')) == {"a", "b"}
    assert set(_hists(db, "lat and on() vector(1)")) == {"a", "b"}


@pytest.fixture
def counter_db(tmp_path):
    def h(k: int) -> ExponentialHistogram:
        return ExponentialHistogram(scale=0, count=4 * k, sum=5.0 * k, positive_offset=-1,
                                    positive_counts=np.array([k, 2 * k, k], np.uint64))

    d = ta.open(tmp_path / "c")
    d.write(pa.table({"timestamp": [60_000 * i for i in range(5)],
                      "histogram": histogram_column([h(k) for k in (1, 2, 3, 1, 2)]),
                      "__name__": ["c"] * 5}))
    yield d
    d.close()


def test_rate_family_over_histograms(counter_db):
    # counts 4 8 12 4 8 at 0..240 s: increase 8 - 4 + 12 (reset) = 16, extrapolated by
    # 300/240 (to the zero point 60 s before the first sample) = 20
    inc = _hists(counter_db, "increase(c[5m])", 240_000)[None]
    assert inc.count == 20.0 and inc.sum == 25.0 and inc.positive == {0: 5.0, 1: 10.0, 2: 5.0}
    rate = _hists(counter_db, "rate(c[5m])", 240_000)[None]
    assert math.isclose(rate.count, 20.0 / 300)
    delta = _hists(counter_db, "delta(c[5m])", 240_000)[None]
    assert delta.count == 5.0  # (8 - 4) * 1.25, no reset handling
    irate = _hists(counter_db, "irate(c[5m])", 240_000)[None]
    assert math.isclose(irate.count, 4.0 / 60)
    assert _hists(counter_db, "idelta(c[5m])", 240_000)[None].count == 4.0
    assert _hists(counter_db, "irate(c[5m])", 180_000)[None].count == 4.0 / 60  # reset: last/dt
    assert _hists(counter_db, "last_over_time(c[5m])", 240_000)[None].count == 8.0
    assert _at(counter_db, "histogram_count(increase(c[5m]))", 240_000) == {}
    v = evaluate(counter_db, "histogram_count(sum(increase(c[5m])))", Steps(240_000, 240_000, 0))
    assert v.values[0, 0] == 20.0


def test_label_functions_keep_histograms(db):
    replaced = _hists(db, 'label_replace(lat, "x", "$1", "job", "(.*)")')
    assert set(replaced) == {"a", "b"} and replaced["a"].count == 4.0
    assert set(_hists(db, 'label_join(lat, "x", "-", "job", "job")')) == {"a", "b"}
    assert set(_hists(db, 'sort_by_label(lat, "job")')) == {"a", "b"}
    # sort ignores histogram samples (Prometheus 3); timestamp() reads theirs
    assert _hists(db, "sort(lat)") == {} and _at(db, "sort(lat)") == {"f": 7.0}
    assert _at(db, "timestamp(lat)") == {"a": 0.0, "b": 0.0, "f": 0.0}
    assert _at(db, 'timestamp(mixed)', 90_000) == {"m": 60.0}


def test_over_time_functions_over_histograms(counter_db, db):
    from tsdb_arrow.promql import annotations

    total = _hists(counter_db, "sum_over_time(c[5m])", 240_000)[None]
    assert total.count == 36.0 and total.positive == {0: 9.0, 1: 18.0, 2: 9.0}
    mean = _hists(counter_db, "avg_over_time(c[5m])", 240_000)[None]
    assert math.isclose(mean.count, 36.0 / 5) and math.isclose(mean.sum, 9.0)
    assert _at(counter_db, "count_over_time(c[5m])", 240_000) == {}
    v = evaluate(counter_db, "count_over_time(c[5m])", Steps(240_000, 240_000, 0))
    assert v.values.tolist() == [[5.0]]
    # mixed: one float at 0 s and one histogram at 60 s
    assert _at(db, "count_over_time(mixed[2m])", 90_000) == {"m": 2.0}
    assert _at(db, "present_over_time(mixed[2m])", 90_000) == {"m": 1.0}
    with annotations.collect() as notes:
        assert _hists(db, "sum_over_time(mixed[2m])", 90_000) == {}
    assert notes.warnings == ['PromQL warning: encountered a mix of histograms and floats for '
                              'metric name "mixed" (1:15)']
