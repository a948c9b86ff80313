"""A frame written over Flight, assembled from its parts as they arrive; written once whole.

A part is a samples batch whose ``series`` codes number its own label sets (``flight_wire``).
Each part is checked and resolved on arrival, while the client still encodes and sends the next
ones: its label sets checked as a local write checks label columns, its rows copied into arrays
that grow with the rows received up to the frame's size, each row given its series ref and its
set's number in the frame. A label set seen in an earlier part must be the same set, or its ref
is a collision, as in a local write. Once the last part is in, only the frame's series table is
left to build; nothing is stored before that, so a frame is stored whole or not at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from tsdb_arrow import errors
from tsdb_arrow.model import REF, TIMESTAMP, VALUE
from tsdb_arrow.server import flight_wire as wire

if TYPE_CHECKING:
    from tsdb_arrow.ingest.convert import SampleBatch
    from tsdb_arrow.ingest.series import Resolved

#: Most rows one frame may announce; a larger one goes as several frames.
MAX_FRAME_ROWS = 1 << 32
#: The frame's arrays hold up to this many times the rows received so far (the client's
#: frames of up to eight parts need no copy).
GROWTH = 8


class FrameParts:
    """The parts of one frame of ``rows`` rows received so far."""

    def __init__(self, rows: int) -> None:
        if not 0 < rows <= MAX_FRAME_ROWS:
            raise errors.InputError(
                f"a written frame must announce 1 to {MAX_FRAME_ROWS} rows, not {rows}; send a "
                "larger one as several frames"
            )
        self.rows = rows
        self.filled = 0
        # Sized as rows arrive, not from the announcement alone: at most GROWTH times the rows
        # received, so a frame announcing billions of rows costs nothing until they come.
        self.timestamps = np.empty(0, np.int64)
        self.values = np.empty(0, np.float64)
        self.row_refs = np.empty(0, np.uint64)
        self.row_sets = np.empty(0, np.int64)
        self._known = np.zeros(0, np.uint64)  # refs of the frame's sets so far, sorted
        self._known_ids = np.zeros(0, np.int64)  # each one's number in the frame
        self._series: list[pa.Table] = []  # each part's new sets, in the order numbered

    def add(self, batch: pa.RecordBatch, sets_ipc: pa.Buffer) -> None:
        """Check one part, resolve its label sets and keep its rows; raises ``InputError``
        (or ``SeriesCollisionError``) as a local write of the frame would."""
        from tsdb_arrow.timeutil import first_seconds_like, seconds_like_reason

        sets = wire.bytes_table(sets_ipc)
        runs = wire.read_runs(batch)
        if runs.values is None:
            raise errors.InputError("a written part needs a 'value' column")
        if len(runs.run_codes) and (runs.run_codes >= sets.num_rows).any():
            raise errors.InputError("a written part names a label set it does not carry")
        lo, hi = self.filled, self.filled + batch.num_rows
        if hi > self.rows:
            raise errors.InputError(
                f"the parts of a written frame hold more than the {self.rows} rows it announced"
            )
        if (row := first_seconds_like(runs.timestamps)) is not None:
            reason = seconds_like_reason(int(runs.timestamps[row]))
            at = lo + row
            raise errors.InputError(f"row {at}: 'timestamp' {runs.timestamps[row]}: {reason}")
        set_ids, set_refs = self._resolve(sets)
        self._reserve(hi)
        run_codes = runs.run_codes.astype(np.int64)
        self.timestamps[lo:hi] = runs.timestamps
        self.values[lo:hi] = runs.values
        self.row_refs[lo:hi] = np.repeat(set_refs[run_codes], runs.run_lengths)
        self.row_sets[lo:hi] = np.repeat(set_ids[run_codes], runs.run_lengths)
        self.filled = hi

    def _reserve(self, hi: int) -> None:
        """Room for rows up to ``hi``: the arrays grow to ``GROWTH`` times that (at most the
        frame's rows), keeping the rows already in."""
        if hi <= len(self.timestamps):
            return
        size = min(self.rows, GROWTH * hi)
        for name in ("timestamps", "values", "row_refs", "row_sets"):
            old = getattr(self, name)
            new = np.empty(size, old.dtype)
            new[: self.filled] = old[: self.filled]
            setattr(self, name, new)

    def _resolve(self, sets: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """The number in the frame and the ref of each of a part's label sets, checked."""
        from tsdb_arrow.ingest.convert import normalize
        from tsdb_arrow.ingest.series import resolve_series

        n_sets = sets.num_rows
        zeros = pa.array(np.zeros(n_sets, np.int64))
        checked = normalize(
            sets.append_column(TIMESTAMP, zeros).append_column(VALUE, zeros.cast(pa.float64()))
        )
        found = resolve_series(checked.labels, n_sets)
        distinct = found.series.column(REF).to_numpy()  # sorted
        pos = np.searchsorted(self._known, distinct)
        seen = pos < len(self._known)
        seen[seen] = self._known[pos[seen]] == distinct[seen]
        if seen.any():
            self._check_same(found.series.filter(pa.array(seen)), self._known_ids[pos[seen]])
        n_known = len(self._known)
        ids = np.empty(len(distinct), np.int64)
        ids[seen] = self._known_ids[pos[seen]]
        ids[~seen] = np.arange(n_known, n_known + int((~seen).sum()), dtype=np.int64)
        if not seen.all():
            self._series.append(found.series.filter(pa.array(~seen)))
            order = np.argsort(np.concatenate([self._known, distinct[~seen]]), kind="stable")
            self._known = np.concatenate([self._known, distinct[~seen]])[order]
            self._known_ids = np.concatenate([self._known_ids, ids[~seen]])[order]
        set_refs = found.row_refs
        return ids[np.searchsorted(distinct, set_refs)], set_refs

    def _check_same(self, again: pa.Table, ids: np.ndarray) -> None:
        """Raise ``SeriesCollisionError`` unless each set of ``again`` equals the set of the
        same ref numbered ``ids`` in an earlier part."""
        import polars as pl

        from tsdb_arrow.index import first_difference
        from tsdb_arrow.ingest.series import _collision_message

        earlier = self._series_so_far().take(pa.array(ids))
        if again.schema == earlier.schema and again.equals(earlier):
            return  # the usual case: the client sent the same sets again
        row = first_difference(pl.from_arrow(earlier), pl.from_arrow(again))
        if row is not None:
            ref = int(again.column(REF)[row].as_py())
            raise errors.SeriesCollisionError(_collision_message(ref))

    def _series_so_far(self) -> pa.Table:
        """The frame's distinct label sets so far, row i numbered i."""
        return _concat(self._series)

    def resolved(self) -> tuple[SampleBatch, Resolved]:
        """The whole frame's samples and series, once every row arrived."""
        from tsdb_arrow.ingest.convert import SampleBatch
        from tsdb_arrow.ingest.series import Resolved

        if self.filled != self.rows:
            raise errors.InputError(
                f"the last part of a written frame came after {self.filled} of the {self.rows} "
                "rows it announced; nothing of the frame was stored"
            )
        numbered = self._series_so_far()  # row i: the set numbered i
        set_refs = numbered.column(REF).to_numpy()
        series = numbered.take(pa.array(np.argsort(set_refs)))
        samples = SampleBatch(self.timestamps, self.values, {})
        return samples, Resolved(self.row_refs, self.row_sets, series, set_refs)


def _concat(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise errors.InputError(
            f"the parts of a written frame carry label sets of clashing types: {exc}"
        ) from None
