"""The warnings and infos functions raise, as Prometheus' annotations (without positions)."""

from __future__ import annotations

import math

from tests.promql.helpers import MIN, call, instant, loaded, scalar
from tsdb_arrow.promql import annotations
from tsdb_arrow.promql.functions import FUNCTIONS


def notes(name, *args, steps=None):
    with annotations.collect() as got:
        FUNCTIONS[name](call(name, *args, steps=steps))
    return got


def test_quantile_out_of_range_warns():
    rv = loaded([{}], MIN, [[1, 2]], [MIN], 2 * MIN)
    assert notes("quantile_over_time", scalar(0.5), rv).warnings == []
    got = notes("quantile_over_time", scalar(-1), rv)
    assert got.warnings == ["PromQL warning: quantile value should be between 0 and 1, got -1"]
    buckets = instant([{"le": "1"}, {"le": "+Inf"}], [[1.0], [2.0]])
    got = notes("histogram_quantile", scalar(math.nan), buckets)
    assert got.warnings == ["PromQL warning: quantile value should be between 0 and 1, got NaN"]


def test_rate_of_a_non_counter_name_informs():
    gauge = loaded([{"__name__": "temperature"}], MIN, [[1, 2, 3]], [2 * MIN], 3 * MIN)
    got = notes("rate", gauge)
    assert got.infos == ['PromQL info: metric might not be a counter, name does not end in '
                         '_total/_sum/_count/_bucket: "temperature"']
    counter = loaded([{"__name__": "requests_total"}], MIN, [[1, 2, 3]], [2 * MIN], 3 * MIN)
    assert notes("rate", counter).infos == []
    assert notes("delta", gauge).infos == []
    assert notes("increase", loaded([{"__name__": "x"}], MIN, [[1]], [0], MIN)).infos == []


def test_histogram_quantile_monotonicity_and_bad_le():
    bumpy = instant([{"__name__": "h_bucket", "le": "1"}, {"__name__": "h_bucket", "le": "2"},
                     {"__name__": "h_bucket", "le": "+Inf"}], [[5.0], [3.0], [8.0]])
    got = notes("histogram_quantile", scalar(0.5), bumpy)
    assert len(got.infos) == 1 and "needed to be fixed for monotonicity" in got.infos[0]
    assert '"h_bucket"' in got.infos[0]
    bad = instant([{"__name__": "series", "le": "Hello World"}], [[2.0]])
    got = notes("histogram_quantile", scalar(0.8), bad)
    assert got.warnings == ['PromQL warning: bucket label "le" is missing or has a malformed '
                            'value of "Hello World" for metric name "series"']
    missing = instant([{"__name__": "series", "ale": "0.1"}], [[2.0]])
    got = notes("histogram_fraction", scalar(-math.inf), scalar(1), missing)
    assert 'value of "" for metric name "series"' in got.warnings[0]
