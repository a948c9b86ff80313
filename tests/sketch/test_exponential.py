"""ExponentialHistogram: SDK-exact bucketing, downscaling and merging, bytes, bad input.

The reference throughout is the real OpenTelemetry SDK: values are recorded through a
``MeterProvider`` whose ``View`` uses ``ExponentialBucketHistogramAggregation`` and read back with
an ``InMemoryMetricReader``. The SDK's ``Histogram`` instrument refuses negative values, so data
with negatives goes through an ``UpDownCounter`` under the same view (same aggregation class).
"""

from __future__ import annotations

import math
import struct
from decimal import ROUND_CEILING, Decimal, localcontext

import numpy as np
import pytest
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping as PackageMapping
from ddsketch.store import DenseStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping.exponent_mapping import (
    ExponentMapping,
)
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping.logarithm_mapping import (
    LogarithmMapping,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    InMemoryMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from tsdb_arrow.errors import SketchError, TsdbError
from tsdb_arrow.sketch.ddsketch.mapping import LogarithmicMapping
from tsdb_arrow.sketch.ddsketch.sketch import Sketch
from tsdb_arrow.sketch.exponential.ddsketch import from_sketch, to_sketch
from tsdb_arrow.sketch.exponential.histogram import ExponentialHistogram
from tsdb_arrow.sketch.exponential.index import lower_boundary, map_to_index
from tsdb_arrow.sketch.otlp import exponential_from_otel

STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
NEG_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000001))[0]
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- SDK helpers


def _provider(*readers: InMemoryMetricReader, max_size: int, max_scale: int) -> MeterProvider:
    view = View(
        instrument_name="x",
        aggregation=ExponentialBucketHistogramAggregation(max_size=max_size, max_scale=max_scale),
    )
    return MeterProvider(metric_readers=list(readers), views=[view])


def _point(reader: InMemoryMetricReader) -> ExponentialHistogramDataPoint:
    data = reader.get_metrics_data()
    (point,) = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert isinstance(point, ExponentialHistogramDataPoint)
    return point


def sdk_record(
    values: np.ndarray, *, max_size: int = 160, max_scale: int = 20
) -> ExponentialHistogramDataPoint:
    """Record ``values`` into the real SDK and collect the one exponential histogram point."""
    reader = InMemoryMetricReader()
    provider = _provider(reader, max_size=max_size, max_scale=max_scale)
    meter = provider.get_meter("tsdb-arrow-tests")
    if np.any(values < 0):
        add = meter.create_up_down_counter("x").add
    else:
        add = meter.create_histogram("x").record
    for v in values.tolist():
        add(v)
    point = _point(reader)
    provider.shutdown()
    return point


