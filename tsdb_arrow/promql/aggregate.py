"""PromQL aggregation operators over an instant vector: every group and step in one kernel call.

``sum avg count min max group stddev stdvar`` reduce each group to one series; ``topk bottomk
limitk limit_ratio`` keep some of the input series; ``quantile`` and ``count_values`` as in
Prometheus.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql import annotations
from tsdb_arrow.promql import labels as lab
from tsdb_arrow.promql.values import InstantVector, Scalar, String, Value

_REDUCERS = ("sum", "avg", "count", "min", "max", "group", "stddev", "stdvar")
_LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


def aggregate(
    op: str,
    vec: InstantVector,
    param: Value | None,
    modifier: object,
    n_steps: int,
    where: str = "",
) -> InstantVector:
    """Apply aggregation ``op`` (with its parameter, if any) grouped by ``modifier``.

    ``where`` is the parameter's position, appended to annotations as Prometheus does."""
    names = list(modifier.labels) if modifier is not None else []  # type: ignore[attr-defined]
    without = modifier is not None and str(modifier.type).endswith("Without")  # type: ignore[attr-defined]
    keys = lab.grouping_keys(vec.labels, names, without=without)
    ids, uniq = lab.group_ids(keys)
    if op in _REDUCERS:
        return _reduce(op, vec, ids, uniq)
    if op in ("topk", "bottomk", "limitk"):
        return _select_k(op, vec, ids, _k_values(param, n_steps))
    if op == "limit_ratio":
        return _limit_ratio(vec, _ratio_values(param, n_steps, where))
    if op == "quantile":
        return _quantile(vec, ids, uniq, _scalar(param, n_steps), where)
    if op == "count_values":
        if not isinstance(param, String):
            raise QueryError("count_values expects a string as its first argument")
        return _count_values(vec, ids, uniq, param.value)
    raise QueryError(f"aggregation {op} is not supported")


def _scalar(param: Value | None, n_steps: int) -> np.ndarray:
    if not isinstance(param, Scalar):
        raise QueryError("the parameter of this aggregation must be a scalar")
    return np.broadcast_to(param.values, (n_steps,))


def _reduce(op: str, vec: InstantVector, ids: np.ndarray, uniq: pl.DataFrame) -> InstantVector:
    from tsdb_arrow.promql import kernels

    code = _REDUCERS.index(op)
    n_groups = uniq.height if len(vec) else 0
    out, has = kernels.grouped(code, ids, n_groups, vec.values, vec.present)
    result = InstantVector(lab.tidy(uniq.head(n_groups)), out, has)
    return lab.only_present(result)


def _k_values(param: Value | None, n_steps: int) -> np.ndarray:
    ks = _scalar(param, n_steps)
    if np.isnan(ks).any():
        raise QueryError("Parameter value is NaN")
    big = ks[np.abs(ks) >= 2.0**63]
    if big.size:
        raise QueryError(f"Scalar value {big[0]:g} overflows int64")
    return np.trunc(ks).astype(np.int64)


def _ratio_values(param: Value | None, n_steps: int, where: str) -> np.ndarray:
    ratios = _scalar(param, n_steps)
    if np.isnan(ratios).any():
        raise QueryError("Ratio value is NaN")
    for r in np.unique(ratios[np.abs(ratios) > 1]):
        capped = 1 if r > 0 else -1
        annotations.warn(
            f"PromQL warning: ratio value should be between -1 and 1, got {_go_float(r)}, "
            f"capping to {capped}{where}"
        )
    return np.clip(ratios, -1.0, 1.0)


