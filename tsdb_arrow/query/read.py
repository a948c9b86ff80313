"""The read path: samples of selected series from blocks and the head, merged and streamed.

Output is sorted by (series ref, timestamp); where blocks or the head overlap, the last write of a
(series, timestamp) wins. Batches are cut at series boundaries near ``batch_size`` samples, so
memory stays bounded by the batch plus the decoded row groups of this batch and the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numba as nb
import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.blocks.reader import Block
from tsdb_arrow.errors import ClosedError
from tsdb_arrow.ingest.cut import keep_last
from tsdb_arrow.ingest.pool import HeadBuffer
from tsdb_arrow.model import is_member

T_MIN = np.iinfo(np.int64).min
T_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Snapshot:
    """What one query reads: blocks in write order and the pinned head buffers with their sizes."""

    blocks: tuple[Block, ...]
    head: tuple[tuple[HeadBuffer, int], ...]
    # Unflushed histogram samples: (refs, timestamps, fields) pieces in write order.
    histograms: tuple[tuple[np.ndarray, np.ndarray, pa.Table], ...] = ()


@dataclass
class Samples:
    refs: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray | None
    # Runs of one series, when known without a scan: (ref of each run, its length).
    runs: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.refs)


@nb.njit(cache=True)
def _overlaps(refs: np.ndarray, min_t: np.ndarray, max_t: np.ndarray) -> bool:
    """Whether any two consecutive chunks of one series overlap in time (input sorted by min)."""
    for i in range(1, refs.shape[0]):
        if refs[i] == refs[i - 1] and min_t[i] <= max_t[i - 1]:
            return True
    return False


def _head_rows(snapshot: Snapshot, refs: np.ndarray, t_lo: int, t_hi: int, values: bool) -> Samples:
    """Head samples of the selected series in range, sorted by ref (write order kept)."""
    if not snapshot.head:
        return Samples(
            np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0) if values else None
        )
    r = np.concatenate([b.refs[:n] for b, n in snapshot.head])
    t = np.concatenate([b.timestamps[:n] for b, n in snapshot.head])
    keep = is_member(refs, r) & (t >= t_lo) & (t <= t_hi)
    r, t = r[keep], t[keep]
    v = np.concatenate([b.values[:n] for b, n in snapshot.head])[keep] if values else None
    order = np.argsort(r, kind="stable")
    return Samples(r[order], t[order], v[order] if v is not None else None)


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
) -> Iterator[Samples]:
    """Yield the selected series' samples in [t_lo, t_hi], sorted by (ref, ts), deduplicated."""
    refs = np.unique(refs)
    head = _head_rows(snapshot, refs, t_lo, t_hi, values)
    # Every selected chunk of every block: (ref, min, max, count, block no, chunk no, seq).
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
    plans = _plan_batches(c_ref, c_min, c_max, c_cnt, head.refs, batch_size)
    inside = (c_min >= t_lo) & (c_max <= t_hi)
    decoder = _Decoder(snapshot, chunks, plans, values, cache, pool)
    # Pipelined: the next batch's row groups decode on the pool while this one is assembled
    # and consumed. Each row group is decoded once per query and dropped after its last batch.
    decoder.submit(0)
    for i, (cs, hs) in enumerate(plans):
        if i + 1 < len(plans):
            decoder.submit(i + 1)
        batch = _assemble(snapshot, cs, chunks, head, hs, values, decoder.jobs(i))
        decoder.release(i)
        if inside[cs].all():  # every chunk lies in the range; head rows were filtered already
            keep = None
        else:
            keep = (batch.timestamps >= t_lo) & (batch.timestamps <= t_hi)
        if keep is not None and not keep.all():
            batch = Samples(
                batch.refs[keep],
                batch.timestamps[keep],
                batch.values[keep] if batch.values is not None else None,
            )
        if len(batch):
            yield batch


Jobs = dict[tuple[tuple[int, int], str], Future]


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