def mixed_values(seed: int, n: int = 3000) -> np.ndarray:
    """Positive, negative and zero values over many decades, plus exact powers of two."""
    rng = np.random.default_rng(seed)
    v = np.concatenate(
        [
            rng.lognormal(0.0, 3.0, n),
            -rng.lognormal(2.0, 1.5, n // 3),
            np.zeros(n // 20),
            2.0 ** np.arange(-12, 12),
            -(2.0 ** np.arange(-3, 3)),
        ]
    )
    rng.shuffle(v)
    return v


# --------------------------------------------------------------------------- index mapping


def _sdk_index(value: float, scale: int) -> int:
    mapping = ExponentMapping(scale) if scale <= 0 else LogarithmMapping(scale)
    return mapping.map_to_index(value)


@pytest.mark.parametrize("scale", [-10, -7, -2, -1, 0, 1, 2, 3, 7, 12, 16, 20])
def test_map_to_index_equals_the_sdk_mapping(scale: int) -> None:
    rng = np.random.default_rng(scale + 100)
    tiny = np.finfo(np.float64).tiny
    powers = 2.0 ** np.arange(-1074, 1024, 7, dtype=np.float64)
    edges = np.exp2(np.arange(-40, 40) * 2.0 ** -min(scale, 10) if scale > 0 else np.arange(-9, 9))
    values = np.concatenate(
        [
            np.exp(rng.uniform(-700, 700, 4000)),
            powers,
            np.nextafter(powers, np.inf),
            np.nextafter(powers, 0),
            edges,
            np.nextafter(edges, np.inf),
            np.nextafter(edges, 0),
            [tiny, tiny / 3, 5e-324, np.finfo(np.float64).max, 1.0],
        ]
    )
    values = values[(values > 0) & np.isfinite(values)]
    expected = np.array([_sdk_index(v, scale) for v in values.tolist()])
    np.testing.assert_array_equal(map_to_index(values, scale), expected)


def test_lower_boundary_is_the_bucket_edge() -> None:
    # base ** i < v <= base ** (i + 1) for values away from float rounding of the edge
    rng = np.random.default_rng(5)
    for scale in (-3, 0, 2, 8):
        v = np.exp(rng.uniform(-50, 50, 2000))
        i = map_to_index(v, scale)
        assert np.all(lower_boundary(i, scale) <= v * (1 + 1e-12))
        assert np.all(v <= lower_boundary(i + 1, scale) * (1 + 1e-12))
    np.testing.assert_array_equal(lower_boundary([-1, 0, 1, 3], 0), [0.5, 1.0, 2.0, 8.0])
    np.testing.assert_array_equal(lower_boundary([-1, 1], -2), [2.0**-4, 16.0])


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_map_to_index_refuses_values_without_a_bucket(bad: float) -> None:
    with pytest.raises(SketchError, match="positive finite"):
        map_to_index(np.array([1.0, bad]), 3)


# --------------------------------------------------------------------------- SDK bucketing


@pytest.mark.parametrize(
    ("max_size", "max_scale"), [(160, 20), (20, 20), (4, 5), (300, 3), (2, 0), (50, -2), (16, 8)]
)
def test_from_values_equals_sdk_point_bit_for_bit(max_size: int, max_scale: int) -> None:
    values = mixed_values(max_size + max_scale)
    point = sdk_record(values, max_size=max_size, max_scale=max_scale)
    from_sdk = exponential_from_otel(point)
    ours = ExponentialHistogram.from_values(values, scale=max_scale, max_size=max_size)
    assert from_sdk.trimmed() == ours  # counts, offsets, scale; sum/min/max bit for bit
    assert ours.positive_counts.size <= max_size and ours.negative_counts.size <= max_size


def test_positive_only_histogram_instrument() -> None:
    values = np.abs(mixed_values(7))
    point = sdk_record(values, max_size=64)
    assert point.negative.bucket_counts == [0]  # the SDK reports an empty side as one 0 bucket
    h = exponential_from_otel(point)
    assert h.negative_counts.tolist() == [0] and h.trimmed().negative_counts.size == 0
    assert h.trimmed() == ExponentialHistogram.from_values(values, max_size=64)


@pytest.mark.parametrize("scale", [-4, -1, 0, 3, 6])
def test_downscale_equals_sdk_at_the_coarser_scale(scale: int) -> None:
    values = mixed_values(11, n=800)
    fine = ExponentialHistogram.from_values(values, scale=12, max_size=None)
    point = sdk_record(values, max_size=16384, max_scale=scale)
    assert point.scale == scale
    assert fine.downscale(scale) == exponential_from_otel(point).trimmed()


def test_downscale_cannot_refine() -> None:
    h = ExponentialHistogram.from_values([1.0, 2.0, 3.0], scale=2)
    with pytest.raises(SketchError, match="finer scale"):
        h.downscale(3)
    assert h.downscale(2) == h.trimmed()


# --------------------------------------------------------------------------- merge


def test_merge_equals_the_sdks_own_cumulative_merge() -> None:
    """A delta reader sees batches A and B; a cumulative reader sees the SDK merge A + B."""
    rng = np.random.default_rng(3)
    batch_a = rng.uniform(1.0, 1.1, 500)  # narrow: ends at a fine scale
    batch_b = np.concatenate([rng.lognormal(0, 4, 700), -rng.lognormal(0, 4, 300), [0.0] * 9])
    delta = InMemoryMetricReader(
        preferred_temporality={UpDownCounter: AggregationTemporality.DELTA}
    )
    cumulative = InMemoryMetricReader()
    provider = _provider(delta, cumulative, max_size=120, max_scale=20)
    counter = provider.get_meter("t").create_up_down_counter("x")
    for v in batch_a.tolist():
        counter.add(v)
    a = exponential_from_otel(_point(delta))
    _point(cumulative)
    for v in batch_b.tolist():
        counter.add(v)
    b = exponential_from_otel(_point(delta))
    merged_by_sdk = exponential_from_otel(_point(cumulative))
    provider.shutdown()

    assert a.scale > b.scale  # the merge has to downscale A
    merged = a.merge(b, max_size=120)
    assert merged == merged_by_sdk.trimmed()  # counts bit-exact; sum a+b as the SDK adds it
    assert b.merge(a, max_size=120) == merged


@pytest.mark.parametrize(("size_a", "size_b"), [(160, 20), (400, 160), (8, 8)])
def test_merge_of_two_aggregations_equals_recording_the_union(size_a: int, size_b: int) -> None:
    rng = np.random.default_rng(size_a * size_b)
    va = np.concatenate([rng.uniform(0.5, 3.0, 600), -rng.uniform(0.5, 3.0, 100), [0.0]])
    vb = np.concatenate([rng.lognormal(3, 2, 900), -rng.lognormal(1, 1, 200)])
    a = exponential_from_otel(sdk_record(va, max_size=size_a))
    b = exponential_from_otel(sdk_record(vb, max_size=size_b))
    assert a.scale != b.scale
    union = np.concatenate([va, vb])
    size = min(size_a, size_b)
    by_sdk = exponential_from_otel(sdk_record(union, max_size=size)).trimmed()
    merged = a.merge(b, max_size=size)
    _assert_same_buckets(merged, by_sdk)
    assert merged.sum == pytest.approx(by_sdk.sum, rel=1e-12)  # addition order differs
    # without max_size the merge stops at the coarser input scale: the union downscaled there
    wide = exponential_from_otel(sdk_record(union, max_size=16384)).trimmed()
    _assert_same_buckets(a.merge(b), wide.downscale(min(a.scale, b.scale)))


def _assert_same_buckets(x: ExponentialHistogram, y: ExponentialHistogram) -> None:
    assert (x.scale, x.count, x.zero_count) == (y.scale, y.count, y.zero_count)
    assert (x.positive_offset, x.negative_offset) == (y.positive_offset, y.negative_offset)
    np.testing.assert_array_equal(x.positive_counts, y.positive_counts, strict=True)
    np.testing.assert_array_equal(x.negative_counts, y.negative_counts, strict=True)
    assert (x.min, x.max) == (y.min, y.max)


def test_merge_is_exact_for_huge_counts() -> None:
    big = 2**62 + 1  # beyond float64's integers: counts never go through floats
    a = ExponentialHistogram(scale=3, count=big, positive_offset=8, positive_counts=[big])
    b = ExponentialHistogram(
        scale=2,
        count=big + 5,
        zero_count=5,
        positive_offset=4,
        positive_counts=np.array([big], dtype=np.uint64),
    )
    m = a.merge(b)
    assert m.scale == 2 and m.positive_offset == 4
    assert m.positive_counts.tolist() == [2 * big] and m.count == 2 * big + 5


def test_merge_statistics_and_empty_operands() -> None:
    h = ExponentialHistogram.from_values([-2.0, 0.0, 5.0], scale=4)
    empty = ExponentialHistogram(scale=10, count=0)
    m = h.merge(empty)
    assert m == h.trimmed()  # the empty operand's NaN min/max/sum are ignored, scale stays 4
    no_min = ExponentialHistogram.from_values([1.0], scale=4)
    no_min = ExponentialHistogram(
        scale=4,
        count=1,
        positive_offset=no_min.positive_offset,
        positive_counts=no_min.positive_counts,
        sum=1.0,
    )
    m = h.merge(no_min)
    assert math.isnan(m.min) and math.isnan(m.max) and m.sum == 4.0


def test_merge_with_a_wider_zero_bucket_absorbs_small_buckets() -> None:
    a = ExponentialHistogram.from_values([0.001, 0.002, 0.5, 3.0], scale=0)
    b = ExponentialHistogram(scale=0, count=1, zero_count=1, zero_threshold=0.01)
    m = a.merge(b)
    assert m.zero_threshold == 0.01 and m.zero_count == 3  # 0.001 and 0.002 have upper <= 2**-6
    assert m.positive_counts.sum() == 2 and m.count == 5


def test_merge_refuses_other_types() -> None:
    h = ExponentialHistogram(scale=0, count=0)
    with pytest.raises(SketchError, match="ExponentialHistogram"):
        h.merge([1, 2])  # type: ignore[arg-type]


@SETTINGS
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=60),
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=60),
    st.integers(-3, 6),
    st.integers(-3, 6),
)
def test_merge_equals_bucketing_the_union(xs: list, ys: list, sa: int, sb: int) -> None:
    a = ExponentialHistogram.from_values(xs, scale=sa, max_size=None)
    b = ExponentialHistogram.from_values(ys, scale=sb, max_size=None)
    union = ExponentialHistogram.from_values(xs + ys, scale=min(sa, sb), max_size=None)
    _assert_same_buckets(a.merge(b), union)
    _assert_same_buckets(b.merge(a), union)


