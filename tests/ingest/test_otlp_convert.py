"""convert_request: OTLP metrics requests as long frames, exactly as Prometheus translates them.

Names are checked against Prometheus' own test tables; every metric type, the resource and scope
labels, stale markers, delta totals and the refused points are checked on hand-built requests
with exact rows; random requests are checked against a plain per-point reference
(``otlp_reference``); real SDK exports are converted, written and read back.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

import tsdb_arrow as ta
from tests.ingest.otlp_reference import STALE_BITS, assert_same, bits, reference, table_rows
from tests.ingest.otlp_strategies import requests
from tsdb_arrow.errors import InputError, OtlpDecodeError
from tsdb_arrow.ingest.otlp import Converted, DeltaState, OtlpLimits, convert_request
from tsdb_arrow.ingest.otlp.convert import target_info_times
from tsdb_arrow.ingest.otlp.names import (
    any_value_string,
    format_bound,
    format_double,
    label_name,
    metric_name,
    stored_label_name,
)
from tsdb_arrow.model import series_ref
from tsdb_arrow.sketch.exponential.histogram import ExponentialHistogram
from tsdb_arrow.sketch.otlp import exponential_to_proto

Request = metrics_service_pb2.ExportMetricsServiceRequest
T = 1_700_000_000_123_456_789  # ns; floors to ...123 ms
MS = T // 1_000_000
CUMULATIVE, DELTA = 2, 1

# --------------------------------------------------------------------------- builders


def value(v: object) -> common_pb2.AnyValue:
    if v is None:
        return common_pb2.AnyValue()
    if isinstance(v, bool):
        return common_pb2.AnyValue(bool_value=v)
    if isinstance(v, int):
        return common_pb2.AnyValue(int_value=v)
    if isinstance(v, float):
        return common_pb2.AnyValue(double_value=v)
    if isinstance(v, bytes):
        return common_pb2.AnyValue(bytes_value=v)
    if isinstance(v, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=map(value, v)))
    if isinstance(v, dict):
        kvs = [common_pb2.KeyValue(key=k, value=value(x)) for k, x in v.items()]
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=kvs))
    return common_pb2.AnyValue(string_value=str(v))


def attrs(pairs: dict | list) -> list[common_pb2.KeyValue]:
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return [common_pb2.KeyValue(key=k, value=value(v)) for k, v in items]


def gauge(name: str, *points: metrics_pb2.NumberDataPoint, unit: str = "") -> metrics_pb2.Metric:
    m = metrics_pb2.Metric(name=name, unit=unit)
    m.gauge.data_points.extend(points)
    return m


def total(
    name: str,
    *points: metrics_pb2.NumberDataPoint,
    unit: str = "",
    monotonic: bool = True,
    temporality: int = CUMULATIVE,
) -> metrics_pb2.Metric:
    m = metrics_pb2.Metric(name=name, unit=unit)
    m.sum.data_points.extend(points)
    m.sum.is_monotonic = monotonic
    m.sum.aggregation_temporality = temporality
    return m


def number(v: float | int | None = None, t: int = T, flags: int = 0, **labels: object):  # type: ignore[no-untyped-def]
    p = metrics_pb2.NumberDataPoint(time_unix_nano=t, flags=flags)
    if isinstance(v, int):
        p.as_int = v
    elif v is not None:
        p.as_double = v
    p.attributes.extend(attrs(labels))
    return p


def request(
    *metrics: metrics_pb2.Metric,
    resource: dict | None = None,
    scope: str = "",
    version: str = "",
) -> Request:
    req = Request()
    rm = req.resource_metrics.add()
    if resource is not None:
        rm.resource.attributes.extend(attrs(resource))
    sm = rm.scope_metrics.add()
    if scope:
        sm.scope.name = scope
        sm.scope.version = version
    sm.metrics.extend(metrics)
    return req


def rows(table: pa.Table | None) -> list[dict]:
    """Rows without null labels, sorted (name, then labels, then time)."""
    if table is None:
        return []
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    table = table.set_column(0, "timestamp", table.column("timestamp").cast(pa.int64()))
    out = [{k: v for k, v in r.items() if v is not None} for r in table.to_pylist()]
    return sorted(out, key=lambda r: sorted((k, str(v)) for k, v in r.items()))


def one(req: Request, **kwargs: object) -> Converted:
    converted = convert_request(req.SerializeToString(), **kwargs)  # type: ignore[arg-type]
    assert converted.errors == [] and converted.rejected_points == 0, converted.errors
    return converted


# --------------------------------------------------------------------------- names

# Prometheus' tables (otlptranslator metric_namer_test.go with suffixes and no UTF-8, and
# storage/remote/otlptranslator/prometheus/metric_name_builder_test.go): (name, unit, kind, want)
METRIC_NAMES = [
    ("simple_metric", "", "gauge", "simple_metric"),
    ("requests", "", "counter", "requests_total"),
    ("cpu_usage", "1", "gauge", "cpu_usage_ratio"),
    ("items", "1", "counter", "items_total"),
    ("response_time", "ms", "gauge", "response_time_milliseconds"),
    ("memory_usage", "By", "gauge", "memory_usage_bytes"),
    ("requests", "1/s", "gauge", "requests_per_second"),
    ("throughput", "By/s", "gauge", "throughput_bytes_per_second"),
    ("custom_metric", "custom_unit", "gauge", "custom_metric_custom_unit"),
    ("custom_metric", "{custom}", "gauge", "custom_metric"),
    ("custom_metric", "By/{custom}", "gauge", "custom_metric_bytes"),
    ("requests_total", "", "counter", "requests_total"),
    ("cpu_usage_ratio", "1", "gauge", "cpu_usage_ratio"),
    ("response_time_seconds", "s", "gauge", "response_time_seconds"),
    ("123_requests", "", "counter", "_123_requests_total"),
    ("metric__with__multiple__underscores", "unit__multiple__underscores", "gauge",
     "metric_with_multiple_underscores_unit_multiple_underscores"),
    ("custom_metric", "unit@with#special/chars", "gauge",
     "custom_metric_unit_with_special_per_chars"),
    ("@#$%", "", "gauge", ""),
    ("request_duration", "s", "histogram", "request_duration_seconds"),
    ("request_size", "By", "histogram", "request_size_bytes"),
    ("response_time", "ms", "summary", "response_time_milliseconds"),
    ("active_connections", "", "updown", "active_connections"),
    ("uptime", "d", "gauge", "uptime_days"),
    ("duration", "h", "gauge", "duration_hours"),
    ("timeout", "min", "gauge", "timeout_minutes"),
    ("latency", "us", "gauge", "latency_microseconds"),
    ("precision_time", "ns", "gauge", "precision_time_nanoseconds"),
    ("cache_size", "KiBy", "gauge", "cache_size_kibibytes"),
    ("memory", "MiBy", "gauge", "memory_mebibytes"),
    ("storage", "GiBy", "gauge", "storage_gibibytes"),
    ("capacity", "TiBy", "gauge", "capacity_tibibytes"),
    ("transfer", "KBy", "gauge", "transfer_kilobytes"),
    ("download", "MBy", "gauge", "download_megabytes"),
    ("backup", "GBy", "gauge", "backup_gigabytes"),
    ("archive", "TBy", "gauge", "archive_terabytes"),
    ("distance", "m", "gauge", "distance_meters"),
    ("voltage", "V", "gauge", "voltage_volts"),
    ("current", "A", "gauge", "current_amperes"),
    ("energy", "J", "gauge", "energy_joules"),
    ("power", "W", "gauge", "power_watts"),
    ("weight", "g", "gauge", "weight_grams"),
    ("temperature", "Cel", "gauge", "temperature_celsius"),
    ("frequency", "Hz", "gauge", "frequency_hertz"),
    ("cpu_usage", "%", "gauge", "cpu_usage_percent"),
    ("requests", "1/m", "gauge", "requests_per_minute"),
    ("events", "1/h", "gauge", "events_per_hour"),
    ("transactions", "1/d", "gauge", "transactions_per_day"),
    ("reports", "1/w", "gauge", "reports_per_week"),
    ("invoices", "1/mo", "gauge", "invoices_per_month"),
    ("renewals", "1/y", "gauge", "renewals_per_year"),
    ("custom", "1/custom_unit", "gauge", "custom_per_custom_unit"),
    ("metric", "By/", "gauge", "metric_bytes"),
    ("metric", " By / s ", "gauge", "metric_bytes_per_second"),
    ("metric", "/", "gauge", "metric"),
    ("http.request.duration", "ms", "histogram", "http_request_duration_milliseconds"),
    ("http.requests", "1", "counter", "http_requests_total"),
    ("system.filesystem.usage", "By", "gauge", "system_filesystem_usage_bytes"),
    ("system.io", "By", "counter", "system_io_bytes_total"),
    ("network_transmitted_bytes_total", "By", "counter", "network_transmitted_bytes_total"),
    ("\t system.filesystem.usage       ", "  By\t", "gauge", "system_filesystem_usage_bytes"),
    ("system.network.dropped", "{packets}", "gauge", "system_network_dropped"),
    ("system.network.dropped", "nonstandard:_1", "gauge", "system_network_dropped_nonstandard:_1"),
    ("system.network.dropped", "{packets}", "counter", "system_network_dropped_total"),
    ("system.network.dropped", "packets", "gauge", "system_network_dropped_packets"),
    ("system.network.packets.dropped", "packets", "gauge", "system_network_packets_dropped"),
    ("system.network.packets", "packets", "gauge", "system_network_packets"),
    ("system.network.dropped", "packets", "counter", "system_network_dropped_packets_total"),
    ("system.network.packets", "packets", "counter", "system_network_packets_total"),
    ("hw.gpu.memory.utilization", "1", "gauge", "hw_gpu_memory_utilization_ratio"),
    ("hw.fan.speed_ratio", "1", "gauge", "hw_fan_speed_ratio"),
    ("objects", "1", "counter", "objects_total"),
    ("hw.cpu.speed_limit", "Hz", "gauge", "hw_cpu_speed_limit_hertz"),
    ("broken.metric.speed", "km/h", "gauge", "broken_metric_speed_km_per_hour"),
    ("astro.light.speed_limit", "m/s", "gauge", "astro_light_speed_limit_meters_per_second"),
    ("system.network.dropped", "non/standard:_1", "gauge",
     "system_network_dropped_non_per_standard:_1"),
    ("broken.metric.speed", "km/°", "gauge", "broken_metric_speed_km"),
    ("broken.metric.success_ratio", "%", "gauge", "broken_metric_success_ratio_percent"),
    ("broken.metric.success_percent", "%", "gauge", "broken_metric_success_percent"),
    ("test.metric.no_unit", "", "gauge", "test_metric_no_unit"),
    ("test.metric.spaces", "   \t  ", "gauge", "test_metric_spaces"),
    ("active_directory.ds.replication.network.io", "By", "counter",
     "active_directory_ds_replication_network_io_bytes_total"),
    ("active_directory.ds.replication.object.rate", "{objects}/s", "gauge",
     "active_directory_ds_replication_object_rate_per_second"),
    ("apache.workers", "connections", "gauge", "apache_workers_connections"),
    ("system.cpu.load_average.15m", "1", "gauge", "system_cpu_load_average_15m_ratio"),
    ("mongodbatlas.process.oplog.rate", "GiBy/h", "gauge",
     "mongodbatlas_process_oplog_rate_gibibytes_per_hour"),
    ("mongodbatlas.process.db.query_targeting.scanned_per_returned", "{scanned}/{returned}",
     "gauge", "mongodbatlas_process_db_query_targeting_scanned_per_returned"),
    ("redis.latest_fork", "us", "gauge", "redis_latest_fork_microseconds"),
    ("3.14 digits", "", "gauge", "_3_14_digits"),
    ("envoy__rule_engine_zlib_buf_error", "", "gauge", "envoy_rule_engine_zlib_buf_error"),
    (":foo::bar", "", "gauge", ":foo::bar"),
    (":foo::bar", "", "counter", ":foo::bar_total"),
    ("foo.bar", "1", "gauge", "foo_bar_ratio"),
    ("system.io", "foo/bar", "counter", "system_io_foo_per_bar_total"),
    ("metric_with_字符_foreign_characters", "", "counter", "metric_with_foreign_characters_total"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "unit", "kind", "want"), METRIC_NAMES)
def test_metric_names_are_prometheus_names(name: str, unit: str, kind: str, want: str) -> None:
    got = metric_name(name, unit, gauge=kind == "gauge", counter=kind == "counter")
    assert got == want


# otlptranslator normalize_label_test.go, plus the long frame's reserved column names.
LABEL_NAMES = [
    ("", ""),
    ("label:with:colons", "label_with_colons"),
    ("LabelWithCapitalLetters", "LabelWithCapitalLetters"),
    ("label!with&special$chars)", "label_with_special_chars_"),
    ("label_with_foreign_characters_字符", "label_with_foreign_characters___"),
    ("label.with.dots", "label_with_dots"),
    ("123label", "key_123label"),
    ("_label_starting_with_underscore", "key_label_starting_with_underscore"),
    ("__label_starting_with_2underscores", "__label_starting_with_2underscores"),
]


@pytest.mark.parametrize(("key", "want"), LABEL_NAMES)
def test_label_names_are_prometheus_names(key: str, want: str) -> None:
    assert label_name(key) == want
    assert stored_label_name(key) == want


@pytest.mark.parametrize("key", ["value", "timestamp", "histogram", "series_ref"])
def test_reserved_column_names_are_exported(key: str) -> None:
    assert stored_label_name(key) == "exported_" + key
    assert stored_label_name(key.upper()) == key.upper()


@pytest.mark.parametrize(
    ("x", "want"),
    [(0.5, "0.5"), (1.0, "1"), (0.0, "0"), (-0.0, "-0"), (1e-5, "0.00001"), (2.5e3, "2500"),
     (1e21, "1000000000000000000000"), (0.1 + 0.2, "0.30000000000000004"), (math.inf, "+Inf"),
     (-math.inf, "-Inf"), (math.nan, "NaN")],
)  # fmt: skip
def test_bounds_and_quantiles_print_as_go_formatfloat_f(x: float, want: str) -> None:
    assert format_bound(x) == want


@pytest.mark.parametrize(
    ("v", "want"),
    [
        ("text", "text"),
        (True, "true"),
        (False, "false"),
        (-(2**63), "-9223372036854775808"),
        (2**63 - 1, "9223372036854775807"),
        (0, "0"),
        (1.5, "1.5"),
        (1.0, "1"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (123456.789, "123456.789"),
        (math.nan, "json: unsupported value: NaN"),
        (math.inf, "json: unsupported value: +Inf"),
        (b"\x00\xffab", "AP9hYg=="),
        ([1, "a", True, 0.5, None], '[1,"a",true,0.5,null]'),
        ({"b": 1, "a": ["<&>"]}, '{"a":["\\u003c\\u0026\\u003e"],"b":1}'),
        ([math.nan], ""),
    ],
)
def test_attribute_values_print_as_pdata_asstring(v: object, want: str) -> None:
    any_value = common_pb2.AnyValue() if v is None else value(v)
    assert any_value_string(any_value) == want
    assert format_double(1e-6) == "0.000001"


def test_attribute_values_of_every_type_become_the_same_label_text() -> None:
    """The kernel's integer text and the Python text agree, whatever the value type."""
    typed = {"s": "x", "b": True, "i": -42, "big": 2**63 - 1, "d": 0.25, "e": 1e-9,
             "raw": b"hi", "arr": [1, "two"], "map": {"k": False}, "none": None}  # fmt: skip
    point = number(1.0)
    point.attributes.extend(
        common_pb2.KeyValue(key=k, value=common_pb2.AnyValue() if v is None else value(v))
        for k, v in typed.items()
    )
    (row,) = rows(one(request(gauge("g", point))).floats)
    want = {k: any_value_string(value(v)) for k, v in typed.items() if v is not None}
    assert {k: row[k] for k in want} == want
    assert "none" not in row  # no value: an empty label, i.e. none


