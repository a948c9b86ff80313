"""A write's batch as it goes over Flight: validated here, labels sent once per label set.

The frame is checked by the same ``normalize`` a local ``write`` runs (so a bad frame is refused
with the same message before anything is sent), its distinct label sets are found, and the batch
travels as timestamps, values and runs of label-set numbers, the sets as app metadata. Histogram
batches travel as they are (``plain``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from tsdb_arrow.server import flight_wire as wire

#: The schema of every ``sets`` batch: the label sets are numbered 0.. in the batch's metadata.
SETS_SCHEMA = wire.samples_schema(True, None, pa.uint32())


@dataclass(frozen=True)
class Encoded:
    """One batch ready for ``do_put``: ``mode`` ``sets`` (with ``metadata``) or ``plain``."""

    mode: str
    batch: pa.RecordBatch
    metadata: bytes | None
    rows: int


def encode(data: Any, metric: str | None) -> Encoded | None:
    """The wire batch of ``data``; None when it has no rows. Raises what ``write`` raises."""
    from tsdb_arrow.ingest.convert import normalize, to_arrow
    from tsdb_arrow.ingest.labelsets import distinct_label_sets

    batch = normalize(data, metric=metric)
    n = batch.num_rows
    if n == 0:
        return None
    if batch.histograms is not None or batch.values is None:
        table = to_arrow(data)  # the server writes it with the same ``metric``
        return Encoded("plain", table.combine_chunks().to_batches()[0], None, n)
    found = distinct_label_sets(batch.labels, n)
    sets = pa.table(found.sets) if found.sets else pa.table({})
    starts = wire.run_starts(found.row_set)
    lengths = np.diff(np.append(starts, n))
    codes = found.row_set[starts].astype(np.uint32)
    record = wire.samples_batch(SETS_SCHEMA, batch.timestamps, batch.values, codes, lengths)
    return Encoded("sets", record, wire.table_bytes(sets), n)