def _go_float(f: float) -> str:
    """``f`` as Go's ``%v`` prints a float64 (shortest digits)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    return repr(float(f)).removesuffix(".0")


def _order_by_group(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(ids, kind="stable")
    starts = np.searchsorted(ids[order], np.arange(int(ids.max()) + 2 if ids.size else 1))
    return order.astype(np.int64), starts.astype(np.int64)


def _select_k(op: str, vec: InstantVector, ids: np.ndarray, ks: np.ndarray) -> InstantVector:
    from tsdb_arrow.promql import kernels

    if len(vec) == 0:
        return vec
    order, starts = _order_by_group(ids)
    if op == "limitk":
        # limitk keeps the first k present series of each group, in input order.
        rank = np.cumsum(vec.present[order], axis=0)
        firsts = np.zeros_like(vec.present)
        base = np.zeros_like(rank)
        seg = np.repeat(np.arange(starts.size - 1), np.diff(starts))
        before = np.where(starts[:-1] > 0, starts[:-1] - 1, 0)
        base = np.where((starts[:-1] > 0)[:, None], rank[before], 0)[seg]
        within = rank - base
        firsts[order] = vec.present[order] & (within <= ks[None, :])
        keep, ranks = firsts, np.zeros(vec.present.shape, np.int64)
    else:
        keep, ranks = kernels.top_k(
            order,
            starts,
            np.ascontiguousarray(vec.values.T),
            np.ascontiguousarray(vec.present.T),
            ks,
            op == "topk",
        )
    result = InstantVector(vec.labels, vec.values, keep, vec.timestamps)
    if vec.present.shape[1] == 1:
        # An instant query lists each group's series best first (order-sensitive tests).
        rows = np.lexsort((ranks[:, 0], ids))
        rows = rows[keep[rows, 0]]
        return InstantVector(
            vec.labels[rows],
            vec.values[rows],
            keep[rows],
            None if vec.timestamps is None else vec.timestamps[rows],
        )
    return lab.only_present(result)


def _limit_ratio(vec: InstantVector, ratios: np.ndarray) -> InstantVector:
    if len(vec) == 0:
        return vec
    from tsdb_arrow.promql.hashing import label_hashes

    # The share of the hash space below a series' hash, as Prometheus' AddRatioSample.
    offset = label_hashes(vec.labels).astype(np.float64) / float(2**64 - 1)
    r = ratios[None, :]
    take = np.where(r >= 0, offset[:, None] < r, offset[:, None] >= 1.0 + r)
    keep = vec.present & take
    return lab.only_present(InstantVector(vec.labels, vec.values, keep, vec.timestamps))


def _quantile(
    vec: InstantVector, ids: np.ndarray, uniq: pl.DataFrame, qs: np.ndarray, where: str
) -> InstantVector:
    if len(vec) == 0:
        return vec
    n_groups = uniq.height
    rows, cols = np.nonzero(vec.present)
    groups, vals = ids[rows], vec.values[rows, cols]
    nan_key = ~np.isnan(vals)  # NaN sorts first, as Prometheus' sort of the group's values
    order = np.lexsort((vals, nan_key, cols, groups))
    groups, cols, vals = groups[order], cols[order], vals[order]
    key = groups * vec.present.shape[1] + cols
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.empty(0, int)
    ends = np.r_[starts[1:], key.size].astype(np.int64)
    counts = ends - starts
    q = qs[cols[starts]] if starts.size else np.empty(0)
    rank = q * (counts - 1)
    lower = np.maximum(0, np.floor(rank))
    upper = np.minimum(counts - 1, lower + 1)
    weight = rank - np.floor(rank)
    with np.errstate(invalid="ignore"):
        lo_v = vals[
            np.clip(starts + np.nan_to_num(lower).astype(np.int64), 0, max(vals.size - 1, 0))
        ]
        hi_v = vals[
            np.clip(starts + np.nan_to_num(upper).astype(np.int64), 0, max(vals.size - 1, 0))
        ]
        result = lo_v * (1 - weight) + hi_v * weight
    result = np.where(np.isnan(q), np.nan, result)
    result = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, result))
    out = np.zeros((n_groups, vec.present.shape[1]))
    has = np.zeros(out.shape, bool)
    out[groups[starts], cols[starts]] = result
    has[groups[starts], cols[starts]] = True
    for bad in np.unique(qs[~((qs >= 0) & (qs <= 1))]):
        annotations.warn(
            f"PromQL warning: quantile value should be between 0 and 1, got {_go_float(bad)}{where}"
        )
    return lab.only_present(InstantVector(lab.tidy(uniq), out, has))


def format_value(f: float) -> str:
    """``f`` as Go's ``strconv.FormatFloat(f, 'f', -1, 64)`` (count_values' label values)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    return np.format_float_positional(f, unique=True, trim="-")


def _count_values(
    vec: InstantVector, ids: np.ndarray, keys: pl.DataFrame, name: str
) -> InstantVector:
    import re

    if not re.match(_LABEL_NAME, name):
        raise QueryError(f"invalid label name {_go_quote(name)}")
    n_steps = vec.present.shape[1]
    rows, cols = np.nonzero(vec.present)
    vals = vec.values[rows, cols]
    # By bit pattern: -0 and 0 are two label values ("-0", "0"), as Go formats them.
    uniq_bits, inverse = np.unique(vals.view(np.uint64), return_inverse=True)
    uniq_vals = uniq_bits.view(np.float64)
    text = pl.Series(name, [format_value(v) for v in uniq_vals], pl.String)
    pairs = pl.DataFrame({"_g": ids[rows], "_v": inverse.astype(np.int64)})
    combos = pairs.unique(maintain_order=True).with_row_index("_c")
    combo = pairs.join(combos, on=["_g", "_v"], how="left", maintain_order="left")["_c"]
    keys = keys.drop(name, strict=False)
    labels = keys[combos["_g"].to_numpy()].with_columns(text[combos["_v"].to_numpy()])
    # Groups that differed only in the overwritten label count together.
    sid, uniq = lab.group_ids(labels)
    out = np.zeros((uniq.height, n_steps))
    np.add.at(out, (sid[combo.to_numpy()], cols), 1.0)
    return InstantVector(lab.tidy(uniq), out, out > 0)


def _go_quote(text: str) -> str:
    # promql-parser reads "\xc5" as U+00C5 where Go keeps the byte; both print as \xc5.
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