# --------------------------------------------------------------------------- metric types

RESOURCE = {"service.name": "shop", "service.namespace": "prod", "service.instance.id": "i-1",
            "host.name": "h1"}  # fmt: skip
COMMON = {"job": "prod/shop", "instance": "i-1", "otel_scope_name": "lib",
          "otel_scope_version": "1.0"}  # fmt: skip


def test_gauges_keep_their_values_names_and_labels() -> None:
    req = request(
        gauge("cpu.utilization", number(0.25, cpu=0), number(-3, t=T + 10**9, cpu=1), unit="1"),
        resource=RESOURCE, scope="lib", version="1.0",
    )  # fmt: skip
    c = one(req)
    assert rows(c.floats) == [
        {"timestamp": MS, "value": 0.25, "__name__": "cpu_utilization_ratio", "cpu": "0", **COMMON},
        {"timestamp": MS + 1000, "value": -3.0, "__name__": "cpu_utilization_ratio", "cpu": "1",
         **COMMON},
    ]  # fmt: skip
    assert (c.accepted_points, c.histograms) == (2, None)
    info = {"value": 1.0, "__name__": "target_info", "host_name": "h1", "job": "prod/shop",
            "instance": "i-1"}  # fmt: skip
    assert rows(c.target_info) == [{"timestamp": MS, **info}, {"timestamp": MS + 1000, **info}]
    assert c.floats.schema.field("cpu").type == pa.large_string()


