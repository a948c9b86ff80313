"""The read path: samples of selected series from blocks and the head, merged and streamed.

Output is sorted by (series ref, timestamp); where blocks or the head overlap, the last write of a
(series, timestamp) wins. Batches are cut at series boundaries near ``batch_size`` samples and
decoded up to two batches ahead (``LOOKAHEAD``), straight into their output arrays, so memory
stays bounded by the output arrays of the few batches that the row groups being decoded feed
(with the cache on, plus the decoded row groups the cache holds anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.blocks.reader import Block
from tsdb_arrow.blocks.tombstones import Tombstones
from tsdb_arrow.errors import ClosedError
from tsdb_arrow.ingest.cut import last_writes, run_starts
from tsdb_arrow.ingest.pool import HeadBuffer
from tsdb_arrow.jit import njit
from tsdb_arrow.model import is_member
from tsdb_arrow.query.buffers import pool_empty

T_MIN = np.iinfo(np.int64).min
T_MAX = np.iinfo(np.int64).max
#: Batches decoding ahead of the one being handed over: the pool stays busy while the consumer
#: turns a batch into frames and Polars takes them.
LOOKAHEAD = 2

T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    """What one query reads: blocks in write order and the pinned head buffers with their sizes."""

    blocks: tuple[Block, ...]
    head: tuple[tuple[HeadBuffer, int], ...]
    # Unflushed histogram samples: (refs, timestamps, fields) pieces in write order.
    histograms: tuple[tuple[np.ndarray, np.ndarray, pa.Table], ...] = ()
    # Deleted ranges of samples in blocks (the head was filtered when they were deleted).
    tombstones: Tombstones = field(default_factory=Tombstones.empty)


@dataclass
class Samples:
    """One batch: timestamps and values in runs of one series (``run_refs``, ``run_lengths``)."""

    timestamps: np.ndarray
    values: np.ndarray | None
    run_refs: np.ndarray
    run_lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def refs(self) -> np.ndarray:
        """The series ref of every row."""
        return np.repeat(self.run_refs, self.run_lengths)

    def where(self, keep: np.ndarray) -> Samples:
        """The rows where ``keep`` is true, runs shortened (and dropped when emptied); in a
        kernel that releases the GIL (a query's batches are millions of rows)."""
        has_values = self.values is not None
        ts, vals, lengths = _compact(
            self.timestamps,
            self.values if has_values else self.timestamps.view(np.float64)[:0],
            np.ascontiguousarray(self.run_lengths, dtype=np.int64),
            np.ascontiguousarray(keep, dtype=np.bool_),
            has_values,
        )
        nonempty = lengths > 0
        return Samples(ts, vals if has_values else None, self.run_refs[nonempty], lengths[nonempty])


@njit(cache=True, nogil=True)
def _compact(timestamps, values, run_lengths, keep, has_values):
    """The rows of ``keep`` (and of ``values`` when ``has_values``), and each run's count."""
    n = 0
    for k in range(keep.shape[0]):
        n += keep[k]
    ts = np.empty(n, dtype=timestamps.dtype)
    vals = np.empty(n if has_values else 0, dtype=values.dtype)
    lengths = np.empty(run_lengths.shape[0], dtype=np.int64)
    o = 0
    k = 0
    for r in range(run_lengths.shape[0]):
        start = o
        for _ in range(run_lengths[r]):
            if keep[k]:
                ts[o] = timestamps[k]
                if has_values:
                    vals[o] = values[k]
                o += 1
            k += 1
        lengths[r] = o - start
    return ts, vals, lengths


@dataclass
class Payloads:
    """One batch as stored: its chunks' codec ids and payloads, for a receiver that decodes
    them with the codec kernels (``Samples`` it would equal once decoded). Chunks are in output
    order, chunk i holding ``counts[i]`` samples of series ``refs[i]``."""

    ts_ids: np.ndarray  # uint8, one per chunk
    timestamps: pa.Array  # large_binary payloads
    value_ids: np.ndarray | None
    values: pa.Array | None
    refs: np.ndarray  # uint64
    counts: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.counts.sum())


def submit(pool: Executor, fn: Callable[..., T], *args: Any) -> Future[T]:
    """``pool.submit``, or a ClosedError when the database closed (and shut the pool down)
    while a query was still reading."""
    try:
        return pool.submit(fn, *args)
    except RuntimeError as exc:
        raise ClosedError(
            "the database was closed while this query was reading; open it again and re-run"
        ) from exc


