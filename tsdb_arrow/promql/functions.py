"""Every PromQL function, over all series and steps at once: ``FUNCTIONS[name](call)``.

The evaluator hands each function a :class:`~tsdb_arrow.promql.values.Call` (evaluated
arguments, their AST nodes, the evaluation steps) and gets a value back. Range-vector functions
run the numba kernels of ``range_kernels``; instant functions are numpy over the
``[series, step]`` arrays and Polars over the label frame. Which results keep ``__name__``
follows Prometheus 3: ``last_over_time``, ``first_over_time``, ``sort*``, ``label_replace``,
``label_join`` keep it, every other function that returns series drops it. Series that end up
with equal label sets are merged, or refused as Prometheus does when two of them have a sample
at the same step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl

from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql import labels as lab
from tsdb_arrow.promql import range_kernels as rk
from tsdb_arrow.promql.annotations import info, warn
from tsdb_arrow.promql.call_args import arg_position, check_args, n_steps, scalar_arg, string_arg
from tsdb_arrow.promql.classic_histograms import over_buckets
from tsdb_arrow.promql.dates import date_parts
from tsdb_arrow.promql.label_ops import (
    absent_labels,
    check_label_name,
    drop_name,
    finish,
    label_join,
    label_replace,
    sort_by_label_order,
)
from tsdb_arrow.promql.labels import concat as lab_concat
from tsdb_arrow.promql.values import Call, InstantVector, RangeVector, Scalar, String, Value

STALE_BITS = np.uint64(0x7FF0000000000002)
_COUNTER_SUFFIXES = ("_total", "_sum", "_count", "_bucket")

def _check_quantile(q: np.ndarray, where: str) -> None:
    """Prometheus' warning for a quantile outside [0, 1] (the result is then -Inf/+Inf/NaN)."""
    bad = q[np.isnan(q) | (q < 0) | (q > 1)]
    if bad.size:
        warn("PromQL warning: quantile value should be between 0 and 1, got "
             f"{_go_float(bad[0])}{where}")


def _go_float(f: float) -> str:
    """A float as Go's ``%g`` prints it (``NaN``, ``+Inf``, ``0.5``, ``1e+06``)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    return f"{f:g}"


def _openmetrics_float(f: float) -> str:
    """Prometheus' ``FormatOpenMetricsFloat`` (``0.0``, ``1.0``, ``0.25``, ``+Inf``)."""
    if math.isnan(f) or math.isinf(f):
        return _go_float(f)
    text = repr(float(f))
    return text if ("." in text or "e" in text) else text + ".0"


def _empty(n: int) -> InstantVector:
    return InstantVector(pl.DataFrame(), np.zeros((0, n)), np.zeros((0, n), bool))


# --- range vectors -------------------------------------------------------------------------

