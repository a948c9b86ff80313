"""Label-set work of PromQL functions on the ``labels`` frame (one row per series), in Polars.

Dropping ``__name__``, merging series that became equal, ``label_replace`` / ``label_join``,
``sort_by_label``'s natural order and ``absent``'s labels: column expressions over all series
at once, never a Python loop per series.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql.values import METRIC_NAME, InstantVector

DUPLICATE_LABELSET = "vector cannot contain metrics with the same labelset"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ROW = "#row"  # not a valid label name, so it never collides with one


def drop_name(labels: pl.DataFrame) -> pl.DataFrame:
    """The label sets without ``__name__`` (what most functions return)."""
    return labels.drop(METRIC_NAME) if METRIC_NAME in labels.columns else labels


def group_rows(labels: pl.DataFrame) -> tuple[np.ndarray, pl.DataFrame]:
    """Group id of every row (equal label sets, nulls equal) and one label row per group."""
    n = labels.height
    if not labels.columns:
        groups = pl.DataFrame(height=min(n, 1))
        return np.zeros(n, dtype=np.int64), groups
    g = labels.with_row_index(_ROW).group_by(labels.columns, maintain_order=True).agg(pl.col(_ROW))
    ids = np.empty(n, dtype=np.int64)
    rows = g[_ROW].explode().to_numpy().astype(np.int64)
    sizes = g[_ROW].list.len().to_numpy()
    ids[rows] = np.repeat(np.arange(g.height, dtype=np.int64), sizes)
    return ids, g.drop(_ROW)


def finish(labels: pl.DataFrame, values: np.ndarray, present: np.ndarray) -> InstantVector:
    """An instant vector from a function's output: rows never present dropped, all-null label
    columns dropped, and series whose label sets became equal merged into one, or an error
    (as Prometheus) where two of them have a sample at the same step."""
    keep = present.any(axis=1)
    if not keep.all():
        idx = np.flatnonzero(keep)
        labels, values, present = labels[idx], values[idx], present[idx]
    empty = [c for c in labels.columns if labels[c].null_count() == labels.height]
    if empty:
        labels = labels.drop(empty)
    ids, groups = group_rows(labels)
    if groups.height == labels.height:
        return InstantVector(labels, values, present)
    counts = np.zeros((groups.height, present.shape[1]), dtype=np.int64)
    np.add.at(counts, ids, present)
    if (counts > 1).any():
        raise QueryError(DUPLICATE_LABELSET)
    merged = np.zeros((groups.height, values.shape[1]), dtype=np.float64)
    rows, cols = np.nonzero(present)
    merged[ids[rows], cols] = values[rows, cols]
    return InstantVector(groups, merged, counts > 0)


def check_label_name(name: str, function: str, role: str) -> None:
    """Refuse a label name a series cannot carry (``[a-zA-Z_][a-zA-Z0-9_]*``)."""
    if not _LABEL_NAME.fullmatch(name):
        raise QueryError(
            f"invalid {role} label name in {function}(): {name!r}; label names match "
            "[a-zA-Z_][a-zA-Z0-9_]*"
        )


def _value(labels: pl.DataFrame, name: str) -> pl.Expr:
    """A label's values with missing as the empty string (Prometheus' ``Labels.Get``)."""
    if name in labels.columns:
        return pl.col(name).fill_null("")
    return pl.lit("", dtype=pl.String)


def _set(labels: pl.DataFrame, name: str, expr: pl.Expr) -> pl.DataFrame:
    """Set label ``name`` to ``expr`` (an empty value removes the label, as in Prometheus)."""
    value = expr.cast(pl.String)
    return labels.with_columns(pl.when(value == "").then(None).otherwise(value).alias(name))


def label_replace(
    labels: pl.DataFrame, dst: str, replacement: str, src: str, regex: str
) -> pl.DataFrame:
    """``label_replace``: where ``regex`` matches all of ``src``, set ``dst`` to the expansion of
    ``replacement`` (``$1``, ``${name}``); other series are left as they are."""
    check_label_name(dst, "label_replace", "destination")
    pattern = f"^(?s:{regex})$"
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except pl.exceptions.ComputeError as exc:
        raise QueryError(
            f"invalid regular expression in label_replace(): {regex!r}; fix the RE2 syntax"
        ) from exc
    source = _value(labels, src)
    current = pl.col(dst) if dst in labels.columns else pl.lit(None, dtype=pl.String)
    expanded = source.str.replace(pattern, replacement)
    matched = source.str.contains(pattern)
    out = labels.with_columns(pl.when(matched).then(expanded).otherwise(current).alias(dst))
    return _set(out, dst, pl.col(dst).fill_null(""))


def label_join(labels: pl.DataFrame, dst: str, separator: str, sources: list[str]) -> pl.DataFrame:
    """``label_join``: ``dst`` set to the ``sources``' values joined by ``separator``."""
    check_label_name(dst, "label_join", "destination")
    for src in sources:
        check_label_name(src, "label_join", "source")
    if not sources:
        joined = pl.lit("", dtype=pl.String)
    else:
        joined = pl.concat_str([_value(labels, s) for s in sources], separator=separator)
    if labels.height == 0:
        return labels if dst in labels.columns else labels.with_columns(
            pl.lit(None, dtype=pl.String).alias(dst)
        )
    return _set(labels, dst, joined)


