"""The set of blocks a database reads, with reference counts.

Readers acquire the blocks of the moment and release them when done. A block that leaves the set
(replaced by compaction, expired by retention) stays readable by the readers holding it; its
files are closed, and its directory deleted, once the last of them lets go. A block no reader
holds keeps no file open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from tsdb_arrow.blocks.reader import Block


class BlockSet:
    """Blocks in write order (``meta.seq``), each with a count of the readers holding it."""

    def __init__(self, on_unused: Callable[[Block], None] | None = None) -> None:
        """``on_unused`` is called with each retired block once no reader holds it (deletes its
        directory in the process that owns the data directory)."""
        self._lock = threading.Lock()
        self._blocks: list[Block] = []
        self._holds: dict[int, int] = {}  # id(block) -> readers holding it
        self._retired: dict[int, Block] = {}
        self._on_unused = on_unused

    def __len__(self) -> int:
        with self._lock:
            return len(self._blocks)

    def blocks(self) -> tuple[Block, ...]:
        """The current blocks, oldest seq first (not held: for metadata only)."""
        with self._lock:
            return tuple(self._blocks)

    def ids(self) -> set[str]:
        with self._lock:
            return {b.meta.id for b in self._blocks}

    def add(self, blocks: Iterable[Block]) -> None:
        with self._lock:
            self._blocks.extend(blocks)
            self._blocks.sort(key=lambda b: (b.meta.seq, b.meta.id))

    def acquire(self) -> tuple[tuple[Block, ...], Callable[[], None]]:
        """The current blocks, held (files open) until the returned release is called once."""
        with self._lock:
            held = tuple(self._blocks)
            opened: list[Block] = []
            try:
                for block in held:
                    if id(block) not in self._holds:
                        block.open_file()  # a block nobody holds has no file open
                    opened.append(block)
                    self._holds[id(block)] = self._holds.get(id(block), 0) + 1
            except BaseException:
                unused = self._release_locked(opened)
                self._hand_over(unused)
                raise
        done = threading.Event()

        def release() -> None:
            if done.is_set():
                return
            done.set()
            with self._lock:
                unused = self._release_locked(held)
            self._hand_over(unused)

        return held, release

    def _release_locked(self, held: Iterable[Block]) -> list[Block]:
        """Drop one hold of each block; close those nobody holds; return the retired ones
        nobody holds any more."""
        unused: list[Block] = []
        for block in held:
            n = self._holds[id(block)] - 1
            if n:
                self._holds[id(block)] = n
                continue
            del self._holds[id(block)]
            block.close()
            if self._retired.pop(id(block), None) is not None:
                unused.append(block)
        return unused

    def replace(self, ids: Iterable[str], block: Block | None) -> list[Block]:
        """Put ``block`` (a compaction's output) in place of the blocks ``ids`` at once: a
        reader acquires either the inputs or the output, never both."""
        with self._lock:
            if block is not None:
                self._blocks.append(block)
                self._blocks.sort(key=lambda b: (b.meta.seq, b.meta.id))
            return self._retire_locked(set(ids))

    def retire(self, ids: Iterable[str]) -> list[Block]:
        """Take the blocks ``ids`` out of the set; each is handed to ``on_unused`` once no
        reader holds it (at once when none does). Returns the blocks retired."""
        with self._lock:
            return self._retire_locked(set(ids))

    def _retire_locked(self, wanted: set[str]) -> list[Block]:
        gone = [b for b in self._blocks if b.meta.id in wanted]
        self._blocks = [b for b in self._blocks if b.meta.id not in wanted]
        unused = []
        for block in gone:
            if id(block) in self._holds:
                self._retired[id(block)] = block
            else:
                unused.append(block)
        self._hand_over(unused)
        return gone

    def _hand_over(self, unused: list[Block]) -> None:
        if self._on_unused is not None:
            for block in unused:
                self._on_unused(block)

    def close(self) -> None:
        """Close every block's files (the database is closing; no reader is left)."""
        with self._lock:
            blocks = [*self._blocks, *self._retired.values()]
        for block in blocks:
            block.close()
