"""Compaction: which blocks to merge (a pure planner) and the merge itself (last write wins).

Blocks are merged for two reasons: blocks overlapping in time (out-of-order or late writes,
flushes before a window ended) cost every query a merge, and many small blocks each carry their
own series table and chunk boundaries. A merged block replaces its inputs: it holds each
(series, timestamp) once, with the value of the input of highest ``seq``, and lists the inputs in
``meta.sources`` so that inputs surviving a crash between the merged block's rename and their
deletion are recognised (``obsolete_sources``) and deleted on open.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import Executor

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs

from tsdb_arrow.blocks.codecs.zstd_stage import COMPACTION_LEVEL
from tsdb_arrow.blocks.histograms import HISTOGRAMS_FILE, HistogramWindow, read_all_histograms
from tsdb_arrow.blocks.meta import TMP_SUFFIX, BlockMeta
from tsdb_arrow.blocks.ranges import overlapping_metas
from tsdb_arrow.blocks.reader import Block
from tsdb_arrow.blocks.tombstones import Tombstones
from tsdb_arrow.blocks.writer import block_name, write_block
from tsdb_arrow.errors import ConfigError
from tsdb_arrow.ingest.cut import Window, last_writes
from tsdb_arrow.model import HISTOGRAM_FIELDS, REF, TIMESTAMP, is_member, present_labels

#: Default compaction levels, as multiples of the block duration: 2 h -> 12 h -> 48 h.
LEVEL_FACTORS = (1, 6, 24)

__all__ = [
    "LEVEL_FACTORS",
    "check_levels",
    "default_levels",
    "merge_blocks",
    "merged_name",
    "obsolete_sources",
    "plan_compaction",
]


def default_levels(block_duration: int) -> list[int]:
    """The default level range lengths (ms) for ``block_duration``: ``LEVEL_FACTORS`` times it."""
    return [block_duration * f for f in LEVEL_FACTORS]


# -- merging ---------------------------------------------------------------------------------


def merge_blocks(
    fs: pafs.FileSystem,
    blocks_dir: str,
    blocks: Sequence[Block],
    *,
    chunk_samples: int,
    pool: Executor | None = None,
    tombstones: Tombstones | None = None,
) -> BlockMeta | None:
    """Write one new block holding the union of ``blocks``' samples, the last write winning.

    Float and histogram samples of every input are read whole, concatenated in ``seq`` order and
    sorted by (series, timestamp); of samples sharing a (series, timestamp) the one of the input
    with the highest ``seq`` is kept. Samples that ``tombstones`` hide (deleted after their
    block was written) are dropped first, as a query drops them: the merged block's higher
    ``seq`` must not bring them back. The series table holds the series that have samples left;
    when none has, nothing is written and None is returned (the inputs can simply go).

    The new block gets the highest ``seq`` of its inputs, so that a block flushed while the merge
    ran (a higher ``seq``) still wins over it where they overlap; its directory is
    ``merged_name(seq, level)`` with ``level`` one above its highest input's. It is written
    durably (``writer.publish``), its payloads at the zstd stage's ``COMPACTION_LEVEL``
    (background work spent once for a smaller block). The inputs are left in place: the
    caller deletes them once the merged block is visible to readers. The caller must pass
    every block whose time range overlaps the inputs' with a ``seq`` between theirs
    (``plan_compaction`` does), or a sample the merge lost to such a block would come back
    ahead of it.

    Memory: every input is decoded in full and held at once, with the sort and the encoding
    about 100 bytes per input sample at the peak (the real node data: 3.6 M samples, 0.4 GB),
    which bounds a merge to what fits in memory. A damaged input raises ``CorruptBlockError``
    before anything is written.
    """
    if not blocks:
        raise ValueError("merge_blocks needs at least one block")
    ordered = sorted(blocks, key=lambda b: (b.meta.seq, b.meta.id))
    seq = ordered[-1].meta.seq
    level = 1 + max(b.meta.level for b in ordered)
    dead = tombstones if tombstones is not None and len(tombstones) else None
    window = _merged_floats(ordered, pool, dead)
    hists = _merged_histograms(ordered, dead)
    if window is None and hists is None:
        return None
    refs = np.union1d(
        window.series_refs() if window is not None else np.empty(0, np.uint64),
        np.unique(hists.refs) if hists is not None else np.empty(0, np.uint64),
    )
    series = _merged_series(ordered, refs)
    return write_block(
        fs,
        blocks_dir,
        seq,
        series,
        chunk_samples,
        window=window,
        histograms=hists,
        pool=pool,
        name=_free_name(fs, blocks_dir, seq, level),
        level=level,
        sources=[b.meta.id for b in ordered],
        zstd_level=COMPACTION_LEVEL,
    )


def merged_name(seq: int, level: int) -> str:
    """A merged block's directory name: ``block_name(seq)`` + ``-c`` + its level.

    Unique: every block with a given ``seq`` descends from the one flushed block of that
    ``seq``, each block is merged at most once, and levels grow along the chain of merges.
    """
    return f"{block_name(seq)}-c{level}"


def _free_name(fs: pafs.FileSystem, blocks_dir: str, seq: int, level: int) -> str:
    """``merged_name``, or with a ``-N`` suffix if a directory of that name exists (a data
    directory assembled by hand: never reuse a name a reader or a ``sources`` list may hold)."""
    base = merged_name(seq, level)
    name, n = base, 1
    while any(
        fs.get_file_info(f"{blocks_dir}/{candidate}").type != pafs.FileType.NotFound
        for candidate in (name, name + TMP_SUFFIX)
    ):
        n += 1
        name = f"{base}-{n}"
    return name


def _merged_floats(
    ordered: Sequence[Block], pool: Executor | None, tombstones: Tombstones | None
) -> Window | None:
    """The inputs' float samples, sorted by (ref, timestamp), the last live write of a pair."""
    sizes = [b.meta.num_samples for b in ordered]
    n = sum(sizes)
    if n == 0:
        return None
    ts, values = np.empty(n, np.int64), np.empty(n, np.float64)
    bounds = np.concatenate(([0], np.cumsum(sizes))).tolist()
    refs = np.concatenate(
        [
            b.samples_into(ts[lo:hi], values[lo:hi], pool)
            for b, lo, hi in zip(ordered, bounds, bounds[1:])
        ]
    )
    rank = np.repeat(np.arange(len(ordered), dtype=np.int32), sizes)
    if tombstones is not None:
        seqs = np.repeat(np.array([b.meta.seq for b in ordered], np.int64), sizes)
        live = ~tombstones.deleted(refs, ts, seqs)
        if not live.all():
            refs, ts, values, rank = refs[live], ts[live], values[live], rank[live]
            if len(refs) == 0:
                return None
    if sum(1 for s in sizes if s) > 1:
        order, keep = last_writes(refs, ts, rank)
        order = order[keep]
        refs, ts, values = refs[order], ts[order], values[order]
    return Window(int(ts.min()), refs, ts, values)


