"""KnownPoints: a request of remembered points read as (ref, timestamp, value) rows, equal to
what the full conversion and ``Database.write`` make of it."""

from __future__ import annotations

import copy

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from tests.ingest.otlp_strategies import requests
from tsdb_arrow.ingest.otlp import DeltaState, OtlpLimits, convert_request, wire
from tsdb_arrow.ingest.otlp.repeat import KnownPoints
from tsdb_arrow.ingest.series import row_refs
from tsdb_arrow.model import TIMESTAMP, VALUE

T0_NS = 1_795_392_000_000 * 1_000_000
STALE_BITS = 0x7FF0000000000002


def scan(body: bytes) -> wire.Scan:
    status, sc = wire.scan(np.frombuffer(body, dtype=np.uint8))
    assert status == wire.OK and sc is not None
    return sc


def full_rows(body: bytes, limits: OtlpLimits = OtlpLimits()) -> pa.Table:  # noqa: B008
    """The rows the full conversion gives, with the ref ``Database.write`` computes per row."""
    converted = convert_request(body, delta=DeltaState(), limits=limits)
    parts = []
    for table in (converted.floats, converted.target_info):
        if table is None:
            continue
        labels = {n: table.column(n).combine_chunks() for n in table.column_names
                  if n not in (TIMESTAMP, VALUE)}  # fmt: skip
        parts.append(pa.table({
            "ref": row_refs(labels, table.num_rows),
            TIMESTAMP: table.column(TIMESTAMP).cast(pa.int64()).to_numpy(),
            VALUE: table.column(VALUE).to_numpy(),
        }))  # fmt: skip
    return pa.concat_tables(parts)


def assert_same_rows(got: pa.Table, want: pa.Table) -> None:
    assert got.column("ref").to_numpy().tolist() == want.column("ref").to_numpy().tolist()
    assert got.column(TIMESTAMP).to_numpy().tolist() == want.column(TIMESTAMP).to_numpy().tolist()
    bits = got.column(VALUE).to_numpy().view(np.uint64)
    assert bits.tolist() == want.column(VALUE).to_numpy().view(np.uint64).tolist()


def remembered(*bodies: bytes, limits: OtlpLimits = OtlpLimits(), **kw) -> KnownPoints:  # noqa: B008
    promote = kw.pop("promote", ())
    known = KnownPoints(frozenset(promote), limits, **kw)
    for body in bodies:
        converted = convert_request(body, delta=DeltaState(), limits=limits,
                                    promote_resource_attributes=promote)  # fmt: skip
        known.remember(scan(body), converted)
    return known


def feed(i: int, series: int = 6, *, attrs: tuple[str, ...] = ("a", "b"), host: bool = True,
         stale: int = -1, as_int: int = -1, first: int = 0) -> bytes:  # fmt: skip
    """Request i of a feed: a gauge and a cumulative counter, one point per series each, at
    T0 + i s; a resource with a host (a target_info series) and a named scope."""
    req = ExportMetricsServiceRequest()
    resource = req.resource_metrics.add()
    attr = resource.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "svc"
    if host:
        attr = resource.resource.attributes.add()
        attr.key, attr.value.string_value = "host.name", "node-1"
    scope = resource.scope_metrics.add()
    scope.scope.name, scope.scope.version = "lib", "1.0"
    for kind in ("gauge", "counter"):
        metric = scope.metrics.add()
        metric.name = f"feed.{kind}"
        points = metric.gauge.data_points if kind == "gauge" else metric.sum.data_points
        if kind == "counter":
            metric.sum.is_monotonic = True
            metric.sum.aggregation_temporality = 2
        for j in range(first, first + series):
            point = points.add()
            point.time_unix_nano = T0_NS + i * 1_000_000_000
            if j == as_int:
                point.as_int = -(2**62) + i
            else:
                point.as_double = (i * 100 + j) / 8
            if j == stale:
                point.flags = 1
            for k, key in enumerate(attrs):
                a = point.attributes.add()
                a.key, a.value.string_value = key, f"{key}{j}-{k}"
            a = point.attributes.add()
            a.key, a.value.int_value = "n", j
    return req.SerializeToString()


