"""Loading the samples of one selector from the database, once, as sorted per-series arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tsdb_arrow.model import REF
from tsdb_arrow.promql.values import METRIC_NAME

STALE_NAN_BITS = np.uint64(0x7FF0000000000002)
_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


@dataclass
class Samples:
    """Raw samples of the series a selector matched: labels (one row per series), then the
    samples of series i at ``timestamps[offsets[i]:offsets[i+1]]`` sorted by time."""

    labels: pl.DataFrame
    timestamps: np.ndarray
    values: np.ndarray
    offsets: np.ndarray

    @property
    def count(self) -> int:
        """How many samples were loaded."""
        return int(self.timestamps.size)


def is_stale(values: np.ndarray) -> np.ndarray:
    """Which values are Prometheus stale markers (one NaN bit pattern among many)."""
    return values.view(np.uint64) == STALE_NAN_BITS


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def selector_text(node: object) -> str:
    """The selector string ``db.select`` takes for a parsed ``VectorSelector``."""
    matchers = []
    name = getattr(node, "name", None)
    if name:
        matchers.append(f"{METRIC_NAME}={_quote(name)}")
    for m in node.matchers.matchers:  # type: ignore[attr-defined]
        matchers.append(f"{m.name}{_OPS[str(m.op)]}{_quote(m.value)}")
    return "{" + ", ".join(matchers) + "}"


def _key_columns(series: pl.DataFrame) -> list[str]:
    """Label columns that tell the series apart: one unique column when there is one, else
    every column whose value varies (constant columns cannot start a new series)."""
    if series.height <= 1:
        return []
    varying = [c for c in series.columns if series[c].n_unique() > 1]
    for c in varying:
        if series[c].null_count() == 0 and series[c].is_unique().all():
            return [c]
    return varying


def load(db: object, node: object, lo: int, hi: int) -> Samples:
    """Samples of the series matching ``node`` with timestamps in ``[lo, hi]`` (ms).

    Rows come sorted by series, then time; a series starts where a label column telling the
    series apart changes, so only those columns are read beside timestamps and values, and the
    other labels are joined from ``db.series``. ``db.select`` fixes its series first and the
    series index only grows, so ``db.series`` afterwards sees them all (and any added since);
    were one missing all the same, the labels are read with the samples instead.
    """
    text = selector_text(node)
    start, end = np.datetime64(lo, "ms"), np.datetime64(hi, "ms")
    lazy = db.select(text, start=start, end=end)  # type: ignore[attr-defined]
    names = [c for c in lazy.collect_schema().names() if c not in ("timestamp", "value")]
    series = db.series(text).drop(REF)  # type: ignore[attr-defined]
    series = series.select(c for c in names if c in series.columns)
    key = _key_columns(series)
    frame = lazy.select("timestamp", "value", *key).collect()
    if frame.height == 0:
        empty = pl.DataFrame(schema=dict.fromkeys(names, pl.String))
        return Samples(empty, np.empty(0, np.int64), np.empty(0), np.zeros(1, np.int64))
    if series.height == 1 and not key:
        starts, labels = np.zeros(1, np.int64), series
    else:
        if not key:  # no series left to tell them apart: a series went meanwhile
            return _load_with_labels(lazy, names)
        starts = _run_starts(frame, key)
        hits = series.with_columns(pl.lit(True).alias("_hit"))
        firsts = frame.select(key)[starts]
        labels = firsts.join(hits, on=key, how="left", nulls_equal=True, maintain_order="left")
        if labels.height != starts.size or labels["_hit"].null_count():
            return _load_with_labels(lazy, names)
        labels = labels.select(series.columns)
    return _samples(frame, starts, labels)


def _run_starts(frame: pl.DataFrame, key: list[str]) -> np.ndarray:
    """Rows where a new series starts: where any of ``key`` changes (the first row too)."""
    if not key:
        return np.zeros(1, np.int64)
    changed = frame.select(
        pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift()) for c in key])
    ).to_series()
    is_start = changed.fill_null(True).to_numpy().copy()
    is_start[0] = True
    return np.flatnonzero(is_start)


def _load_with_labels(lazy: pl.LazyFrame, names: list[str]) -> Samples:
    """The slow, always right path: every label column read with the samples."""
    frame = lazy.collect()
    starts = _run_starts(frame, names)
    return _samples(frame, starts, frame.select(names)[starts])


def _samples(frame: pl.DataFrame, starts: np.ndarray, labels: pl.DataFrame) -> Samples:
    offsets = np.r_[starts, frame.height].astype(np.int64)
    timestamps = frame["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64, copy=False)
    values = frame["value"].to_numpy().astype(np.float64, copy=False)
    return Samples(labels, timestamps, values, offsets)