def _runs(refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal consecutive refs: (ref of each run, its length)."""
    starts = run_starts(refs)
    return refs[starts], np.diff(np.append(starts, len(refs)))


@dataclass
class _HeadRows:
    refs: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray | None

    def __len__(self) -> int:
        return len(self.refs)


def _overlaps(refs: np.ndarray, min_t: np.ndarray, max_t: np.ndarray) -> bool:
    """Whether any two consecutive chunks of one series overlap in time (input sorted by min).
    Vectorised, not a kernel: a batch has one entry per chunk, and a first query in a fresh
    process then loads one compiled kernel fewer."""
    return bool(np.any((refs[1:] == refs[:-1]) & (min_t[1:] <= max_t[:-1])))


def _head_rows(
    snapshot: Snapshot, refs: np.ndarray, t_lo: int, t_hi: int, values: bool
) -> _HeadRows:
    """Head samples of the selected series in range, sorted by ref (write order kept)."""
    if not snapshot.head:
        return _HeadRows(
            np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0) if values else None
        )
    r = np.concatenate([b.refs[:n] for b, n in snapshot.head])
    t = np.concatenate([b.timestamps[:n] for b, n in snapshot.head])
    keep = is_member(refs, r) & (t >= t_lo) & (t <= t_hi)
    r, t = r[keep], t[keep]
    v = np.concatenate([b.values[:n] for b, n in snapshot.head])[keep] if values else None
    order = np.argsort(r, kind="stable")
    return _HeadRows(r[order], t[order], v[order] if v is not None else None)


def iter_samples(
    snapshot: Snapshot,
    refs: np.ndarray,
    t_lo: int,
    t_hi: int,
    *,
    values: bool,
    batch_size: int,
    cache: ChunkCache,
    pool: Executor,
    payloads: bool = False,
) -> Generator[Samples | Payloads, None, None]:
    """Yield the selected series' samples in [t_lo, t_hi], sorted by (ref, ts), deduplicated.

    ``payloads``: a batch that is its chunks as stored (no head rows, no overlaps nor deleted
    samples, every chunk inside the range) comes as ``Payloads``, not decoded here.
    """
    refs = np.unique(refs)
    head = _head_rows(snapshot, refs, t_lo, t_hi, values)
    # Every selected chunk of every block: block no, chunk no, ref, min and max time, count.
    parts = []
    for b, block in enumerate(snapshot.blocks):
        if block.meta.max_time < t_lo or block.meta.min_time > t_hi:
            continue
        ix = block.index
        sel = np.flatnonzero(
            is_member(refs, ix.refs) & (ix.max_time >= t_lo) & (ix.min_time <= t_hi)
        )
        if len(sel):
            parts.append((b, sel))
    if parts:
        c_block = np.concatenate([np.full(len(s), b, np.int64) for b, s in parts])
        c_chunk = np.concatenate([s for _, s in parts])
        c_ref = np.concatenate([snapshot.blocks[b].index.refs[s] for b, s in parts])
        c_min = np.concatenate([snapshot.blocks[b].index.min_time[s] for b, s in parts])
        c_max = np.concatenate([snapshot.blocks[b].index.max_time[s] for b, s in parts])
        c_cnt = np.concatenate([snapshot.blocks[b].index.counts[s] for b, s in parts])
        order = np.lexsort((c_block, c_min, c_ref))
        c_block, c_chunk, c_ref, c_min, c_max, c_cnt = (
            a[order] for a in (c_block, c_chunk, c_ref, c_min, c_max, c_cnt)
        )
    else:
        c_block = c_chunk = c_cnt = np.empty(0, np.int64)
        c_ref = np.empty(0, np.uint64)
        c_min = c_max = np.empty(0, np.int64)
    if len(c_ref) == 0 and len(head) == 0:
        return

    chunks = (c_block, c_chunk, c_ref, c_min, c_max, c_cnt)
    block_seqs = np.array([b.meta.seq for b in snapshot.blocks], dtype=np.int64)
    plans = _plan_batches(c_ref, c_min, c_max, c_cnt, head.refs, batch_size)
    inside = (c_min >= t_lo) & (c_max <= t_hi)
    stored = [payloads and _as_stored(snapshot, chunks, cs, hs, inside) for cs, hs in plans]
    empty = (slice(0, 0), slice(0, 0))
    decoded = [empty if keep else plan for plan, keep in zip(plans, stored)]
    decoder = _Decoder(snapshot, chunks, decoded, values, cache, pool)
    reader = _PayloadReader(snapshot, chunks, values, cache)
    # Pipelined: the next batches' row groups decode on the pool while this one is assembled
    # and consumed. Each row group is read once per query and decoded straight into the
    # output arrays of the batches that hold its chunks.
    try:
        for i in range(min(LOOKAHEAD, len(plans))):
            decoder.submit(i)
        for i, (cs, hs) in enumerate(plans):
            if i + LOOKAHEAD < len(plans):
                decoder.submit(i + LOOKAHEAD)
            if stored[i]:
                yield reader.batch(cs)
                continue
            out_ts, out_val = decoder.wait(i)
            dead = (
                snapshot.tombstones
                if snapshot.tombstones.touches(c_ref[cs], c_min[cs], c_max[cs])
                else None
            )
            batch = _assemble(block_seqs, cs, chunks, head, hs, out_ts, out_val, dead)
            if not inside[cs].all():  # head rows were filtered already
                keep = (batch.timestamps >= t_lo) & (batch.timestamps <= t_hi)
                if not keep.all():
                    batch = batch.where(keep)
            if len(batch):
                yield batch
    finally:
        decoder.cancel()


def _as_stored(
    snapshot: Snapshot, chunks: tuple[np.ndarray, ...], cs: slice, hs: slice, inside: np.ndarray
) -> bool:
    """Whether the batch of chunks ``cs`` and head rows ``hs`` is its chunks' samples as they
    are stored: nothing merged, deleted or cut off."""
    c_ref, c_min, c_max = chunks[2][cs], chunks[3][cs], chunks[4][cs]
    return (
        cs.stop > cs.start
        and hs.stop == hs.start
        and bool(inside[cs].all())
        and not snapshot.tombstones.touches(c_ref, c_min, c_max)
        and not _overlaps(c_ref, c_min, c_max)
    )


class _PayloadReader:
    """The stored payloads of batches of chunks (kept in the cache beside decoded row groups),
    each row group looked up once while consecutive batches need it."""

    def __init__(
        self,
        snapshot: Snapshot,
        chunks: tuple[np.ndarray, ...],
        values: bool,
        cache: ChunkCache,
    ) -> None:
        self.snapshot, self.chunks, self.cache = snapshot, chunks, cache
        self.columns = ("timestamps", "values") if values else ("timestamps",)
        self._reads: dict[tuple[int, int], dict[str, tuple[np.ndarray, pa.Array]]] = {}

    def batch(self, cs: slice) -> Payloads:
        """The payloads of chunks ``cs``, in that order."""
        c_block, c_chunk, c_ref, _, _, c_cnt = (a[cs] for a in self.chunks)
        rg = np.empty(len(c_block), np.int64)
        local = np.empty(len(c_block), np.int64)
        for b in np.unique(c_block).tolist():
            at = c_block == b
            rg[at], local[at] = self.snapshot.blocks[b].locate_chunks(c_chunk[at])
        keys, group = np.unique(c_block * (1 << 32) + rg, return_inverse=True)
        # Row group by row group, then back in the chunks' order.
        where = [np.flatnonzero(group == g) for g in range(len(keys))]
        back = np.argsort(np.concatenate(where), kind="stable")
        reads = {}
        for k in keys.tolist():
            key = (k >> 32, k & 0xFFFFFFFF)
            read = self._reads.get(key)
            if read is None:
                read = self.snapshot.blocks[key[0]].stored(key[1], self.columns, self.cache)
            reads[key] = read
        self._reads = reads  # the next batch starts in the last of these row groups, or after
        found: dict[str, tuple[np.ndarray, pa.Array]] = {}
        for column in self.columns:
            ids, parts = [], []
            for at, read in zip(where, reads.values()):
                stored_ids, stored = read[column]
                ids.append(stored_ids[local[at]])
                parts.append(stored.take(pa.array(local[at])).cast(pa.large_binary()))
            found[column] = (
                np.concatenate(ids)[back],
                pa.concat_arrays(parts).take(pa.array(back)),
            )
        value_ids, value_payloads = found.get("values", (None, None))
        return Payloads(
            *found["timestamps"], value_ids, value_payloads, c_ref, c_cnt.astype(np.int64)
        )


def _plan_batches(
    c_ref: np.ndarray,
    c_min: np.ndarray,
    c_max: np.ndarray,
    c_cnt: np.ndarray,
    head_refs: np.ndarray,
    batch_size: int,
) -> list[tuple[slice, slice]]:
    """Cut the selection into batches of about ``batch_size`` samples: (chunk, head) slices.

    Units are chunks (sorted by ref, then time) and, per series with unflushed samples, its head
    rows. A batch may end inside a series when the series has no head rows and the chunks on
    either side of the cut do not overlap in time, so even one huge series streams.
    """
    h_refs, h_start, h_cnt = np.unique(head_refs, return_index=True, return_counts=True)
    n_c = len(c_ref)
    u_ref = np.concatenate([c_ref, h_refs])
    u_head = np.concatenate([np.zeros(n_c, np.bool_), np.ones(len(h_refs), np.bool_)])
    order = np.lexsort((u_head, u_ref))  # stable: chunks keep their (ref, time) order
    u_ref, u_head = u_ref[order], u_head[order]
    u_cnt = np.concatenate([c_cnt, h_cnt]).astype(np.int64)[order]
    u_min = np.concatenate([c_min, np.zeros(len(h_refs), np.int64)])[order]
    u_max = np.concatenate([c_max, np.zeros(len(h_refs), np.int64)])[order]
    cuts = _cuts(u_ref, u_head, u_cnt, u_min, u_max, max(batch_size, 1))
    bounds = np.concatenate(([0], cuts, [len(u_ref)]))
    plans = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = order[lo:hi]
        chunk_idx = idx[idx < n_c]
        head_idx = idx[idx >= n_c] - n_c
        cs = (
            slice(int(chunk_idx.min()), int(chunk_idx.max()) + 1) if len(chunk_idx) else slice(0, 0)
        )
        if len(head_idx):
            first, last = int(head_idx.min()), int(head_idx.max())
            hs = slice(int(h_start[first]), int(h_start[last] + h_cnt[last]))
        else:
            hs = slice(0, 0)
        plans.append((cs, hs))
    return plans


@njit(cache=True)
def _cuts(refs, is_head, counts, min_t, max_t, batch_size) -> np.ndarray:
    """Unit positions where a new batch starts (greedy, about ``batch_size`` samples each)."""
    n = refs.shape[0]
    # A series with head rows is never split: its head rows merge with all of its chunks.
    splittable = np.ones(n, dtype=np.bool_)
    i = 0
    while i < n:
        j = i
        any_head = False
        while j < n and refs[j] == refs[i]:
            any_head = any_head or is_head[j]
            j += 1
        if any_head:
            splittable[i:j] = False
        i = j
    out = np.empty(n, dtype=np.int64)
    k = 0
    acc = 0
    reach = np.iinfo(np.int64).min  # latest timestamp so far in the current series
    for u in range(n):
        same = u > 0 and refs[u] == refs[u - 1]
        if not same:
            reach = np.iinfo(np.int64).min
        if u > 0 and acc >= batch_size and (not same or (splittable[u] and min_t[u] > reach)):
            out[k] = u
            k += 1
            acc = 0
        acc += counts[u]
        if not is_head[u] and max_t[u] > reach:
            reach = max_t[u]
    return out[:k]


class _Decoder:
    """Decodes the query's chunks straight into each batch's output arrays, ahead of use.

    One job per row group: it reads the row group's payloads once and decodes the
    chunks the query needs (only those, with the cache off) into the output arrays of every
    batch that holds some of them. With the cache on, the whole row group is decoded (or found)
    in the shared cache and the needed ranges copied out. A batch's arrays live from the
    submission of the first job writing into them until the batch is handed over.
    """

    def __init__(self, snapshot, chunks, plans, values, cache, pool) -> None:
        self.snapshot, self.cache, self.pool = snapshot, cache, pool
        self.columns = ("timestamps", "values") if values else ("timestamps",)
        c_block, c_chunk, c_cnt = chunks[0], chunks[1], chunks[5]
        n = len(c_block)
        c_rg = np.empty(n, np.int64)
        for b in np.unique(c_block).tolist():
            at = c_block == b
            c_rg[at] = snapshot.blocks[b].index.row_group[c_chunk[at]]
        key = c_block * (1 << 32) + c_rg
        c_batch = np.full(n, -1, np.int64)  # -1: a chunk no batch here decodes
        self.sizes = []
        for i, (cs, _) in enumerate(plans):
            c_batch[cs] = i
            self.sizes.append(int(c_cnt[cs].sum()))
        # Each chunk's first sample within its batch's output.
        self.dst = np.cumsum(c_cnt) - c_cnt
        for cs, _ in plans:
            if cs.stop > cs.start:
                self.dst[cs] -= self.dst[cs.start]
        # Per row group (block, rg): its parts, one per batch: (batch, chunk positions).
        decoded = np.flatnonzero(c_batch >= 0)
        order = decoded[np.lexsort((c_batch[decoded], key[decoded]))]
        k_sorted, b_sorted = key[order], c_batch[order]
        cut = np.flatnonzero((np.diff(k_sorted) != 0) | (np.diff(b_sorted) != 0)) + 1
        m = len(order)
        bounds = np.concatenate(([0], cut, [m])).tolist() if m else [0]
        self.parts: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
        self.batch_keys: list[list[tuple[int, int]]] = [[] for _ in plans]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            k, i = int(k_sorted[lo]), int(b_sorted[lo])
            rg_key = (k >> 32, k & 0xFFFFFFFF)
            self.parts.setdefault(rg_key, []).append((i, order[lo:hi]))
            self.batch_keys[i].append(rg_key)
        self.c_chunk, self.c_cnt = c_chunk, c_cnt
        self.outs: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self.futures: dict[tuple[int, int], list[Future]] = {}

    def _out(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        out = self.outs.get(i)
        if out is None:
            n = self.sizes[i]
            vals = pool_empty(n, np.float64) if len(self.columns) == 2 else None
            out = self.outs[i] = (pool_empty(n, np.int64), vals)
        return out

    def submit(self, i: int) -> None:
        """Start the jobs of every row group that batch ``i`` needs and no job covers yet."""
        for k in self.batch_keys[i]:
            if k in self.futures:
                continue
            targets = [(pos, self._out(j)) for j, pos in self.parts[k]]
            self.futures[k] = [submit(self.pool, self._job, k, targets)]

    def _job(self, k: tuple[int, int], targets) -> None:
        block = self.snapshot.blocks[k[0]]
        if self.cache.capacity_bytes:
            for which, column in enumerate(self.columns):
                decoded = block.decoded(k[1], column, self.cache)
                for pos, out in targets:
                    src = block.index.sample_offset[self.c_chunk[pos]]
                    # As 64-bit integers: timestamps and values share one compiled variant.
                    _copy_ranges(decoded.view(np.int64), src, self.dst[pos], self.c_cnt[pos],
                                 out[which].view(np.int64))  # fmt: skip
            return
        # Both columns in one read: half the reads and pool hand-offs of a job per column.
        read = block.read_payloads(k[1], self.columns)
        for which, column in enumerate(self.columns):
            for pos, out in targets:
                block.decode_into(
                    k[1], column, read[column], self.c_chunk[pos], out[which], self.dst[pos]
                )

    def wait(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Batch ``i``'s filled output arrays (timestamps, values or None), handed over."""
        for k in self.batch_keys[i]:
            for future in self.futures[k]:
                future.result()
            if self.parts[k][-1][0] == i:  # the row group's last batch
                del self.futures[k]
        out = self.outs.pop(i, None)  # None: the batch holds head rows only
        if out is not None:
            return out
        values = np.empty(0, np.float64) if "values" in self.columns else None
        return np.empty(0, np.int64), values

    def cancel(self) -> None:
        """Cancel the jobs not started yet (the consumer stopped early or an error occurred)."""
        for futures in self.futures.values():
            for future in futures:
                future.cancel()


def _assemble(block_seqs, cs, chunks, head, hs, out_ts, out_val, tombstones) -> Samples:
    """A batch from its decoded chunks and its head rows, overlaps merged (last write wins).

    ``block_seqs``: the write sequence number of each block of the snapshot; ``tombstones``:
    those that may hide samples of these chunks, or None.
    """
    c_block, _, c_ref, c_min, c_max, c_cnt = (a[cs] for a in chunks)
    n_head = hs.stop - hs.start
    if not n_head and tombstones is None and not _overlaps(c_ref, c_min, c_max):
        # The chunks' refs and counts describe the runs of one series.
        starts = run_starts(c_ref)
        return Samples(out_ts, out_val, c_ref[starts], np.add.reduceat(c_cnt, starts))
    refs = np.concatenate([np.repeat(c_ref, c_cnt), head.refs[hs]])
    ts = np.concatenate([out_ts, head.timestamps[hs]])
    vals = np.concatenate([out_val, head.values[hs]]) if out_val is not None else None
    # Later writes win: rows ranked by the sequence number of their block (head last).
    seqs = np.concatenate([np.repeat(block_seqs[c_block], c_cnt), np.full(n_head, T_MAX, np.int64)])
    if tombstones is not None:  # before last-write-wins: a write after the delete stays
        live = ~tombstones.deleted(refs, ts, seqs)
        refs, ts, seqs = refs[live], ts[live], seqs[live]
        vals = vals[live] if vals is not None else None
    order, keep = last_writes(refs, ts, seqs)
    refs, ts = refs[order], ts[order]
    vals = vals[order] if vals is not None else None
    if not keep.all():
        refs, ts = refs[keep], ts[keep]
        vals = vals[keep] if vals is not None else None
    return Samples(ts, vals, *_runs(refs))


@njit(cache=True, nogil=True)
def _copy_ranges(src, src_starts, dst_starts, counts, out):
    for i in range(src_starts.shape[0]):
        s = src_starts[i]
        d = dst_starts[i]
        for j in range(counts[i]):
            out[d + j] = src[s + j]


def refs_in_range(snapshot: Snapshot, t_lo: int, t_hi: int) -> np.ndarray:
    """The refs of series with samples in [t_lo, t_hi], sorted and unique, without decoding.

    As Prometheus' series and label endpoints: a stored series counts when one of its chunks
    overlaps the range (a chunk spanning a gap counts); head samples and histogram samples are
    checked one by one. A chunk whose part in the range a deletion hides whole does not count,
    nor does a deleted histogram sample.
    """
    parts: list[np.ndarray] = []
    for block in snapshot.blocks:
        if block.meta.max_time < t_lo or block.meta.min_time > t_hi:
            continue
        ix = block.index
        sel = (ix.max_time >= t_lo) & (ix.min_time <= t_hi)
        refs = ix.refs[sel]
        lo, hi = np.maximum(ix.min_time[sel], t_lo), np.minimum(ix.max_time[sel], t_hi)
        parts.append(refs[~snapshot.tombstones.hide(refs, lo, hi, block.meta.seq)])
        h_refs, h_ts = block.histogram_times(t_lo, t_hi)
        seqs = np.full(len(h_refs), block.meta.seq, np.int64)
        parts.append(h_refs[~snapshot.tombstones.deleted(h_refs, h_ts, seqs)])
    for buf, n in snapshot.head:
        t = buf.timestamps[:n]
        parts.append(buf.refs[:n][(t >= t_lo) & (t <= t_hi)])
    for refs, timestamps, _ in snapshot.histograms:
        parts.append(refs[(timestamps >= t_lo) & (timestamps <= t_hi)])
    if not parts:
        return np.empty(0, np.uint64)
    return np.unique(np.concatenate(parts).astype(np.uint64, copy=False))


def refs_in_blocks(snapshot: Snapshot, t_lo: int, t_hi: int) -> np.ndarray:
    """The refs of every series of the blocks overlapping [t_lo, t_hi], the head counting as
    one block over its samples' time span: the granularity of Prometheus' label names and
    values endpoints, which read the index of each block (and head) the range touches."""
    parts = [
        b.series_refs()
        for b in snapshot.blocks
        if b.meta.max_time >= t_lo and b.meta.min_time <= t_hi
    ]
    head = [buf.refs[:n] for buf, n in snapshot.head if n]
    head += [refs for refs, _, _ in snapshot.histograms]
    times = [buf.timestamps[:n] for buf, n in snapshot.head if n]
    times += [ts for _, ts, _ in snapshot.histograms if len(ts)]
    if times:
        lo = min(int(t.min()) for t in times)
        hi = max(int(t.max()) for t in times)
        if hi >= t_lo and lo <= t_hi:
            parts += head
    if not parts:
        return np.empty(0, np.uint64)
    return np.unique(np.concatenate(parts).astype(np.uint64, copy=False))