def _windows(rv: RangeVector) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples without stale markers and the bounds of every window: ``ts, values, lo, hi``."""
    ts = np.ascontiguousarray(rv.timestamps, dtype=np.int64)
    vals = np.ascontiguousarray(rv.values, dtype=np.float64)
    offsets = np.ascontiguousarray(rv.offsets, dtype=np.int64)
    stale = vals.view(np.uint64) == STALE_BITS
    if stale.any():
        keep = ~stale
        offsets = np.concatenate([[0], np.cumsum(keep)])[offsets].astype(np.int64)
        ts, vals = ts[keep], vals[keep]
    ends = np.ascontiguousarray(rv.window_ends, dtype=np.int64)
    lo, hi = rk.window_bounds(ts, offsets, ends, np.int64(rv.range))
    return ts, vals, lo, hi


def _from_range(rv: RangeVector, out: np.ndarray, ok: np.ndarray,
                keep_name: bool = False) -> InstantVector:
    return finish(rv.labels if keep_name else drop_name(rv.labels), out, ok)


def _over_time(kind: int, keep_name: bool = False) -> Callable[[Call], Value]:
    def fn(call: Call) -> Value:
        check_args(call, (RangeVector,))
        rv = call.args[0]
        ts, vals, lo, hi = _windows(rv)
        out, ok = rk.over_time(ts, vals, lo, hi, kind)
        if rv.hists is not None and kind in _HISTOGRAM_OVER_TIME:
            return _histogram_range(_HISTOGRAM_OVER_TIME[kind], call, rv, (ts, lo, hi), out,
                                    ok, keep_name=keep_name)
        return _from_range(rv, out, ok, keep_name)
    return fn


# *_over_time functions that read histogram samples too (the others see the floats only).
_HISTOGRAM_OVER_TIME = {rk.LAST: "last_over_time", rk.SUM: "sum_over_time",
                        rk.AVG: "avg_over_time", rk.COUNT: "count_over_time",
                        rk.PRESENT: "present_over_time"}


def _histogram_range(name: str, call: Call, rv: RangeVector, windows: tuple, out: np.ndarray,
                     ok: np.ndarray, *, keep_name: bool = False) -> Value:
    """A range function's float results with the results over histogram samples added."""
    from tsdb_arrow.promql import native_range as nr

    kind = {"rate": nr.RATE, "increase": nr.INCREASE, "delta": nr.DELTA, "irate": nr.IRATE,
            "idelta": nr.IDELTA, "last_over_time": nr.LAST, "sum_over_time": nr.SUM,
            "avg_over_time": nr.AVG, "count_over_time": nr.COUNT,
            "present_over_time": nr.PRESENT}[name]
    ts, lo, hi = windows
    return nr.combine(kind, rv, ts, lo, hi, out, ok, arg_position(call, 0), keep_name=keep_name)


def _rate(is_counter: bool, is_rate: bool) -> Callable[[Call], Value]:
    def fn(call: Call) -> Value:
        check_args(call, (RangeVector,))
        rv = call.args[0]
        ts, vals, lo, hi = _windows(rv)
        ends = np.ascontiguousarray(rv.window_ends, dtype=np.int64)
        out, ok = rk.extrapolated_rate(ts, vals, lo, hi, ends, np.int64(rv.range), is_counter,
                                       is_rate)
        if is_counter:
            _check_counter_names(rv, ok, arg_position(call, 0))
        if rv.hists is not None:
            return _histogram_range(call.name, call, rv, (ts, lo, hi), out, ok)
        return _from_range(rv, out, ok)
    return fn


def _check_counter_names(rv: RangeVector, ok: np.ndarray, where: str) -> None:
    """Prometheus' info on ``rate``/``increase`` of a metric not named like a counter."""
    if "__name__" not in rv.labels.columns or not ok.any():
        return
    names = rv.labels["__name__"].filter(pl.Series(ok.any(axis=1))).drop_nulls().unique()
    for name in names.to_list():
        if not name.endswith(_COUNTER_SUFFIXES):
            info("PromQL info: metric might not be a counter, name does not end in "
                 f'_total/_sum/_count/_bucket: "{name}"{where}')
            return


def _instant_rate(is_rate: bool) -> Callable[[Call], Value]:
    def fn(call: Call) -> Value:
        check_args(call, (RangeVector,))
        rv = call.args[0]
        ts, vals, lo, hi = _windows(rv)
        out, ok = rk.instant_rate(ts, vals, lo, hi, is_rate)
        if rv.hists is not None:
            return _histogram_range(call.name, call, rv, (ts, lo, hi), out, ok)
        return _from_range(rv, out, ok)
    return fn


def _eval_times(call: Call, rv: RangeVector) -> np.ndarray:
    times = call.steps.times
    return times if len(times) == len(rv.window_ends) else np.asarray(rv.window_ends, np.int64)


def _deriv(call: Call) -> Value:
    check_args(call, (RangeVector,))
    rv = call.args[0]
    ts, vals, lo, hi = _windows(rv)
    zeros = np.zeros(len(rv.window_ends))
    out, ok = rk.linear(ts, vals, lo, hi, zeros.astype(np.int64), zeros, False)
    return _from_range(rv, out, ok)


