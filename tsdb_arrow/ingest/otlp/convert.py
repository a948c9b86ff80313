"""``convert_request``: an OTLP metrics export request as long frames ``Database.write`` takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from tsdb_arrow.errors import OtlpDecodeError
from tsdb_arrow.ingest.otlp import labels, points, rows, tables, wire
from tsdb_arrow.ingest.otlp.context import TARGET_INFO
from tsdb_arrow.ingest.otlp.delta import DeltaChange, DeltaState
from tsdb_arrow.ingest.otlp.names import format_bound
from tsdb_arrow.ingest.otlp.wire import (
    EXPONENTIAL,
    H_MAX,
    H_MIN,
    H_SUM,
    M_SCOPE,
    P_B0,
    P_B1,
    P_COUNT,
    P_FLAGS,
    P_HAS,
    P_MAX,
    P_METRIC,
    P_MIN,
    P_N0,
    P_N1,
    P_NEG_OFF,
    P_POS_OFF,
    P_SCALE,
    P_SUM,
    P_TIME,
    P_ZERO,
    P_ZT,
    SUMMARY,
)
from tsdb_arrow.model import HISTOGRAM, HISTOGRAM_FIELDS, METRIC_NAME, TIMESTAMP, VALUE

ExportMetricsServiceRequest = metrics_service_pb2.ExportMetricsServiceRequest
_NS_PER_MS = 1_000_000
TARGET_INFO_STEP_NS = 150 * 1_000_000_000  # half of Prometheus' default lookback delta
TARGET_INFO_SAMPLES = 64
TIMES = pa.timestamp("ms", tz="UTC")
#: By wire kind: whether its points use the metric's own name, _bucket, _count, _sum.
_NAMES_OF_KIND = np.zeros((max(wire.GAUGE, wire.SUM, wire.HISTOGRAM, wire.EXPONENTIAL,
                               wire.SUMMARY) + 1, 4), dtype=bool)  # fmt: skip
_NAMES_OF_KIND[[wire.GAUGE, wire.SUM, wire.SUMMARY, wire.EXPONENTIAL], 0] = True
_NAMES_OF_KIND[wire.HISTOGRAM, 1:] = True
_NAMES_OF_KIND[wire.SUMMARY, 2:] = True


@dataclass(frozen=True)
class OtlpLimits:
    """Caps on what one request may hold; points beyond them are refused, not stored."""

    max_attributes: int = 128  # attributes of one data point
    max_key_bytes: int = 1024  # bytes of one attribute key
    max_value_bytes: int = 65536  # bytes of one attribute value
    max_label_names: int = 256  # distinct attribute label names in one request
    max_errors: int = 10  # messages kept in ``Converted.errors``


@dataclass(frozen=True)
class Converted:
    """One request, converted: the tables to write and what was refused.

    ``floats`` and ``target_info`` are float samples (``timestamp`` ms in UTC, ``value``,
    ``__name__`` and one large_string column per label), ``histograms`` exponential-histogram
    samples (``timestamp``, ``__name__``, labels, ``histogram``); each is ``None`` when empty
    and is written with ``Database.write``. ``accepted_points`` and ``rejected_points`` count
    OTLP data points (a histogram point is one, whatever rows it becomes), as the protocol's
    ``partial_success.rejected_data_points`` does. ``delta_change`` is what this request added
    to the ``DeltaState``: give it to ``DeltaState.undo`` when the tables cannot be stored.
    """

    floats: pa.Table | None
    histograms: pa.Table | None
    target_info: pa.Table | None
    accepted_points: int
    rejected_points: int
    errors: list[str] = field(default_factory=list)
    delta_change: DeltaChange | None = None
    float_points: np.ndarray | None = None  # per row of ``floats``: its data point in the scan

    @property
    def error_message(self) -> str:
        """The errors as one line, for ``partial_success.error_message``."""
        return "; ".join(self.errors)

    @property
    def tables(self) -> list[pa.Table]:
        """The non-empty tables, in the order to write them."""
        return [t for t in (self.floats, self.histograms, self.target_info) if t is not None]


def convert_request(
    body: bytes | ExportMetricsServiceRequest,
    *,
    promote_resource_attributes: Sequence[str] = (),
    delta: DeltaState | None = None,
    limits: OtlpLimits = OtlpLimits(),  # noqa: B008 (frozen, shared safely)
) -> Converted:
    """Convert an OTLP ``ExportMetricsServiceRequest`` into long frames, as Prometheus does.

    Names follow Prometheus' OTLP translation with underscore escaping and suffixes
    (``tsdb_arrow.ingest.otlp.names``); resources and scopes give ``job``, ``instance``,
    ``otel_scope_*`` and ``target_info`` (``tsdb_arrow.ingest.otlp.context``). Gauges and sums
    become float samples (cumulative as sent, delta summed up by ``delta``; a non-monotonic sum
    is a gauge, a monotonic one ends in ``_total``); explicit-bucket histograms become
    ``_bucket{le=...}`` (cumulative, up to ``le="+Inf"``), ``_sum`` and ``_count`` series;
    summaries ``{quantile=...}``, ``_sum`` and ``_count`` series; exponential histograms
    histogram samples, exactly. A point flagged NO_RECORDED_VALUE becomes the Prometheus stale
    marker (NaN with bits 0x7ff0000000000002). Timestamps are ``time_unix_nano`` floored to
    milliseconds; start times are not used. Exemplars are dropped.

    Invalid points are refused one by one (counted in ``rejected_points``, explained in
    ``errors``); the others are converted. The request is read by one numba pass over its bytes,
    with no Python step per data point.

    Parameters
    ----------
    body
        The request: protobuf bytes, or the decoded message.
    promote_resource_attributes
        Resource attribute keys that also become labels of every series of their resource.
    delta
        The running totals of delta sums and histograms, kept by the caller between requests;
        without it, delta sums and histograms are refused.
    limits
        Caps on attributes (see ``OtlpLimits``).

    Raises
    ------
    OtlpDecodeError
        When ``body`` is not a valid protobuf ``ExportMetricsServiceRequest``.
    """
    raw = body.SerializeToString() if isinstance(body, ExportMetricsServiceRequest) else body
    sc = _scan(bytes(raw))
    return _Conversion(sc, frozenset(promote_resource_attributes), delta, limits).run()


def _scan(raw: bytes) -> wire.Scan:
    """Walk the bytes; let the protobuf library judge (and re-encode) what the walk does not
    take."""
    status, sc = wire.scan(np.frombuffer(raw, dtype=np.uint8))
    if status == wire.OK:
        assert sc is not None
        return sc
    try:
        message = ExportMetricsServiceRequest.FromString(raw)
    except DecodeError as exc:
        raise OtlpDecodeError(
            f"the request body is not a valid OTLP ExportMetricsServiceRequest ({exc}); send "
            "the protobuf encoding of one (or OTLP/JSON to the JSON endpoint)"
        ) from None
    message.DiscardUnknownFields()
    status, sc = wire.scan(np.frombuffer(message.SerializeToString(), dtype=np.uint8))
    if status != wire.OK:  # pragma: no cover - the library wrote what the walk reads
        raise OtlpDecodeError("the OTLP request could not be read after re-encoding it")
    assert sc is not None
    return sc


class _Conversion:
    """The steps of one conversion, sharing the scan, the label names and the side buffer."""

    def __init__(
        self, sc: wire.Scan, promote: frozenset[str], delta: DeltaState | None, limits: OtlpLimits
    ) -> None:
        self.sc = sc
        self.promote = promote
        self.delta = delta
        self.limits = limits
        self.names = tables.LabelNames()
        self.pool = tables.Pool()

    def run(self) -> Converted:
        sc, limits = self.sc, self.limits
        metrics = points.describe_metrics(sc, self.delta is not None)
        reason = points.check_points(sc, metrics, limits)
        keys = tables.attribute_keys(sc, self.names, reason == 0)
        beyond = np.append(keys.label >= limits.max_label_names, False)  # key -1: False
        points.reject_entries(sc, reason, beyond[keys.entry_key], points.TOO_MANY_LABELS)
        scopes = tables.scope_contexts(sc, self.names, self.pool, self.promote,
                                       limits.max_label_names)  # fmt: skip
        self.scopes_contexts = scopes.contexts
        for name in (METRIC_NAME, "le", "quantile"):
            self.names.id(name)
        pt = sc.points
        ok = reason == 0
        repeated, ptr, entries = labels.group_attributes(
            pt[:, wire.P_A0], pt[:, wire.P_A1], ok, keys.entry_key, keys.label, keys.rank,
            len(self.names),
        )  # fmt: skip
        reason[ok & repeated] = points.REPEATED_KEY
        ok = reason == 0
        rejected, errors, n_errors = points.messages(sc, metrics, reason, limits)
        self.attributes = tables.entry_values(sc, ptr, entries, self.pool)
        self.point_ctx = scopes.scope_ctx[sc.metrics[pt[:, P_METRIC], M_SCOPE]]
        self.ms = pt[:, P_TIME] // _NS_PER_MS
        self.metrics = metrics
        self.metric_names = self._metric_names(metrics)
        kind = metrics.kind[pt[:, P_METRIC]]
        float_points = np.flatnonzero(ok & (kind != EXPONENTIAL))
        exp_points = np.flatnonzero(ok & (kind == EXPONENTIAL))
        self.side = self._side_after(float_points, kind[float_points])
        floats, change, row_point = self._floats(float_points, kind[float_points])
        histograms = self._histograms(exp_points)
        target = self._target_info(ok, scopes)
        if scopes.dropped_targets:
            n_errors += 1
            errors.append(
                f"target_info of {scopes.dropped_targets} resources left out: more than "
                f"{limits.max_label_names} distinct resource attribute names in one request"
            )
        if n_errors > limits.max_errors:
            errors = errors[: limits.max_errors] + [f"and {n_errors - limits.max_errors} more"]
        return Converted(
            floats=floats,
            histograms=histograms,
            target_info=target,
            accepted_points=int(ok.sum()),
            rejected_points=rejected,
            errors=errors,
            delta_change=change,
            float_points=row_point,
        )

    def _metric_names(self, metrics: points.Metrics) -> np.ndarray:
        """(start, end) in the side buffer of each metric's name and its _bucket, _count and
        _sum names: int64 (n_metrics, 4, 2); one Python step per distinct name."""
        families = metrics.families
        refs = np.zeros((len(families), 4, 2), dtype=np.int64)
        ok = metrics.reason == 0
        # (n_metrics, 4): which of the four names each accepted metric's points use
        wanted = _NAMES_OF_KIND[metrics.kind] & ok[:, None]
        used = np.zeros((len(families), 4), dtype=bool)
        metric, k = np.nonzero(wanted)
        used[metrics.family_id[metric], k] = True
        family, k = np.nonzero(used)
        if len(family):
            suffixes = ("", "_bucket", "_count", "_sum")
            texts = [families[f] + suffixes[j] for f, j in zip(family.tolist(), k.tolist())]
            refs[family, k] = self.pool.texts(texts)
        return refs[metrics.family_id]

    def _side_after(self, float_points: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        """Format the ``le`` and ``quantile`` values (once per distinct value), then freeze
        the side buffer."""
        sc = self.sc
        self.bound_refs = np.zeros((len(sc.floats), 2), dtype=np.int64)
        self.inf_ref = self.pool.text("+Inf")
        self.target_name = self.pool.text(TARGET_INFO)
        if len(sc.floats) == 0:
            return self.pool.buffer()
        used = np.zeros(len(sc.floats), dtype=bool)
        pt = sc.points[float_points]
        starts, ends = pt[:, wire.P_F0], pt[:, wire.P_F1]
        sizes = ends - starts
        if sizes.sum():
            idx = np.repeat(starts, sizes) + tables.ramp(sizes)
            # a summary's floats are (quantile, value) pairs: only its quantiles are labels
            pair = np.repeat(kinds == SUMMARY, sizes) & ((idx - np.repeat(starts, sizes)) % 2 == 1)
            used[idx[~pair]] = True
        bits = sc.floats.view(np.int64)
        chosen = np.flatnonzero(used)
        distinct, inverse = np.unique(bits[chosen], return_inverse=True)
        refs = np.array(
            [self.pool.text(format_bound(x)) for x in distinct.view(np.float64)], dtype=np.int64
        ).reshape(-1, 2)
        self.bound_refs[chosen] = refs[inverse.reshape(-1)]
        return self.pool.buffer()

    @staticmethod
    def _side_refs(n: int, ref: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n rows whose own value is the side buffer's ``ref``."""
        return (
            np.full(n, tables.SIDE, dtype=np.int64),
            np.full(n, ref[0], dtype=np.int64),
            np.full(n, ref[1], dtype=np.int64),
        )

    def _columns(
        self, row_point: np.ndarray, row_ctx: np.ndarray, own: dict[int, np.ndarray]
    ) -> dict[str, pa.Array]:
        return tables.label_columns(
            row_point, row_ctx, own, self.attributes, self.scopes_contexts, self.names, self.sc,
            self.side,
        )  # fmt: skip

    def _floats(
        self, float_points: np.ndarray, kinds: np.ndarray
    ) -> tuple[pa.Table | None, DeltaChange | None, np.ndarray | None]:
        if len(float_points) == 0:
            return None, None, None
        sc = self.sc
        pt = sc.points
        row_point, value, name, extra = rows.float_rows(
            float_points, kinds, pt, pt.view(np.float64), sc.counts, sc.floats, rows.STALE_NAN,
            self.metric_names, self.bound_refs, np.array(self.inf_ref, dtype=np.int64),
        )  # fmt: skip
        own = {self.names.id(METRIC_NAME): tuple(name)}
        for k, label in enumerate(("le", "quantile")):
            if (extra[k, 0] >= 0).any():
                own[self.names.id(label)] = tuple(extra[k])
        columns = self._columns(row_point, self.point_ctx[row_point], own)
        metric = pt[row_point, P_METRIC]
        ts = self.ms[row_point]
        change = None
        summed = self.metrics.summed[metric]
        if summed.any():
            assert self.delta is not None
            from tsdb_arrow.ingest.series import row_refs

            if summed.all():
                refs = row_refs(columns, len(summed))
            else:
                picked = pa.array(np.flatnonzero(summed))
                refs = row_refs({k: v.take(picked) for k, v in columns.items()}, len(picked))
            value[summed], change = self.delta.accumulate(refs, ts[summed], value[summed])
        table = pa.table({TIMESTAMP: _times(ts), VALUE: value, **columns})
        return table, change, row_point

    def _histograms(self, exp_points: np.ndarray) -> pa.Table | None:
        if len(exp_points) == 0:
            return None
        sc = self.sc
        pt = sc.points[exp_points]
        ptf = pt.view(np.float64)
        n = len(exp_points)
        metric = pt[:, P_METRIC]
        names = self.metric_names[metric, 0]
        own = {self.names.id(METRIC_NAME): (np.full(n, tables.SIDE), names[:, 0], names[:, 1])}
        columns = self._columns(exp_points, self.point_ctx[exp_points], own)
        stale = (pt[:, P_FLAGS] & rows.NO_RECORDED_VALUE) != 0
        has = pt[:, P_HAS]
        nan = np.float64("nan")

        def optional(bit: int, col: int) -> np.ndarray:
            return np.where(((has & bit) != 0) & ~stale, ptf[:, col], nan)

        total = optional(H_SUM, P_SUM)
        total[stale] = rows.STALE_NAN
        kept = ~stale

        def counts(lo: int, hi: int) -> pa.Array:
            offsets, values = rows.gather_counts(
                sc.counts, pt[:, lo], np.where(kept, pt[:, hi], pt[:, lo])
            )
            return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))

        scale = np.where(kept, pt[:, P_SCALE], 0)
        fields = {
            "scale": pa.array(scale.astype(np.int8)),
            "count": pa.array(np.where(kept, pt[:, P_COUNT], 0).view(np.uint64)),
            "zero_count": pa.array(np.where(kept, pt[:, P_ZERO], 0).view(np.uint64)),
            "zero_threshold": pa.array(np.where(kept, ptf[:, P_ZT], 0.0)),
            "positive_offset": pa.array(np.where(kept, pt[:, P_POS_OFF], 0).astype(np.int32)),
            "positive_counts": counts(P_B0, P_B1),
            "negative_offset": pa.array(np.where(kept, pt[:, P_NEG_OFF], 0).astype(np.int32)),
            "negative_counts": counts(P_N0, P_N1),
            "sum": pa.array(total),
            "min": pa.array(optional(H_MIN, P_MIN)),
            "max": pa.array(optional(H_MAX, P_MAX)),
        }
        histogram = pa.StructArray.from_arrays(
            [fields[f.name] for f in HISTOGRAM_FIELDS], fields=HISTOGRAM_FIELDS
        )
        return pa.table({TIMESTAMP: _times(self.ms[exp_points]), **columns, HISTOGRAM: histogram})

    def _target_info(self, ok: np.ndarray, scopes: tables.Scopes) -> pa.Table | None:
        """A target_info series per resource, sampled from its first to its last accepted point
        every half lookback delta (as Prometheus does), at most ``TARGET_INFO_SAMPLES`` times."""
        sc = self.sc
        pt = sc.points
        row_ctx = scopes.target_ctx[scopes.resource_id]  # per ResourceMetrics
        if not (row_ctx >= 0).any() or not ok.any():
            return None
        row = sc.scopes[sc.metrics[pt[ok, P_METRIC], M_SCOPE], wire.S_RES]
        first, last = rows.group_range(row, pt[ok, P_TIME], len(row_ctx))
        chosen = np.flatnonzero((row_ctx >= 0) & (last >= 0))
        if len(chosen) == 0:
            return None
        stamps = [target_info_times(first[r], last[r]) for r in chosen]  # one step a resource
        ts = np.concatenate(stamps)
        ctx = np.repeat(row_ctx[chosen], [len(s) for s in stamps])
        n = len(ts)
        own = {self.names.id(METRIC_NAME): self._side_refs(n, self.target_name)}
        columns = self._columns(np.full(n, -1, dtype=np.int64), ctx, own)
        return pa.table({TIMESTAMP: _times(ts), VALUE: np.ones(n), **columns})


def _times(ms: np.ndarray) -> pa.Array:
    """Milliseconds as a UTC timestamp column: unambiguous, where ``Database.write`` would
    refuse integers of early 1970 as probably seconds."""
    return pa.array(ms, type=TIMES)


def target_info_times(first_ns: int, last_ns: int) -> np.ndarray:
    """Prometheus' target_info sample times (ms) for points from first_ns to last_ns: every
    half lookback delta from the first, then the last; only the latest
    ``TARGET_INFO_SAMPLES`` (a request spanning days makes no more)."""
    steps = -(-(int(last_ns) - int(first_ns)) // TARGET_INFO_STEP_NS)
    k = np.arange(max(0, steps - TARGET_INFO_SAMPLES), steps, dtype=np.int64)
    ms = (first_ns + k * TARGET_INFO_STEP_NS) // _NS_PER_MS
    end = last_ns // _NS_PER_MS
    if len(ms) == 0 or ms[-1] < end:
        ms = np.append(ms, end)
    return ms[-TARGET_INFO_SAMPLES:].astype(np.int64)
