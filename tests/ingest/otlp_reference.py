"""A plain reference of ``convert_request``: Python loops over the decoded protobuf messages.

Written from Prometheus' OTLP translation (``createAttributes``, ``addHistogramDataPoints``,
``addSummaryDataPoints``, ``addResourceTargetInfo``) one data point at a time, sharing only the
name and value spelling (``names``, tested on Prometheus' own tables) with the fast path. The
tests compare the two on random requests, row for row and bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from tsdb_arrow.ingest.otlp import Converted, OtlpLimits
from tsdb_arrow.ingest.otlp.names import any_value_string, format_bound, metric_name
from tsdb_arrow.ingest.otlp.names import stored_label_name as label
from tsdb_arrow.model import HISTOGRAM, TIMESTAMP, VALUE
from tsdb_arrow.sketch.otlp import exponential_from_otel

STALE_BITS = 0x7FF0000000000002
IDENTIFYING = ("service.namespace", "service.name", "service.instance.id")
HALF_LOOKBACK_NS = 150 * 10**9
TARGET_INFO_SAMPLES = 64

Labels = tuple  # sorted (name, value) pairs, empty values left out
Row = tuple  # (labels, timestamp ms, value bits) or (labels, timestamp ms, histogram fields)


@dataclass
class Reference:
    floats: list[Row] = field(default_factory=list)
    histograms: list[Row] = field(default_factory=list)
    target_info: list[Row] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0


def bits(x: float) -> int:
    return int(np.array([x], dtype=np.float64).view(np.uint64)[0])


def _int64(u: int) -> int:
    return u - 2**64 if u >= 2**63 else u


def reference(
    request: metrics_service_pb2.ExportMetricsServiceRequest,
    *,
    promote: tuple[str, ...] = (),
    totals: dict[Labels, float] | None = None,
    limits: OtlpLimits = OtlpLimits(),  # noqa: B008
) -> Reference:
    """What ``convert_request`` should return for ``request``, the slow way.

    ``totals`` is the delta running totals (keyed by label set), updated in place; None means
    no DeltaState.
    """
    out = Reference()
    # Label names count towards the limit in order of first appearance, among the points that
    # pass every other check.
    names_seen: dict[str, int] = {}
    passing: list[bool] = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                good = _metric_ok(metric, kind, totals)
                for point in getattr(metric, kind).data_points:
                    passing.append(good and _valid(point, kind, limits))
                    for kv in point.attributes if passing[-1] else ():
                        names_seen.setdefault(label(kv.key), len(names_seen))
    passes = iter(passing)
    summed_rows: list[tuple[int, Labels, int, float]] = []  # (row index, labels, ts, delta)
    for rm in request.resource_metrics:
        res_attrs = [(kv.key, any_value_string(kv.value)) for kv in rm.resource.attributes]
        first: dict[str, str] = {}
        for k, v in res_attrs:
            first.setdefault(k, v)
        identity = {}
        if "service.name" in first:
            job = first["service.name"]
            if "service.namespace" in first:
                job = first["service.namespace"] + "/" + job
            identity["job"] = job
        if "service.instance.id" in first:
            identity["instance"] = first["service.instance.id"]
        times: list[int] = []
        for sm in rm.scope_metrics:
            scope_labels: dict[str, str] = {}
            if sm.HasField("scope") and sm.scope.name:
                scope_labels = {
                    "otel_scope_name": sm.scope.name,
                    "otel_scope_version": sm.scope.version,
                    "otel_scope_schema_url": sm.schema_url,
                }
                for kv in sm.scope.attributes:
                    scope_labels[label("otel_scope_" + kv.key)] = any_value_string(kv.value)
            for metric in sm.metrics:
                _metric(metric, res_attrs, promote, scope_labels, identity, names_seen, limits,
                        totals, out, summed_rows, times, passes)  # fmt: skip
        others = [(k, v) for k, v in res_attrs if k not in IDENTIFYING]
        if times and others and identity:
            labels: dict[str, str] = {}
            for k, v in sorted(others, key=lambda a: a[0]):
                if not k:
                    continue
                name = label(k)
                labels[name] = labels[name] + ";" + v if name in labels else v
            labels.update(identity)
            labels["__name__"] = "target_info"
            lo, hi = min(times), max(times)
            # every half lookback from the first point while before the last (only the
            # latest TARGET_INFO_SAMPLES of them: skip the earlier ones), then the last
            skip = max(0, -(-(hi - lo) // HALF_LOOKBACK_NS) - TARGET_INFO_SAMPLES)
            stamps = [t // 10**6 for t in range(lo + skip * HALF_LOOKBACK_NS, hi, HALF_LOOKBACK_NS)]
            if not stamps or stamps[-1] < hi // 10**6:
                stamps.append(hi // 10**6)
            stamps = stamps[-TARGET_INFO_SAMPLES:]
            for ms in stamps:
                out.target_info.append((_frozen(labels), ms, bits(1.0)))
    if summed_rows:
        assert totals is not None
        for row, key, _, delta in sorted(summed_rows, key=lambda r: r[2]):
            if math.isnan(delta):
                continue
            totals[key] = totals.get(key, 0.0) + delta
            labels_, ts, _ = out.floats[row]
            out.floats[row] = (labels_, ts, bits(totals[key]))
    return out


def _frozen(labels: dict[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in labels.items() if v != ""))


def _family(metric, kind: str) -> str:  # type: ignore[no-untyped-def]
    monotonic = kind == "sum" and getattr(metric, kind).is_monotonic
    return metric_name(metric.name, metric.unit, gauge=kind == "gauge", counter=monotonic)


def _metric_ok(metric, kind: str, totals: dict | None) -> bool:  # type: ignore[no-untyped-def]
    data = getattr(metric, kind)
    temporal = kind in ("sum", "histogram", "exponential_histogram")
    summed = kind in ("sum", "histogram") and data.aggregation_temporality == 1
    return bool(
        metric.name
        and _family(metric, kind)
        and not (temporal and data.aggregation_temporality not in (1, 2))
        and not (summed and totals is None)
    )


def _metric(metric, res_attrs, promote, scope_labels, identity, names_seen, limits, totals,
            out, summed_rows, times, passes) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    kind = metric.WhichOneof("data")
    if kind is None:
        out.rejected += 1
        return
    data = getattr(metric, kind)
    family = _family(metric, kind)
    summed = kind in ("sum", "histogram") and data.aggregation_temporality == 1
    for point in data.data_points:
        keys = [kv.key for kv in point.attributes]
        if (
            not next(passes)
            or any(names_seen[label(k)] >= limits.max_label_names for k in keys)
            or len(set(keys)) != len(keys)
        ):
            out.rejected += 1
            continue
        out.accepted += 1
        ts_ns = _int64(point.time_unix_nano)
        times.append(ts_ns)
        ms = ts_ns // 10**6
        base = _attributes(point, res_attrs, promote, scope_labels, identity)
        stale = bool(point.flags & 1)
        for suffix, extra, value in _rows(point, kind):
            labels = dict(base)
            labels.update(extra)
            labels["__name__"] = family + suffix
            if kind == "exponential_histogram":
                out.histograms.append((_frozen(labels), ms, value))
                continue
            value_bits = STALE_BITS if stale else bits(value)
            if summed:
                key = _frozen(labels)
                # a Python float: totals that overflow become inf, as the receiver's do
                delta = float(np.uint64(value_bits).view(np.float64))
                summed_rows.append((len(out.floats), key, ms, delta))
            out.floats.append((_frozen(labels), ms, value_bits))


def _valid(point, kind: str, limits: OtlpLimits) -> bool:  # type: ignore[no-untyped-def]
    """Every check but the limit on label names and repeated keys."""
    if _int64(point.time_unix_nano) <= 0:
        return False
    stale = bool(point.flags & 1)
    if kind in ("gauge", "sum") and not stale and point.WhichOneof("value") is None:
        return False
    attrs = list(point.attributes)
    if len(attrs) > limits.max_attributes:
        return False
    for kv in attrs:
        key = kv.key.encode()
        if not key or len(key) > limits.max_key_bytes:
            return False
        v = kv.value
        which = v.WhichOneof("value")
        size = 0
        if which == "string_value":
            size = len(v.string_value.encode())
        elif which == "bytes_value":
            size = len(v.bytes_value)
        elif which == "array_value":
            size = v.array_value.ByteSize()
        elif which == "kvlist_value":
            size = v.kvlist_value.ByteSize()
        if size > limits.max_value_bytes:
            return False
    return stale or _valid_histogram(point, kind)


def _valid_histogram(point, kind: str) -> bool:  # type: ignore[no-untyped-def]
    if kind == "histogram":
        counts, bounds = list(point.bucket_counts), list(point.explicit_bounds)
        if counts and len(counts) != len(bounds) + 1:
            return False
        if any(math.isnan(b) for b in bounds) or any(not b > a for a, b in zip(bounds, bounds[1:])):
            return False
        return not counts or sum(counts) % 2**64 == point.count
    if kind == "exponential_histogram":
        if not -10 <= point.scale <= 20:
            return False
        zt = point.zero_threshold
        if not (math.isfinite(zt) and zt >= 0):
            return False
        if point.HasField("min") and point.HasField("max") and point.min > point.max:
            return False
        pos, neg = list(point.positive.bucket_counts), list(point.negative.bucket_counts)
        if (point.zero_count + sum(pos) + sum(neg)) % 2**64 != point.count:
            return False
        return (point.positive.offset + len(pos) <= 2**31
                and point.negative.offset + len(neg) <= 2**31)  # fmt: skip
    return True


def _attributes(point, res_attrs, promote, scope_labels, identity) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Prometheus' createAttributes, without the extras."""
    labels: dict[str, str] = {}
    attrs = sorted(((kv.key, any_value_string(kv.value)) for kv in point.attributes),
                   key=lambda a: a[0])  # fmt: skip
    for k, v in attrs:
        name = label(k)
        labels[name] = labels[name] + ";" + v if name in labels else v
    for k, v in sorted(((k, v) for k, v in res_attrs if k in promote), key=lambda a: a[0]):
        labels.setdefault(label(k), v)
    labels.update(scope_labels)
    labels.update(identity)
    return labels