# --------------------------------------------------------------------------- bytes


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


special_floats = st.sampled_from([math.nan, STALE_NAN, NEG_NAN, -0.0, math.inf, -math.inf])


@st.composite
def histograms(draw: st.DrawFn) -> ExponentialHistogram:
    top = draw(st.sampled_from([2**7, 2**15, 2**31, 2**58]))
    pos = draw(st.lists(st.integers(0, top), max_size=40))
    neg = draw(st.lists(st.integers(0, top), max_size=40))
    lo_hi = draw(
        st.one_of(
            st.tuples(st.just(math.nan), st.just(math.nan)),
            st.tuples(st.floats(allow_nan=False), st.just(math.nan)),
            st.lists(st.floats(allow_nan=False), min_size=2, max_size=2).map(sorted),
        )
    )
    zero_count = draw(st.integers(0, top))
    return ExponentialHistogram(
        scale=draw(st.integers(-10, 20)),
        count=zero_count + sum(pos) + sum(neg),
        zero_count=zero_count,
        zero_threshold=draw(st.floats(0, 1e300)),
        positive_offset=draw(st.integers(-(2**31), 2**31 - 41)),
        positive_counts=np.array(pos, dtype=np.uint64),
        negative_offset=draw(st.integers(-(2**31), 2**31 - 41)),
        negative_counts=np.array(neg, dtype=np.uint64),
        sum=draw(st.one_of(st.floats(), special_floats)),
        min=lo_hi[0],
        max=lo_hi[1],
    )


