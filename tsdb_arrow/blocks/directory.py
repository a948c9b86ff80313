"""``blocks/`` on disk: which block directories it holds, opened, leftovers and damage handled.

The owner of a data directory deletes what a crash left (a ``.tmp`` directory of a flush that
died before its rename, the sources of a compaction that ended before deleting them) and moves
blocks that cannot be read to ``quarantine/``; a read-only open only skips them. Either way
the rest of the blocks open.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from tsdb_arrow.blocks.meta import TMP_SUFFIX
from tsdb_arrow.blocks.reader import Block
from tsdb_arrow.datadir import QUARANTINE_DIR
from tsdb_arrow.errors import CorruptBlockError, CorruptBlockWarning, DataDirectoryError

log = logging.getLogger("tsdb_arrow")


@dataclass
class Scan:
    """What ``blocks/`` holds beyond the ``known`` blocks: new blocks (with their series
    tables) to add, ids of known blocks that are gone or were compacted into another."""

    added: list[Block] = field(default_factory=list)
    series: dict[str, pa.Table] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)


class BlockDirectory:
    """The block directories under ``blocks_dir`` of the data directory ``root``."""

    def __init__(self, fs: pafs.FileSystem, root: Path, blocks_dir: str, *, owner: bool) -> None:
        self.fs = fs
        self.root = root
        self.blocks_dir = blocks_dir
        self.owner = owner
        self.quarantine_dir = root / QUARANTINE_DIR
        self._skipped: set[str] = set()  # unreadable blocks a read-only open passes over

    def scan(self, known: dict[str, Block]) -> Scan:
        """Open the blocks not in ``known``; find the known ones that left."""
        for _ in range(100):  # the owner may delete a listed block before it is opened
            names = self._names()
            scan, vanished = Scan(), False
            for name in sorted(names.keys() - known.keys() - self._skipped):
                try:
                    block = Block.open(self.fs, names[name])
                    scan.series[name] = block.series()
                    scan.added.append(block)
                except CorruptBlockError as exc:
                    if not os.path.isdir(names[name]):
                        vanished = True  # removed under us by the owner: list again
                        break
                    self._set_aside(names[name], exc)
            if not vanished:
                break
            for block in scan.added:
                block.close()
        else:
            raise DataDirectoryError(f"the blocks of {self.root} keep changing; retry the open")
        replaced = {src for b in [*known.values(), *scan.added] for src in b.meta.sources}
        for block in [b for b in scan.added if b.meta.id in replaced]:
            block.close()
            self.delete(block)  # a compaction ended before deleting its sources
        scan.added = [b for b in scan.added if b.meta.id not in replaced]
        scan.gone = [i for i in known if i not in names or i in replaced]
        return scan

    def _names(self) -> dict[str, str]:
        """Block directory names in ``blocks/`` and their paths (not ``.tmp`` ones)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.blocks_dir))
        except FileNotFoundError:
            return {}  # a read-only open of a directory nothing was flushed to yet
        names = {}
        for info in infos:
            if info.type != pafs.FileType.Directory:
                continue
            if info.base_name.endswith(TMP_SUFFIX):
                if self.owner:  # a flush that died before its rename: never visible
                    with contextlib.suppress(OSError):  # blocks/ read-only: a later open does it
                        self.fs.delete_dir(info.path)
                continue
            names[info.base_name] = info.path
        return names

    def _set_aside(self, path: str, error: CorruptBlockError) -> None:
        """Move an unreadable block to ``quarantine/`` (owner) or skip it, with a warning."""
        name = os.path.basename(path)
        target = self.quarantine_dir / name
        if self.owner:
            try:
                target.parent.mkdir(exist_ok=True)
                os.replace(path, target)
            except OSError as exc:
                self._warn(
                    f"skipping the unreadable block {path} ({error}); it could not be "
                    f"moved to {target} ({exc.strerror}): fix the permissions"
                )
                self._skipped.add(name)
                return
            self._warn(
                f"moved the unreadable block {path} to {target}: {error}; the rest of the "
                "database is open. Inspect or delete it there"
            )
            return
        self._warn(f"skipping the unreadable block {path}: {error}")
        self._skipped.add(name)

    @staticmethod
    def _warn(message: str) -> None:
        warnings.warn(message, CorruptBlockWarning, stacklevel=6)

    def quarantined(self) -> list[str]:
        """Blocks moved to ``quarantine/`` or skipped as unreadable."""
        try:
            moved = set(os.listdir(self.quarantine_dir))
        except FileNotFoundError:
            moved = set()
        return sorted(moved | self._skipped)

    def delete(self, block: Block) -> None:
        """Remove a block's directory (owner only); one that cannot go stays for a later open
        (a compaction's source is recognised then; an expired block is expired again)."""
        if not self.owner:
            return
        try:
            self.fs.delete_dir(block.path)
        except OSError as exc:
            log.warning("could not delete the block %s (%s); a later open retries", block.path, exc)
