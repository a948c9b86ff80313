"""Resolving label columns to series refs: each distinct label set is hashed once.

The distinct label sets are found first, whatever the row order (``labelsets``), then the ref
of each set is computed from its labels, and every row takes its set's ref. Two different sets
with the same ref are a 64-bit collision, which is refused.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tsdb_arrow.errors import SeriesCollisionError
from tsdb_arrow.ingest.labelsets import distinct_label_sets, string_buffers
from tsdb_arrow.jit import njit
from tsdb_arrow.model import FNV_OFFSET, FNV_PRIME, REF, SEPARATOR

_PRIME = FNV_PRIME
_SEP = np.uint64(SEPARATOR)


@njit(cache=True)
def _hash_rows(valid, has_valid, offsets, data, base, name, h):
    """Fold ``name 0xFF value 0xFF`` into h[i] for each present value i of the column."""
    prime = _PRIME
    sep = _SEP
    for i in range(h.shape[0]):
        j = base + i
        if has_valid and not (valid[j >> 3] >> (j & 7)) & 1:
            continue
        if offsets[j + 1] == offsets[j]:
            continue
        x = h[i]
        for k in range(name.shape[0]):
            x = (x ^ np.uint64(name[k])) * prime
        x = (x ^ sep) * prime
        for k in range(offsets[j], offsets[j + 1]):
            x = (x ^ np.uint64(data[k])) * prime
        h[i] = (x ^ sep) * prime


def _mix64(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


@dataclass(frozen=True)
class Resolved:
    """Series refs of a batch: one per row, plus the batch's distinct series and their labels."""

    row_refs: np.ndarray  # uint64, one per row
    # int64, one per row: its label set's number, dense from 0 (not its row in ``series``)
    row_sets: np.ndarray
    series: pa.Table  # REF + one large_string column per label name; one row per distinct ref
    set_refs: np.ndarray  # uint64, the ref of each label set's number


def resolve_series(
    labels: dict[str, pa.ChunkedArray], n_rows: int, pool: Executor | None = None
) -> Resolved:
    """Compute the ref of every row from its label columns (large_string or string_view).

    "" and null both mean "label absent" (stored as null). Columns may be chunked differently.
    A long batch's rows are grouped in two halves at once on ``pool``, if given.
    """
    names = sorted(labels)
    found = distinct_label_sets(labels, n_rows, pool)
    n_sets = len(next(iter(found.sets.values()))) if names else int(n_rows > 0)
    h = np.full(n_sets, FNV_OFFSET, dtype=np.uint64)
    for name in names:
        name_bytes = np.frombuffer(name.encode(), dtype=np.uint8)
        valid, has_valid, offsets, _, data, _, base, _ = string_buffers(found.sets[name])
        _hash_rows(valid, has_valid, offsets, data, base, name_bytes, h)
    set_refs = _mix64(h)
    order = np.argsort(set_refs, kind="stable")
    sorted_refs = set_refs[order]
    if n_sets > 1 and (sorted_refs[1:] == sorted_refs[:-1]).any():
        # The sets are distinct label sets: a shared ref is a collision.
        k = int(np.flatnonzero(sorted_refs[1:] == sorted_refs[:-1])[0])
        raise SeriesCollisionError(_collision_message(int(sorted_refs[k])))
    take = pa.array(order)
    series_cols = {REF: pa.array(sorted_refs, type=pa.uint64())}
    for name in names:
        series_cols[name] = found.sets[name].take(take)
    return Resolved(
        row_refs=set_refs[found.row_set],
        row_sets=found.row_set,
        series=pa.table(series_cols),
        set_refs=set_refs,
    )


def row_refs(labels: dict[str, pa.Array], n_rows: int) -> np.ndarray:
    """The series ref of every row of large_string label columns, without grouping the rows
    first (for a few rows; ``resolve_series`` is faster on a whole batch)."""
    h = np.full(n_rows, FNV_OFFSET, dtype=np.uint64)
    for name in sorted(labels):
        name_bytes = np.frombuffer(name.encode(), dtype=np.uint8)
        valid, has_valid, offsets, _, data, _, base, _ = string_buffers(labels[name])
        _hash_rows(valid, has_valid, offsets, data, base, name_bytes, h)
    return _mix64(h)


def _collision_message(ref: int) -> str:
    return (
        f"two different label sets have the same series ref {ref:#018x}; the batch was "
        "refused. Rename a label of one of these series (e.g. add a distinguishing label)."
    )
