"""Hypothesis strategies for OTLP metrics requests: every data type, valid and invalid points,
colliding and reserved attribute names, every attribute value type."""

from __future__ import annotations

import math

from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from tsdb_arrow.sketch.exponential.histogram import ExponentialHistogram
from tsdb_arrow.sketch.otlp import exponential_to_proto

T0 = 1_700_000_000_000_000_000
# Keys that collide once sanitised (a.b / a_b / a-b), reserved or overridden names, and odd ones.
KEYS = ["a.b", "a_b", "a-b", "b", "", "__name__", "le", "quantile", "job", "value", "1x", "_p",
        "ü", "otel_scope_name", "instance", "timestamp"]  # fmt: skip
TEXT = st.text(alphabet=st.sampled_from("ab;é字_ "), max_size=4)
TIMES = st.one_of(
    st.integers(T0, T0 + 10**12),
    st.sampled_from([0, 1, 10**6 - 1, 10**6, 2**63, 2**64 - 1, T0 + 999_999]),
)


@st.composite
def any_values(draw: st.DrawFn, depth: int = 0) -> common_pb2.AnyValue:
    kinds = ["string", "string", "bool", "int", "double", "bytes", "none"]
    if depth == 0:
        kinds += ["array", "kvlist"]
    kind = draw(st.sampled_from(kinds))
    if kind == "string":
        return common_pb2.AnyValue(string_value=draw(TEXT))
    if kind == "bool":
        return common_pb2.AnyValue(bool_value=draw(st.booleans()))
    if kind == "int":
        return common_pb2.AnyValue(
            int_value=draw(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-20, 20)))
        )
    if kind == "double":
        return common_pb2.AnyValue(double_value=draw(st.floats(allow_subnormal=True)))
    if kind == "bytes":
        return common_pb2.AnyValue(bytes_value=draw(st.binary(max_size=5)))
    if kind == "array":
        items = draw(st.lists(any_values(depth=1), max_size=3))
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=items))
    if kind == "kvlist":
        items = draw(st.lists(st.tuples(TEXT, any_values(depth=1)), max_size=3))
        kvs = [common_pb2.KeyValue(key=k, value=v) for k, v in items]
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=kvs))
    return common_pb2.AnyValue()


@st.composite
def attributes(draw: st.DrawFn, keys: list[str] = KEYS, max_size: int = 4) -> list:
    pairs = draw(st.lists(st.tuples(st.sampled_from(keys), any_values()), max_size=max_size))
    return [common_pb2.KeyValue(key=k, value=v) for k, v in pairs]


def _flags(draw: st.DrawFn) -> int:
    return draw(st.sampled_from([0, 0, 0, 1, 2]))


@st.composite
def number_points(draw: st.DrawFn) -> metrics_pb2.NumberDataPoint:
    p = metrics_pb2.NumberDataPoint(
        time_unix_nano=draw(TIMES), start_time_unix_nano=T0, flags=_flags(draw)
    )
    p.attributes.extend(draw(attributes()))
    which = draw(st.sampled_from(["double", "int", "none"]))
    if which == "double":
        p.as_double = draw(st.floats(allow_subnormal=True))
    elif which == "int":
        p.as_int = draw(st.integers(-(2**63), 2**63 - 1))
    return p


