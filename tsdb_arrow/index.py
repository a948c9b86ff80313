"""The series index: every known series' ref and labels, with collision checks on insert."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.errors import SeriesCollisionError
from tsdb_arrow.model import REF, is_member
from tsdb_arrow.query.selector import Matcher, filter_series


class SeriesIndex:
    """A Polars frame sorted by ``series_ref`` with one String column per label name."""

    def __init__(self) -> None:
        self.frame = pl.DataFrame({REF: pl.Series([], dtype=pl.UInt64)})
        self.refs = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return self.frame.height

    @property
    def label_names(self) -> list[str]:
        return [c for c in self.frame.columns if c != REF]

    def state(self) -> tuple[pl.DataFrame, np.ndarray]:
        """What ``restore`` puts back: the index before a write that may still be refused."""
        return self.frame, self.refs

    def restore(self, state: tuple[pl.DataFrame, np.ndarray]) -> None:
        """Forget the series added since ``state`` (their write was refused)."""
        self.frame, self.refs = state

    def add(self, series: pa.Table | pl.DataFrame) -> np.ndarray:
        """Insert series not yet known; refuse one whose ref is known with other labels.

        Returns which rows of ``series`` were known before (a boolean mask).
        """
        new = series if isinstance(series, pl.DataFrame) else pl.from_arrow(series)
        assert isinstance(new, pl.DataFrame)
        new = new.with_columns(
            pl.col(c).cast(pl.String) for c, t in new.schema.items() if c != REF and t != pl.String
        )
        refs = new[REF].to_numpy()
        known = is_member(self.refs, refs)
        if known.any():
            self._check_same(new.filter(pl.Series(known)), refs[known])
        if known.all():
            return known
        fresh = new.filter(pl.Series(~known))
        frame = pl.concat([self.frame, fresh], how="diagonal_relaxed").sort(REF)
        labels = sorted(c for c in frame.columns if c != REF)
        self.frame = frame.select(REF, *labels)
        self.refs = self.frame[REF].to_numpy()
        return known

    def _check_same(self, seen: pl.DataFrame, refs: np.ndarray) -> None:
        """Known refs must come with the labels stored for them (null = absent)."""
        old = self.frame[pl.Series(np.searchsorted(self.refs, refs))]
        names = sorted(set(self.label_names) | {c for c in seen.columns if c != REF})

        def aligned(frame: pl.DataFrame) -> pl.DataFrame:
            return frame.select(
                pl.col(n) if n in frame.columns else pl.lit(None, pl.String).alias(n) for n in names
            )

        a, b = aligned(old), aligned(seen)
        if a.equals(b):
            return
        differs = np.zeros(len(refs), dtype=bool)
        for name in names:
            differs |= a[name].ne_missing(b[name]).to_numpy()
        ref = int(refs[np.flatnonzero(differs)[0]])
        raise SeriesCollisionError(
            f"series ref {ref:#018x} already belongs to another label set; the batch was "
            "refused. Rename a label of the new series (e.g. add a distinguishing label)."
        )

    def select(self, matchers: Sequence[Matcher]) -> pl.DataFrame:
        """Series whose labels satisfy every matcher."""
        return filter_series(self.frame, matchers) if matchers else self.frame
