"""Reading a Polars predicate for what can prune the scan: time bounds and label-only terms.

Pruning is conservative: the full predicate is still applied exactly to every batch, so a term
that is not understood here only means less is skipped, never that a wrong row is returned.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from tsdb_arrow.model import TIMESTAMP

_UNIT_MS = {"Milliseconds": (1, 1), "Microseconds": (1, 1000), "Nanoseconds": (1, 1_000_000)}
_FLIP = {"Gt": "Lt", "GtEq": "LtEq", "Lt": "Gt", "LtEq": "GtEq", "Eq": "Eq"}


@dataclass(frozen=True)
class Pushdown:
    """Inclusive time bounds (ms; None = open) and label-only terms of a predicate's conjunction."""

    start: int | None
    end: int | None
    label_terms: tuple[pl.Expr, ...]


def analyse(predicate: pl.Expr | None, label_columns: set[str]) -> Pushdown:
    """Split a predicate's top-level AND into time bounds and terms that touch only labels."""
    if predicate is None:
        return Pushdown(None, None, ())
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:  # noqa: BLE001 - an unserialisable predicate just is not pushed down
        return Pushdown(None, None, ())
    start: int | None = None
    end: int | None = None
    terms: list[pl.Expr] = []
    for node in _conjuncts(tree):
        lo, hi = _time_bounds(node)
        if lo is not None:
            start = lo if start is None else max(start, lo)
        if hi is not None:
            end = hi if end is None else min(end, hi)
        if lo is None and hi is None:
            expr = _to_expr(node)
            if expr is not None:
                roots = set(expr.meta.root_names())
                if roots and roots <= label_columns:
                    terms.append(expr)
    return Pushdown(start, end, tuple(terms))


def _conjuncts(node: dict[str, Any]) -> list[dict[str, Any]]:
    binary = node.get("BinaryExpr") if isinstance(node, dict) else None
    if binary and binary.get("op") in ("And", "LogicalAnd"):
        return _conjuncts(binary["left"]) + _conjuncts(binary["right"])
    return [node]


def _to_expr(node: dict[str, Any]) -> pl.Expr | None:
    try:
        return pl.Expr.deserialize(io.StringIO(json.dumps(node)), format="json")
    except Exception:  # noqa: BLE001
        return None


def _literal_ms(node: dict[str, Any]) -> tuple[int, int] | None:
    """A literal as (floor ms, ceil ms), or None when it is not a time-like literal."""
    lit = node.get("Literal") if isinstance(node, dict) else None
    if not isinstance(lit, dict):
        return None
    scalar = lit.get("Scalar") or lit.get("Dyn")
    if not isinstance(scalar, dict):
        return None
    if "Datetime" in scalar:
        value, unit = scalar["Datetime"][0], scalar["Datetime"][1]
        if unit not in _UNIT_MS or not isinstance(value, int):
            return None
        div = _UNIT_MS[unit][1]
        return value // div, -((-value) // div)
    for key in ("Int", "Int64", "Int32", "UInt64", "UInt32"):
        if key in scalar and isinstance(scalar[key], int):
            return scalar[key], scalar[key]
    return None


def _is_ts(node: dict[str, Any]) -> bool:
    return isinstance(node, dict) and node.get("Column") == TIMESTAMP


def _time_bounds(node: dict[str, Any]) -> tuple[int | None, int | None]:
    binary = node.get("BinaryExpr") if isinstance(node, dict) else None
    if binary:
        op, left, right = binary.get("op"), binary.get("left"), binary.get("right")
        if _is_ts(right) and op in _FLIP:
            op, left, right = _FLIP[op], right, left
        if not _is_ts(left):
            return None, None
        lit = _literal_ms(right)
        if lit is None:
            return None, None
        floor, ceil = lit
        if op in ("Gt", "GtEq"):
            return floor, None
        if op in ("Lt", "LtEq"):
            return None, ceil
        if op == "Eq":
            return floor, ceil
        return None, None
    func = node.get("Function") if isinstance(node, dict) else None
    if func and isinstance(func.get("function"), dict):
        inputs = func.get("input", [])
        if "IsBetween" in json.dumps(func["function"]) and len(inputs) == 3 and _is_ts(inputs[0]):
            lo, hi = _literal_ms(inputs[1]), _literal_ms(inputs[2])
            return (lo[0] if lo else None), (hi[1] if hi else None)
    return None, None
