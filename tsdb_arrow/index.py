"""The series index: every known series' ref and labels, with collision checks on insert."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.errors import SeriesCollisionError
from tsdb_arrow.model import REF, is_member, numpy_of
from tsdb_arrow.query.selector import Matcher, filter_series


class SeriesIndex:
    """A Polars frame sorted by ``series_ref`` with one String column per label name.

    Series added are kept aside as they came and merged into the frame when it is next read
    (queries, flushes, a collision check): a run of writes of new series sorts the index once,
    not once per write. ``refs`` (sorted) is up to date after every add. The database calls
    every method under its lock.
    """

    def __init__(self) -> None:
        self._frame = pl.DataFrame({REF: pl.Series([], dtype=pl.UInt64)})
        self._added: tuple[pa.Table | pl.DataFrame, ...] = ()
        self.refs = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def frame(self) -> pl.DataFrame:
        """Every series, sorted by ref (the series added since the last read merged in)."""
        if self._added:
            self._frame = _merged(self._frame, self._added)
            self._added = ()
        return self._frame

    @property
    def label_names(self) -> list[str]:
        return [c for c in self.frame.columns if c != REF]

    def state(self) -> tuple[pl.DataFrame, tuple[pa.Table | pl.DataFrame, ...], np.ndarray]:
        """What ``restore`` puts back: the index before a write that may still be refused."""
        return self._frame, self._added, self.refs

    def restore(
        self, state: tuple[pl.DataFrame, tuple[pa.Table | pl.DataFrame, ...], np.ndarray]
    ) -> None:
        """Forget the series added since ``state`` (their write was refused)."""
        self._frame, self._added, self.refs = state

    def add(self, series: pa.Table | pl.DataFrame) -> np.ndarray:
        """Insert series not yet known; refuse one whose ref is known with other labels.

        Returns which rows of ``series`` were known before (a boolean mask).
        """
        if isinstance(series, pl.DataFrame):
            refs = series[REF].to_numpy()
        else:
            refs = numpy_of(series.column(REF))
        known = is_member(self.refs, refs)
        if known.any():
            frame = _as_polars(series)
            self._check_same(frame.filter(pl.Series(known)), refs[known])
            if known.all():
                return known
            series = frame.filter(pl.Series(~known))
        fresh = np.sort(refs[~known])
        self._added += (series,)
        self.refs = np.insert(self.refs, np.searchsorted(self.refs, fresh), fresh)
        return known

    def _check_same(self, seen: pl.DataFrame, refs: np.ndarray) -> None:
        """Known refs must come with the labels stored for them (null = absent)."""
        old = self.frame[pl.Series(np.searchsorted(self.refs, refs))]
        row = first_difference(old, seen)
        if row is None:
            return
        ref = int(refs[row])
        raise SeriesCollisionError(
            f"series ref {ref:#018x} already belongs to another label set; the batch was "
            "refused. Rename a label of the new series (e.g. add a distinguishing label)."
        )

    def select(self, matchers: Sequence[Matcher]) -> pl.DataFrame:
        """Series whose labels satisfy every matcher."""
        return filter_series(self.frame, matchers) if matchers else self.frame


def first_difference(a: pl.DataFrame, b: pl.DataFrame) -> int | None:
    """The first row where two tables of label sets (``REF`` aside; a missing column or a null
    is an absent label) hold different sets, None when every row holds the same set."""
    names = sorted((set(a.columns) | set(b.columns)) - {REF})

    def aligned(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            pl.col(n) if n in frame.columns else pl.lit(None, pl.String).alias(n) for n in names
        )

    a, b = aligned(a), aligned(b)
    if a.equals(b):
        return None
    differs = np.zeros(a.height, dtype=bool)
    for name in names:
        differs |= a[name].ne_missing(b[name]).to_numpy()
    return int(np.flatnonzero(differs)[0])


def _as_polars(series: pa.Table | pl.DataFrame) -> pl.DataFrame:
    """``series`` as a Polars frame whose label columns are Strings."""
    frame = series if isinstance(series, pl.DataFrame) else pl.from_arrow(series)
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(
        pl.col(c).cast(pl.String) for c, t in frame.schema.items() if c != REF and t != pl.String
    )


def _merged(frame: pl.DataFrame, added: Sequence[pa.Table | pl.DataFrame]) -> pl.DataFrame:
    """``frame`` and the ``added`` series (refs not in it) in one frame sorted by ref, its
    label columns in name order."""
    pieces = [_as_polars(a) for a in _joined(added)]
    merged = pl.concat([frame, *pieces], how="diagonal_relaxed").sort(REF)
    return merged.select(REF, *sorted(c for c in merged.columns if c != REF))


def _joined(added: Sequence[pa.Table | pl.DataFrame]) -> Sequence[pa.Table | pl.DataFrame]:
    """The added Arrow tables as one table (one conversion to Polars for them all), or as
    they are when some is a Polars frame or Arrow cannot unify their label types."""
    if any(isinstance(a, pl.DataFrame) for a in added):
        return added
    try:
        return [pa.concat_tables(added, promote_options="permissive")]
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return added
