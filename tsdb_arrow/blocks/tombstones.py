"""Tombstones: deleted (series, time range)s, hidden at query time until compaction drops them.

A tombstone hides the samples of blocks written before the delete: those whose ``meta.seq`` is
at most the tombstone's ``seq`` (blocks flushed later hold samples written after the delete,
which stay). The head is filtered at the delete itself. The set lives in
``<data>/tombstones.parquet``, rewritten whole (small) and atomically on each change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tsdb_arrow.datadir import TOMBSTONES_FILE
from tsdb_arrow.errors import CorruptBlockError
from tsdb_arrow.jit import njit

SCHEMA = pa.schema(
    [
        ("series_ref", pa.uint64()),
        ("min_time", pa.int64()),
        ("max_time", pa.int64()),
        ("seq", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Tombstones:
    """Deleted ranges sorted by series ref: ``[min_time, max_time]`` of blocks up to ``seq``."""

    refs: np.ndarray
    min_time: np.ndarray
    max_time: np.ndarray
    seq: np.ndarray

    @classmethod
    def empty(cls) -> Tombstones:
        return cls(
            np.empty(0, np.uint64),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
            np.empty(0, np.int64),
        )

    def __len__(self) -> int:
        return len(self.refs)

    def table(self) -> pa.Table:
        return pa.Table.from_arrays(
            [pa.array(a) for a in (self.refs, self.min_time, self.max_time, self.seq)],
            schema=SCHEMA,
        )

    @classmethod
    def of_table(cls, table: pa.Table) -> Tombstones:
        cols = [table.column(n).to_numpy() for n in SCHEMA.names]
        order = np.lexsort((cols[1], cols[0]))
        return cls(*(np.ascontiguousarray(c[order]) for c in cols))

    def added(self, refs: np.ndarray, lo: int, hi: int, seq: int) -> Tombstones:
        """These tombstones and one per ref over ``[lo, hi]`` for blocks up to ``seq``."""
        n = len(refs)
        table = pa.concat_tables(
            [
                self.table(),
                Tombstones(
                    np.asarray(refs, np.uint64),
                    np.full(n, lo, np.int64),
                    np.full(n, hi, np.int64),
                    np.full(n, seq, np.int64),
                ).table(),
            ]
        )
        return Tombstones.of_table(table)

    def kept_for(self, blocks: list[tuple[int, int, int]]) -> Tombstones:
        """Only the tombstones some block ``(seq, min_time, max_time)`` still needs: one written
        before the delete and overlapping its range in time."""
        if not blocks:
            return Tombstones.empty()
        if not len(self):
            return self
        seqs, mins, maxs = (np.array(x, np.int64) for x in zip(*blocks))
        need = (
            (seqs[None, :] <= self.seq[:, None])
            & (mins[None, :] <= self.max_time[:, None])
            & (maxs[None, :] >= self.min_time[:, None])
        ).any(axis=1)
        return Tombstones(self.refs[need], self.min_time[need], self.max_time[need], self.seq[need])

    def deleted(self, refs: np.ndarray, timestamps: np.ndarray, seqs: np.ndarray) -> np.ndarray:
        """Which samples (``seqs``: the seq of the block each comes from) a tombstone hides."""
        if not len(self):
            return np.zeros(len(refs), dtype=np.bool_)
        return _deleted(self.refs, self.min_time, self.max_time, self.seq, refs, timestamps, seqs)

    def touches(self, refs: np.ndarray, min_time: np.ndarray, max_time: np.ndarray) -> bool:
        """Whether a tombstone may hide a sample of the chunks (refs, time spans) given."""
        if not len(self):
            return False
        return _touches(self.refs, self.min_time, self.max_time, refs, min_time, max_time)

    def hide(self, refs: np.ndarray, lo: np.ndarray, hi: np.ndarray, seq: int) -> np.ndarray:
        """Which spans ``[lo, hi]`` of series ``refs`` in the block ``seq`` one tombstone hides
        whole (so that none of their samples is left)."""
        if not len(self):
            return np.zeros(len(refs), dtype=np.bool_)
        return _hidden(self.refs, self.min_time, self.max_time, self.seq, refs, lo, hi, seq)


@njit(cache=True, nogil=True)
def _hidden(t_refs, t_min, t_max, t_seq, refs, lo, hi, seq):
    out = np.zeros(refs.shape[0], dtype=np.bool_)
    for i in range(refs.shape[0]):
        k = np.searchsorted(t_refs, refs[i])
        while k < t_refs.shape[0] and t_refs[k] == refs[i]:
            if t_min[k] <= lo[i] and hi[i] <= t_max[k] and seq <= t_seq[k]:
                out[i] = True
                break
            k += 1
    return out


@njit(cache=True, nogil=True)
def _deleted(t_refs, t_min, t_max, t_seq, refs, ts, seqs):
    out = np.zeros(refs.shape[0], dtype=np.bool_)
    for i in range(refs.shape[0]):
        k = np.searchsorted(t_refs, refs[i])
        while k < t_refs.shape[0] and t_refs[k] == refs[i]:
            if t_min[k] <= ts[i] <= t_max[k] and seqs[i] <= t_seq[k]:
                out[i] = True
                break
            k += 1
    return out


@njit(cache=True, nogil=True)
def _touches(t_refs, t_min, t_max, refs, lo, hi):
    for i in range(refs.shape[0]):
        k = np.searchsorted(t_refs, refs[i])
        while k < t_refs.shape[0] and t_refs[k] == refs[i]:
            if t_min[k] <= hi[i] and t_max[k] >= lo[i]:
                return True
            k += 1
    return False


def read_tombstones(directory: Path) -> Tombstones:
    """The tombstones of a data directory (none when it has no file)."""
    path = directory / TOMBSTONES_FILE
    if not path.exists():
        return Tombstones.empty()
    try:
        return Tombstones.of_table(pq.read_table(path, schema=SCHEMA))
    except (OSError, pa.ArrowInvalid) as exc:
        raise CorruptBlockError(
            f"cannot read {path}: {exc}; it lists deleted samples: restore it from a backup, or "
            "remove it to show every deleted sample again"
        ) from exc


def write_tombstones(directory: Path, tombstones: Tombstones) -> None:
    """Replace the tombstone file atomically and durably (removed when none are left)."""
    path = directory / TOMBSTONES_FILE
    if not len(tombstones):
        path.unlink(missing_ok=True)
    else:
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(tombstones.table(), tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