def test_integer_values_convert_as_go_float64() -> None:
    big = 2**63 - 1
    (row,) = rows(one(request(gauge("g", number(big)))).floats)
    assert bits(row["value"]) == bits(float(big))


def test_monotonic_sums_are_counters_and_other_sums_gauges() -> None:
    c = one(request(
        total("http.requests", number(5, route="/")),
        total("queue.depth", number(-2), monotonic=False, unit="{item}"),
    ))  # fmt: skip
    assert [(r["__name__"], r["value"]) for r in rows(c.floats)] == [
        ("http_requests_total", 5.0),
        ("queue_depth", -2.0),
    ]


def histogram(
    name: str,
    bounds: list[float],
    counts: list[int],
    total_sum: float | None = 12.5,
    flags: int = 0,
    temporality: int = CUMULATIVE,
    **labels: object,
) -> metrics_pb2.Metric:
    m = metrics_pb2.Metric(name=name, unit="s")
    m.histogram.aggregation_temporality = temporality
    p = m.histogram.data_points.add(
        time_unix_nano=T, count=sum(counts), explicit_bounds=bounds, bucket_counts=counts,
        flags=flags,
    )  # fmt: skip
    if total_sum is not None:
        p.sum = total_sum
    p.attributes.extend(attrs(labels))
    return m