def test_a_repeated_feed_is_read_as_the_full_conversion_reads_it():
    known = remembered(feed(0, stale=2, as_int=3))
    assert len(known) == 12
    for i in (1, 2, 7):
        body = feed(i, stale=i % 6, as_int=(i + 1) % 6)
        got = known.rows(scan(body))
        assert got is not None and got.points == 12
        want = full_rows(body)
        assert got.table.num_rows == 13  # 12 points and one target_info sample
        assert_same_rows(got.table, want)
    stale = known.rows(scan(feed(1, stale=4))).table.column(VALUE).to_numpy().view(np.uint64)
    assert stale[[4, 10]].tolist() == [STALE_BITS] * 2


def test_anything_not_remembered_takes_the_full_way():
    known = remembered(feed(0))
    misses = {
        "a new series": feed(1, series=7),
        "another attribute order": feed(1, attrs=("b", "a")),
        "another resource": feed(1, host=False),
        "a point refused (no time)": _with(
            feed(1), lambda r: _gauge_point(r).ClearField("time_unix_nano")
        ),
        "a point refused (no value)": _with(
            feed(1), lambda r: _gauge_point(r).ClearField("as_double")
        ),
        "a delta sum": _with(
            feed(1), lambda r: setattr(_metric(r, 1).sum, "aggregation_temporality", 1)
        ),
        "another unit": _with(feed(1), lambda r: setattr(_metric(r, 0), "unit", "s")),
        "another scope version": _with(
            feed(1),
            lambda r: setattr(r.resource_metrics[0].scope_metrics[0].scope, "version", "2.0"),
        ),
        "a histogram beside": _with(feed(1), _add_histogram),
        "no points": ExportMetricsServiceRequest().SerializeToString(),
    }
    for why, body in misses.items():
        assert known.rows(scan(body)) is None, why
    assert known.rows(scan(feed(1, series=5))) is not None  # a subset of the series is known


def _metric(req: ExportMetricsServiceRequest, k: int):  # type: ignore[no-untyped-def]
    return req.resource_metrics[0].scope_metrics[0].metrics[k]


def _gauge_point(req: ExportMetricsServiceRequest):  # type: ignore[no-untyped-def]
    return _metric(req, 0).gauge.data_points[0]