def _predict_linear(call: Call) -> Value:
    check_args(call, (RangeVector, Scalar))
    rv = call.args[0]
    ts, vals, lo, hi = _windows(rv)
    out, ok = rk.linear(ts, vals, lo, hi, _eval_times(call, rv), scalar_arg(call, 1), True)
    return _from_range(rv, out, ok)


def _smoothing(call: Call) -> Value:
    check_args(call, (RangeVector, Scalar, Scalar))
    rv = call.args[0]
    sf, tf = scalar_arg(call, 1), scalar_arg(call, 2)
    if len(rv):
        for name, factor in (("smoothing", sf), ("trend", tf)):
            bad = factor[~((factor > 0) & (factor < 1))]
            if bad.size:
                short = name[0] + "f"
                raise QueryError(f"invalid {name} factor. Expected: 0 < {short} < 1, got: "
                                 f"{bad[0]:f}")
    ts, vals, lo, hi = _windows(rv)
    out, ok = rk.double_exponential_smoothing(vals, lo, hi, sf, tf)
    return _from_range(rv, out, ok)


def _quantile_over_time(call: Call) -> Value:
    check_args(call, (Scalar, RangeVector))
    rv = call.args[1]
    ts, vals, lo, hi = _windows(rv)
    q = scalar_arg(call, 0)
    if len(rv):
        _check_quantile(q, arg_position(call, 0))
    out, ok = rk.quantile_over_time(vals, lo, hi, q, False)
    return _from_range(rv, out, ok)


def _mad_over_time(call: Call) -> Value:
    check_args(call, (RangeVector,))
    rv = call.args[0]
    ts, vals, lo, hi = _windows(rv)
    out, ok = rk.quantile_over_time(vals, lo, hi, np.zeros(len(rv.window_ends)), True)
    return _from_range(rv, out, ok)


def _absent_over_time(call: Call) -> Value:
    check_args(call, (RangeVector,))
    rv = call.args[0]
    ts, vals, lo, hi = _windows(rv)
    seen = (hi > lo).any(axis=0) if len(rv) else np.zeros(len(rv.window_ends), dtype=bool)
    labels = absent_labels(call.arg_exprs[0] if call.arg_exprs else None)
    return finish(labels, np.ones((1, seen.size)), ~seen[None, :])


# --- instant vectors -----------------------------------------------------------------------

def _math(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[Call], Value]:
    def fn(call: Call) -> Value:
        check_args(call, (InstantVector,))
        iv = call.args[0]
        with np.errstate(all="ignore"):
            out = f(np.asarray(iv.values, dtype=np.float64))
        return finish(drop_name(iv.labels), out, iv.present)
    return fn


def _sgn(v: np.ndarray) -> np.ndarray:
    return np.where(v < 0, -1.0, np.where(v > 0, 1.0, v))


def _round(call: Call) -> Value:
    check_args(call, (InstantVector, Scalar), required=1)
    iv = call.args[0]
    with np.errstate(all="ignore"):
        inverse = 1.0 / scalar_arg(call, 1, 1.0)
        out = np.floor(iv.values * inverse + 0.5) / inverse
    return finish(drop_name(iv.labels), out, iv.present)


def _clamp(call: Call, lower: np.ndarray, upper: np.ndarray) -> Value:
    iv = call.args[0]
    out = np.maximum(lower, np.minimum(upper, iv.values))
    present = iv.present & ~(upper < lower)[None, :]
    return finish(drop_name(iv.labels), out, present)


def _clamp_both(call: Call) -> Value:
    check_args(call, (InstantVector, Scalar, Scalar))
    return _clamp(call, scalar_arg(call, 1), scalar_arg(call, 2))


def _clamp_min(call: Call) -> Value:
    check_args(call, (InstantVector, Scalar))
    return _clamp(call, scalar_arg(call, 1), np.full(n_steps(call), math.inf))