@SETTINGS
@given(histograms())
def test_bytes_round_trip_bit_exact(h: ExponentialHistogram) -> None:
    data = h.to_bytes()
    back = ExponentialHistogram.from_bytes(data)
    assert back == h
    for name in ("sum", "min", "max", "zero_threshold"):
        assert _bits(getattr(back, name)) == _bits(getattr(h, name))
    assert back.positive_counts.dtype == np.uint64
    assert ExponentialHistogram.from_bytes(memoryview(data)) == h


def test_bytes_layout_is_compact_and_documented() -> None:
    h = ExponentialHistogram(
        scale=3,
        count=6,
        zero_count=1,
        positive_offset=-2,
        positive_counts=[1, 0, 2],
        negative_offset=5,
        negative_counts=[2],
        sum=STALE_NAN,
        min=-4.0,
        max=9.5,
    )
    data = h.to_bytes()
    assert len(data) == 60 + 4  # 4 counts of 1 byte each
    fields = struct.unpack_from("<BbBxQdddd iIiI", data)
    assert fields[:4] == (1, 3, 0, 1)
    assert _bits(fields[5]) == _bits(STALE_NAN) and fields[6:] == (-4.0, 9.5, -2, 3, 5, 1)
    assert data[60:] == bytes([1, 0, 2, 2])
    wide = ExponentialHistogram(scale=0, count=2**40, positive_counts=[2**40])
    assert len(wide.to_bytes()) == 60 + 8 and wide.to_bytes()[2] == 3


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:30], "truncated"),
        (lambda b: b[:-1], "announces"),
        (lambda b: b + b"\0", "announces"),
        (lambda b: bytes([9]) + b[1:], "format version 9"),
        (lambda b: b[:2] + bytes([7]) + b[3:], "width code 7"),
        (lambda b: b[:1] + struct.pack("<b", 21) + b[2:], "scale 21 is out of range"),
    ],
)
def test_from_bytes_refuses_damaged_input(mutate, message: str) -> None:
    good = ExponentialHistogram.from_values([1.0, 2.0, -3.0], scale=1).to_bytes()
    with pytest.raises(SketchError, match=message):
        ExponentialHistogram.from_bytes(mutate(good))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"positive_counts": [1, -2, 3], "count": 2}, r"positive_counts\[1\] is -2"),
        ({"negative_counts": np.array([-1]), "count": -1}, "count must be"),
        ({"negative_counts": np.array([-1], dtype=np.int8), "count": 0}, "cannot be negative"),
        ({"positive_counts": [1.5], "count": 1}, "must hold integers"),
        ({"positive_counts": [True], "count": 1}, "must hold integers"),
        ({"positive_counts": [[1]], "count": 1}, "one-dimensional"),
        ({"positive_counts": [1, 2], "count": 4}, "zero_count \\+ bucket counts = 3"),
        ({"scale": 21, "count": 0}, "scale 21 is out of range"),
        ({"scale": -11, "count": 0}, "scale -11 is out of range"),
        ({"scale": True, "count": 0}, "scale must be an int"),
        ({"scale": 2.0, "count": 0}, "scale must be an int"),
        ({"zero_threshold": math.nan, "count": 0}, "zero_threshold"),
        ({"zero_threshold": -1.0, "count": 0}, "zero_threshold"),
        ({"zero_threshold": math.inf, "count": 0}, "zero_threshold"),
        ({"min": 2.0, "max": 1.0, "count": 0}, "min .* greater than max"),
        ({"min": math.inf, "max": -math.inf, "count": 0}, "greater than max"),
        ({"positive_offset": 2**31 - 1, "positive_counts": [1, 1], "count": 2}, "32-bit"),
        ({"negative_offset": -(2**31) - 1, "count": 0}, "32-bit"),
        ({"zero_count": -1, "count": -1}, "zero_count must be"),
        ({"count": 2**64}, "count must be between"),
        ({"count": 0, "sum": "1"}, "sum must be a float"),
        ({"positive_counts": [2**64 - 1, 1], "count": 2**64}, "count must be between"),
    ],
)
def test_invalid_histograms_are_refused(kwargs: dict, message: str) -> None:
    kwargs = {"scale": 0, **kwargs}
    with pytest.raises(SketchError, match=message) as info:
        ExponentialHistogram(**kwargs)
    assert isinstance(info.value, TsdbError) and isinstance(info.value, ValueError)