@st.composite
def histogram_points(draw: st.DrawFn) -> metrics_pb2.HistogramDataPoint:
    bounds = sorted(set(draw(st.lists(st.floats(-1e3, 1e3), max_size=4))))
    if draw(st.booleans()) and bounds:
        bounds[-1] = draw(st.sampled_from([math.inf, math.nan, bounds[0]]))
    counts = draw(st.lists(st.integers(0, 5), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    if draw(st.integers(0, 9)) == 0:
        counts = counts[:-1]
    if draw(st.integers(0, 9)) == 0:
        counts = []
    count = sum(counts) + draw(st.sampled_from([0, 0, 0, 0, 1]))
    p = metrics_pb2.HistogramDataPoint(
        time_unix_nano=draw(TIMES), count=count, flags=_flags(draw),
        explicit_bounds=bounds, bucket_counts=counts,
    )  # fmt: skip
    if draw(st.booleans()):
        p.sum = draw(st.floats(allow_nan=False, allow_infinity=False, width=32))
    p.attributes.extend(draw(attributes()))
    return p


@st.composite
def exponential_points(draw: st.DrawFn) -> metrics_pb2.ExponentialHistogramDataPoint:
    values = draw(st.lists(st.floats(-1e6, 1e6, allow_subnormal=False), max_size=8))
    h = ExponentialHistogram.from_values(values, scale=draw(st.integers(-2, 8)), max_size=20)
    p = exponential_to_proto(h, time_unix_nano=draw(TIMES))
    spoil = draw(st.integers(0, 11))
    if spoil == 0:
        p.count += 1
    elif spoil == 1:
        p.scale = 21
    elif spoil == 2:
        p.zero_threshold = -1.0
    elif spoil == 3:
        p.min, p.max = 2.0, 1.0
    p.flags = _flags(draw)
    p.attributes.extend(draw(attributes()))
    return p


@st.composite
def summary_points(draw: st.DrawFn) -> metrics_pb2.SummaryDataPoint:
    p = metrics_pb2.SummaryDataPoint(
        time_unix_nano=draw(TIMES), count=draw(st.integers(0, 10)),
        sum=draw(st.floats(width=32)), flags=_flags(draw),
    )  # fmt: skip
    for q in draw(st.lists(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0, -0.0]), max_size=3)):
        p.quantile_values.add(quantile=q, value=draw(st.floats(width=32)))
    p.attributes.extend(draw(attributes()))
    return p


NAMES = ["http.requests", "cpu.utilization", "", "1st", "@@", "a_total", "latency", "x"]
UNITS = ["", "1", "s", "ms", "By", "{req}", "By/s", "km/h"]
KINDS = ["gauge", "sum", "histogram", "exponential_histogram", "summary", "none"]
POINTS = {
    "gauge": number_points(),
    "sum": number_points(),
    "histogram": histogram_points(),
    "exponential_histogram": exponential_points(),
    "summary": summary_points(),
}


@st.composite
def metrics(draw: st.DrawFn, temporalities: list[int] = [2, 2, 2, 1, 0]) -> metrics_pb2.Metric:  # noqa: B006
    m = metrics_pb2.Metric(name=draw(st.sampled_from(NAMES)), unit=draw(st.sampled_from(UNITS)))
    kind = draw(st.sampled_from(KINDS))
    if kind == "none":
        return m
    data = getattr(m, kind)
    data.SetInParent()
    data.data_points.extend(draw(st.lists(POINTS[kind], max_size=4)))
    if kind in ("sum", "histogram", "exponential_histogram"):
        data.aggregation_temporality = draw(st.sampled_from(temporalities))
    if kind == "sum":
        data.is_monotonic = draw(st.booleans())
    return m


RESOURCE_KEYS = ["service.name", "service.namespace", "service.instance.id", "host.name",
                 "host_name", "k8s.pod.name", "job"]  # fmt: skip


@st.composite
def requests(
    draw: st.DrawFn,
    temporalities: list[int] = [2, 2, 2, 1, 0],  # noqa: B006
) -> metrics_service_pb2.ExportMetricsServiceRequest:
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rm = req.resource_metrics.add()
        keys = draw(st.lists(st.sampled_from(RESOURCE_KEYS), max_size=4))
        for k in keys:
            rm.resource.attributes.add(key=k, value=common_pb2.AnyValue(string_value=draw(TEXT)))
        for _ in range(draw(st.integers(0, 2))):
            sm = rm.scope_metrics.add()
            if draw(st.booleans()):
                sm.scope.name = draw(st.sampled_from(["lib", "", "other"]))
                sm.scope.version = draw(st.sampled_from(["", "1.0"]))
                sm.scope.attributes.extend(draw(attributes(keys=["a", "name"], max_size=1)))
            sm.schema_url = draw(st.sampled_from(["", "https://x/1.0"]))
            sm.metrics.extend(draw(st.lists(metrics(temporalities), max_size=3)))
    return req
