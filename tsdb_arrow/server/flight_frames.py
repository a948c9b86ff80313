"""A frame written over Flight, assembled from its parts: each part checked as it arrives, the
frame resolved and written once its last part is in (stored whole or not at all).

A part is a samples batch whose ``series`` codes number its own label sets (``flight_wire``).
The label sets of all parts are resolved together, as a local write resolves its frame's: the
same checks, the same messages (a row is named by its row in the frame), and two different
label sets with one ref are a collision even when they came in different parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from tsdb_arrow import errors
from tsdb_arrow.model import TIMESTAMP, VALUE
from tsdb_arrow.server import flight_wire as wire

if TYPE_CHECKING:
    from tsdb_arrow.ingest.convert import SampleBatch
    from tsdb_arrow.ingest.series import Resolved


class FrameParts:
    """The parts of one frame received so far."""

    def __init__(self) -> None:
        self.rows = 0
        self.n_sets = 0
        self._timestamps: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._run_codes: list[np.ndarray] = []
        self._run_lengths: list[np.ndarray] = []
        self._sets: list[pa.Table] = []

    @property
    def empty(self) -> bool:
        """Whether no part has arrived."""
        return not self._sets

    def add(self, batch: pa.RecordBatch, sets_ipc: pa.Buffer) -> None:
        """Check one part and keep it; raises ``InputError`` as a local write would."""
        from tsdb_arrow.timeutil import first_seconds_like, seconds_like_reason

        sets = wire.bytes_table(sets_ipc)
        runs = wire.read_runs(batch)
        if runs.values is None:
            raise errors.InputError("a written part needs a 'value' column")
        if len(runs.run_codes) and (runs.run_codes >= sets.num_rows).any():
            raise errors.InputError("a written part names a label set it does not carry")
        if (row := first_seconds_like(runs.timestamps)) is not None:
            reason = seconds_like_reason(int(runs.timestamps[row]))
            at = self.rows + row
            raise errors.InputError(f"row {at}: 'timestamp' {runs.timestamps[row]}: {reason}")
        self._timestamps.append(runs.timestamps)
        self._values.append(runs.values)
        self._run_codes.append(runs.run_codes.astype(np.int64) + self.n_sets)
        self._run_lengths.append(runs.run_lengths)
        self._sets.append(sets)
        self.n_sets += sets.num_rows
        self.rows += batch.num_rows

    def resolved(self) -> tuple[SampleBatch, Resolved]:
        """The whole frame's samples and series, its label sets checked as a local write's."""
        from tsdb_arrow.ingest.convert import SampleBatch, normalize
        from tsdb_arrow.ingest.series import Resolved, resolve_series

        try:
            sets = pa.concat_tables(self._sets, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise errors.InputError(
                f"the parts of a written frame carry label sets of clashing types: {exc}"
            ) from None
        zeros = pa.array(np.zeros(self.n_sets, np.int64))
        checked = normalize(
            sets.append_column(TIMESTAMP, zeros).append_column(VALUE, zeros.cast(pa.float64()))
        )
        found = resolve_series(checked.labels, self.n_sets)
        run_codes = _joined(self._run_codes)
        run_lengths = _joined(self._run_lengths)
        rows = Resolved(
            np.repeat(found.row_refs[run_codes], run_lengths),
            np.repeat(found.row_sets[run_codes], run_lengths),
            found.series,
        )
        return SampleBatch(_joined(self._timestamps), _joined(self._values), {}), rows


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays end to end; the one array itself (no copy) when there is one."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