def test_construction_copies_and_freezes_counts() -> None:
    counts = np.array([1, 2, 3], dtype=np.int64)
    h = ExponentialHistogram(scale=1, count=6, positive_counts=counts)
    counts[0] = 100
    assert h.positive_counts.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="read-only"):
        h.positive_counts[0] = 5
    with pytest.raises(AttributeError):
        h.scale = 2  # type: ignore[misc]
    failed = np.array([1, -1], dtype=np.int64)
    with pytest.raises(SketchError):
        ExponentialHistogram(scale=1, count=0, positive_counts=failed)
    assert failed.tolist() == [1, -1]  # the caller's array is untouched by a refusal


def test_from_values_refuses_non_finite_and_keeps_nothing() -> None:
    with pytest.raises(SketchError, match="value #2 is nan"):
        ExponentialHistogram.from_values([1.0, 2.0, math.nan])
    with pytest.raises(SketchError, match="max_size"):
        ExponentialHistogram.from_values([1.0, 2.0], max_size=1)


def test_zero_threshold_in_from_values() -> None:
    h = ExponentialHistogram.from_values(
        [-0.5, -1e-9, 0.0, 1e-9, 2.0], scale=0, zero_threshold=1e-6
    )
    assert h.zero_count == 3 and h.count == 5 and h.zero_threshold == 1e-6
    empty = ExponentialHistogram.from_values([])
    assert empty.count == 0 and empty.sum == 0.0 and math.isnan(empty.min)


