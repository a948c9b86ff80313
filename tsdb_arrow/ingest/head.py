"""The head: samples not yet flushed, floats and histograms behind one interface.

A ``Head`` is one generation of unflushed samples. The database appends to the current one;
a flush takes it whole (the database starts a new one), cuts it into aligned windows and, if
writing them fails, puts what did not reach a block back in front of the newer head.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from tsdb_arrow.ingest.floats import FloatHead
from tsdb_arrow.ingest.histograms import HistogramHead
from tsdb_arrow.ingest.pool import BufferPool, HeadBuffer

if TYPE_CHECKING:
    from tsdb_arrow.blocks.histograms import HistogramWindow
    from tsdb_arrow.ingest.cut import Window
    from tsdb_arrow.model import Numbered


@dataclass(frozen=True)
class HeadWindow:
    """The samples of one aligned block window, sorted by (series, time), one per pair."""

    start: int
    floats: Window | None
    histograms: HistogramWindow | None

    @property
    def rows(self) -> int:
        return sum(len(w.refs) for w in (self.floats, self.histograms) if w is not None)


class Head:
    """Unflushed float samples (pooled buffers) and histogram samples (Arrow pieces)."""

    def __init__(self, pool: BufferPool) -> None:
        self.pool = pool
        self.floats = FloatHead(pool)
        self.histograms = HistogramHead()

    @property
    def rows(self) -> int:
        return self.floats.rows + self.histograms.rows

    @property
    def nbytes(self) -> int:
        return self.floats.nbytes + self.histograms.nbytes

    @property
    def min_time(self) -> int:
        return min(p.min_time for p in (self.floats, self.histograms))

    @property
    def max_time(self) -> int:
        return max(p.max_time for p in (self.floats, self.histograms))

    def append(
        self,
        refs: np.ndarray,
        timestamps: np.ndarray,
        *,
        values: np.ndarray | None = None,
        histograms: pa.Table | None = None,
        noted: bool = False,
    ) -> None:
        """Append float ``values`` or histogram fields in write order.

        ``noted``: ``repeats`` already recorded these float rows' (series, time) pairs.
        """
        if histograms is not None:
            self.histograms.append(refs, timestamps, histograms)
        else:
            assert values is not None
            self.floats.append(refs, timestamps, values, noted=noted)

    def repeats(
        self,
        refs: np.ndarray,
        timestamps: np.ndarray,
        pool: Executor | None = None,
        numbered: Numbered | None = None,
    ) -> np.ndarray:
        """Which float rows repeat a pair of the head or an earlier row (see FloatHead)."""
        return self.floats.repeats(refs, timestamps, pool, numbered)

    def forget_pairs(self) -> None:
        self.floats.forget_pairs()

    def windows(self, duration: int, pool: Executor | None = None) -> list[HeadWindow]:
        """Everything, cut into aligned windows of ``duration`` ms, oldest first (``pool``:
        see ``cut``)."""
        from tsdb_arrow.blocks.histograms import HistogramWindow
        from tsdb_arrow.ingest.cut import cut_parts, cut_rows

        floats = {w.start: w for w in cut_parts(self.floats.parts(), duration, pool)}
        refs, ts, fields = self.histograms.columns()
        hists = {
            start: HistogramWindow(start, refs[idx], ts[idx], fields.take(idx))
            for start, idx in cut_rows(refs, ts, duration)
        }
        return [
            HeadWindow(start, floats.get(start), hists.get(start))
            for start in sorted(floats.keys() | hists.keys())
        ]

    @classmethod
    def of_windows(cls, pool: BufferPool, windows: list[HeadWindow]) -> Head:
        """A head holding ``windows``' samples (what a flush puts back)."""
        head = cls(pool)
        for w in windows:
            if w.floats is not None:
                head.floats.append(w.floats.refs, w.floats.timestamps, w.floats.values)
            if w.histograms is not None:
                h = w.histograms
                head.histograms.append(h.refs, h.timestamps, h.fields)
        return head

    def without(self, refs: np.ndarray, lo: int, hi: int) -> Head:
        """A new head holding these samples but those of ``refs`` (sorted) in ``[lo, hi]``;
        this one is released."""
        from tsdb_arrow.model import is_member

        head = Head(self.pool)
        r, t, v = self.floats.columns()
        keep = ~(is_member(refs, r) & (t >= lo) & (t <= hi))
        head.floats.append(r[keep], t[keep], v[keep])
        r, t, fields = self.histograms.columns()
        keep = ~(is_member(refs, r) & (t >= lo) & (t <= hi))
        if keep.any():
            idx = np.flatnonzero(keep)
            head.histograms.append(r[idx], t[idx], fields.take(idx))
        self.release()
        return head

    def followed_by(self, newer: Head) -> Head:
        """This head with ``newer``'s samples after its own (write order kept)."""
        self.floats.followed_by(newer.floats)
        self.histograms.followed_by(newer.histograms)
        return self

    def buffers(self) -> list[tuple[HeadBuffer, int]]:
        """The float buffers with their filled sizes now (a reader pins them)."""
        return [(buf, buf.size) for buf in self.floats.buffers]

    def histogram_pieces(self) -> list[tuple[np.ndarray, np.ndarray, pa.Table]]:
        return list(self.histograms.pieces)

    def release(self) -> None:
        """Hand the float buffers back to the pool (reused once no reader pins them)."""
        self.floats.release()
        self.histograms = HistogramHead()
