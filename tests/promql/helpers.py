"""Builders of PromQL values for function tests: series given as plain lists."""

from __future__ import annotations

import numpy as np
import polars as pl

from tsdb_arrow.promql.values import Call, InstantVector, RangeVector, Scalar, Steps

MIN = 60_000


def labels_frame(label_sets: list[dict[str, str]]) -> pl.DataFrame:
    """One row per label set, one String column per label name (null where missing)."""
    names = sorted({k for ls in label_sets for k in ls})
    if not names:
        return pl.DataFrame(height=len(label_sets))
    return pl.DataFrame({n: [ls.get(n) for ls in label_sets] for n in names},
                        schema=dict.fromkeys(names, pl.String))


def range_vector(series: list[tuple[dict[str, str], list[tuple[int, float]]]],
                 window_ends: list[int], range_ms: int) -> RangeVector:
    """A range vector of ``(labels, [(t_ms, value), ...])`` series."""
    ts = [np.array([t for t, _ in s], dtype=np.int64) for _, s in series]
    vs = [np.array([v for _, v in s], dtype=np.float64) for _, s in series]
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in ts])]).astype(np.int64)
    return RangeVector(
        labels_frame([ls for ls, _ in series]),
        np.concatenate(ts) if ts else np.zeros(0, np.int64),
        np.concatenate(vs) if vs else np.zeros(0),
        offsets,
        np.asarray(window_ends, dtype=np.int64),
        range_ms,
    )


def loaded(label_sets: list[dict[str, str]], step_ms: int, values: list[list[float | None]],
           window_ends: list[int], range_ms: int) -> RangeVector:
    """A range vector as a promqltest ``load <step>`` makes it (None = no sample)."""
    series = []
    for ls, vals in zip(label_sets, values, strict=True):
        series.append((ls, [(k * step_ms, v) for k, v in enumerate(vals) if v is not None]))
    return range_vector(series, window_ends, range_ms)


def instant(label_sets: list[dict[str, str]], values: list[list[float | None]]) -> InstantVector:
    """An instant vector from rows of per-step values (None = absent)."""
    v = np.array([[np.nan if x is None else x for x in row] for row in values], dtype=np.float64)
    p = np.array([[x is not None for x in row] for row in values], dtype=bool)
    if not values:
        v = v.reshape(0, 1)
        p = p.reshape(0, 1)
    return InstantVector(labels_frame(label_sets), v, p)


def scalar(value: float, n: int = 1) -> Scalar:
    return Scalar(np.full(n, value, dtype=np.float64))


def call(name: str, *args, steps: Steps | None = None, exprs: list | None = None) -> Call:
    if steps is None:
        steps = Steps(0, 0, 0)
    return Call(name, list(args), exprs or [None] * len(args), steps)


def rows(iv: InstantVector, step: int = 0) -> dict[tuple, float]:
    """``{sorted label items: value}`` of the series present at ``step``."""
    out = {}
    for i, row in enumerate(iv.labels.iter_rows(named=True)):
        if iv.present[i, step]:
            key = tuple(sorted((k, v) for k, v in row.items() if v is not None))
            out[key] = float(iv.values[i, step])
    return out