def _merged_histograms(
    ordered: Sequence[Block], tombstones: Tombstones | None
) -> HistogramWindow | None:
    """The inputs' histogram samples, sorted by (ref, timestamp), the last live write of a pair."""
    with_hists = [b for b in ordered if b.meta.num_histograms]
    if not with_hists:
        return None
    tables = [read_all_histograms(b.fs, f"{b.path}/{HISTOGRAMS_FILE}") for b in with_hists]
    table = pa.concat_tables(tables)
    refs = table[REF].to_numpy()
    ts = table[TIMESTAMP].to_numpy()
    sizes = [t.num_rows for t in tables]
    rank = np.repeat(np.arange(len(tables), dtype=np.int32), sizes)
    rows = np.arange(len(refs))
    if tombstones is not None:
        seqs = np.repeat(np.array([b.meta.seq for b in with_hists], np.int64), sizes)
        rows = np.flatnonzero(~tombstones.deleted(refs, ts, seqs))
        if len(rows) == 0:
            return None
    order, keep = last_writes(refs[rows], ts[rows], rank[rows])
    take = rows[order[keep]]
    fields = table.select([f.name for f in HISTOGRAM_FIELDS]).take(pa.array(take))
    return HistogramWindow(int(ts[take].min()), refs[take], ts[take], fields)


def _merged_series(ordered: Sequence[Block], refs: np.ndarray) -> pa.Table:
    """The series table of ``refs``: REF, then the label columns they have, sorted by ref."""
    frames = [pl.from_arrow(b.series()) for b in ordered]
    frame = (
        pl.concat(frames, how="diagonal_relaxed")
        .unique(subset=REF, keep="first", maintain_order=True)
        .sort(REF)
    )
    frame = frame.filter(pl.Series(is_member(refs, frame[REF].to_numpy())))
    labels = sorted(c for c in frame.columns if c != REF)
    frame = frame.select(REF, *labels)
    return frame.select(REF, *present_labels(frame)).to_arrow()


