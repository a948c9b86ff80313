"""One compaction pass over a block set: plan, merge, swap in, expire.

``blocks/compact.py`` and ``blocks/retention.py`` decide (pure planners) and merge; this runs
them against the live ``BlockSet``: inputs are held while they are read, each merged block
replaces its inputs in one step, and expired blocks are retired (deleted once no reader holds
them).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from tsdb_arrow.blocks.blockset import BlockSet
from tsdb_arrow.blocks.compact import merge_blocks, plan_compaction
from tsdb_arrow.blocks.reader import Block
from tsdb_arrow.blocks.retention import plan_retention
from tsdb_arrow.blocks.tombstones import Tombstones
from tsdb_arrow.config import StorageConfig


@dataclass
class Compaction:
    """What a pass did; ``tombstones_applied``: every block the tombstones touched was
    rewritten without their samples, so those tombstones are no longer needed."""

    merged: list[dict[str, Any]] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    tombstones_applied: bool = False

    def summary(self) -> dict[str, list[Any]]:
        return {"merged": self.merged, "expired": self.expired}


def deleted_in(blocks: list[Block], tombstones: Tombstones | None) -> list[str]:
    """Blocks holding samples that ``tombstones`` hide (to be rewritten without them)."""
    if tombstones is None or not len(tombstones):
        return []
    newest_delete = int(tombstones.seq.max())
    return [
        b.meta.id
        for b in blocks
        if b.meta.seq <= newest_delete
        and tombstones.touches(b.index.refs, b.index.min_time, b.index.max_time)
    ]


def compact(
    fs: pafs.FileSystem,
    blocks_dir: str,
    blockset: BlockSet,
    config: StorageConfig,
    *,
    newest_time: int | None,
    tombstones: Tombstones | None,
    pool: Executor | None = None,
    swap: Callable[[list[Block], Block | None], None] | None = None,
) -> Compaction:
    """Merge what ``plan_compaction`` says and delete what ``plan_retention`` says.

    ``swap(removed, added)`` takes blocks out of the set, putting ``added`` (their merge, or
    None) in their place; by default ``blockset.replace``. The database passes its own, which
    first logs the label sets no block will hold any more.
    """

    def replace(removed: list[Block], added: Block | None) -> None:
        blockset.replace([b.meta.id for b in removed], added)

    swap = swap or replace
    blocks = list(blockset.blocks())
    rewrite = deleted_in(blocks, tombstones)
    groups = plan_compaction(
        [b.meta for b in blocks],
        list(config.compaction_levels or ()),
        block_duration=config.block_duration,
        newest_time=newest_time,
        rewrite=rewrite,
    )
    done = Compaction()
    held, release = blockset.acquire()  # files open while they are read
    try:
        by_id = {b.meta.id: b for b in held}
        for group in groups:
            meta = merge_blocks(
                fs,
                blocks_dir,
                [by_id[i] for i in group],
                chunk_samples=config.chunk_samples,
                pool=pool,
                tombstones=tombstones,
            )
            new = None if meta is None else Block.open(fs, f"{blocks_dir}/{meta.id}")
            swap([by_id[i] for i in group], new)
            done.merged.append({"sources": list(group), "block": None if meta is None else meta.id})
    finally:
        release()
    done.expired = _expire(blockset, config, newest_time, swap)
    done.tombstones_applied = set(rewrite) <= {i for group in groups for i in group}
    return done


def _expire(
    blockset: BlockSet,
    config: StorageConfig,
    newest: int | None,
    swap: Callable[[list[Block], Block | None], None],
) -> list[str]:
    """Retire the blocks past ``config.retention`` / ``config.retention_bytes``."""
    if newest is None or (config.retention is None and config.retention_bytes is None):
        return []
    blocks = list(blockset.blocks())
    expired = plan_retention(
        [b.meta for b in blocks],
        {b.meta.id: b.nbytes() for b in blocks},
        retention_ms=config.retention,
        retention_bytes=config.retention_bytes,
        newest_time=newest,
    )
    if expired:
        swap([b for b in blocks if b.meta.id in set(expired)], None)
    return expired
