"""Which metrics and data points of a request are refused, and the messages that say why.

A metric is refused whole (all its points) when it has no name, no name left after sanitising,
no data of a known type, or an aggregation temporality that is neither delta nor cumulative. A
point is refused alone for a timestamp of 0 or before 1970, a missing value, too many or too
large attributes, an empty or repeated attribute key, inconsistent buckets, or an invalid
exponential histogram. Every check is vectorised over the point table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tsdb_arrow.ingest.otlp import rows, wire
from tsdb_arrow.ingest.otlp.labels import intern_ranges
from tsdb_arrow.ingest.otlp.names import metric_name
from tsdb_arrow.ingest.otlp.tables import distinct_rows
from tsdb_arrow.ingest.otlp.wire import (
    E_KEY_E,
    E_KEY_S,
    E_POINT,
    E_TYPE,
    E_VAL_E,
    E_VAL_S,
    EXPONENTIAL,
    GAUGE,
    H_DOUBLE,
    H_INT,
    HISTOGRAM,
    M_KIND,
    M_MONO,
    M_NAME_E,
    M_NAME_S,
    M_TEMP,
    M_UNIT_E,
    M_UNIT_S,
    P_A0,
    P_A1,
    P_FLAGS,
    P_HAS,
    P_METRIC,
    P_TIME,
    SUM,
    V_ARRAY,
    V_BYTES,
    V_KVLIST,
    V_STRING,
)
from tsdb_arrow.jit import njit

if TYPE_CHECKING:
    from tsdb_arrow.ingest.otlp.convert import OtlpLimits

DELTA, CUMULATIVE = 1, 2

# Reasons, in the order they are checked (a point gets the first that applies).
(NO_NAME, BAD_NAME, NO_DATA, BAD_TEMPORALITY, NO_DELTA_STATE, BAD_TIME, NO_VALUE,
 TOO_MANY_ATTRIBUTES, EMPTY_KEY, LONG_KEY, LONG_VALUE, TOO_MANY_LABELS) = range(1, 13)  # fmt: skip
HISTOGRAM_REASON = 20  # + rows.BAD_* codes
REPEATED_KEY = 40

_TEXT = {
    NO_NAME: "the metric has no name",
    BAD_NAME: "no valid character is left of the metric name after sanitising",
    NO_DATA: "the metric holds no gauge, sum, histogram, exponential histogram or summary",
    BAD_TEMPORALITY: "its aggregation temporality is neither DELTA nor CUMULATIVE",
    NO_DELTA_STATE: "delta temporality needs the running totals a server keeps (DeltaState)",
    BAD_TIME: "time_unix_nano is 0 or before 1970",
    NO_VALUE: "the data point has neither as_double nor as_int",
    TOO_MANY_ATTRIBUTES: "more than {max_attributes} attributes",
    EMPTY_KEY: "an attribute has an empty key",
    LONG_KEY: "an attribute key is longer than {max_key_bytes} bytes",
    LONG_VALUE: "an attribute value is longer than {max_value_bytes} bytes",
    TOO_MANY_LABELS: "the request has more than {max_label_names} distinct attribute names",
    HISTOGRAM_REASON + rows.BAD_BUCKETS: "bucket_counts must hold one count more than "
    "explicit_bounds",
    HISTOGRAM_REASON + rows.BAD_BOUNDS: "explicit_bounds must be increasing numbers",
    HISTOGRAM_REASON + rows.BAD_COUNT: "count differs from the sum of bucket_counts",
    HISTOGRAM_REASON + rows.BAD_SCALE: f"scale outside {rows.MIN_SCALE}..{rows.MAX_SCALE}",
    HISTOGRAM_REASON + rows.BAD_ZERO_THRESHOLD: "zero_threshold is negative or not finite",
    HISTOGRAM_REASON + rows.BAD_MIN_MAX: "min is greater than max",
    HISTOGRAM_REASON + rows.BAD_EXP_COUNT: "count differs from zero_count plus the bucket counts",
    HISTOGRAM_REASON + rows.BAD_INDEX: "bucket indices exceed the 32-bit range",
    REPEATED_KEY: "two attributes have the same key",
}
_N_REASONS = 64


@dataclass(frozen=True)
class Metrics:
    """Per metric of the request: its kind, Prometheus name and whether it is refused."""

    kind: np.ndarray  # int64 wire kind (0: no known data)
    family_id: np.ndarray  # int64: its Prometheus name, in ``families``
    families: list[str]  # the distinct Prometheus names ("" when nothing valid is left)
    reason: np.ndarray  # int64, 0 when the metric is accepted
    summed: np.ndarray  # bool: delta sums and histograms, summed up by a DeltaState


def describe_metrics(sc: wire.Scan, has_delta_state: bool) -> Metrics:
    """Name every metric and find the refused ones (one Python step per distinct name)."""
    met = sc.metrics
    n = len(met)
    kind = met[:, M_KIND]
    counter = (kind == SUM) & (met[:, M_MONO] != 0)
    name_id, _ = intern_ranges(sc.body, met, M_NAME_S, M_NAME_E)
    unit_id, unit_first = intern_ranges(sc.body, met, M_UNIT_S, M_UNIT_E)
    units = [sc.text(met[i, M_UNIT_S], met[i, M_UNIT_E]) for i in unit_first]
    reason = np.zeros(n, dtype=np.int64)
    temporal = (kind == SUM) | (kind == HISTOGRAM) | (kind == EXPONENTIAL)
    temp = met[:, M_TEMP]
    summed = ((kind == SUM) | (kind == HISTOGRAM)) & (temp == DELTA)
    checks = [
        (met[:, M_NAME_E] == met[:, M_NAME_S], NO_NAME),
        (kind == 0, NO_DATA),
        (temporal & (temp != DELTA) & (temp != CUMULATIVE), BAD_TEMPORALITY),
        (summed & (not has_delta_state), NO_DELTA_STATE),
    ]
    for bad, code in checks:
        reason[(reason == 0) & bad] = code
    # Only the metrics not refused yet are named (a refused one's points never need it).
    gauge = (kind == GAUGE).astype(np.int64)
    first, inverse = distinct_rows(name_id, unit_id, gauge, counter.astype(np.int64))
    named = np.zeros(len(first), dtype=bool)
    named[inverse[reason == 0]] = True
    families = [
        metric_name(
            sc.text(met[i, M_NAME_S], met[i, M_NAME_E]),
            units[unit_id[i]],
            gauge=bool(gauge[i]),
            counter=bool(counter[i]),
        )
        if named[f]
        else ""
        for f, i in enumerate(first)
    ]
    no_family = np.array([f == "" for f in families], dtype=bool)[inverse]
    reason[(reason == 0) & no_family] = BAD_NAME
    return Metrics(
        kind=kind,
        family_id=inverse,
        families=families,
        reason=reason,
        summed=summed,
    )


@njit(cache=True, nogil=True)
def _point_reasons(pt, ent, metric_reason, metric_kind, max_attributes, max_key, max_value):
    """The first reason each point is refused for, from its fields and its entries."""
    n = pt.shape[0]
    reason = np.zeros(n, dtype=np.int64)
    for p in range(n):
        m = pt[p, P_METRIC]
        r = metric_reason[m]
        if r == 0:
            kind = metric_kind[m]
            stale = pt[p, P_FLAGS] & rows.NO_RECORDED_VALUE
            if pt[p, P_TIME] <= 0:
                r = BAD_TIME
            elif (kind == GAUGE or kind == SUM) and not stale and (
                    pt[p, P_HAS] & (H_DOUBLE | H_INT)) == 0:  # fmt: skip
                r = NO_VALUE
            elif pt[p, P_A1] - pt[p, P_A0] > max_attributes:
                r = TOO_MANY_ATTRIBUTES
            else:
                for i in range(pt[p, P_A0], pt[p, P_A1]):
                    key = ent[i, E_KEY_E] - ent[i, E_KEY_S]
                    t = ent[i, E_TYPE]
                    sized = t == V_STRING or t == V_BYTES or t == V_ARRAY or t == V_KVLIST
                    if key == 0:
                        r = EMPTY_KEY
                    elif key > max_key:
                        r = LONG_KEY
                    elif sized and ent[i, E_VAL_E] - ent[i, E_VAL_S] > max_value:
                        r = LONG_VALUE
                    if r:
                        break
        reason[p] = r
    return reason


def check_points(sc: wire.Scan, metrics: Metrics, limits: OtlpLimits) -> np.ndarray:
    """Reason codes per data point (0: accepted so far) from the point and entry tables."""
    pt = sc.points
    reason = _point_reasons(
        pt, sc.entries, metrics.reason, metrics.kind, limits.max_attributes,
        limits.max_key_bytes, limits.max_value_bytes,
    )  # fmt: skip
    kind = metrics.kind[pt[:, P_METRIC]]
    hist = np.flatnonzero((reason == 0) & ((kind == HISTOGRAM) | (kind == EXPONENTIAL)))
    if len(hist):
        bad = rows.check_histograms(hist, kind[hist], pt, pt.view(np.float64), sc.counts,
                                    sc.floats)  # fmt: skip
        hit = bad != 0
        reason[hist[hit]] = HISTOGRAM_REASON + bad[hit]
    return reason


def reject_entries(sc: wire.Scan, reason: np.ndarray, bad_entries: np.ndarray, code: int) -> None:
    """Refuse (in place) the accepted points that hold one of ``bad_entries`` (a mask)."""
    n = len(reason)
    hit = _any_entry(sc.entries, bad_entries, n)
    reason[(reason == 0) & hit] = code


def _any_entry(ent: np.ndarray, bad: np.ndarray, n_points: int) -> np.ndarray:
    if not bad.any():
        return np.zeros(n_points, dtype=bool)
    return np.bincount(ent[bad, E_POINT], minlength=n_points) > 0


def messages(
    sc: wire.Scan, metrics: Metrics, reason: np.ndarray, limits: OtlpLimits
) -> tuple[int, list[str], int]:
    """(rejected data points, the first ``max_errors`` messages, how many there are): one
    message per metric and reason, in request order.

    A metric of no known type counts as one rejected point: its points cannot be counted.
    """
    bad = np.flatnonzero(reason)
    codes = sc.points[bad, P_METRIC] * _N_REASONS + reason[bad]
    no_data = np.flatnonzero(metrics.kind == 0)
    keys = np.concatenate([no_data * _N_REASONS + NO_DATA, codes])
    firsts = np.concatenate([sc.metrics[no_data, wire.M_P0], bad])
    if len(keys) == 0:
        return 0, [], 0
    distinct, first, counts = np.unique(keys, return_index=True, return_counts=True)
    out = []
    for i in np.argsort(firsts[first], kind="stable")[: limits.max_errors]:
        metric, code = divmod(int(distinct[i]), _N_REASONS)
        count = int(counts[i])
        text = _TEXT[code].format(**vars(limits))
        points = "data point" if count == 1 else "data points"
        source = sc.text(sc.metrics[metric, M_NAME_S], sc.metrics[metric, M_NAME_E])
        out.append(f"metric {source!r}: {count} {points} rejected: {text}")
    return len(bad) + len(no_data), out, len(distinct)
