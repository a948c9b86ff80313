"""Blocks grouped by overlapping time ranges: what a reader must merge and compaction may fold."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from tsdb_arrow.blocks.meta import BlockMeta
from tsdb_arrow.blocks.reader import Block

T = TypeVar("T")


def overlapping_groups(blocks: Sequence[Block]) -> list[list[Block]]:
    """Blocks grouped so that blocks of different groups share no instant (sorted sweep)."""
    return _sweep(blocks, lambda b: b.meta)


def overlapping_metas(metas: Sequence[BlockMeta]) -> list[list[BlockMeta]]:
    """``overlapping_groups`` of block metadata alone (the compaction planner's input)."""
    return _sweep(metas, lambda m: m)


def _sweep(items: Sequence[T], meta_of: Callable[[T], BlockMeta]) -> list[list[T]]:
    groups: list[list[T]] = []
    end = None
    for item in sorted(items, key=lambda i: (meta_of(i).min_time, meta_of(i).seq, meta_of(i).id)):
        meta = meta_of(item)
        if end is not None and meta.min_time <= end:
            groups[-1].append(item)
            end = max(end, meta.max_time)
        else:
            groups.append([item])
            end = meta.max_time
    return groups