def _natural_key(labels: pl.DataFrame, name: str) -> pl.Expr:
    """A string key whose byte order is natural order: digit runs compare as numbers."""
    chunks = _value(labels, name).str.extract_all(r"\d+|\D+")
    element = pl.element()
    encoded = pl.when(element.str.contains(r"^\d")).then(
        pl.lit("0") + element.str.zfill(24)
    ).otherwise(element)
    return chunks.list.eval(encoded).list.join("").fill_null("")


def _labelset_key(labels: pl.DataFrame) -> pl.Expr:
    """A string key ordering label sets as Prometheus' ``labels.Compare``."""
    parts = []
    for name in sorted(labels.columns):
        parts.append(
            pl.when(pl.col(name).is_null()).then(pl.lit("")).otherwise(
                pl.lit(name + "\x00") + pl.col(name) + pl.lit("\x00")
            )
        )
    if not parts:
        return pl.lit("")
    return pl.concat_str(parts)


def sort_by_label_order(labels: pl.DataFrame, names: list[str], descending: bool) -> np.ndarray:
    """Row order of ``sort_by_label`` (natural order of the named labels, ties by label set)."""
    if labels.height == 0:
        return np.zeros(0, dtype=np.int64)
    keys = [_natural_key(labels, n).alias(f"#k{i}") for i, n in enumerate(names)]
    keys.append(_labelset_key(labels).alias("#all"))
    frame = labels.select(keys).with_row_index(_ROW)
    ordered = frame.sort([c for c in frame.columns if c != _ROW], descending=descending,
                         maintain_order=True)
    return ordered[_ROW].to_numpy().astype(np.int64)


def absent_labels(expr: object) -> pl.DataFrame:
    """The one label set ``absent``/``absent_over_time`` return: the equality matchers of a
    selector argument, minus names matched more than once or otherwise (as Prometheus)."""
    import promql_parser

    while isinstance(expr, promql_parser.ParenExpr):
        expr = expr.expr
    if isinstance(expr, promql_parser.MatrixSelector):
        expr = expr.vector_selector
    if not isinstance(expr, promql_parser.VectorSelector):
        return pl.DataFrame(height=1)
    found: dict[str, str] = {}
    seen: set[str] = set()
    for m in expr.matchers.matchers:
        if m.name == METRIC_NAME:
            continue
        if m.op == promql_parser.MatchOp.Equal and m.name not in seen:
            found[m.name] = m.value
            seen.add(m.name)
        else:
            found.pop(m.name, None)
    found = {k: v for k, v in found.items() if v != ""}
    if not found:
        return pl.DataFrame(height=1)
    return pl.DataFrame({k: [v] for k, v in sorted(found.items())}, schema=dict.fromkeys(
        sorted(found), pl.String))
