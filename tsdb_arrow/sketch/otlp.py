"""Conversions between OpenTelemetry histogram data points and the sketch types.

Two sources are read: the Python SDK's data points (``opentelemetry.sdk.metrics.export``
``ExponentialHistogramDataPoint`` / ``HistogramDataPoint``, what an in-process reader collects)
and the OTLP protobuf messages (``opentelemetry.proto.metrics.v1.metrics_pb2``, what arrives over
gRPC). Exponential histograms convert both ways losslessly; explicit-bucket histograms become
``FixedBucketHistogram`` (OTel bucket ``j`` covers ``(bounds[j-1], bounds[j]]``, the last one
``(bounds[-1], +inf)``: Prometheus ``le`` semantics).

The OTLP protobuf messages come with the package; the SDK is the optional ``otel`` extra,
imported only when an SDK data point is converted (``MissingDependencyError`` says how to install
it when it is missing).

Absent statistics: the SDK reports "no min/max" as ``min=+inf, max=-inf`` (its starting values,
kept when nothing was recorded or ``record_min_max`` is off) and the protobuf leaves the optional
field unset; both become NaN here, and NaN becomes an unset field on the way back.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from opentelemetry.proto.metrics.v1 import metrics_pb2

from tsdb_arrow.errors import MissingDependencyError, SketchError
from tsdb_arrow.sketch.counts import check_counts, exact_sum
from tsdb_arrow.sketch.exponential.histogram import ExponentialHistogram
from tsdb_arrow.sketch.fixed.histogram import FixedBucketHistogram

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import (
        ExponentialHistogramDataPoint as SdkExponentialPoint,
    )
    from opentelemetry.sdk.metrics.export import HistogramDataPoint as SdkHistogramPoint

__all__ = ["exponential_from_otel", "exponential_to_proto", "explicit_to_fixed"]

ProtoExponentialPoint = metrics_pb2.ExponentialHistogramDataPoint
ProtoHistogramPoint = metrics_pb2.HistogramDataPoint


def exponential_from_otel(
    point: SdkExponentialPoint | metrics_pb2.ExponentialHistogramDataPoint,
) -> ExponentialHistogram:
    """``ExponentialHistogram`` of an SDK or OTLP protobuf exponential histogram data point.

    Bucket offsets and counts are copied as they are (the SDK pads its arrays with empty buckets;
    ``.trimmed()`` drops them). Attributes, timestamps, flags and exemplars are not part of the
    sample and are left to the caller.

    Parameters
    ----------
    point
        An ``opentelemetry.proto.metrics.v1.metrics_pb2.ExponentialHistogramDataPoint`` (what
        arrives over OTLP) or an ``opentelemetry.sdk.metrics.export``
        ``ExponentialHistogramDataPoint`` (what an in-process SDK reader collects).

    Returns
    -------
    The ``ExponentialHistogram``, exactly; the SDK's "no min/max" (+inf/-inf) and unset
    protobuf fields become NaN.

    Raises
    ------
    SketchError
        When the point is not a valid histogram (see ``ExponentialHistogram``) or of another type.
    MissingDependencyError
        When the point is not an OTLP protobuf one and the OpenTelemetry SDK (the ``otel``
        extra) is not installed.
    """
    if isinstance(point, ProtoExponentialPoint):
        return ExponentialHistogram(
            scale=point.scale,
            count=point.count,
            zero_count=point.zero_count,
            zero_threshold=point.zero_threshold,
            positive_offset=point.positive.offset,
            positive_counts=list(point.positive.bucket_counts),
            negative_offset=point.negative.offset,
            negative_counts=list(point.negative.bucket_counts),
            sum=_optional(point, "sum"),
            min=_optional(point, "min"),
            max=_optional(point, "max"),
        )
    if _from_sdk(point) and isinstance(point, _sdk_export(point).ExponentialHistogramDataPoint):
        lo, hi = _sdk_min_max(point.min, point.max)
        return ExponentialHistogram(
            scale=point.scale,
            count=point.count,
            zero_count=point.zero_count,
            positive_offset=point.positive.offset,
            positive_counts=list(point.positive.bucket_counts),
            negative_offset=point.negative.offset,
            negative_counts=list(point.negative.bucket_counts),
            sum=float(point.sum),
            min=lo,
            max=hi,
        )
    raise SketchError(
        f"expected an OpenTelemetry ExponentialHistogramDataPoint (SDK or OTLP protobuf), got "
        f"{type(point).__name__}"
    )


def exponential_to_proto(
    hist: ExponentialHistogram,
    *,
    start_time_unix_nano: int = 0,
    time_unix_nano: int = 0,
) -> metrics_pb2.ExponentialHistogramDataPoint:
    """OTLP protobuf data point of ``hist``; NaN ``sum``/``min``/``max`` are left unset.

    Parameters
    ----------
    hist
        The histogram sample.
    start_time_unix_nano, time_unix_nano
        The point's timestamps; optional because they belong to the series, not the sample.

    Returns
    -------
    An ``opentelemetry.proto.metrics.v1.metrics_pb2.ExponentialHistogramDataPoint``;
    ``exponential_from_otel`` gives ``hist`` back from it exactly.

    Examples
    --------
    >>> import tsdb_arrow as ta
    >>> h = ta.sketch.ExponentialHistogram.from_values([1.0, 2.0, 3.0])
    >>> point = ta.sketch.exponential_to_proto(h)
    >>> point.count, ta.sketch.exponential_from_otel(point) == h
    (3, True)
    """
    point = ProtoExponentialPoint(
        start_time_unix_nano=start_time_unix_nano,
        time_unix_nano=time_unix_nano,
        count=hist.count,
        scale=hist.scale,
        zero_count=hist.zero_count,
        zero_threshold=hist.zero_threshold,
    )
    point.positive.offset = hist.positive_offset
    point.positive.bucket_counts.extend(hist.positive_counts.tolist())
    point.negative.offset = hist.negative_offset
    point.negative.bucket_counts.extend(hist.negative_counts.tolist())
    for name in ("sum", "min", "max"):
        value = getattr(hist, name)
        if not math.isnan(value):
            setattr(point, name, value)
    return point


def explicit_to_fixed(
    point: SdkHistogramPoint | metrics_pb2.HistogramDataPoint,
) -> FixedBucketHistogram:
    """``FixedBucketHistogram`` of an SDK or OTLP protobuf explicit-bucket data point.

    OTel's ``explicit_bounds`` are upper bounds of ``(lower, upper]`` buckets, plus an implicit
    last bucket up to +inf, so ``len(bucket_counts) == len(explicit_bounds) + 1``: exactly a
    Prometheus histogram's ``le`` buckets, and bounds and counts carry over one to one. A last
    bound of +inf (allowed by OTLP) adds an always-empty bucket; it is folded into the implicit
    +Inf bucket. ``FixedBucketHistogram`` keeps no min/max, so the point's are not carried.

    Parameters
    ----------
    point
        An OTLP protobuf ``HistogramDataPoint`` or the SDK's ``HistogramDataPoint``.

    Returns
    -------
    The ``FixedBucketHistogram`` with the point's bounds, counts, sum (NaN when unset) and count.

    Raises
    ------
    SketchError
        Counts not one longer than the bounds, NaN, infinite (other than a last +inf) or
        unsorted bounds, negative counts, a ``count`` that does not equal the sum of the bucket
        counts, or more than 2**53 values (the histogram's float64 counts would round them);
        nothing is built then.
    MissingDependencyError
        When the point is not an OTLP protobuf one and the OpenTelemetry SDK (the ``otel``
        extra) is not installed.
    """
    if isinstance(point, ProtoHistogramPoint):
        total = _optional(point, "sum")
    elif _from_sdk(point) and isinstance(point, _sdk_export(point).HistogramDataPoint):
        total = float(point.sum)
    else:
        raise SketchError(
            f"expected an OpenTelemetry HistogramDataPoint (SDK or OTLP protobuf), got "
            f"{type(point).__name__}"
        )
    bounds = _bounds(point.explicit_bounds)
    counts = check_counts("explicit histogram bucket_counts", list(point.bucket_counts))
    if counts.size != bounds.size + 1:
        raise SketchError(
            f"explicit histogram has {bounds.size} bounds and {counts.size} bucket counts; OTel "
            "needs exactly one more count than bounds (the last bucket runs to +inf)"
        )
    total_count = exact_sum(counts)
    if total_count != int(point.count):
        raise SketchError(
            f"explicit histogram count is {point.count} but its bucket counts add up to "
            f"{total_count}; pass a consistent data point"
        )
    if total_count > 2**53:
        raise SketchError(
            f"explicit histogram counts {total_count} values; FixedBucketHistogram counts are "
            "float64 and exact only up to 2**53"
        )
    if bounds.size and bounds[-1] == math.inf:
        bounds = bounds[:-1]
        counts = np.concatenate([counts[:-2], [counts[-2] + counts[-1]]])
    return FixedBucketHistogram(bounds, counts.astype(np.float64), total, float(total_count))


def _from_sdk(point: object) -> bool:
    """Whether ``point`` is an object of the OpenTelemetry SDK (anything else is refused
    with a SketchError, whether or not the SDK is installed)."""
    return type(point).__module__.startswith("opentelemetry.sdk")


def _sdk_export(point: object) -> ModuleType:
    """``opentelemetry.sdk.metrics.export``, imported on first use: the SDK is the optional
    ``otel`` extra, and only SDK data points (not OTLP protobuf ones) need it."""
    try:
        from opentelemetry.sdk.metrics import export
    except ImportError as exc:
        raise MissingDependencyError(
            f"{type(point).__name__} is not an OTLP protobuf data point, and converting "
            "OpenTelemetry SDK data points needs the OpenTelemetry SDK, which is not installed: "
            "pip install 'tsdb-arrow[otel]'"
        ) from exc
    return export


def _sdk_min_max(lo: float, hi: float) -> tuple[float, float]:
    if lo == math.inf and hi == -math.inf:
        return math.nan, math.nan
    return float(lo), float(hi)


def _optional(point: Any, name: str) -> float:
    return float(getattr(point, name)) if point.HasField(name) else math.nan


def _bounds(values: Any) -> np.ndarray:
    b = np.asarray(list(values), dtype=np.float64)
    if np.any(np.isnan(b)):
        raise SketchError(
            f"explicit histogram bound #{int(np.flatnonzero(np.isnan(b))[0])} is NaN; "
            "bounds must be numbers"
        )
    if b.size > 1 and not np.all(np.diff(b) > 0):
        i = int(np.flatnonzero(np.diff(b) <= 0)[0])
        raise SketchError(
            f"explicit histogram bounds must increase strictly: bound #{i + 1} ({b[i + 1]!r}) "
            f"is not above bound #{i} ({b[i]!r})"
        )
    return b