def test_explicit_histograms_become_cumulative_le_buckets_sum_and_count() -> None:
    c = one(request(histogram("rpc.duration", [2.5e-5 * 4, 0.5, 1], [1, 2, 3, 4], route="/x")))
    got = [(r["__name__"], r.get("le"), r["value"]) for r in rows(c.floats)]
    assert sorted(got, key=str) == sorted([
        ("rpc_duration_seconds_bucket", "0.0001", 1.0),
        ("rpc_duration_seconds_bucket", "0.5", 3.0),
        ("rpc_duration_seconds_bucket", "1", 6.0),
        ("rpc_duration_seconds_bucket", "+Inf", 10.0),
        ("rpc_duration_seconds_count", None, 10.0),
        ("rpc_duration_seconds_sum", None, 12.5),
    ], key=str)  # fmt: skip
    assert {r["route"] for r in rows(c.floats)} == {"/x"}
    assert c.accepted_points == 1


def test_a_histogram_without_sum_has_no_sum_series_and_an_inf_bound_no_double_bucket() -> None:
    c = one(request(histogram("h", [1, math.inf], [1, 1, 0], total_sum=None)))
    got = {(r["__name__"], r.get("le")): r["value"] for r in rows(c.floats)}
    assert got == {("h_seconds_bucket", "1"): 1.0, ("h_seconds_bucket", "+Inf"): 2.0,
                   ("h_seconds_count", None): 2.0}  # fmt: skip


def test_summaries_become_quantile_sum_and_count_series() -> None:
    m = metrics_pb2.Metric(name="rpc.latency", unit="ms")
    p = m.summary.data_points.add(time_unix_nano=T, count=7, sum=70.5)
    p.quantile_values.add(quantile=0.5, value=9.0)
    p.quantile_values.add(quantile=0.99, value=20.0)
    p.quantile_values.add(quantile=1, value=21.0)
    c = one(request(m))
    got = {(r["__name__"], r.get("quantile")): r["value"] for r in rows(c.floats)}
    assert got == {
        ("rpc_latency_milliseconds", "0.5"): 9.0,
        ("rpc_latency_milliseconds", "0.99"): 20.0,
        ("rpc_latency_milliseconds", "1"): 21.0,
        ("rpc_latency_milliseconds_sum", None): 70.5,
        ("rpc_latency_milliseconds_count", None): 7.0,
    }


def exponential(name: str, *hists: ExponentialHistogram, temporality: int = CUMULATIVE,
                **labels: object) -> metrics_pb2.Metric:  # fmt: skip
    m = metrics_pb2.Metric(name=name, unit="s")
    m.exponential_histogram.aggregation_temporality = temporality
    for i, h in enumerate(hists):
        p = exponential_to_proto(h, time_unix_nano=T + i * 10**9)
        p.attributes.extend(attrs(labels))
        m.exponential_histogram.data_points.append(p)
    return m


def test_exponential_histograms_are_stored_exactly_and_read_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    values = np.concatenate([np.linspace(0.001, 3.0, 500), -np.linspace(0.5, 1, 7), [0.0]])
    h1 = ExponentialHistogram.from_values(values)
    h2 = ExponentialHistogram.from_values(values[::2], scale=3)
    c = one(request(exponential("rpc.duration", h1, h2, route="/x"), resource=RESOURCE))
    assert c.floats is None and c.accepted_points == 2
    with ta.open(tmp_path / "db") as db:
        for table in c.tables:
            db.write(table)
        got = db.select_histograms("rpc_duration_seconds").collect()
        assert got["route"].to_list() == ["/x", "/x"]
        assert got["job"].to_list() == ["prod/shop"] * 2
        for want, row in zip([h1, h2], got["histogram"].to_list()):
            assert row["count"] == want.count and row["scale"] == want.scale
            assert row["positive_counts"] == want.positive_counts.tolist()
            assert row["negative_counts"] == want.negative_counts.tolist()
            assert bits(row["sum"]) == bits(want.sum)
            assert (row["min"], row["max"]) == (want.min, want.max)
        q = ta.sketch.histogram_quantiles(got, [0.5])
        assert q.height == 1 and 0 < q["q0.5"][0] < 3.0


@given(st.lists(st.floats(-1e9, 1e9, allow_subnormal=False), max_size=50), st.integers(-3, 20))
@settings(max_examples=60, deadline=None)
def test_exponential_points_round_trip_bit_exactly(values: list[float], scale: int) -> None:
    h = ExponentialHistogram.from_values(values, scale=scale)
    (table_row,) = table_rows(one(request(exponential("e", h))).histograms)
    assert table_row[2] == (h.scale, h.count, h.zero_count, bits(h.zero_threshold),
                            h.positive_offset, tuple(h.positive_counts.tolist()),
                            h.negative_offset, tuple(h.negative_counts.tolist()), bits(h.sum),
                            bits(h.min), bits(h.max))  # fmt: skip


# --------------------------------------------------------------------------- stale markers


def test_no_recorded_value_becomes_the_stale_marker_on_every_row() -> None:
    m = metrics_pb2.Metric(name="rpc")
    m.summary.data_points.add(time_unix_nano=T, count=3, sum=1.0, flags=1).quantile_values.add(
        quantile=0.5, value=1.0
    )
    stale_exp = exponential_to_proto(ExponentialHistogram.from_values([1.0]), time_unix_nano=T)
    stale_exp.flags = 1
    e = metrics_pb2.Metric(name="e")
    e.exponential_histogram.aggregation_temporality = CUMULATIVE
    e.exponential_histogram.data_points.append(stale_exp)
    c = one(request(
        gauge("g", number(None, flags=1)),
        total("c", number(5, flags=1)),
        histogram("h", [1.0], [1, 2], flags=1),
        m, e,
    ))  # fmt: skip
    values = c.floats.column("value").to_numpy().view(np.uint64)
    assert len(values) == 2 + 4 + 3 and set(values.tolist()) == {STALE_BITS}
    (h,) = c.histograms.column("histogram").to_pylist()
    assert (h["count"], h["positive_counts"], bits(h["sum"])) == (0, [], STALE_BITS)


def test_stale_markers_survive_a_write_and_read_bit_for_bit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    c = one(request(gauge("g", number(1.0, t=T), number(None, t=T + 10**9, flags=1))))
    with ta.open(tmp_path / "db") as db:
        db.write(c.floats)
        got = db.select("g").collect().sort("timestamp")["value"].to_numpy()
    assert got.view(np.uint64).tolist() == [bits(1.0), STALE_BITS]


