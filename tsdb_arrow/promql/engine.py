"""Evaluating a parsed PromQL expression over all steps of a query at once.

:func:`evaluate` is the entry point of ``db.query``, ``db.query_range``, the HTTP API and the
conformance runner. Each AST node becomes one array operation over ``[series, step]``:
selectors load their samples once (``select.py``) and pick the latest per step in a numba
kernel, aggregations and binary operators work on whole matrices (``aggregate.py``,
``binary.py``), functions are ``functions.FUNCTIONS``.
"""

from __future__ import annotations

import importlib
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import promql_parser

from tsdb_arrow.errors import QueryError, QueryLimitError
from tsdb_arrow.promql import annotations
from tsdb_arrow.promql import labels as lab
from tsdb_arrow.promql.native import HistogramRange, NativeHistograms, load_histograms
from tsdb_arrow.promql.select import is_stale, load, selector_text
from tsdb_arrow.promql.values import (
    Call,
    InstantVector,
    RangeVector,
    Scalar,
    Steps,
    String,
    Value,
)

DEFAULT_LOOKBACK = 300_000
DEFAULT_SUBQUERY_STEP = 60_000
_SORTS = frozenset({"sort", "sort_desc", "sort_by_label", "sort_by_label_desc"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class QueryLimits:
    """Bounds on one query: ``max_samples`` counts the raw samples loaded from storage plus,
    for every instant selector and subquery, its ``series x steps`` result cells (what the
    query holds in memory); ``timeout`` is wall-clock seconds, checked between nodes."""

    max_samples: int | None = None
    timeout: float | None = None


PARSE_ERROR = "parse error: "
# Functions Prometheus 2.x knows by another name than the parser (Prometheus 3's).
_RENAMED = {"holt_winters": "double_exponential_smoothing"}
_RENAMED_CALL = re.compile(
    r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)"""  # a string literal: kept
    r"|(?<![\w:])(" + "|".join(_RENAMED) + r")(?=\s*\()"  # a call of a renamed function
)


def parse(expr: str) -> object:
    """The ``promql-parser`` AST of ``expr``; a syntax error becomes a ``QueryError``.

    Calls of ``holt_winters`` (Prometheus 2.x) become ``double_exponential_smoothing``, the
    name the parser knows.
    """
    try:
        return promql_parser.parse(expr)
    except (ValueError, TypeError) as exc:
        renamed = _RENAMED_CALL.sub(lambda m: m.group(1) or _RENAMED[m.group(2)], expr)
        if renamed != expr:
            return parse(renamed)
        raise QueryError(f"{PARSE_ERROR}{exc}") from None


def evaluate(
    db: object,
    expr: str | object,
    steps: Steps,
    *,
    lookback: int = DEFAULT_LOOKBACK,
    limits: QueryLimits | None = None,
    subquery_step: int = DEFAULT_SUBQUERY_STEP,
) -> Value:
    """Evaluate ``expr`` (text or a parsed AST) at every time of ``steps`` against ``db``.

    An instant query is ``Steps(t, t, 0)``. A range vector result is only allowed for one
    step (Prometheus answers an instant query with a matrix then, refuses a range query).
    """
    node = parse(expr) if isinstance(expr, str) else expr
    ev = Evaluator(db, steps, lookback, limits or QueryLimits(), subquery_step)
    with annotations.query_text(expr if isinstance(expr, str) else str(expr)):
        value = ev.eval(node, steps)
    if isinstance(value, RangeVector | String) and len(steps) > 1:
        raise QueryError(
            f'invalid expression type "{_type_name(value)}" for range query, must be Scalar or '
            "instant Vector"
        )
    return value


def to_ms(value: datetime | timedelta) -> int:
    """A parser time (UTC datetime) or duration as int64 milliseconds."""
    if isinstance(value, datetime):
        value = value - _EPOCH
    return round(value / _MS)


def _type_name(value: Value) -> str:
    return {
        Scalar: "scalar",
        String: "string",
        InstantVector: "instant vector",
        RangeVector: "range vector",
    }[type(value)]


class Evaluator:
    """One query's evaluation: the database, the top-level steps (for ``@ start()``/``end()``),
    lookback, limits and the samples loaded so far."""

    def __init__(
        self, db: object, steps: Steps, lookback: int, limits: QueryLimits, subquery_step: int
    ) -> None:
        self.db = db
        self.query = steps
        self.lookback = lookback
        self.limits = limits
        self.subquery_step = subquery_step
        self.samples = 0
        self.deadline = None if limits.timeout is None else time.monotonic() + limits.timeout

    # -- dispatch ---------------------------------------------------------------------------

    def eval(self, node: object, steps: Steps) -> Value:
        """The value of ``node`` at every time of ``steps``."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise QueryLimitError(
                f"query timed out after {self.limits.timeout} s; narrow the time range or the "
                "selectors, or raise the timeout"
            )
        kind = type(node).__name__
        method = getattr(self, f"_eval_{kind}", None)
        if method is None:
            raise QueryError(f"unsupported PromQL expression {kind}: {node}")
        return method(node, steps)

    def _eval_NumberLiteral(self, node: object, steps: Steps) -> Value:
        return Scalar(np.full(len(steps), float(node.val)))  # type: ignore[attr-defined]

    def _eval_StringLiteral(self, node: object, steps: Steps) -> Value:
        return String(node.val)  # type: ignore[attr-defined]

    def _eval_ParenExpr(self, node: object, steps: Steps) -> Value:
        return self.eval(node.expr, steps)  # type: ignore[attr-defined]

    def _eval_UnaryExpr(self, node: object, steps: Steps) -> Value:
        value = self.eval(node.expr, steps)  # type: ignore[attr-defined]
        if isinstance(value, Scalar):
            return Scalar(-value.values)
        if isinstance(value, InstantVector):
            vec = InstantVector(lab.drop_name(value.labels), -value.values, value.present)
            if value.has_histograms:
                from tsdb_arrow.promql import native_ops

                factor = np.full(value.present.shape, -1.0)
                h = native_ops.scaled(value, factor, np.ones(factor.shape, bool))
                vec = InstantVector(vec.labels, vec.values, h.present, None, h.hist, h.pool)
            return lab.merge_same_labels(vec)
        raise QueryError(f"unary minus is not defined on a {_type_name(value)}")

    # -- selectors --------------------------------------------------------------------------

    def _times(self, node: object, steps: Steps) -> tuple[np.ndarray, bool]:
        """Times a selector or subquery is evaluated at (``@`` and ``offset`` applied), and
        whether they are one fixed time (``@``)."""
        at = getattr(node, "at", None)
        offset = to_ms(node.offset) if getattr(node, "offset", None) else 0  # type: ignore[attr-defined]
        if at is None:
            return steps.times - offset, False
        kind = str(at.type)
        if kind.endswith("Start"):
            t = self.query.start
        elif kind.endswith("End"):
            t = self.query.end
        else:
            t = to_ms(at.at)
        return np.array([t - offset], np.int64), True

    def _count(self, n: int) -> None:
        self.samples += n
        limit = self.limits.max_samples
        if limit is not None and self.samples > limit:
            raise QueryLimitError(
                f"query loaded {self.samples} samples, more than the limit of {limit}; narrow "
                "the time range or the selectors, or raise max_samples"
            )

    def _eval_VectorSelector(self, node: object, steps: Steps) -> Value:
        from tsdb_arrow.promql.kernels import instant_select

        times, fixed = self._times(node, steps)
        lo, hi = int(times.min()) - self.lookback + 1, int(times.max())
        samples = load(self.db, node, lo, hi)
        self._count(samples.count + len(samples.labels) * len(steps))
        values, present, stamps = instant_select(
            samples.timestamps, samples.values, samples.offsets, times, self.lookback
        )
        if fixed:
            n = len(steps)
            values, present, stamps = (np.repeat(a, n, axis=1) for a in (values, present, stamps))
        vec = InstantVector(samples.labels, values, present, stamps)
        hs = load_histograms(self.db, selector_text(node), lo, hi)
        if hs is not None:
            self._count(hs.count + len(hs.labels) * len(steps))
            idx, hpresent, hstamps = instant_select(
                hs.timestamps, np.arange(hs.count, dtype=np.float64), hs.offsets, times,
                self.lookback,
            )
            if fixed:
                n = len(steps)
                idx, hpresent, hstamps = (np.repeat(a, n, axis=1) for a in (idx, hpresent, hstamps))
            hist = np.where(hpresent, idx, -1).astype(np.int64)
            vec = with_histograms(vec, hs.labels, hist, hstamps, hs.pool)
        return lab.only_present(vec)

    def _eval_MatrixSelector(self, node: object, steps: Steps) -> Value:
        selector = node.vector_selector  # type: ignore[attr-defined]
        rng = to_ms(node.range)  # type: ignore[attr-defined]
        times, fixed = self._times(selector, steps)
        ends = np.repeat(times, len(steps)) if fixed else times
        samples = load(self.db, selector, int(times.min()) - rng + 1, int(times.max()))
        self._count(samples.count)
        stale = is_stale(samples.values)
        if not stale.any():
            ts, vals, offsets = samples.timestamps, samples.values, samples.offsets
        else:  # range selectors skip stale markers
            keep = ~stale
            ts, vals = samples.timestamps[keep], samples.values[keep]
            owner = np.repeat(np.arange(len(samples.labels)), np.diff(samples.offsets))
            counts = np.bincount(owner[keep], minlength=len(samples.labels))
            offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
        rv = RangeVector(samples.labels, ts, vals, offsets, ends, rng)
        hs = load_histograms(self.db, selector_text(selector), int(times.min()) - rng + 1,
                             int(times.max()))
        if hs is None:
            return rv
        self._count(hs.count)
        rows = np.arange(hs.count, dtype=np.int64)
        return range_with_histograms(rv, hs.labels, hs.timestamps, hs.offsets, rows, hs.pool)

    def _eval_SubqueryExpr(self, node: object, steps: Steps) -> Value:
        rng = to_ms(node.range)  # type: ignore[attr-defined]
        step = to_ms(node.step) if node.step else self.subquery_step  # type: ignore[attr-defined]
        times, fixed = self._times(node, steps)
        ends = np.repeat(times, len(steps)) if fixed else times
        first = int(times.min()) - rng
        start = int(step * _go_div(first, step))
        if start <= first:
            start += step
        end = int(times.max())
        if end < start:  # no inner step falls in any window
            empty = InstantVector(lab.empty_labels(0), np.zeros((0, 0)), np.zeros((0, 0), bool))
            return RangeVector(
                empty.labels, np.empty(0, np.int64), np.empty(0), np.zeros(1, np.int64), ends, rng
            )
        inner_steps = Steps(start, end, step)
        inner = self.eval(node.expr, inner_steps)  # type: ignore[attr-defined]
        if not isinstance(inner, InstantVector):
            raise QueryError(f"subquery is only allowed on instant vector, got {_type_name(inner)}")
        self._count(inner.present.size)
        rows, cols = np.nonzero(inner.present)
        ts = inner_steps.times[cols]
        vals = inner.values[rows, cols]
        counts = np.bincount(rows, minlength=len(inner))
        offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
        rv = RangeVector(inner.labels, ts, vals, offsets, ends, rng)
        if not inner.has_histograms:
            return rv
        assert inner.hist is not None and inner.pool is not None
        hrows, hcols = np.nonzero(inner.hist >= 0)
        h_offsets = np.r_[0, np.cumsum(np.bincount(hrows, minlength=len(inner)))].astype(np.int64)
        rv.hists = HistogramRange(inner_steps.times[hcols], h_offsets, inner.hist[hrows, hcols],
                                  inner.pool)
        return rv

    # -- calls, aggregations, operators -----------------------------------------------------

    def _eval_Call(self, node: object, steps: Steps) -> Value:
        name = node.func.name  # type: ignore[attr-defined]
        exprs = list(node.args)  # type: ignore[attr-defined]
        args = [self.eval(a, steps) for a in exprs]
        try:
            functions = importlib.import_module("tsdb_arrow.promql.functions")
        except ModuleNotFoundError:
            raise QueryError(f"function {name} not implemented") from None
        impl = functions.FUNCTIONS.get(name)
        if impl is None:
            raise QueryError(f"function {name} not implemented")
        if name in _SORTS and steps.start != steps.end:
            annotations.warn(
                "PromQL warning: sort is ineffective for range queries since results are always "
                f"ordered by labels{annotations.position(node)}"
            )
        value = impl(Call(name, args, exprs, steps))
        if isinstance(value, InstantVector):
            return lab.merge_same_labels(value)
        return value

    def _eval_AggregateExpr(self, node: object, steps: Steps) -> Value:
        from tsdb_arrow.promql.aggregate import aggregate

        vec = self.eval(node.expr, steps)  # type: ignore[attr-defined]
        if not isinstance(vec, InstantVector):
            raise QueryError(f"expected instant vector in aggregation, got {_type_name(vec)}")
        param = None
        if node.param is not None:  # type: ignore[attr-defined]
            param = self.eval(node.param, steps)  # type: ignore[attr-defined]
        where = annotations.position(node.param) if node.param is not None else ""  # type: ignore[attr-defined]
        op = str(node.op)  # type: ignore[attr-defined]
        if vec.has_histograms and op in ("sum", "avg"):
            from tsdb_arrow.promql import native_ops

            modifier = node.modifier  # type: ignore[attr-defined]
            names = list(modifier.labels) if modifier is not None else []
            without = modifier is not None and str(modifier.type).endswith("Without")
            ids, uniq = lab.group_ids(lab.grouping_keys(vec.labels, names, without=without))
            return native_ops.aggregate(op, vec, ids, uniq, annotations.position(node.expr))  # type: ignore[attr-defined]
        if vec.has_histograms:
            vec = _histograms_in_aggregation(op, vec, node)
        return aggregate(op, vec, param, node.modifier, len(steps), where)  # type: ignore[attr-defined]

    def _eval_BinaryExpr(self, node: object, steps: Steps) -> Value:
        from tsdb_arrow.promql.binary import binary

        lhs = self.eval(node.lhs, steps)  # type: ignore[attr-defined]
        rhs = self.eval(node.rhs, steps)  # type: ignore[attr-defined]
        return binary(str(node.op), lhs, rhs, node.modifier)  # type: ignore[attr-defined]


_IGNORE_HISTOGRAMS = frozenset({"min", "max", "topk", "bottomk", "stddev", "stdvar", "quantile"})


def _histograms_in_aggregation(op: str, vec: InstantVector, node: object) -> InstantVector:
    """The vector an aggregation sees of native histogram samples: ``count`` and ``group``
    count them as samples; ``min``, ``max``, ``topk``, ``bottomk``, ``stddev``, ``stdvar``
    and ``quantile`` ignore them with Prometheus' info; the others see the floats only
    (``sum`` and ``avg`` go to ``native_ops.aggregate``)."""
    assert vec.hist is not None
    is_hist = vec.hist >= 0
    if op in ("count", "group"):
        values = np.where(is_hist, 0.0, vec.values)
        return InstantVector(vec.labels, values, vec.present | is_hist, vec.timestamps)
    if op in _IGNORE_HISTOGRAMS:
        annotations.info(
            f"PromQL info: ignored histogram in {op} aggregation{annotations.position(node)}"
        )
    return InstantVector(vec.labels, vec.values, vec.present, vec.timestamps)


def with_histograms(
    vec: InstantVector, labels: pl.DataFrame, hist: np.ndarray, stamps: np.ndarray,
    pool: NativeHistograms,
) -> InstantVector:
    """The float samples of ``vec`` and the histogram samples of the series ``labels``: a
    series with both kinds gets, at every step, the later of its float and histogram sample."""
    n_f, n_steps = vec.values.shape[0], hist.shape[1]
    ids, _ = lab.group_ids(lab.tidy(lab.concat([vec.labels, labels])))
    first = np.full(ids.size, -1, np.int64)
    first[ids[:n_f][::-1]] = np.arange(n_f)[::-1]
    twin = first[ids[n_f:]]  # the float row with the same labels as each histogram row, or -1
    present, values = vec.present.copy(), vec.values
    f_stamps = vec.timestamps if vec.timestamps is not None else np.zeros(values.shape, np.int64)
    merged_hist = np.full((n_f, n_steps), -1, np.int64)
    keep = np.ones(labels.height, bool)
    if (twin >= 0).any():
        hi = np.flatnonzero(twin >= 0)
        fi = twin[hi]
        use_h = (hist[hi] >= 0) & (~present[fi] | (stamps[hi] > f_stamps[fi]))
        present[fi] &= ~use_h
        merged_hist[fi] = np.where(use_h, hist[hi], -1)
        f_stamps = f_stamps.copy()
        f_stamps[fi] = np.where(use_h, stamps[hi], f_stamps[fi])
        keep[hi] = False
    rest = labels.filter(pl.Series(keep))
    n_h = rest.height
    all_labels = lab.concat([vec.labels, rest]) if n_f else rest
    return InstantVector(
        all_labels,
        np.concatenate([values, np.full((n_h, n_steps), np.nan)]),
        np.concatenate([present, np.zeros((n_h, n_steps), bool)]),
        np.concatenate([f_stamps, stamps[keep]]),
        np.concatenate([merged_hist, hist[keep]]),
        pool,
    )


def range_with_histograms(
    rv: RangeVector, labels: pl.DataFrame, stamps: np.ndarray, offsets: np.ndarray,
    rows: np.ndarray, pool: NativeHistograms,
) -> RangeVector:
    """``rv`` with the histogram samples of the series ``labels`` (series i's at
    ``stamps[offsets[i]:offsets[i+1]]``, pool rows ``rows[...]``): a series with float samples
    too keeps its row, the others are added without float samples."""
    n_f = len(rv)
    ids, _ = lab.group_ids(lab.tidy(lab.concat([rv.labels, labels])))
    first = np.full(ids.size, -1, np.int64)
    first[ids[:n_f][::-1]] = np.arange(n_f)[::-1]
    target = first[ids[n_f:]]  # the row of each histogram series in the result
    extra = target < 0
    n_extra = int(extra.sum())
    target[extra] = n_f + np.arange(n_extra)
    new = labels.filter(pl.Series(extra))
    all_labels = lab.concat([rv.labels, new]) if n_f else new
    n = n_f + n_extra
    lengths = np.zeros(n, np.int64)
    lengths[target] = np.diff(offsets)
    h_offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    # samples regrouped by result row, each series' samples staying in time order
    owner = np.repeat(target, np.diff(offsets))
    order = np.argsort(owner, kind="stable")
    f_offsets = np.r_[rv.offsets, np.full(n_extra, rv.offsets[-1])].astype(np.int64)
    return RangeVector(
        all_labels, rv.timestamps, rv.values, f_offsets, rv.window_ends, rv.range,
        HistogramRange(stamps[order], h_offsets, rows[order], pool),
    )


def _go_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's ``/``."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q
