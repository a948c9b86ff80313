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


#: Samples per batch read for a selector: large, as the batches are concatenated anyway.
_BATCH = 1 << 20


def load(db: object, node: object, lo: int, hi: int) -> Samples:
    """Samples of the series matching ``node`` with timestamps in ``[lo, hi]`` (ms).

    Read as ``db.select`` reads them, without a frame between: the database's batches of
    (series ref, time)-sorted samples are concatenated, a series starts where the ref changes
    (a series split between batches stays one), and its labels come from the same
    ``db.series`` answer the read was planned from. When no series matches, the labels frame
    is empty with the columns ``db.select`` would give.
    """
    text = selector_text(node)
    series = db.series(text)  # type: ignore[attr-defined]
    if series.height == 0:
        lazy = db.select(text, start=lo, end=hi)  # type: ignore[attr-defined]
        names = [c for c in lazy.collect_schema().names() if c not in ("timestamp", "value")]
        return _empty(pl.DataFrame(schema=dict.fromkeys(names, pl.String)))
    scan = db._scan(series, lo, hi)  # type: ignore[attr-defined]
    ts, vals, run_refs, run_lengths = [], [], [], []
    for batch in scan.samples(series, lo, hi, values=True, batch_size=_BATCH):
        ts.append(batch.timestamps)
        vals.append(batch.values)
        run_refs.append(batch.run_refs)
        run_lengths.append(batch.run_lengths)
    if not ts:
        return _empty(series.drop(REF).clear())
    refs = np.concatenate(run_refs)
    new = np.ones(len(refs), dtype=bool)
    new[1:] = refs[1:] != refs[:-1]
    ends = np.cumsum(np.concatenate(run_lengths).astype(np.int64))
    offsets = np.r_[0, ends[np.r_[np.flatnonzero(new)[1:] - 1, len(refs) - 1]]]
    known = series[REF].to_numpy()
    order = np.argsort(known, kind="stable")
    rows = order[np.searchsorted(known, refs[new], sorter=order)]
    labels = series.drop(REF)[pl.Series(rows)]
    timestamps = np.concatenate(ts).astype(np.int64, copy=False)
    values = np.concatenate(vals).astype(np.float64, copy=False)
    return Samples(labels, timestamps, values, offsets.astype(np.int64))


def _empty(labels: pl.DataFrame) -> Samples:
    return Samples(labels, np.empty(0, np.int64), np.empty(0), np.zeros(1, np.int64))