@nb.njit(cache=True)
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
    """Decodes (or fetches) each row group the query needs once, a batch ahead of its use.

    With the shared cache off, a row group of which the whole query needs less than half the
    chunks is decoded for those chunks only (a selective query pays for what it reads);
    otherwise the whole row group is decoded (and kept in the shared cache if it is on). A
    decoded row group is held only from the batch that first needs it to the last one.
    """

    def __init__(self, snapshot, chunks, plans, values, cache, pool) -> None:
        self.snapshot, self.cache, self.pool = snapshot, cache, pool
        self.columns = ("timestamps", "values") if values else ("timestamps",)
        c_block, c_chunk = chunks[0], chunks[1]
        c_rg = np.empty(len(c_block), np.int64)
        for b in np.unique(c_block).tolist():
            at = c_block == b
            c_rg[at] = snapshot.blocks[b].index.row_group[c_chunk[at]]
        key = c_block * (1 << 32) + c_rg
        self.batch_keys: list[list[tuple[int, int]]] = []
        self.last: dict[tuple[int, int], int] = {}
        for i, (cs, _) in enumerate(plans):
            keys = [(int(k >> 32), int(k & 0xFFFFFFFF)) for k in np.unique(key[cs]).tolist()]
            self.batch_keys.append(keys)
            for k in keys:
                self.last[k] = i
        # Chunks the whole query needs per row group, for the selective decode.
        self.few: dict[tuple[int, int], np.ndarray] = {}
        if cache.capacity_bytes == 0 and len(key):
            order = np.argsort(key, kind="stable")
            uniq, starts, counts = np.unique(key[order], return_index=True, return_counts=True)
            for k, s, n in zip(uniq.tolist(), starts.tolist(), counts.tolist()):
                b, rg = k >> 32, k & 0xFFFFFFFF
                if 2 * n < snapshot.blocks[b].chunk_count(rg):
                    self.few[(b, rg)] = np.sort(c_chunk[order[s : s + n]])
        self.futures: dict[tuple[tuple[int, int], str], Future] = {}

    def submit(self, i: int) -> None:
        try:
            for k in self.batch_keys[i]:
                for col in self.columns:
                    if (k, col) in self.futures:
                        continue
                    block = self.snapshot.blocks[k[0]]
                    needed = self.few.get(k)
                    if needed is not None:
                        job = self.pool.submit(block.decode_chunks, k[1], col, needed)
                    else:
                        job = self.pool.submit(block.decoded, k[1], col, self.cache)
                    self.futures[(k, col)] = job
        except RuntimeError as exc:  # the pool was shut down: the database closed mid-read
            raise ClosedError(
                "the database was closed while this query was reading; open it again and re-run"
            ) from exc

    def jobs(self, i: int) -> Jobs:
        keys = self.batch_keys[i]
        return {(k, col): self.futures[(k, col)] for k in keys for col in self.columns}

    def release(self, i: int) -> None:
        for k in self.batch_keys[i]:
            if self.last[k] == i:
                for col in self.columns:
                    self.futures.pop((k, col), None)


def _assemble(snapshot, cs, chunks, head, hs, values, jobs: Jobs) -> Samples:
    """Copy each chunk's samples out of its decoded row group, add the head, merge overlaps."""
    c_block, c_chunk, c_ref, c_min, c_max, c_cnt = (a[cs] for a in chunks)
    ts_parts, val_parts, ref_parts = [], [], []
    if len(c_ref):
        decoded = {job: future.result() for job, future in jobs.items()}
        total = int(c_cnt.sum())
        dst = np.cumsum(c_cnt) - c_cnt
        out_ts = np.empty(total, np.int64)
        out_val = np.empty(total, np.float64) if values else None
        # One kernel call per row group: copy its chunks' ranges to their output positions.
        for b in np.unique(c_block).tolist():
            in_block = np.flatnonzero(c_block == b)
            index = snapshot.blocks[b].index
            rgs = index.row_group[c_chunk[in_block]]
            for rg in np.unique(rgs).tolist():
                pick = in_block[rgs == rg]
                src = index.sample_offset[c_chunk[pick]]
                _copy_ranges(decoded[((b, rg), "timestamps")], src, dst[pick], c_cnt[pick], out_ts)
                if out_val is not None:
                    vals_rg = decoded[((b, rg), "values")]
                    _copy_ranges(vals_rg, src, dst[pick], c_cnt[pick], out_val)
        ts_parts.append(out_ts)
        ref_parts.append(np.repeat(c_ref, c_cnt))
        if out_val is not None:
            val_parts.append(out_val)
    n_head = hs.stop - hs.start
    if n_head:
        ref_parts.append(head.refs[hs])
        ts_parts.append(head.timestamps[hs])
        if values:
            val_parts.append(head.values[hs])
    refs = np.concatenate(ref_parts) if len(ref_parts) > 1 else ref_parts[0]
    ts = np.concatenate(ts_parts) if len(ts_parts) > 1 else ts_parts[0]
    vals = (np.concatenate(val_parts) if len(val_parts) > 1 else val_parts[0]) if values else None
    if n_head or _overlaps(c_ref, c_min, c_max):
        # Later writes win: rank rows by the sequence number of their block (head last).
        block_seq = np.array([snapshot.blocks[b].meta.seq for b in c_block.tolist()], np.int64)
        seqs = np.concatenate([np.repeat(block_seq, c_cnt), np.full(n_head, T_MAX, np.int64)])
        order = (
            pl.DataFrame({"r": refs, "t": ts, "s": seqs})
            .with_row_index("i")
            .sort(["r", "t", "s"], maintain_order=True)["i"]
            .to_numpy()
        )
        refs, ts = refs[order], ts[order]
        vals = vals[order] if vals is not None else None
        keep = keep_last(refs, ts)
        if not keep.all():
            refs, ts = refs[keep], ts[keep]
            vals = vals[keep] if vals is not None else None
        return Samples(refs, ts, vals)
    if len(c_ref) == 0:
        return Samples(refs, ts, vals)
    # No merge: the chunks' refs and counts already describe the runs of one series.
    starts = np.flatnonzero(np.diff(c_ref, prepend=c_ref[:1] ^ 1))
    run_lengths = np.add.reduceat(c_cnt, starts)
    return Samples(refs, ts, vals, (c_ref[starts], run_lengths))


@nb.njit(cache=True, nogil=True)
def _copy_ranges(src, src_starts, dst_starts, counts, out):
    for i in range(src_starts.shape[0]):
        s = src_starts[i]
        d = dst_starts[i]
        for j in range(counts[i]):
            out[d + j] = src[s + j]
