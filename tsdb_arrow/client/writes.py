"""A write's frame as it goes over Flight: validated here, sent in parts, labels once per set.

The frame is checked whole by the same ``normalize`` a local ``write`` runs (so a bad frame is
refused with the same message before anything is sent), then cut into parts of about
``PART_ROWS`` rows. Each part travels as timestamps, values and runs of label-set numbers, its
distinct label sets as app metadata; a part is encoded while the one before is on the wire, and
the server writes the frame when its last part is in. Histogram frames travel as they are
(``plain``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tsdb_arrow.server import flight_wire as wire

if TYPE_CHECKING:
    from tsdb_arrow.ingest.convert import SampleBatch

#: The schema of every part: the label sets are numbered 0.. in the part's metadata.
PARTS_SCHEMA = wire.samples_schema(True, None, pa.uint32())
#: Rows a part holds at most: small enough that encoding a part overlaps sending the one
#: before, large enough that the label sets sent once per part stay a small share.
PART_ROWS = 1 << 19


@dataclass(frozen=True)
class Prepared:
    """A frame checked as a local write checks it: float ``samples`` sent in parts, or a
    histogram frame sent ``plain`` (the server writes it with the same ``metric``)."""

    rows: int
    samples: SampleBatch | None
    plain: pa.RecordBatch | None

    def bounds(self) -> list[tuple[int, int]]:
        """The row range of each part: as many parts as ``PART_ROWS`` needs, of equal size."""
        n_parts = max(1, -(-self.rows // PART_ROWS))
        cuts = np.linspace(0, self.rows, n_parts + 1).astype(np.int64)
        return [(int(lo), int(hi)) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)]


@dataclass(frozen=True)
class Part:
    """One part ready for ``do_put``: its batch and app metadata."""

    batch: pa.RecordBatch
    metadata: bytes


def prepare(data: Any, metric: str | None) -> Prepared | None:
    """``data`` checked; None when it has no rows. Raises what ``write`` raises."""
    from tsdb_arrow.ingest.convert import normalize, to_arrow

    batch = normalize(data, metric=metric)
    n = batch.num_rows
    if n == 0:
        return None
    if batch.histograms is not None or batch.values is None:
        table = to_arrow(data)
        return Prepared(n, None, table.combine_chunks().to_batches()[0])
    return Prepared(n, batch, None)


def encode_part(samples: SampleBatch, lo: int, hi: int, last: bool) -> Part:
    """Rows ``lo:hi`` of ``samples`` as a part: runs of label-set numbers, the sets once."""
    from tsdb_arrow.ingest.labelsets import distinct_label_sets

    n = hi - lo
    labels = {name: column.slice(lo, n) for name, column in samples.labels.items()}
    found = distinct_label_sets(labels, n)
    sets = pa.table(found.sets) if found.sets else pa.table({})
    starts = wire.run_starts(found.row_set)
    lengths = np.diff(np.append(starts, n))
    codes = found.row_set[starts].astype(np.uint32)
    values = samples.values[lo:hi] if samples.values is not None else None
    record = wire.samples_batch(PARTS_SCHEMA, samples.timestamps[lo:hi], values, codes, lengths)
    return Part(record, wire.part_metadata(wire.table_bytes(sets), samples.num_rows, last))