def _clamp_max(call: Call) -> Value:
    check_args(call, (InstantVector, Scalar))
    return _clamp(call, np.full(n_steps(call), -math.inf), scalar_arg(call, 1))


def _timestamp(call: Call) -> Value:
    check_args(call, (InstantVector,))
    iv = call.args[0]
    times = iv.timestamps
    if times is None:
        times = np.broadcast_to(call.steps.times[None, :].astype(np.int64), iv.values.shape)
    present = iv.present
    if iv.has_histograms:  # the time of a histogram sample too
        present = present | (iv.hist >= 0)  # type: ignore[operator]
    return finish(drop_name(iv.labels), np.asarray(times) / 1000.0, present)


def _time(call: Call) -> Value:
    check_args(call, ())
    return Scalar(call.steps.times / 1000.0)


def _pi(call: Call) -> Value:
    check_args(call, ())
    return Scalar(np.full(len(call.steps), math.pi))


def _query_scalar(pick: Callable[[Call], float]) -> Callable[[Call], Value]:
    def fn(call: Call) -> Value:
        check_args(call, ())
        return Scalar(np.full(len(call.steps), pick(call)))
    return fn


def _min_max_of(f: Callable[..., np.ndarray]) -> Callable[[Call], Value]:
    def fn(call: Call) -> Value:
        check_args(call, (Scalar, Scalar))
        return Scalar(f(scalar_arg(call, 0), scalar_arg(call, 1)))
    return fn


def _vector(call: Call) -> Value:
    check_args(call, (Scalar,))
    v = scalar_arg(call, 0)
    return InstantVector(pl.DataFrame(height=1), v[None, :].copy(), np.ones((1, v.size), bool))


def _scalar_fn(call: Call) -> Value:
    check_args(call, (InstantVector,))
    iv = call.args[0]
    count = iv.present.sum(axis=0)
    total = np.where(iv.present, iv.values, 0.0).sum(axis=0)
    return Scalar(np.where(count == 1, total, math.nan))


def _sort(descending: bool) -> Callable[[Call], Value]:
    def fn(call: Call) -> Value:
        check_args(call, (InstantVector,))
        iv = call.args[0]
        if iv.values.shape[1] != 1 or call.steps.start != call.steps.end:
            return iv  # the evaluator warns that sorting a range query is ineffective
        v = iv.values[:, 0]
        order = np.argsort(-v if descending else v, kind="stable")
        if iv.has_histograms:  # Prometheus' sort drops histogram samples
            iv = InstantVector(iv.labels, iv.values, iv.present)
        return finish(iv.labels[order], iv.values[order], iv.present[order])
    return fn


def _sort_by_label(descending: bool) -> Callable[[Call], Value]:
    def fn(call: Call) -> Value:
        check_args(call, (InstantVector, String), required=1, variadic=True)
        iv = call.args[0]
        names = [string_arg(call, i) for i in range(1, len(call.args))]
        order = sort_by_label_order(iv.labels, names, descending)
        return _relabelled(iv, iv.labels[order], order)
    return fn


def _relabelled(iv: InstantVector, labels: pl.DataFrame,
                order: np.ndarray | None = None) -> InstantVector:
    """``iv``'s samples, histogram samples too, under new ``labels`` (rows of ``order``)."""
    if order is None:
        order = np.arange(len(iv))
    if not iv.has_histograms:
        return finish(labels, iv.values[order], iv.present[order])
    vec = InstantVector(labels, iv.values[order], iv.present[order], None,
                        iv.hist[order], iv.pool)  # type: ignore[index]
    return lab.merge_same_labels(lab.only_present(vec))


def _label_replace(call: Call) -> Value:
    check_args(call, (InstantVector, String, String, String, String))
    iv = call.args[0]
    labels = label_replace(iv.labels, *(string_arg(call, i) for i in range(1, 5)))
    return _relabelled(iv, labels)


