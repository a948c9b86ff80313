"""Retention: which whole blocks to delete, by age and by the bytes the blocks take (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tsdb_arrow.blocks.meta import BlockMeta
from tsdb_arrow.blocks.ranges import overlapping_metas

__all__ = ["plan_retention"]


def plan_retention(
    metas: Sequence[BlockMeta],
    sizes: Mapping[str, int],
    *,
    retention_ms: int | None,
    retention_bytes: int | None,
    newest_time: int,
) -> list[str]:
    """Ids of the blocks to delete, oldest first.

    By age: blocks whose newest sample is older than ``newest_time - retention_ms``. By size:
    then, oldest first, blocks until the rest take at most ``retention_bytes`` (``sizes``: bytes
    of each block's files). Oldest means by time range (groups of overlapping blocks in time
    order) and, among overlapping blocks, by write order: a block goes only after every block it
    overlaps with a lower ``seq``, so that deleting a block never brings back the older values it
    had replaced (a block past the age limit that overlaps an older write still kept stays).
    ``None`` turns a limit off.
    """
    groups = [sorted(group, key=_by_write) for group in overlapping_metas(metas)]
    order = [m for group in groups for m in group]
    gone: set[str] = set()
    if retention_ms is not None:
        cutoff = newest_time - retention_ms
        for group in groups:
            gone |= _without_resurrection(group, {m.id for m in group if m.max_time < cutoff})
    if retention_bytes is not None:
        total = sum(sizes[m.id] for m in order if m.id not in gone)
        for meta in order:
            if total <= retention_bytes:
                break
            if meta.id not in gone:
                gone.add(meta.id)
                total -= sizes[meta.id]
        if retention_ms is not None:  # blocks past the age limit that only kept ones held
            cutoff = newest_time - retention_ms
            for group in groups:
                past = {m.id for m in group if m.max_time < cutoff}
                gone |= _without_resurrection(group, past | (gone & {m.id for m in group}))
    return [m.id for m in order if m.id in gone]


def _by_write(meta: BlockMeta) -> tuple[int, str]:
    return meta.seq, meta.id


def _without_resurrection(group: list[BlockMeta], gone: set[str]) -> set[str]:
    """``gone`` less every block overlapping a kept block of lower ``seq`` (to a fixed point);
    ``group``: overlapping blocks, by write order (blocks of other groups overlap none)."""
    changed = True
    while changed:
        changed = False
        kept = [m for m in group if m.id not in gone]
        for meta in group:
            if meta.id in gone and any(
                _by_write(k) < _by_write(meta) and _overlap(k, meta) for k in kept
            ):
                gone.discard(meta.id)
                changed = True
    return gone


def _overlap(a: BlockMeta, b: BlockMeta) -> bool:
    return a.min_time <= b.max_time and b.min_time <= a.max_time
