"""OpenTelemetry conversions on real SDK output: exponential points both ways, explicit buckets."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from tests.sketch.test_exponential import STALE_NAN, mixed_values, sdk_record
from tsdb_arrow.errors import MissingDependencyError, SketchError, TsdbError
from tsdb_arrow.sketch.exponential.histogram import ExponentialHistogram
from tsdb_arrow.sketch.fixed.histogram import FixedBucketHistogram
from tsdb_arrow.sketch.otlp import (
    explicit_to_fixed,
    exponential_from_otel,
    exponential_to_proto,
)

# --------------------------------------------------------------------------- exponential


@pytest.mark.parametrize(("max_size", "max_scale"), [(160, 20), (20, 20), (5, 3), (64, -1)])
def test_sdk_point_converts_bit_exactly(max_size: int, max_scale: int) -> None:
    values = mixed_values(max_size - max_scale, n=1500)
    point = sdk_record(values, max_size=max_size, max_scale=max_scale)
    h = exponential_from_otel(point)
    assert (h.scale, h.count, h.zero_count) == (point.scale, point.count, point.zero_count)
    assert h.positive_offset == point.positive.offset
    assert h.negative_offset == point.negative.offset
    assert h.positive_counts.tolist() == list(point.positive.bucket_counts)
    assert h.negative_counts.tolist() == list(point.negative.bucket_counts)
    assert (h.sum, h.min, h.max) == (point.sum, point.min, point.max)
    assert h.zero_count == np.count_nonzero(values == 0) > 0
    assert h.negative_counts.sum() == np.count_nonzero(values < 0) > 0


def test_proto_round_trip_of_sdk_output() -> None:
    point = sdk_record(mixed_values(2, n=1000), max_size=40)
    h = exponential_from_otel(point)
    proto = exponential_to_proto(h, start_time_unix_nano=5, time_unix_nano=point.time_unix_nano)
    wire = metrics_pb2.ExponentialHistogramDataPoint.FromString(proto.SerializeToString())
    assert wire.scale == point.scale and wire.count == point.count
    assert wire.zero_count == point.zero_count and wire.zero_threshold == 0.0
    assert (wire.positive.offset, list(wire.positive.bucket_counts)) == (
        point.positive.offset,
        list(point.positive.bucket_counts),
    )
    assert (wire.negative.offset, list(wire.negative.bucket_counts)) == (
        point.negative.offset,
        list(point.negative.bucket_counts),
    )
    assert (wire.sum, wire.min, wire.max) == (point.sum, point.min, point.max)
    assert (wire.start_time_unix_nano, wire.time_unix_nano) == (5, point.time_unix_nano)
    assert exponential_from_otel(wire) == h


def test_proto_optional_fields_and_zero_threshold() -> None:
    wire = metrics_pb2.ExponentialHistogramDataPoint(
        scale=-3, count=4, zero_count=1, zero_threshold=1e-9
    )
    wire.negative.offset = -7
    wire.negative.bucket_counts.extend([2, 0, 2**63 + 1 - 2**63])
    h = exponential_from_otel(wire)
    assert math.isnan(h.sum) and math.isnan(h.min) and math.isnan(h.max)
    assert h.zero_threshold == 1e-9 and h.negative_offset == -7
    back = exponential_to_proto(h)
    assert not back.HasField("sum") and not back.HasField("min") and not back.HasField("max")
    assert exponential_from_otel(back) == h


def test_huge_counts_survive_the_proto() -> None:
    big = 2**64 - 2
    h = ExponentialHistogram(
        scale=20,
        count=big + 1,
        zero_count=1,
        positive_offset=2**30,
        positive_counts=np.array([big], dtype=np.uint64),
        sum=STALE_NAN,
    )
    wire = metrics_pb2.ExponentialHistogramDataPoint.FromString(
        exponential_to_proto(h).SerializeToString()
    )
    assert list(wire.positive.bucket_counts) == [big] and wire.count == big + 1
    back = exponential_from_otel(wire)
    assert back.positive_counts.tolist() == [big] and math.isnan(back.sum)
    # small and >= 2**63 counts together: read as integers, not through float64
    mixed = metrics_pb2.ExponentialHistogramDataPoint(scale=0, count=2**63 + 4)
    mixed.negative.bucket_counts.extend([1, 2**63 + 3])
    assert exponential_from_otel(mixed).negative_counts.tolist() == [1, 2**63 + 3]


def test_sdk_without_min_max_gives_nan() -> None:
    """The SDK reports 'no min/max' as +inf/-inf (record_min_max off, or nothing recorded)."""
    point = sdk_record(np.array([1.0, 2.0]))
    no_minmax = dataclasses.replace(point, min=math.inf, max=-math.inf)
    h = exponential_from_otel(no_minmax)
    assert math.isnan(h.min) and math.isnan(h.max)


def test_exponential_from_otel_refuses_other_types_and_bad_points() -> None:
    with pytest.raises(SketchError, match="ExponentialHistogramDataPoint"):
        exponential_from_otel(metrics_pb2.HistogramDataPoint())  # type: ignore[arg-type]
    wire = metrics_pb2.ExponentialHistogramDataPoint(scale=25, count=0)
    with pytest.raises(SketchError, match="scale 25 is out of range"):
        exponential_from_otel(wire)
    wire = metrics_pb2.ExponentialHistogramDataPoint(scale=2, count=3)
    wire.positive.bucket_counts.extend([1, 1])
    with pytest.raises(SketchError, match="count is 3 but"):
        exponential_from_otel(wire)
    point = sdk_record(np.array([1.0, -2.0]))
    bad = dataclasses.replace(point, zero_count=-1, count=1)
    with pytest.raises(SketchError, match="zero_count"):
        exponential_from_otel(bad)


# --------------------------------------------------------------------------- explicit buckets


def sdk_explicit(values: np.ndarray, boundaries: list[float]) -> HistogramDataPoint:
    """Record into the real SDK with ``ExplicitBucketHistogramAggregation(boundaries)``."""
    reader = InMemoryMetricReader()
    view = View(
        instrument_name="x", aggregation=ExplicitBucketHistogramAggregation(boundaries=boundaries)
    )
    provider = MeterProvider(metric_readers=[reader], views=[view])
    meter = provider.get_meter("tsdb-arrow-tests")
    add = (
        meter.create_up_down_counter("x").add
        if np.any(values < 0)
        else meter.create_histogram("x").record
    )
    for v in values.tolist():
        add(v)
    data = reader.get_metrics_data()
    provider.shutdown()
    (point,) = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert isinstance(point, HistogramDataPoint)
    return point


def _proto_of(point: HistogramDataPoint) -> metrics_pb2.HistogramDataPoint:
    return metrics_pb2.HistogramDataPoint(
        count=point.count,
        sum=point.sum,
        bucket_counts=list(point.bucket_counts),
        explicit_bounds=list(point.explicit_bounds),
        min=point.min,
        max=point.max,
    )


@pytest.mark.parametrize(
    "boundaries",
    [
        [0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 1000.0],
        [-10.0, -1.0, 0.0, 1.0, 10.0],
        [1.0],
        [],
    ],
)
def test_sdk_explicit_histogram_maps_onto_le_buckets(boundaries: list[float]) -> None:
    rng = np.random.default_rng(len(boundaries))
    values = np.concatenate(
        [rng.lognormal(2, 2, 1500), np.array(boundaries * 3), [0.0, 1e9]]  # bounds themselves
    )
    if boundaries and boundaries[0] < 0:
        values = np.concatenate([values, -rng.lognormal(1, 1, 300)])
    point = sdk_explicit(values, boundaries)
    fixed = explicit_to_fixed(point)
    assert fixed.bounds.tolist() == list(point.explicit_bounds) == boundaries
    assert fixed.counts.tolist() == list(point.bucket_counts)
    assert fixed.count == point.count == values.size and fixed.sum == point.sum
    # (lower, upper] like Prometheus le: a value equal to a bound counts in that bound's bucket
    by_le = FixedBucketHistogram.from_values(values, boundaries)
    assert fixed.counts.tolist() == by_le.counts.tolist()
    assert explicit_to_fixed(_proto_of(point)) == fixed


def test_explicit_proto_without_sum_and_with_an_infinite_last_bound() -> None:
    wire = metrics_pb2.HistogramDataPoint(
        count=6, bucket_counts=[1, 2, 3, 0], explicit_bounds=[1.0, 2.0, math.inf]
    )
    fixed = explicit_to_fixed(wire)
    assert math.isnan(fixed.sum)
    assert fixed.bounds.tolist() == [1.0, 2.0] and fixed.counts.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"bucket_counts": [1, 2], "explicit_bounds": [1.0, 2.0], "count": 3}, "one more count"),
        (
            {"bucket_counts": [1, 2, 3, 4], "explicit_bounds": [1.0, 2.0], "count": 10},
            "one more count",
        ),
        (
            {"bucket_counts": [1, 1, 1], "explicit_bounds": [2.0, 1.0], "count": 3},
            "increase strictly",
        ),
        (
            {"bucket_counts": [1, 1, 1], "explicit_bounds": [1.0, 1.0], "count": 3},
            "increase strictly",
        ),
        ({"bucket_counts": [1, 1, 1], "explicit_bounds": [1.0, math.nan], "count": 3}, "NaN"),
        ({"bucket_counts": [1, 1, 1], "explicit_bounds": [-math.inf, 1.0], "count": 3}, "finite"),
        ({"bucket_counts": [1, 1, 1], "explicit_bounds": [1.0, 2.0], "count": 4}, "add up to 3"),
        ({"bucket_counts": [2**53, 1], "explicit_bounds": [1.0], "count": 2**53 + 1}, "2\\*\\*53"),
    ],
)
def test_bad_explicit_points_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(SketchError, match=message):
        explicit_to_fixed(metrics_pb2.HistogramDataPoint(**fields))


def test_bad_sdk_explicit_points_are_refused() -> None:
    point = sdk_explicit(np.array([1.0, 2.0, 30.0]), [1.0, 10.0])
    with pytest.raises(SketchError, match=r"bucket_counts\[1\] is -1"):
        explicit_to_fixed(dataclasses.replace(point, bucket_counts=[1, -1, 3], count=3))
    with pytest.raises(SketchError, match="must hold integers"):
        explicit_to_fixed(dataclasses.replace(point, bucket_counts=[1.0, 1.0, 1.0]))
    with pytest.raises(SketchError, match="HistogramDataPoint"):
        explicit_to_fixed(sdk_record(np.array([1.0])))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- without the SDK


def test_without_the_sdk_protobuf_points_convert_and_sdk_points_name_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK is the optional ``otel`` extra: only SDK data points need it."""
    values = mixed_values(3, 200)
    sdk_point = sdk_record(values)
    wire = exponential_to_proto(exponential_from_otel(sdk_point))
    explicit = metrics_pb2.HistogramDataPoint(bucket_counts=[1, 2], explicit_bounds=[1.0], count=3)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.metrics", None)  # import fails
    with pytest.raises(ImportError):
        import opentelemetry.sdk.metrics  # noqa: F401
    assert exponential_from_otel(wire).count == values.size
    assert explicit_to_fixed(explicit).counts.tolist() == [1.0, 2.0]
    for convert in (exponential_from_otel, explicit_to_fixed):
        with pytest.raises(MissingDependencyError, match=r"pip install 'tsdb-arrow\[otel\]'") as e:
            convert(sdk_point)  # type: ignore[arg-type]
        assert isinstance(e.value, TsdbError) and "ExponentialHistogramDataPoint" in str(e.value)
    for not_a_point in (42, {"count": 3}):  # not an SDK object: refused as such, SDK or not
        for convert in (exponential_from_otel, explicit_to_fixed):
            with pytest.raises(SketchError, match="expected an OpenTelemetry"):
                convert(not_a_point)  # type: ignore[arg-type]


def test_no_module_imports_the_sdk_at_import_time() -> None:
    """A plain install (no extras) imports every module of the package."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        sys.modules["opentelemetry.sdk"] = None  # as if the otel extra were not installed
        import tsdb_arrow
        names = [m.name for m in pkgutil.walk_packages(tsdb_arrow.__path__, "tsdb_arrow.")]
        for name in names:
            importlib.import_module(name)
        tsdb_arrow.sketch.quantiles
        print(len(names))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 40