# --------------------------------------------------------------------------- labels


def test_colliding_attributes_join_their_values_in_key_order() -> None:
    point = number(1.0)
    point.attributes.extend(attrs([("a_b", "2"), ("a.b", "1"), ("a-b", "0"), ("b", "x")]))
    (row,) = rows(one(request(gauge("g", point))).floats)
    assert (row["a_b"], row["b"]) == ("0;1;2", "x")  # a-b < a.b < a_b


def test_resource_scope_and_name_labels_override_attributes_promoted_ones_do_not() -> None:
    point = number(1.0, job="mine", instance="me", otel_scope_name="x", host_name="attr",
                   __name__="nope", value="v", le="0.1")  # fmt: skip
    h = histogram("h", [1.0], [0, 1], le="0.1")
    c = one(request(gauge("g", point), h, resource=RESOURCE, scope="lib", version="1.0"),
            promote_resource_attributes=["host.name", "service.name", "absent"])  # fmt: skip
    by_name = {r["__name__"] + r.get("le", ""): r for r in rows(c.floats)}
    g = by_name["g0.1"]
    assert (g["job"], g["instance"], g["otel_scope_name"]) == ("prod/shop", "i-1", "lib")
    assert (g["host_name"], g["exported_value"], g["le"]) == ("attr", "v", "0.1")
    assert g["service_name"] == "shop"  # promoted: no attribute of that name
    assert by_name["h_seconds_bucket1"]["le"] == "1"  # the bucket's own le wins
    assert by_name["h_seconds_count0.1"]["le"] == "0.1"  # other rows keep the attribute
    assert by_name["h_seconds_bucket1"]["host_name"] == "h1"  # promoted on this one


def test_scope_labels_need_a_scope_name_and_take_its_attributes() -> None:
    req = request(gauge("g", number(1.0)), scope="lib", version="2")
    req.resource_metrics[0].scope_metrics[0].schema_url = "https://s/1"
    req.resource_metrics[0].scope_metrics[0].scope.attributes.extend(attrs({"team.name": "core"}))
    (row,) = rows(one(req).floats)
    assert {k: v for k, v in row.items() if k.startswith("otel")} == {
        "otel_scope_name": "lib",
        "otel_scope_version": "2",
        "otel_scope_schema_url": "https://s/1",
        "otel_scope_team_name": "core",
    }
    nameless = request(gauge("g", number(1.0)), version="2")
    (row,) = rows(one(nameless).floats)
    assert not any(k.startswith("otel") for k in row)


def test_target_info_needs_an_identity_and_another_attribute() -> None:
    for resource, want in [
        ({"service.name": "a"}, []),  # job only
        ({"host.name": "h"}, []),  # no job or instance
        ({"service.instance.id": "1", "a.b": "x", "a_b": "y"}, [{"a_b": "x;y", "instance": "1"}]),
    ]:
        c = one(request(gauge("g", number(1.0)), resource=resource))
        got = [{k: v for k, v in r.items() if k not in ("timestamp", "value", "__name__")}
               for r in rows(c.target_info)]  # fmt: skip
        assert got == want


def test_target_info_is_sampled_every_half_lookback_and_at_most_64_times() -> None:
    step = 150 * 10**9
    assert target_info_times(T, T).tolist() == [MS]
    assert target_info_times(T, T + step).tolist() == [MS, MS + 150_000]
    assert target_info_times(T, T + step + 1).tolist() == [MS, MS + 150_000]  # same ms
    assert target_info_times(T, T + step + 10**6).tolist() == [MS, MS + 150_000, MS + 150_001]
    long = target_info_times(T, T + 1000 * step + 5)
    assert len(long) == 64 and long[-1] == (T + 1000 * step + 5) // 10**6
    assert (np.diff(long[:-1]) == 150_000).all()
    c = one(request(gauge("g", number(1.0, t=T), number(2.0, t=T + 2 * step)),
                    resource={"service.name": "s", "os": "linux"}))  # fmt: skip
    assert [r["timestamp"] for r in rows(c.target_info)] == [MS, MS + 150_000, MS + 300_000]


def test_the_stored_delta_key_is_the_series_ref() -> None:
    state = DeltaState()
    one(request(total("c", number(2, route="/a"), temporality=DELTA), resource=RESOURCE),
        delta=state)  # fmt: skip
    labels = {"__name__": "c_total", "route": "/a", "job": "prod/shop", "instance": "i-1"}
    key = np.array([series_ref(labels)], dtype=np.uint64)
    assert len(state) == 1 and state.accumulate(key, np.array([MS]), np.array([0.0]))[0][0] == 2.0


# --------------------------------------------------------------------------- delta


def test_delta_sums_and_histograms_accumulate_across_requests() -> None:
    state = DeltaState()

    def send(*points: metrics_pb2.NumberDataPoint) -> list[tuple[int, float]]:
        c = one(request(total("c", *points, temporality=DELTA)), delta=state)
        return [
            (r["timestamp"], r["value"])
            for r in sorted(rows(c.floats), key=lambda r: r["timestamp"])
        ]

    first = send(number(2, t=T + 2 * 10**9), number(3, t=T + 10**9))
    assert first == [(MS + 1000, 3.0), (MS + 2000, 5.0)]  # summed in time order
    assert send(number(1.5, t=T + 3 * 10**9)) == [(MS + 3000, 6.5)]
    stale = send(number(None, t=T + 4 * 10**9, flags=1))
    assert bits(stale[0][1]) == STALE_BITS
    assert send(number(1, t=T + 5 * 10**9)) == [(MS + 5000, 7.5)]
    hist = one(request(histogram("h", [1.0], [1, 1], temporality=DELTA)), delta=state)
    hist = one(request(histogram("h", [1.0], [2, 0], temporality=DELTA)), delta=state)
    got = {(r["__name__"], r.get("le")): r["value"] for r in rows(hist.floats)}
    assert got == {("h_seconds_bucket", "1"): 3.0, ("h_seconds_bucket", "+Inf"): 4.0,
                   ("h_seconds_count", None): 4.0, ("h_seconds_sum", None): 25.0}  # fmt: skip