# --------------------------------------------------------------------------- DDSketch


def _base(scale: int) -> float:
    return 2.0 ** math.ldexp(1.0, -scale)


def _scaled_log(magnitudes: np.ndarray, scale: int) -> np.ndarray:
    """log_base(v), computed as the SDK scales its logarithm."""
    return np.log(magnitudes) * math.ldexp(1.0 / math.log(2.0), scale)


def _dataset(kind: str) -> np.ndarray:
    rng = np.random.default_rng(len(kind))
    if kind == "narrow":  # stays at scale 20
        v = rng.uniform(1000.0, 1000.01, 2000)
        return np.concatenate([v, -v[:300], [0.0, 1024.0, -1024.0]])
    if kind == "medium":
        return np.concatenate([rng.lognormal(0, 0.3, 2000), -rng.lognormal(0, 0.3, 500)])
    return mixed_values(17)


@pytest.mark.parametrize(
    ("kind", "max_size", "max_scale"),
    [
        ("narrow", 160, 20),
        ("medium", 160, 20),
        ("medium", 300, 11),
        ("wide", 160, 20),
        ("wide", 40, 20),
        ("wide", 8, -1),
        ("wide", 4, -3),
    ],
)
def test_each_recorded_value_falls_in_the_bucket_of_its_ddsketch_key(
    kind: str, max_size: int, max_scale: int
) -> None:
    values = _dataset(kind)
    h = exponential_from_otel(sdk_record(values, max_size=max_size, max_scale=max_scale))
    scale = h.scale
    nonzero = values[values != 0]
    mags = np.abs(nonzero)
    index = map_to_index(mags, scale)  # where the SDK put each value (checked just below)
    assert ExponentialHistogram.from_values(values, scale=scale, max_size=None) == h.trimmed()

    mapping = LogarithmicMapping.from_gamma(_base(scale))
    keys = mapping.keys(mags)  # the ddsketch package's key of each value, bit for bit
    x = _scaled_log(mags, scale)
    on_edge = np.abs(x - np.rint(x)) <= 2e-10 * (np.abs(x) + 1)
    np.testing.assert_array_equal(keys[~on_edge], index[~on_edge] + 1)
    assert np.all(np.abs(keys - (index + 1)) <= 1) and on_edge.mean() < 0.05

    # the sketch holds each value's count under key i + 1, per side
    sketch = to_sketch(h)
    assert sketch.mapping == mapping
    for side, sel in (("positive", nonzero > 0), ("negative", nonzero < 0)):
        expect_keys, expect_counts = np.unique(index[sel] + 1, return_counts=True)
        np.testing.assert_array_equal(getattr(sketch, f"{side}_keys"), expect_keys)
        np.testing.assert_array_equal(getattr(sketch, f"{side}_counts"), expect_counts)
    assert sketch.zero_count == np.count_nonzero(values == 0)


def _exact_key(value: float, scale: int) -> int:
    """ceil(log_base(value)) with 60-digit decimal logarithms; exact powers snap to integers."""
    with localcontext() as ctx:
        ctx.prec = 60
        lg = Decimal(value).ln() / Decimal(2).ln() * Decimal(2) ** scale
        nearest = lg.to_integral_value()
        if abs(lg - nearest) < Decimal(10) ** -40:
            return int(nearest)
        return int(lg.to_integral_value(rounding=ROUND_CEILING))