def _label_join(call: Call) -> Value:
    check_args(call, (InstantVector, String, String, String), required=3, variadic=True)
    iv = call.args[0]
    sources = [string_arg(call, i) for i in range(3, len(call.args))]
    labels = label_join(iv.labels, string_arg(call, 1), string_arg(call, 2), sources)
    return _relabelled(iv, labels)


def _absent(call: Call) -> Value:
    check_args(call, (InstantVector,))
    iv = call.args[0]
    seen = iv.present.any(axis=0)
    labels = absent_labels(call.arg_exprs[0] if call.arg_exprs else None)
    return finish(labels, np.ones((1, seen.size)), ~seen[None, :])


def _histogram_quantile(call: Call) -> Value:
    check_args(call, (Scalar, InstantVector))
    q = scalar_arg(call, 0)
    if len(call.args[1]):
        _check_quantile(q, arg_position(call, 0))
    iv = call.args[1]
    groups, out, ok = over_buckets(_floats_only(iv), q, q, False, arg_position(call, 1))
    if iv.has_histograms:
        from tsdb_arrow.promql import native_functions

        groups, out, ok = _stack((groups, out, ok), native_functions.quantile(iv, q))
    return finish(groups, out, ok)


def _floats_only(iv: InstantVector) -> InstantVector:
    """``iv`` without its native histogram samples (series left with none dropped)."""
    if not iv.has_histograms:
        return iv
    keep = iv.present.any(axis=1)
    return InstantVector(iv.labels.filter(pl.Series(keep)), iv.values[keep], iv.present[keep])