def test_a_delta_total_past_the_largest_float_is_inf() -> None:
    """Two deltas of half the largest float sum past it: the total is +inf, with no warning
    (hypothesis found this in the reference, which summed numpy scalars)."""
    state = DeltaState()
    big = float(np.finfo(np.float64).max) / 2 + 1e292
    values = []
    for k in range(2):
        c = one(request(total("c", number(big, t=T + k * 10**9), temporality=DELTA)), delta=state)
        values += [r["value"] for r in rows(c.floats)]
    assert values == [big, float("inf")]


def test_a_restart_starts_delta_totals_from_zero_which_reads_as_a_counter_reset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with ta.open(tmp_path / "db") as db:
        state = DeltaState()
        for i in range(3):
            c = one(
                request(total("c", number(10, t=T + i * 10**9), temporality=DELTA)), delta=state
            )
            db.write(c.floats)
        state = DeltaState()  # the server restarted
        c = one(request(total("c", number(10, t=T + 3 * 10**9), temporality=DELTA)), delta=state)
        db.write(c.floats)
        got = db.select("c_total").collect().sort("timestamp")["value"].to_list()
    assert got == [10.0, 20.0, 30.0, 10.0]


def test_undo_takes_back_a_request_that_was_not_stored() -> None:
    state = DeltaState()
    first = one(request(total("c", number(4), temporality=DELTA)), delta=state)
    assert first.delta_change is not None
    failed = one(request(total("c", number(100, t=T + 10**9), temporality=DELTA)), delta=state)
    state.undo(failed.delta_change)
    again = one(request(total("c", number(100, t=T + 10**9), temporality=DELTA)), delta=state)
    assert rows(again.floats)[0]["value"] == 104.0
    assert one(request(gauge("g", number(1.0))), delta=state).delta_change is None


def test_delta_state_forgets_the_least_recently_updated_series_beyond_its_cap() -> None:
    state = DeltaState(max_series=2)
    refs = np.array([1, 2, 3], dtype=np.uint64)
    state.accumulate(refs[:2], np.array([10, 20]), np.array([1.0, 1.0]))
    state.accumulate(refs[2:], np.array([30]), np.array([1.0]))
    assert len(state) == 2
    out, _ = state.accumulate(refs, np.array([40, 40, 40]), np.array([1.0, 1.0, 1.0]))
    assert out.tolist() == [1.0, 2.0, 2.0]  # series 1 was forgotten: it starts again


def test_delta_without_a_state_is_refused_and_cumulative_kept() -> None:
    req = request(total("d", number(1), temporality=DELTA), total("c", number(1)))
    c = convert_request(req.SerializeToString())
    assert (c.accepted_points, c.rejected_points) == (1, 1)
    assert c.errors == ["metric 'd': 1 data point rejected: delta temporality needs the running "
                        "totals a server keeps (DeltaState)"]  # fmt: skip
    assert [r["__name__"] for r in rows(c.floats)] == ["c_total"]


# --------------------------------------------------------------------------- refused points


def test_invalid_points_are_refused_one_by_one_and_explained() -> None:
    bad_h = histogram("h", [1.0, 2.0], [1, 1])  # counts one short
    bad_h.histogram.data_points.add(time_unix_nano=T, count=5, explicit_bounds=[2.0, 1.0],
                                    bucket_counts=[1, 1, 1])  # fmt: skip
    bad_h.histogram.data_points.add(time_unix_nano=T, count=5, explicit_bounds=[1.0],
                                    bucket_counts=[1, 1])  # fmt: skip
    bad_h.histogram.data_points.add(time_unix_nano=T, count=2, explicit_bounds=[1.0],
                                    bucket_counts=[1, 1])  # fmt: skip
    nameless = gauge("", number(1.0))
    unknown = metrics_pb2.Metric(name="mystery")  # no data of a known type
    no_temporality = total("t", number(1), temporality=0)
    req = request(
        gauge("g", number(1.0), number(2.0, t=0), number(3.0, t=2**64 - 5), number(None)),
        bad_h, nameless, unknown, no_temporality,
        gauge("dup", number(1.0, **{"a": "1"}), number(1.0, t=T + 1)),
    )  # fmt: skip
    req.resource_metrics[0].scope_metrics[0].metrics[-1].gauge.data_points[0].attributes.extend(
        attrs({"a": "2"})
    )
    c = convert_request(req.SerializeToString())
    assert (c.accepted_points, c.rejected_points) == (3, 10)
    assert c.errors == [
        "metric 'g': 2 data points rejected: time_unix_nano is 0 or before 1970",
        "metric 'g': 1 data point rejected: the data point has neither as_double nor as_int",
        "metric 'h': 1 data point rejected: bucket_counts must hold one count more than "
        "explicit_bounds",
        "metric 'h': 1 data point rejected: explicit_bounds must be increasing numbers",
        "metric 'h': 1 data point rejected: count differs from the sum of bucket_counts",
        "metric '': 1 data point rejected: the metric has no name",
        "metric 'mystery': 1 data point rejected: the metric holds no gauge, sum, histogram, "
        "exponential histogram or summary",
        "metric 't': 1 data point rejected: its aggregation temporality is neither DELTA nor "
        "CUMULATIVE",
        "metric 'dup': 1 data point rejected: two attributes have the same key",
    ]
    assert c.error_message.startswith("metric 'g': 2 data points rejected")
    got = sorted((r["__name__"], r["value"]) for r in rows(c.floats))
    assert got == [("dup", 1.0), ("g", 1.0), ("h_seconds_bucket", 1.0), ("h_seconds_bucket", 2.0),
                   ("h_seconds_count", 2.0)]  # fmt: skip


def test_invalid_exponential_points_are_refused() -> None:
    good = ExponentialHistogram.from_values([1.0, 2.0])
    m = exponential("e", good, good, good, good, good)
    points = m.exponential_histogram.data_points
    points[0].count += 1
    points[1].scale = 21
    points[2].zero_threshold = math.nan
    points[3].min, points[3].max = 3.0, 1.0
    c = convert_request(request(m).SerializeToString())
    assert (c.accepted_points, c.rejected_points) == (1, 4)
    assert [e.split(": ", 2)[2] for e in c.errors] == [
        "count differs from zero_count plus the bucket counts", "scale outside -10..20",
        "zero_threshold is negative or not finite", "min is greater than max",
    ]  # fmt: skip


