"""Counting samples that share a (series, timestamp): the later write replaces the earlier.

Blocks whose time ranges overlap may hold the same pair (a later flush of the same window);
the read path returns it once. These functions count the way the read path reads, so that
``stats()["samples"]`` equals what a select-all returns and ``write`` can say how many of its
rows replaced samples stored before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import numba as nb
import numpy as np
import polars as pl

from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.blocks.reader import Block
from tsdb_arrow.model import is_member
from tsdb_arrow.query.read import Snapshot, iter_samples

__all__ = ["distinct_block_samples", "replaced_rows", "stored_matches"]

_BATCH = 1 << 20


def distinct_block_samples(group: Sequence[Block], pool: Executor) -> int:
    """Distinct (series, timestamp) pairs stored in a group of overlapping blocks.

    One block holds each pair once, so its count is in its meta; several blocks are read
    (timestamps only, past the cache) and merged as a query merges them.
    """
    if len(group) == 1:
        return group[0].meta.num_samples
    snapshot = Snapshot(tuple(sorted(group, key=lambda b: b.meta.seq)), ())
    refs = np.unique(np.concatenate([b.index.refs for b in group]))
    lo = min(b.meta.min_time for b in group)
    hi = max(b.meta.max_time for b in group)
    samples = iter_samples(
        snapshot, refs, lo, hi, values=False, batch_size=_BATCH, cache=ChunkCache(0), pool=pool
    )
    return sum(len(batch) for batch in samples)


def replaced_rows(
    refs: np.ndarray,
    timestamps: np.ndarray,
    series: np.ndarray,
    known: np.ndarray,
    stored_max: int | None,
    open_snapshot: Callable[[], tuple[Snapshot, Callable[[], None]]],
    cache: ChunkCache,
    pool: Executor,
    codes: np.ndarray | None = None,
) -> int:
    """How many rows of a batch replace an earlier sample of the same series and timestamp.

    Earlier means a previous row of the batch or a sample already stored (blocks and head, as
    ``open_snapshot`` gives them; ``stored_max`` is their newest timestamp). ``series`` are
    the batch's distinct refs, ``known`` those that existed before it. When every row is
    newer than ``stored_max`` (appending, the usual case) and each series' times increase
    row by row, the answer is 0 after one pass; otherwise the batch's pairs are sorted and
    those of known series matched against the stored ones in the batch's time range.
    ``codes`` (optional) numbers each row's series densely from 0, saving a lookup per row.
    """
    n = len(refs)
    if n == 0:
        return 0
    t_lo, t_hi = int(timestamps.min()), int(timestamps.max())
    fresh = stored_max is None or t_lo > stored_max or len(known) == 0
    if fresh and _increasing_per_series(refs, timestamps, series, codes):
        return 0
    order = np.lexsort((timestamps, refs))
    r, t = refs[order], timestamps[order]
    first = np.ones(n, dtype=bool)  # the first row of each distinct pair
    first[1:] = (r[1:] != r[:-1]) | (t[1:] != t[:-1])
    within = n - int(np.count_nonzero(first))
    if fresh:
        return within
    mine = first & is_member(np.sort(known), r)
    pairs = pl.DataFrame({"ref": r[mine], "ts": t[mine]})
    snapshot, release = open_snapshot()
    try:
        stored = [
            pl.DataFrame({"ref": batch.refs, "ts": batch.timestamps})
            for batch in iter_samples(
                snapshot,
                known,
                t_lo,
                t_hi,
                values=False,
                batch_size=_BATCH,
                cache=cache,
                pool=pool,
            )
        ]
    finally:
        release()
    if not stored:
        return within
    return within + pairs.join(pl.concat(stored), on=["ref", "ts"], how="semi").height


def stored_matches(
    refs: np.ndarray,
    timestamps: np.ndarray,
    known: np.ndarray,
    open_snapshot: Callable[[], tuple[Snapshot, Callable[[], None]]],
    cache: ChunkCache,
    pool: Executor,
) -> int:
    """How many of the distinct (ref, timestamp) pairs given are stored in ``open_snapshot``.

    Only pairs of ``known`` series can be; their stored timestamps are read in the pairs' time
    range. The pairs must be distinct (the caller has dropped repeats).
    """
    snapshot, release = open_snapshot()
    try:
        if not snapshot.blocks and not snapshot.head:
            return 0
        mine = is_member(np.sort(known), refs)
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


def _increasing_per_series(
    refs: np.ndarray, timestamps: np.ndarray, series: np.ndarray, codes: np.ndarray | None
) -> bool:
    """Whether each series' timestamps strictly increase in row order (no repeated pair)."""
    same = refs[1:] == refs[:-1]
    if len(refs) - int(np.count_nonzero(same)) == len(series):  # one run per series
        return bool((timestamps[1:][same] > timestamps[:-1][same]).all())
    if codes is None:
        codes = np.searchsorted(np.sort(series), refs)
    return _increasing_by_code(codes, timestamps, len(series))


@nb.njit(cache=True, nogil=True)
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
