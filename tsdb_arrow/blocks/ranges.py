"""Blocks grouped by overlapping time ranges: what a reader must merge and compaction may fold."""

from __future__ import annotations

from collections.abc import Sequence

from tsdb_arrow.blocks.reader import Block


def overlapping_groups(blocks: Sequence[Block]) -> list[list[Block]]:
    """Blocks grouped so that blocks of different groups share no instant (sorted sweep)."""
    groups: list[list[Block]] = []
    end = None
    for block in sorted(blocks, key=lambda b: (b.meta.min_time, b.meta.seq)):
        if end is not None and block.meta.min_time <= end:
            groups[-1].append(block)
            end = max(end, block.meta.max_time)
        else:
            groups.append([block])
            end = block.meta.max_time
    return groups