@pytest.mark.parametrize("scale", [-5, -2, 0, 1, 4, 11, 20])
def test_key_i_plus_one_is_the_exact_ddsketch_key(scale: int) -> None:
    rng = np.random.default_rng(scale + 50)
    powers = 2.0 ** np.arange(-20, 21)
    v = np.concatenate([np.exp(rng.uniform(-40, 40, 250)), powers])
    index = map_to_index(v, scale)
    exact = np.array([_exact_key(x, scale) for x in v.tolist()])
    np.testing.assert_array_equal(exact, index + 1)
    # on the boundary the package's float key may round one key up; never elsewhere
    package = LogarithmicMapping.from_gamma(_base(scale)).keys(powers)
    assert set((package - (map_to_index(powers, scale) + 1)).tolist()) <= {0, 1}


@pytest.mark.parametrize(
    ("kind", "max_size"), [("narrow", 160), ("medium", 160), ("wide", 20), ("wide", 4)]
)
def test_sketch_quantiles_equal_the_ddsketch_package_on_the_same_bins(
    kind: str, max_size: int
) -> None:
    values = _dataset(kind)
    h = exponential_from_otel(sdk_record(values, max_size=max_size))
    sketch = to_sketch(h)
    package_mapping = PackageMapping(sketch.mapping.relative_accuracy)
    assert package_mapping.gamma == sketch.mapping.gamma
    # exactly the OTel base for scale >= 0; for negative scales the nearest gamma the package's
    # alpha parameterisation can give (scale -1: 4 - 1 ulp)
    assert sketch.mapping.gamma == pytest.approx(_base(h.scale), rel=1e-9)
    assert h.scale < 0 or sketch.mapping.gamma == _base(h.scale)
    reference = BaseDDSketch(package_mapping, DenseStore(), DenseStore(), 0.0)
    for store, offset, counts in (
        (reference._store, h.positive_offset, h.positive_counts),
        (reference._negative_store, h.negative_offset, h.negative_counts),
    ):
        for i, c in enumerate(counts.tolist()):
            if c:
                store.add(offset + i + 1, float(c))  # key i + 1 for OTel bucket i
    reference._zero_count = float(h.zero_count)
    reference._count = float(h.count)
    qs = np.linspace(0.0, 1.0, 41)
    expected = [reference.get_quantile_value(q) for q in qs.tolist()]
    np.testing.assert_array_equal(sketch.quantiles(qs), expected)
    # and within the sketch's relative accuracy of the exact order statistics
    exact = np.sort(values)[np.floor(qs * (values.size - 1)).astype(int)]
    alpha = sketch.mapping.relative_accuracy
    assert np.all(np.abs(sketch.quantiles(qs) - exact) <= alpha * np.abs(exact) * (1 + 1e-6))


@pytest.mark.parametrize("scale", [-5, -1, 0, 3, 20])
def test_from_sketch_inverts_to_sketch(scale: int) -> None:
    values = _dataset("narrow" if scale > 10 else "wide")
    h = ExponentialHistogram.from_values(values, scale=scale, max_size=None)
    sketch = to_sketch(h)
    assert from_sketch(sketch) == h.trimmed()
    assert from_sketch(sketch.merge(sketch)) == h.merge(h)
    empty = to_sketch(ExponentialHistogram(scale=scale, count=0))
    back = from_sketch(empty)
    assert back.count == 0 and math.isnan(back.min) and math.isnan(back.max)


def test_sketch_conversion_refusals() -> None:
    with pytest.raises(SketchError, match="no DDSketch counterpart"):
        to_sketch(ExponentialHistogram(scale=-6, count=0))
    big = ExponentialHistogram(scale=0, count=2**53 + 1, positive_counts=[2**53 + 1])
    with pytest.raises(SketchError, match="2\\*\\*53"):
        to_sketch(big)
    with pytest.raises(SketchError, match="not an exponential histogram"):
        from_sketch(Sketch.from_values([1.0, 2.0, 3.0], 0.01))
    shifted = LogarithmicMapping.from_gamma(_base(3), offset=1.0)
    with pytest.raises(SketchError, match="offset"):
        from_sketch(Sketch.from_values([1.0, 2.0], mapping=shifted))
    weighted = Sketch(
        LogarithmicMapping.from_gamma(_base(2)),
        0.0,
        np.array([3]),
        np.array([1.5]),
        np.array([], dtype=np.int64),
        np.array([]),
    )
    with pytest.raises(SketchError, match="whole values"):
        from_sketch(weighted)
