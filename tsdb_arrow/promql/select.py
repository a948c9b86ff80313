"""Loading the samples of one selector from the database, once, as sorted per-series arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

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


def load(db: object, node: object, lo: int, hi: int) -> Samples:
    """Samples of the series matching ``node`` with timestamps in ``[lo, hi]`` (ms)."""
    start, end = np.datetime64(lo, "ms"), np.datetime64(hi, "ms")
    frame = db.select(selector_text(node), start=start, end=end).collect()  # type: ignore[attr-defined]
    label_cols = [c for c in frame.columns if c not in ("timestamp", "value")]
    if frame.height == 0:
        empty = pl.DataFrame(schema={c: pl.String for c in label_cols})
        return Samples(empty, np.empty(0, np.int64), np.empty(0), np.zeros(1, np.int64))
    run = frame.select(pl.struct(label_cols).rle_id().alias("run"))["run"].to_numpy()
    starts = np.flatnonzero(np.r_[True, run[1:] != run[:-1]])
    offsets = np.r_[starts, frame.height].astype(np.int64)
    labels = frame.select(label_cols)[starts]
    timestamps = frame["timestamp"].dt.epoch("ms").to_numpy().astype(np.int64, copy=False)
    values = frame["value"].to_numpy().astype(np.float64, copy=False)
    return Samples(labels, timestamps, values, offsets)
