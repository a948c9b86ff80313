"""Counting samples that share a (series, timestamp): the later write replaces the earlier.

Blocks whose time ranges overlap may hold the same pair (a later flush of the same window);
the read path returns it once. These functions count the way the read path reads, so that
``stats()["samples"]`` equals what a select-all returns and ``write`` can say how many of its
rows replaced samples stored before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import polars as pl

from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.blocks.reader import Block
from tsdb_arrow.blocks.tombstones import Tombstones
from tsdb_arrow.ingest.cut import block_sorted, count_repeats, group_sorted, sorted_repeats
from tsdb_arrow.jit import njit
from tsdb_arrow.model import Numbered, is_member
from tsdb_arrow.query.read import Snapshot, iter_samples

__all__ = [
    "SeriesOrdered",
    "distinct_block_samples",
    "in_series_order",
    "repeats_within_batch",
    "stored_matches",
]

_BATCH = 1 << 20


def distinct_block_samples(
    group: Sequence[Block], pool: Executor, tombstones: Tombstones | None = None
) -> int:
    """Distinct (series, timestamp) pairs stored in a group of overlapping blocks and not
    deleted by ``tombstones``.

    The blocks (timestamps only, past the cache) are read and merged as a query merges them;
    a single block's count is in its meta and needs no read.
    """
    snapshot = Snapshot(
        tuple(sorted(group, key=lambda b: b.meta.seq)),
        (),
        tombstones=tombstones if tombstones is not None else Tombstones.empty(),
    )
    refs = np.unique(np.concatenate([b.index.refs for b in group]))
    lo = min(b.meta.min_time for b in group)
    hi = max(b.meta.max_time for b in group)
    samples = iter_samples(
        snapshot, refs, lo, hi, values=False, batch_size=_BATCH, cache=ChunkCache(0), pool=pool
    )
    return sum(len(batch) for batch in samples)


def repeats_within_batch(
    refs: np.ndarray, timestamps: np.ndarray, codes: np.ndarray, pool: Executor | None = None
) -> int:
    """Rows of a batch that repeat the (series, timestamp) of an earlier row of the same batch.

    ``codes`` numbers each row's series densely from 0 (``Resolved.row_sets``). When each
    series' times increase row by row (appending, the usual case) the answer is 0 after one
    pass; otherwise each series' times are sorted and the repeats counted as a flush drops
    them (``cut.count_repeats``).
    """
    if len(refs) == 0 or _increasing_per_series(refs, timestamps, codes):
        return 0
    return count_repeats(codes, timestamps, pool)


@dataclass(frozen=True)
class SeriesOrdered:
    """A float batch's rows sorted by series and time, stably, and how many of them repeat
    the pair of the row before (the rows a flush drops)."""

    refs: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    repeats: int


def in_series_order(
    refs: np.ndarray,
    timestamps: np.ndarray,
    values: np.ndarray,
    numbered: Numbered,
    duration: int,
    pool: Executor | None = None,
) -> SeriesOrdered | None:
    """The rows of a float batch sorted as a flush cuts them into windows of ``duration``
    ms (by window, ref and time: ``cut.block_sorted``), or by series and time when they span
    too many windows, with their repeats counted; None when each series' times increase row
    by row already (no repeat, nothing to sort).

    Counting a batch's repeats sorts it; carrying the values along costs the same, and the
    head then holds the batch in the order a flush wants, so the flush need not sort it
    again: writing shuffled rows sorts them once, not twice.
    """
    if len(refs) == 0 or _increasing_per_series(refs, timestamps, numbered.row_sets):
        return None
    bits = values.view(np.uint64)
    ordered = block_sorted(
        numbered.row_sets, numbered.set_refs, timestamps, bits, duration, pool
    )
    if ordered is not None:
        refs, ts, bits, bounds = ordered.refs, ordered.timestamps, ordered.bits, ordered.bounds
    else:
        ts, bits, bounds = group_sorted(
            numbered.row_sets, timestamps, bits, pool, len(numbered.set_refs)
        )
        refs = np.repeat(numbered.set_refs, np.diff(bounds))
    return SeriesOrdered(refs, ts, bits.view(np.float64), sorted_repeats(ts, bounds))


def stored_matches(
    refs: np.ndarray,
    timestamps: np.ndarray,
    known: np.ndarray,
    open_snapshot: Callable[[], tuple[Snapshot, Callable[[], None]]],
    cache: ChunkCache,
    pool: Executor,
) -> int:
    """How many of the distinct (ref, timestamp) pairs given are stored in ``open_snapshot``.

    Only pairs of ``known`` series (sorted) can be; their stored timestamps are read in the
    pairs' time range. The pairs must be distinct (the caller has dropped repeats).
    """
    snapshot, release = open_snapshot()
    try:
        if not snapshot.blocks and not snapshot.head:
            return 0
        mine = is_member(known, refs)
        if not mine.any():
            return 0
        refs, timestamps = refs[mine], timestamps[mine]
        stored = [
            pl.DataFrame({"ref": batch.refs, "ts": batch.timestamps})
            for batch in iter_samples(
                snapshot,
                known,
                int(timestamps.min()),
                int(timestamps.max()),
                values=False,
                batch_size=_BATCH,
                cache=cache,
                pool=pool,
            )
        ]
    finally:
        release()
    if not stored:
        return 0
    pairs = pl.DataFrame({"ref": refs, "ts": timestamps})
    return pairs.join(pl.concat(stored), on=["ref", "ts"], how="semi").height


def _increasing_per_series(refs: np.ndarray, timestamps: np.ndarray, codes: np.ndarray) -> bool:
    """Whether each series' timestamps strictly increase in row order (no repeated pair).
    ``codes`` may leave numbers without a row."""
    n_codes = int(codes.max()) + 1
    same = refs[1:] == refs[:-1]
    runs = len(refs) - int(np.count_nonzero(same))
    if runs <= n_codes:  # maybe one run per series: then each run's times are checked
        starts = np.concatenate(([0], np.flatnonzero(~same) + 1))
        if len(np.unique(codes[starts])) == runs:
            return bool((timestamps[1:][same] > timestamps[:-1][same]).all())
    return _increasing_by_code(codes, timestamps, n_codes)


@njit(cache=True, nogil=True)
def _increasing_by_code(codes: np.ndarray, timestamps: np.ndarray, n_codes: int) -> bool:
    last = np.empty(n_codes, dtype=np.int64)
    seen = np.zeros(n_codes, dtype=np.bool_)
    for i in range(codes.shape[0]):
        c = codes[i]
        if seen[c] and timestamps[i] <= last[c]:
            return False
        seen[c] = True
        last[c] = timestamps[i]
    return True