def _with(body: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    req = ExportMetricsServiceRequest.FromString(body)
    change(req)
    return req.SerializeToString()


def _add_histogram(req: ExportMetricsServiceRequest) -> None:
    metric = req.resource_metrics[0].scope_metrics[0].metrics.add()
    metric.name = "feed.latency"
    metric.histogram.aggregation_temporality = 2
    point = metric.histogram.data_points.add()
    point.time_unix_nano, point.count, point.sum = T0_NS, 1, 2.0
    point.bucket_counts.extend([1, 0])
    point.explicit_bounds.append(5.0)


def test_a_request_with_refused_points_is_not_remembered():
    body = _with(feed(0), lambda r: _gauge_point(r).ClearField("time_unix_nano"))
    assert convert_request(body).rejected_points == 1
    known = remembered(body)
    assert len(known) == 0
    assert known.rows(scan(feed(1, first=1, series=5))) is None


def test_promoted_resource_attributes_are_part_of_the_series():
    known = remembered(feed(0), promote=("host.name",))
    body = feed(1)
    got = known.rows(scan(body))
    assert got is not None
    converted = convert_request(body, promote_resource_attributes=("host.name",))
    assert converted.floats.column("host_name").unique().to_pylist() == ["node-1"]
    labels = {n: converted.floats.column(n).combine_chunks()
              for n in converted.floats.column_names if n not in (TIMESTAMP, VALUE)}  # fmt: skip
    refs = row_refs(labels, converted.floats.num_rows)
    assert got.table.column("ref").to_numpy()[:12].tolist() == refs.tolist()


def test_past_the_label_name_limit_the_memory_starts_again():
    limits = OtlpLimits(max_label_names=11)
    # feed 0 has __name__, job, otel_scope_name and _version, a, b, n, and target_info's
    # host_name: 8 names; the other feed w, x, y, z for a and b: 10, and 12 together.
    known = remembered(feed(0), limits=limits)
    assert len(known) == 12
    other = feed(0, attrs=("x", "y", "z", "w"))
    known.remember(scan(other), convert_request(other, limits=limits))
    assert len(known) == 12  # only the new request's points: the first were forgotten
    assert known.rows(scan(feed(1))) is None
    assert known.rows(scan(feed(1, attrs=("x", "y", "z", "w")))) is not None


def test_a_full_memory_starts_again_and_stays_exact():
    known = remembered(feed(0, series=60), max_bytes=300_000)
    sizes = []
    for i in range(1, 30):  # each request new series: the memory fills and empties
        body = feed(i, series=60, first=60 * i)
        known.remember(scan(body), convert_request(body))
        assert known.nbytes <= 300_000
        sizes.append(len(known))
    assert sizes[0] == 240 and min(sizes[1:]) == 120 and max(sizes) > 1000
    body = feed(40, series=60, first=60 * 29)
    assert_same_rows(known.rows(scan(body)).table, full_rows(body))
    assert known.rows(scan(feed(40, series=60))) is None  # the first series were forgotten


@st.composite
def request_and_repeat(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A request (cumulative only), and the same points at other times and values."""
    req = draw(requests(temporalities=[2]))
    again = copy.deepcopy(req)
    for rm in again.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.WhichOneof("data") not in ("gauge", "sum"):
                    continue
                data = getattr(m, m.WhichOneof("data"))
                for p in data.data_points:
                    p.time_unix_nano = draw(st.integers(T0_NS, T0_NS + 10**12))
                    if draw(st.booleans()):
                        p.as_double = draw(st.floats(allow_subnormal=True))
                    else:
                        p.as_int = draw(st.integers(-(2**63), 2**63 - 1))
                    p.flags = draw(st.sampled_from([0, 1]))
    return req.SerializeToString(), again.SerializeToString()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_and_repeat())
def test_remembered_rows_equal_the_full_conversion(pair):
    first, again = pair
    converted = convert_request(first, delta=DeltaState())
    known = KnownPoints(frozenset(), OtlpLimits())
    known.remember(scan(first), converted)
    got = known.rows(scan(again))
    met = scan(first).metrics
    simple = all(
        k == wire.GAUGE or (k == wire.SUM and t == 2)
        for k, t in zip(met[:, wire.M_KIND].tolist(), met[:, wire.M_TEMP].tolist())
    )
    clean = converted.rejected_points == 0 and not converted.errors
    if clean and simple and len(scan(first).points):
        assert got is not None
    if got is not None:
        assert clean and simple
        again_converted = convert_request(again, delta=DeltaState())
        assert again_converted.rejected_points == 0 and again_converted.histograms is None
        assert_same_rows(got.table, full_rows(again))


def test_a_bad_body_is_left_to_the_full_way():
    assert wire.scan(np.frombuffer(b"\x0a\x05ab", dtype=np.uint8))[1] is None


@pytest.mark.parametrize("series", [1, 300])
def test_rows_come_in_point_order_then_target_info(series):
    known = remembered(feed(0, series=series))
    got = known.rows(scan(feed(3, series=series))).table
    assert got.num_rows == 2 * series + 1
    assert got.column(TIMESTAMP).to_numpy().tolist() == [T0_NS // 10**6 + 3000] * (2 * series + 1)
    assert got.column(VALUE).to_numpy()[-1] == 1.0  # target_info


def _swapped(body: bytes) -> bytes:
    """The request with its two metrics in the other order (so numbered the other way)."""
    req = ExportMetricsServiceRequest.FromString(body)
    metrics = req.resource_metrics[0].scope_metrics[0].metrics
    both = [copy.deepcopy(m) for m in metrics]
    del metrics[:]
    metrics.extend(both[::-1])
    return req.SerializeToString()


def test_a_reset_while_a_request_is_read_makes_it_a_miss(monkeypatch):
    """Metric numbers given anew (another thread's remember started again) while a request's
    identities were built: its numbers name other metrics now, so it is not looked up."""
    known = remembered(feed(0))
    built = known._identities

    def and_reset(sc, metric_id):
        out = built(sc, metric_id)
        with known._lock:
            known._reset()
        swapped = _swapped(feed(0))  # the counter is metric 0 now, the gauge 1
        known.remember(scan(swapped), convert_request(swapped))
        return out

    monkeypatch.setattr(known, "_identities", and_reset)
    assert known.rows(scan(feed(1))) is None
    monkeypatch.undo()
    got = known.rows(scan(feed(1)))  # numbered afresh: found, with the right series
    assert_same_rows(got.table, full_rows(feed(1)))


def test_past_the_metric_cap_the_memory_starts_again(monkeypatch):
    import tsdb_arrow.ingest.otlp.repeat as repeat

    monkeypatch.setattr(repeat, "MAX_METRICS", 2)
    known = remembered(feed(0))  # two metrics: at the cap
    assert known.rows(scan(feed(1))) is not None
    other = feed(0, attrs=("x",))
    known.remember(scan(other), convert_request(other))
    assert known.rows(scan(feed(1))) is None
    assert known.rows(scan(feed(1, attrs=("x",)))) is not None