def _rows(point, kind: str) -> list[tuple[str, dict[str, str], object]]:  # type: ignore[no-untyped-def]
    """(name suffix, extra labels, value) of each row of a point."""
    if kind in ("gauge", "sum"):
        which = point.WhichOneof("value")
        value = float(point.as_int) if which == "as_int" else point.as_double
        return [("", {}, value)]
    if kind == "histogram":
        rows = []
        cum = 0
        counts, bounds = list(point.bucket_counts), list(point.explicit_bounds)
        for count, bound in zip(counts, bounds):
            cum = (cum + count) % 2**64
            if bound != math.inf:
                rows.append(("_bucket", {"le": format_bound(bound)}, float(cum)))
        rows.append(("_bucket", {"le": "+Inf"}, float(point.count)))
        rows.append(("_count", {}, float(point.count)))
        if point.HasField("sum"):
            rows.append(("_sum", {}, point.sum))
        return rows
    if kind == "summary":
        rows = [
            ("", {"quantile": format_bound(q.quantile)}, q.value) for q in point.quantile_values
        ]
        rows.append(("_sum", {}, point.sum))
        rows.append(("_count", {}, float(point.count)))
        return rows
    return [("", {}, _histogram_fields(point))]


def _histogram_fields(point) -> tuple:  # type: ignore[no-untyped-def]
    """The stored struct of an exponential point, floats as bits (NaN payloads compared)."""
    if point.flags & 1:  # an empty histogram whose sum is the stale marker
        return (0, 0, 0, bits(0.0), 0, (), 0, (), STALE_BITS, bits(math.nan), bits(math.nan))
    h = exponential_from_otel(point)
    return (h.scale, h.count, h.zero_count, bits(h.zero_threshold), h.positive_offset,
            tuple(h.positive_counts.tolist()), h.negative_offset,
            tuple(h.negative_counts.tolist()), bits(h.sum), bits(h.min), bits(h.max))  # fmt: skip


