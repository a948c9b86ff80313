"""Reading a Polars predicate for what can prune the scan: time bounds and label-only terms.

Pruning is conservative: the full predicate is still applied exactly to every batch, so a term
that is not understood here only means less is skipped, never that a wrong row is returned.

The predicate is read from Polars' serialized JSON, whose format Polars does not promise to keep
(tested with the Polars versions named in pyproject.toml). Whatever part of it is not understood,
a whole predicate that does not serialize or a single term of an unknown shape, is simply not
pushed down: ``analyse`` never raises.
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
        return NOTHING
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:  # noqa: BLE001 - an unserialisable predicate just is not pushed down
        return NOTHING
    return analyse_tree(tree, label_columns)


def analyse_tree(tree: Any, label_columns: set[str]) -> Pushdown:
    """``analyse`` on the JSON tree of a predicate; terms it cannot read are left out."""
    start: int | None = None
    end: int | None = None
    terms: list[pl.Expr] = []
    for node in _conjuncts(tree):
        try:
            lo, hi = _time_bounds(node)
            term = _label_term(node, label_columns) if lo is None and hi is None else None
        except Exception:  # noqa: BLE001 - a term of an unknown shape is not pushed down
            continue
        if lo is not None:
            start = lo if start is None else max(start, lo)
        if hi is not None:
            end = hi if end is None else min(end, hi)
        if term is not None:
            terms.append(term)
    return Pushdown(start, end, tuple(terms))


NOTHING = Pushdown(None, None, ())


def _conjuncts(tree: Any) -> list[Any]:
    """The terms of the top-level AND (iteratively: a long chain of ANDs is a deep tree)."""
    out: list[Any] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        binary = node.get("BinaryExpr") if isinstance(node, dict) else None
        if (
            isinstance(binary, dict)
            and binary.get("op") in ("And", "LogicalAnd")
            and "left" in binary
            and "right" in binary
        ):
            stack += [binary["right"], binary["left"]]
        else:
            out.append(node)
    return out


def _label_term(node: Any, label_columns: set[str]) -> pl.Expr | None:
    """The term as an expression when it reads label columns only, else None."""
    expr = _to_expr(node)
    if expr is None:
        return None
    roots = set(expr.meta.root_names())
    return expr if roots and roots <= label_columns else None


def _to_expr(node: Any) -> pl.Expr | None:
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


def _time_bounds(node: Any) -> tuple[int | None, int | None]:
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
