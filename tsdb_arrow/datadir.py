"""What makes a directory a tsdb-arrow data directory: the marker file, checked before use.

``open`` creates a data directory in a new or empty directory and reopens one that holds the
marker ``tsdb-arrow.json``; it refuses any other non-empty directory, so that a typo in a path
never turns a project folder into a database. Directories written before the marker existed
(a ``LOCK`` file and a ``blocks/`` directory of block directories, nothing else) are adopted.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tsdb_arrow.errors import DataDirectoryError
from tsdb_arrow.lockfile import LOCK_FILE

MARKER_FILE = "tsdb-arrow.json"
DATA_FORMAT = "tsdb-arrow-data"
DATA_VERSION = 1
BLOCKS_DIR = "blocks"
QUARANTINE_DIR = "quarantine"  # blocks that could not be read, moved out of blocks/ on open
TOMBSTONES_FILE = "tombstones.parquet"  # deleted ranges (blocks/tombstones.py)

_BLOCK_NAME = re.compile(r"b\d{10}(\.tmp)?")
# Files a data directory can hold before its marker exists: the lock, a marker being written.
_BEFORE_MARKER = frozenset({LOCK_FILE, MARKER_FILE + ".tmp"})


def data_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as an absolute ``Path``, refusing the empty string (it would mean ``.``)."""
    if not isinstance(path, (str, os.PathLike)):
        raise DataDirectoryError(
            f"the data directory must be a str or path, got {type(path).__name__}"
        )
    if os.fspath(path) == "":
        raise DataDirectoryError(
            "the data directory path is empty; give a directory such as './data' (to use the "
            "current directory, pass '.' explicitly)"
        )
    return Path(path).absolute()


def is_data_directory(path: Path) -> bool:
    """Whether ``path`` holds the marker, or the layout of a directory made before it."""
    return (path / MARKER_FILE).is_file() or _legacy_layout(path)


def check_existing(path: Path) -> None:
    """Refuse ``path`` for a read-only open unless it is a tsdb-arrow data directory."""
    if not path.is_dir():
        raise DataDirectoryError(
            f"{path} is not a directory; a read-only open needs an existing tsdb-arrow data "
            "directory"
        )
    if (path / MARKER_FILE).is_file():
        _check_marker(path / MARKER_FILE)
    elif not _legacy_layout(path):
        raise DataDirectoryError(
            f"{path} is not a tsdb-arrow data directory (no {MARKER_FILE} in it); a read-only "
            "open needs one made by tsdb-arrow"
        )


def prepare(path: Path) -> bool:
    """Create ``path`` if needed and check it can be a data directory.

    Returns whether the marker still has to be written (a new, empty or adopted directory).

    Raises
    ------
    DataDirectoryError
        When ``path`` is a file, cannot be created or read, is a non-empty directory that
        tsdb-arrow did not make, or carries a marker of another format or version.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        entries = set(os.listdir(path))
    except OSError as exc:
        raise DataDirectoryError(
            f"cannot use {path} as a data directory ({exc.strerror}); give the path of a "
            "directory, new or made by tsdb-arrow, that you may read and write"
        ) from exc
    if MARKER_FILE in entries:
        _check_marker(path / MARKER_FILE)
        return False
    if entries <= _BEFORE_MARKER or _legacy_layout(path):
        return True
    shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
    raise DataDirectoryError(
        f"{path} is not empty ({shown}) and is not a tsdb-arrow data directory (no "
        f"{MARKER_FILE} in it); give a new or empty directory, or one made by tsdb-arrow"
    )


def write_marker(path: Path) -> None:
    """Write the marker atomically (a temporary file renamed into place)."""
    body = json.dumps({"format": DATA_FORMAT, "version": DATA_VERSION}, indent=2) + "\n"
    tmp = path / (MARKER_FILE + ".tmp")
    try:
        tmp.write_text(body)
        os.replace(tmp, path / MARKER_FILE)
    except OSError as exc:
        raise DataDirectoryError(
            f"cannot write {path / MARKER_FILE} ({exc.strerror}); check the permissions of {path}"
        ) from exc


def _check_marker(marker: Path) -> None:
    try:
        raw = json.loads(marker.read_text())
    except (OSError, ValueError) as exc:
        raise DataDirectoryError(
            f"cannot read {marker} ({exc}); it marks a tsdb-arrow data directory and must hold "
            f'{{"format": "{DATA_FORMAT}", "version": {DATA_VERSION}}}'
        ) from exc
    if not isinstance(raw, dict) or raw.get("format") != DATA_FORMAT:
        raise DataDirectoryError(
            f"{marker} does not mark a tsdb-arrow data directory (format "
            f"{raw.get('format') if isinstance(raw, dict) else raw!r}); give another directory"
        )
    if raw.get("version") != DATA_VERSION:
        raise DataDirectoryError(
            f"{marker.parent} is a tsdb-arrow data directory of version {raw.get('version')}; "
            f"this tsdb-arrow reads version {DATA_VERSION}: upgrade tsdb-arrow"
        )


def _legacy_layout(path: Path) -> bool:
    """A directory made before the marker: only LOCK and blocks/, which holds only blocks."""
    try:
        entries = set(os.listdir(path))
        if BLOCKS_DIR not in entries or not entries <= _BEFORE_MARKER | {BLOCKS_DIR}:
            return False
        blocks = path / BLOCKS_DIR
        return blocks.is_dir() and all(_BLOCK_NAME.fullmatch(n) for n in os.listdir(blocks))
    except OSError:
        return False