def table_rows(table: pa.Table | None) -> list[Row]:
    """A converted float or histogram table as comparable rows, sorted."""
    if table is None:
        return []
    out = []
    names = [n for n in table.column_names if n not in (TIMESTAMP, VALUE, HISTOGRAM)]
    ts = table.column(TIMESTAMP).cast(pa.int64()).to_pylist()
    if VALUE in table.column_names:
        values = table.column(VALUE).to_numpy().view(np.uint64).tolist()
    else:
        values = [_struct_fields(h) for h in table.column(HISTOGRAM).to_pylist()]
    columns = {n: table.column(n).to_pylist() for n in names}
    for i in range(table.num_rows):
        labels = tuple(sorted((n, columns[n][i]) for n in names if columns[n][i] is not None))
        out.append((labels, ts[i], values[i]))
    return sorted(out, key=repr)


def _struct_fields(h: dict) -> tuple:
    return (
        h["scale"],
        h["count"],
        h["zero_count"],
        bits(h["zero_threshold"]),
        h["positive_offset"],
        tuple(h["positive_counts"]),
        h["negative_offset"],
        tuple(h["negative_counts"]),
        bits(h["sum"]),
        bits(h["min"]),
        bits(h["max"]),
    )


def assert_same(converted: Converted, expected: Reference) -> None:
    """The fast path's tables hold exactly the reference's rows, and the same counts."""
    assert (converted.accepted_points, converted.rejected_points) == (
        expected.accepted,
        expected.rejected,
    )
    assert table_rows(converted.floats) == sorted(expected.floats, key=repr)
    assert table_rows(converted.histograms) == sorted(expected.histograms, key=repr)
    assert table_rows(converted.target_info) == sorted(expected.target_info, key=repr)