def _stack(*parts: tuple[pl.DataFrame, np.ndarray, np.ndarray]
           ) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Function results of several parts as one (``finish`` merges equal label sets)."""
    return (lab_concat([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def _histogram_quantiles(call: Call) -> Value:
    """``histogram_quantiles(v, "label", q...)``: one series per quantile, the label names it."""
    check_args(call, (InstantVector, String, Scalar), required=3, variadic=True)
    iv, label = call.args[0], string_arg(call, 1)
    check_label_name(label, "histogram_quantiles", "quantile")
    parts, values, present = [], [], []
    for i in range(2, len(call.args)):
        q = scalar_arg(call, i)
        if len(iv):
            _check_quantile(q, arg_position(call, i))
        groups, out, ok = over_buckets(iv, q, q, False, arg_position(call, 0))
        parts.append(groups.with_columns(pl.lit(_openmetrics_float(q[0])).alias(label)))
        values.append(out)
        present.append(ok)
    labels = pl.concat(parts, how="diagonal") if parts else pl.DataFrame()
    n = n_steps(call)
    return finish(labels, np.concatenate(values) if values else np.zeros((0, n)),
                  np.concatenate(present) if present else np.zeros((0, n), bool))


def _histogram_fraction(call: Call) -> Value:
    check_args(call, (Scalar, Scalar, InstantVector))
    iv, lo, hi = call.args[2], scalar_arg(call, 0), scalar_arg(call, 1)
    groups, out, ok = over_buckets(_floats_only(iv), lo, hi, True, arg_position(call, 2))
    if iv.has_histograms:
        from tsdb_arrow.promql import native_functions

        groups, out, ok = _stack((groups, out, ok), native_functions.fraction(iv, lo, hi))
    return finish(groups, out, ok)


def _native_only(call: Call) -> Value:
    """``histogram_count`` and the like read native histograms; float samples are ignored."""
    check_args(call, (InstantVector,))
    iv = call.args[0]
    if not iv.has_histograms:
        return _empty(n_steps(call))
    from tsdb_arrow.promql import native_functions

    return finish(*native_functions.statistic(call.name, iv))


def _date(part: str) -> Callable[[Call], Value]:
    def fn(call: Call) -> Value:
        check_args(call, (InstantVector,), required=0)
        if not call.args:
            t = call.steps.times.astype(np.int64)
            secs = np.sign(t) * (np.abs(t) // 1000)
            out = date_parts(secs, part)[None, :]
            return InstantVector(pl.DataFrame(height=1), out, np.ones(out.shape, bool))
        iv = call.args[0]
        v = np.asarray(iv.values, dtype=np.float64)
        finite = np.isfinite(v) & (np.abs(v) < 1e15)
        secs = np.trunc(np.where(finite, v, 0.0)).astype(np.int64)
        out = np.where(finite, date_parts(secs, part), math.nan)
        return finish(drop_name(iv.labels), out, iv.present)
    return fn


_MATH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "exp": np.exp, "sqrt": np.sqrt,
    "ln": np.log, "log2": np.log2, "log10": np.log10, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh,
    "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh,
    "atanh": np.arctanh, "sgn": _sgn,
    "rad": lambda v: v * math.pi / 180, "deg": lambda v: v * 180 / math.pi,
}

_OVER_TIME = {
    "sum_over_time": rk.SUM, "avg_over_time": rk.AVG, "count_over_time": rk.COUNT,
    "min_over_time": rk.MIN, "max_over_time": rk.MAX, "present_over_time": rk.PRESENT,
    "stddev_over_time": rk.STDDEV, "stdvar_over_time": rk.STDVAR, "changes": rk.CHANGES,
    "resets": rk.RESETS, "ts_of_first_over_time": rk.TS_FIRST,
    "ts_of_last_over_time": rk.TS_LAST, "ts_of_min_over_time": rk.TS_MIN,
    "ts_of_max_over_time": rk.TS_MAX,
}

FUNCTIONS: dict[str, Callable[[Call], Value]] = {
    **{name: _math(f) for name, f in _MATH.items()},
    **{name: _over_time(kind) for name, kind in _OVER_TIME.items()},
    "last_over_time": _over_time(rk.LAST, keep_name=True),
    "first_over_time": _over_time(rk.FIRST, keep_name=True),
    "quantile_over_time": _quantile_over_time,
    "mad_over_time": _mad_over_time,
    "absent_over_time": _absent_over_time,
    "rate": _rate(True, True),
    "increase": _rate(True, False),
    "delta": _rate(False, False),
    "irate": _instant_rate(True),
    "idelta": _instant_rate(False),
    "deriv": _deriv,
    "predict_linear": _predict_linear,
    "double_exponential_smoothing": _smoothing,
    "holt_winters": _smoothing,
    "round": _round,
    "clamp": _clamp_both,
    "clamp_min": _clamp_min,
    "clamp_max": _clamp_max,
    "timestamp": _timestamp,
    "time": _time,
    "pi": _pi,
    "vector": _vector,
    "scalar": _scalar_fn,
    "sort": _sort(False),
    "sort_desc": _sort(True),
    "sort_by_label": _sort_by_label(False),
    "sort_by_label_desc": _sort_by_label(True),
    "label_replace": _label_replace,
    "label_join": _label_join,
    "absent": _absent,
    "histogram_quantile": _histogram_quantile,
    "histogram_quantiles": _histogram_quantiles,
    "histogram_fraction": _histogram_fraction,
    **{name: _native_only for name in ("histogram_count", "histogram_sum", "histogram_avg",
                                        "histogram_stddev", "histogram_stdvar")},
    **{name: _date(name) for name in ("day_of_month", "day_of_week", "day_of_year",
                                      "days_in_month", "hour", "minute", "month", "year")},
    "step": _query_scalar(lambda c: 0.0 if c.steps.start == c.steps.end else c.steps.step / 1e3),
    "range": _query_scalar(lambda c: (c.steps.end - c.steps.start) / 1e3),
    "start": _query_scalar(lambda c: c.steps.start / 1e3),
    "end": _query_scalar(lambda c: c.steps.end / 1e3),
    "min_of": _min_max_of(np.minimum),
    "max_of": _min_max_of(np.maximum),
}