def obsolete_sources(metas: Sequence[BlockMeta]) -> set[str]:
    """Ids of present blocks that another present block lists as a source: a merge renamed its
    block into place but died before deleting its inputs. Delete them before reading."""
    present = {m.id for m in metas}
    return {s for m in metas for s in m.sources if s in present and s != m.id}


# -- planning --------------------------------------------------------------------------------


def check_levels(levels: Sequence[int]) -> None:
    """Refuse levels that are not positive, increasing, each a multiple of the one before
    (aligned ranges must nest, so that a block inside one range is inside the larger ones)."""
    if not levels:
        raise ConfigError("compaction levels must name at least one range length (ms)")
    for i, length in enumerate(levels):
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise ConfigError(f"compaction level {length!r} must be a positive int (ms)")
        if i and (length <= levels[i - 1] or length % levels[i - 1]):
            raise ConfigError(
                f"compaction levels must increase, each a multiple of the one before (ranges "
                f"nest); got {list(levels)}, e.g. block_duration times {list(LEVEL_FACTORS)}"
            )


def plan_compaction(
    metas: Sequence[BlockMeta],
    levels: Sequence[int],
    *,
    block_duration: int,
    newest_time: int | None,
    rewrite: Collection[str] = (),
) -> list[list[str]]:
    """Which blocks to merge: groups of block ids, each group to become one block.

    ``levels`` are range lengths in ms (``default_levels``), each range aligned to a multiple of
    its length since the epoch. A range is complete when it ends at or before ``newest_time -
    block_duration`` (no more writes expected there); ``newest_time=None`` treats every range as
    complete (a full compaction, e.g. offline). Blocks overlapping in time form units that are
    never split (``overlapping_metas``), then:

    1. a unit lying wholly inside a complete range of a level above the first joins the largest
       such range, and each range is merged into one block (fewest rewrites: a range is not
       first merged at a smaller level when a larger one is complete);
    2. a range whose only block was never merged (``level`` 1) is rewritten alone, a group of
       one: merged blocks are encoded with more effort, and a bulk load that lands in one
       block per range then ends as small as the same data written in many batches;
    3. a unit of several blocks that joins no complete range is merged by itself, unless it
       spans more than the largest level (only blocks written with another block duration
       can): no group spans more than ``levels[-1]`` ms;
    4. a block listed in ``rewrite`` that no group holds is rewritten alone (e.g. the blocks
       tombstones touch, so that their deleted samples go; a block rewritten alone keeps its
       seq and time range or less, which is always safe).

    No block outside a group overlaps the group's time span, so a merged block (with the highest
    ``seq`` of its group) wins over nothing it should lose to. A plan carried out leaves nothing
    to plan at the same ``newest_time``. Ids within a group are ordered by (seq, id); groups by
    their first sample time, then ids.
    """
    check_levels(levels)
    largest = levels[-1]
    complete_until = None if newest_time is None else newest_time - block_duration
    targets: dict[tuple[int, int], list[BlockMeta]] = {}
    alone: list[list[BlockMeta]] = []
    for unit in overlapping_metas(metas):
        lo = min(m.min_time for m in unit)
        hi = max(m.max_time for m in unit)
        target = _target_range(lo, hi, levels[1:], complete_until)
        if target is not None:
            targets.setdefault(target, []).extend(unit)
        elif len(unit) > 1 and hi - lo < largest:
            alone.append(unit)
    groups = [g for g in targets.values() if len(g) > 1 or g[0].level == 1] + alone
    grouped = {m.id for g in groups for m in g}
    groups += [[m] for m in metas if m.id in rewrite and m.id not in grouped]
    ordered = [sorted(g, key=lambda m: (m.seq, m.id)) for g in groups]
    ordered.sort(key=lambda g: (min(m.min_time for m in g), sorted(m.id for m in g)))
    return [[m.id for m in g] for g in ordered]


def _target_range(
    lo: int, hi: int, levels: Sequence[int], complete_until: int | None
) -> tuple[int, int] | None:
    """(length, start) of the largest complete aligned range holding [lo, hi], or None."""
    for length in reversed(levels):
        start = lo - lo % length  # floor, also before the epoch
        end = start + length
        if hi < end and (complete_until is None or end <= complete_until):
            return length, start
    return None