def test_hostile_attributes_are_refused_within_the_limits() -> None:
    many = number(1.0)
    many.attributes.extend(attrs({f"k{i}": "v" for i in range(100_000)}))
    huge = number(2.0, big="x" * 1_000_000)
    long_key = number(3.0, **{"k" * 2000: "v"})
    empty_key = number(4.0, **{"": "v"})
    ok = number(5.0, fine="yes")
    c = convert_request(
        request(gauge("g", many, huge, long_key, empty_key, ok)).SerializeToString()
    )
    assert (c.accepted_points, c.rejected_points) == (1, 4)
    assert [e.split(": ", 2)[2] for e in c.errors] == [
        "more than 128 attributes", "an attribute value is longer than 65536 bytes",
        "an attribute key is longer than 1024 bytes", "an attribute has an empty key",
    ]  # fmt: skip
    assert rows(c.floats)[0]["fine"] == "yes" and c.floats.num_columns == 4


def test_too_many_distinct_label_names_refuse_the_points_past_the_limit() -> None:
    points = [number(float(i), **{f"k{i}": "v"}) for i in range(6)]
    c = convert_request(request(gauge("g", *points)).SerializeToString(),
                        limits=OtlpLimits(max_label_names=4))  # fmt: skip
    assert (c.accepted_points, c.rejected_points) == (4, 2)
    assert c.errors == ["metric 'g': 2 data points rejected: the request has more than 4 "
                        "distinct attribute names"]  # fmt: skip


def test_target_info_past_the_label_name_limit_is_left_out_and_said() -> None:
    req = Request()
    for i in range(3):
        other = request(
            gauge("g", number(1.0)),
            resource={"service.name": f"s{i}", f"k{i}.a": "x", f"k{i}.b": "y"},
        )
        req.resource_metrics.extend(other.resource_metrics)
    c = convert_request(req.SerializeToString(), limits=OtlpLimits(max_label_names=4))
    assert c.rejected_points == 0 and c.accepted_points == 3
    assert c.errors == ["target_info of 1 resources left out: more than 4 distinct resource "
                        "attribute names in one request"]  # fmt: skip
    assert sorted(r["job"] for r in rows(c.target_info)) == ["s0", "s1"]


def test_errors_are_capped_with_a_count_of_the_rest() -> None:
    req = request(*[gauge(f"m{i}", number(1.0, t=0)) for i in range(13)])
    c = convert_request(req.SerializeToString(), limits=OtlpLimits(max_errors=10))
    assert len(c.errors) == 11 and c.errors[-1] == "and 3 more"
    assert c.rejected_points == 13


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    "body",
    [
        b"\x0a\x05\x12\x03",  # a length past the end
        b"\xff" * 11,  # a varint of 11 bytes
        b"\x08",  # a truncated varint field
        b"\x00\x01",  # field number 0
        b"\x0f",  # wire type 7
    ],
)
def test_undecodable_bodies_raise_an_input_error(body: bytes) -> None:
    with pytest.raises(OtlpDecodeError, match="not a valid OTLP ExportMetricsServiceRequest"):
        convert_request(body)
    assert issubclass(OtlpDecodeError, InputError)


def test_random_and_truncated_bodies_never_crash() -> None:
    rng = np.random.default_rng(7)
    full = _realistic().SerializeToString()
    for cut in range(0, len(full), max(1, len(full) // 200)):
        _convert_or_refuse(full[:cut])
    for _ in range(300):
        _convert_or_refuse(rng.integers(0, 256, rng.integers(1, 200), dtype=np.uint8).tobytes())
    for _ in range(200):
        flipped = bytearray(full)
        flipped[rng.integers(len(flipped))] ^= 1 << rng.integers(8)
        _convert_or_refuse(bytes(flipped))


def _convert_or_refuse(body: bytes) -> None:
    """Either the protobuf library and convert_request both refuse the body, or both read it
    and the conversion equals the reference's."""
    try:
        message = Request.FromString(body)
    except Exception:
        with pytest.raises(OtlpDecodeError):
            convert_request(body)
        return
    assert_same(convert_request(body, delta=DeltaState()), reference(message, totals={}))


def test_invalid_utf8_anywhere_the_library_checks_is_refused() -> None:
    req = request(gauge("g", number(1.0, key="\u00e9")))
    body = req.SerializeToString().replace("\u00e9".encode(), b"\xc3\x28")
    with pytest.raises(OtlpDecodeError):
        convert_request(body)
    name_body = request(gauge("\u00e9", number(1.0))).SerializeToString()
    with pytest.raises(OtlpDecodeError):
        convert_request(name_body.replace("\u00e9".encode(), b"\xed\xa0"))  # a surrogate


def _field(number_: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (tag and length as varints)."""
    out = bytearray()
    for x in (number_ << 3 | 2, len(payload)):
        while x >= 0x80:
            out.append(x & 0x7F | 0x80)
            x >>= 7
        out.append(x)
    return bytes(out) + payload


def test_unusual_but_valid_encodings_convert_as_the_library_reads_them() -> None:
    """Unknown fields (groups too), fields twice (merged), unpacked repeated counts."""
    req = _realistic()
    body = req.SerializeToString()
    unknown = b"\x98\x06\x07" + b"\xa3\x06\x08\x01\xa4\x06"  # varint 99, then group 100
    variants = [
        body + unknown,
        unknown + body,
        body + body,  # two requests in one: resource_metrics concatenate
    ]
    # a Metric whose gauge field comes twice: protobuf merges the data points
    g = metrics_pb2.Metric(name="g")
    g.gauge.data_points.append(number(1.0))
    twice = g.SerializeToString() + _field(5, metrics_pb2.Gauge(data_points=[number(2.0, t=T + 1)])
                                            .SerializeToString())  # fmt: skip
    rm = _field(2, _field(2, twice))
    variants.append(_field(1, rm))
    # unpacked bucket counts and bounds
    hp = metrics_pb2.HistogramDataPoint(time_unix_nano=T, count=3, sum=1.0)
    unpacked = hp.SerializeToString()
    for c in (1, 2):
        unpacked += b"\x31" + struct.pack("<Q", c)  # field 6, fixed64, one at a time
    unpacked += b"\x39" + struct.pack("<d", 0.5)  # field 7, double
    h = _field(1, unpacked) + b"\x10\x02"
    variants.append(_field(1, _field(2, _field(2, b"\x0a\x01h" + _field(9, h)))))
    # a KeyValue with its fields in reverse order, and a non-ASCII one (the slow path)
    kv = _field(2, _field(1, b"v")) + _field(1, b"k")
    p = metrics_pb2.NumberDataPoint(time_unix_nano=T, as_double=1.0).SerializeToString()
    p += _field(7, kv) + _field(7, common_pb2.KeyValue(key="\u00e9", value=value("\u00e8"))
                                .SerializeToString())  # fmt: skip
    variants.append(_field(1, _field(2, _field(2, b"\x0a\x01g" + _field(5, _field(1, p))))))
    for body_ in variants:
        message = Request.FromString(body_)
        assert_same(convert_request(body_, delta=DeltaState()), reference(message, totals={}))
    c = convert_request(variants[-1])
    assert rows(c.floats)[0]["k"] == "v" and rows(c.floats)[0]["key_"] == "\u00e8"
    assert convert_request(variants[-2]).floats.num_rows == 4


def test_a_message_object_converts_as_its_bytes() -> None:
    req = _realistic()
    a, b = convert_request(req), convert_request(req.SerializeToString())
    assert table_rows(a.floats) == table_rows(b.floats)
    assert table_rows(a.histograms) == table_rows(b.histograms)


def test_an_empty_request_converts_to_nothing() -> None:
    c = convert_request(b"")
    assert (c.tables, c.accepted_points, c.rejected_points, c.errors) == ([], 0, 0, [])


def test_requests_larger_than_the_first_table_guess_convert_whole() -> None:
    """Tiny points (no attributes) overflow the first estimate; the walk grows and restarts."""
    req = request(gauge("g", *[number(float(i), t=T + i) for i in range(20_000)]))
    req.resource_metrics.extend([request(gauge("x", number(1.0))).resource_metrics[0]] * 40)
    c = one(req)
    assert c.floats.num_rows == 20_040 and c.accepted_points == 20_040


# --------------------------------------------------------------------------- reference


def _realistic() -> Request:
    point = number(2.0, method="GET", code=200, ok=True)
    return request(
        gauge("cpu", number(0.5, cpu=0), unit="1"),
        total("reqs", point, number(3, t=T + 10**9, method="PUT")),
        histogram("lat", [0.1, 1.0], [1, 2, 3], route="/"),
        exponential("exp", ExponentialHistogram.from_values([1.0, 2.0, -3.0])),
        resource=RESOURCE, scope="lib", version="1.0",
    )  # fmt: skip


@given(requests())
@settings(max_examples=120, deadline=None)
def test_random_requests_convert_as_the_reference(req: Request) -> None:
    promote = ("host.name", "job")
    state, totals = DeltaState(), {}
    for _ in range(2):  # twice: delta totals carry over
        c = convert_request(
            req.SerializeToString(), delta=state, promote_resource_attributes=promote
        )
        assert_same(c, reference(req, totals=totals, promote=promote))


@given(requests(temporalities=[2]))
@settings(max_examples=40, deadline=None)
def test_random_requests_write_to_a_database(tmp_path_factory, req: Request) -> None:  # type: ignore[no-untyped-def]
    c = convert_request(req.SerializeToString())
    with ta.open(tmp_path_factory.mktemp("db")) as db:
        for table in c.tables:
            db.write(table)


# --------------------------------------------------------------------------- the real SDK


def test_a_real_sdk_export_converts_writes_and_reads_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource

    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": "shop", "service.instance.id": "i-1",
                                  "deployment.environment": "test"}),
        metric_readers=[reader],
        views=[View(instrument_name="queue.wait",
                    aggregation=ExponentialBucketHistogramAggregation())],
    )  # fmt: skip
    meter = provider.get_meter("shop.meter", "0.1")
    requests_ = meter.create_counter("http.server.requests", unit="{request}")
    depth = meter.create_up_down_counter("queue.depth")
    duration = meter.create_histogram("http.server.duration", unit="ms")
    wait = meter.create_histogram("queue.wait", unit="s")
    meter.create_observable_gauge(
        "process.cpu.utilization", unit="1",
        callbacks=[lambda _: [Observation(0.75, {"cpu": "0"})]],
    )  # fmt: skip
    for i in range(10):
        requests_.add(1, {"http.method": "GET", "http.status_code": 200})
        depth.add(1 if i % 3 else -1)
        duration.record(3.0 * i, {"http.route": "/cart"})
        wait.record(0.01 * (i + 1))
    c = one(encode_metrics(reader.get_metrics_data()))
    provider.shutdown()
    assert c.accepted_points == 5
    with ta.open(tmp_path / "db") as db:
        for table in c.tables:
            db.write(table)
        got = db.select('{job="shop"}').collect()
        by_name = {n: g for (n,), g in got.group_by("__name__")}
        total_ = by_name["http_server_requests_total"]
        assert total_["value"].to_list() == [10.0]
        assert total_["http_status_code"].to_list() == ["200"]
        assert total_["http_method"].to_list() == ["GET"]
        assert total_["otel_scope_name"].to_list() == ["shop.meter"]
        assert by_name["queue_depth"]["value"].to_list() == [2.0]  # 6 up, 4 down
        assert by_name["process_cpu_utilization_ratio"]["value"].to_list() == [0.75]
        assert by_name["http_server_duration_milliseconds_sum"]["value"].to_list() == [135.0]
        inf = by_name["http_server_duration_milliseconds_bucket"].filter(pl.col("le") == "+Inf")
        assert inf["value"].to_list() == [10.0]
        five = by_name["http_server_duration_milliseconds_bucket"].filter(pl.col("le") == "5")
        assert five["value"].to_list() == [2.0]  # 0 and 3
        hist = db.select_histograms("queue_wait_seconds").collect()
        assert hist["histogram"].to_list()[0]["count"] == 10
        info = db.select("target_info").collect()
        assert info["deployment_environment"].to_list() == ["test"]
        assert info["telemetry_sdk_language"].to_list() == ["python"]


def test_the_benchmark_runs_at_a_tiny_size(capsys) -> None:  # type: ignore[no-untyped-def]
    from benchmarks import otlp_convert

    otlp_convert.main(["--points", "300", "--repeat", "1"])
    out = capsys.readouterr().out
    for case in ("gauges, 5 attributes", "counters (delta, summed up)", "exponential histograms",
                 "protobuf decoding alone", "Database.write"):  # fmt: skip
        assert case in out
