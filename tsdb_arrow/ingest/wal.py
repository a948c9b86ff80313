"""The write-ahead log: every accepted batch is on disk, as Arrow IPC, before ``write`` returns.

A WAL is a directory of numbered segment files (``00000001.wal``, ...). Each segment is a
sequence of records; a record is one atomic append holding one or more entries, each a small
integer kind chosen by the caller and an Arrow table. The byte layout is in ``docs/format.md``
("Write-ahead log").

Opening a directory that holds a WAL goes: :func:`replay` (feed every intact record to the
head), :func:`repair` with the replay's ``corruption`` (cut a torn tail, set aside what followed
a corrupt record), then :class:`WriteAheadLog` (appends go to a new segment). Repair must run
before the new log is opened: a torn record left in the middle of the log would end every later
replay there.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import crc32c
import pyarrow as pa
import pyarrow.ipc as pa_ipc

from tsdb_arrow.config import FSYNC_MODES
from tsdb_arrow.errors import ClosedError, ConfigError, WalError
from tsdb_arrow.memory import small_pool

__all__ = [
    "FSYNC_MODES",
    "Replay",
    "WalCorruption",
    "WalCorruptionWarning",
    "WriteAheadLog",
    "encode_record",
    "repair",
    "replay",
    "segment_name",
]

DEFAULT_SEGMENT_BYTES = 64 * 2**20

MAGIC = b"TWAL"
VERSION = 1
# magic, version, payload length, payload CRC32C, CRC32C of the 20 bytes before it.
_HEADER = struct.Struct("<4sIQII")
HEADER_BYTES = _HEADER.size
_HEADER_CRC_COVERS = HEADER_BYTES - 4
# The payload starts with the entry count and one (kind, length) slot per entry.
_COUNT = struct.Struct("<II")
_SLOT = struct.Struct("<IIQ")
_ALIGN = 8
_MAX_KIND = 2**32 - 1
_SEGMENT_NAME = re.compile(r"^(\d{8,})\.wal$")
_ANY_SEGMENT_NAME = re.compile(r"^(\d{8,})\.wal(?:\.corrupt)?$")
_ZEROS = bytes(_ALIGN)
#: Pieces of a streamed record shorter than this are gathered before they are written.
_GATHER_BYTES = 64 * 2**10

Entry = tuple[int, "pa.RecordBatch | pa.Table"]


class WalCorruptionWarning(UserWarning):
    """A WAL record is torn or corrupt; ``path`` and ``offset`` say where replay stopped."""

    def __init__(self, message: str, path: Path, offset: int) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset


@dataclass(frozen=True)
class WalCorruption:
    """Where a replay met its first torn or corrupt record, and why."""

    segment: int
    path: Path
    offset: int
    reason: str


def segment_name(number: int) -> str:
    """The file name of segment ``number``: zero-padded so that names sort as numbers."""
    return f"{number:08d}.wal"


def _segment_numbers(directory: Path, pattern: re.Pattern[str] = _SEGMENT_NAME) -> list[int]:
    """Numbers of the segment files in ``directory``, ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(pattern.match, names) if m)


def _fsync_dir(directory: Path) -> None:
    """Make file creations, renames and deletions in ``directory`` survive a power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# fdatasync still writes the file size, which a reader needs; it skips the mtime update.
_fsync_file = getattr(os, "fdatasync", os.fsync)


# The default options, made once: ``new_stream`` without options reads two environment
# variables per call to make them.
_IPC_OPTIONS = pa_ipc.IpcWriteOptions()


def _write_stream(sink: pa.NativeFile, table: pa.RecordBatch | pa.Table) -> None:
    """Write ``table`` to ``sink`` as one Arrow IPC stream."""
    with pa_ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
        if isinstance(table, pa.RecordBatch):
            writer.write_batch(table)
        else:
            writer.write_table(table)


def _stream_size(table: pa.RecordBatch | pa.Table) -> int:
    """The bytes of ``table``'s IPC stream, counted without writing them anywhere."""
    counter = pa.MockOutputStream()
    _write_stream(counter, table)
    return counter.size()


def _padded(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


#: Records from this many bytes on are written to the segment stream by stream, straight from
#: the batch's own buffers, not copied into a record first: a write of millions of rows then
#: allocates no record (in a fresh process, one page fault per 4 KiB of it) and copies nothing.
STREAM_RECORD_BYTES = 8 * 2**20


@dataclass(frozen=True)
class _Layout:
    """What a record of some entries holds: each entry's kind and IPC stream size."""

    kinds: list[int]
    sizes: list[int]

    @property
    def directory(self) -> bytes:
        """The payload's start: the entry count and a (kind, length) slot per entry."""
        slots = (_SLOT.pack(kind, 0, size) for kind, size in zip(self.kinds, self.sizes))
        return _COUNT.pack(len(self.sizes), 0) + b"".join(slots)

    @property
    def payload_bytes(self) -> int:
        return _COUNT.size + _SLOT.size * len(self.sizes) + sum(map(_padded, self.sizes))


def _layout(entries: Sequence[Entry]) -> _Layout:
    """Check ``entries`` and size their streams (counted, not written anywhere)."""
    kinds, sizes = [], []
    for kind, table in entries:
        if not isinstance(kind, int) or not 0 <= kind <= _MAX_KIND:
            raise WalError(f"a WAL entry kind must be an int in [0, {_MAX_KIND}], got {kind!r}")
        if not isinstance(table, (pa.RecordBatch, pa.Table)):
            raise WalError(
                f"a WAL entry must hold a pyarrow Table or RecordBatch, got {type(table).__name__}"
            )
        kinds.append(kind)
        sizes.append(_stream_size(table))
    return _Layout(kinds, sizes)


def _header(payload_bytes: int, payload_crc: int) -> bytes:
    """A record's header: magic, version, payload length and CRC, then the CRC of those."""
    header = bytearray(HEADER_BYTES)
    _HEADER.pack_into(header, 0, MAGIC, VERSION, payload_bytes, payload_crc, 0)
    struct.pack_into("<I", header, _HEADER_CRC_COVERS, crc32c.crc32c(header[:_HEADER_CRC_COVERS]))
    return bytes(header)


def encode_record(entries: Sequence[Entry]) -> pa.Buffer:
    """One WAL record (header and payload) holding ``entries``, in one buffer ready to write."""
    return _encode(entries, _layout(entries))


def _encode(entries: Sequence[Entry], layout: _Layout) -> pa.Buffer:
    """The record of ``entries``, whose streams are sized already, in one buffer.

    The streams are written straight into the record: one allocation (in small pages, see
    ``tsdb_arrow.memory``) and one copy of the samples, where growing a buffer per stream and
    joining them cost a fresh process more than the rest of its write.
    """
    payload_bytes = layout.payload_bytes
    record = pa.allocate_buffer(HEADER_BYTES + payload_bytes, memory_pool=small_pool())
    sink = pa.FixedSizeBufferWriter(record)
    sink.write(bytes(HEADER_BYTES))  # filled in below, once the payload's CRC is known
    sink.write(layout.directory)
    for (_, table), size in zip(entries, layout.sizes):
        start = sink.tell()
        _write_stream(sink, table)
        assert sink.tell() - start == size, "an IPC stream's size changed between two writes"
        sink.write(_ZEROS[: _padded(size) - size])
    view = memoryview(record).cast("B")
    view[:HEADER_BYTES] = _header(payload_bytes, crc32c.crc32c(view[HEADER_BYTES:]))
    return record


class _Sink:
    """A Python file for ``pa.PythonFile`` handing each piece of the streams written to it to
    ``emit`` as it comes (Arrow passes the column buffers themselves: nothing is copied), and
    counting the bytes. Closing it closes nothing."""

    def __init__(self, emit: Callable[[memoryview], None]) -> None:
        self.emit = emit
        self.bytes = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.emit(view)
        self.bytes += len(view)
        return len(view)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def _streamed(entries: Sequence[Entry], layout: _Layout, emit: Callable[[memoryview], None],
              header: bytes = b"") -> None:  # fmt: skip
    """Hand ``header`` and then the payload of ``entries``' record to ``emit`` piece by piece,
    in order."""
    emit(memoryview(header + layout.directory))
    sink = _Sink(emit)
    out = pa.PythonFile(sink, mode="w")
    for (_, table), size in zip(entries, layout.sizes):
        start = sink.bytes
        _write_stream(out, table)
        assert sink.bytes - start == size, "an IPC stream's size changed between two writes"
        emit(memoryview(_ZEROS[: _padded(size) - size]))


def _payload_crc(entries: Sequence[Entry], layout: _Layout) -> int:
    """The CRC32C of the payload of ``entries``' record, run over the streams as they are
    written, without a copy of them."""
    crc = 0

    def run(piece: memoryview) -> None:
        nonlocal crc
        crc = crc32c.crc32c(piece, crc)

    _streamed(entries, layout, run)
    return crc


def _check_options(fsync: str, fsync_interval: float, segment_bytes: int) -> None:
    if fsync not in FSYNC_MODES:
        raise ConfigError(f"wal fsync mode must be one of {FSYNC_MODES}, got {fsync!r}")
    if (
        isinstance(fsync_interval, bool)
        or not isinstance(fsync_interval, (int, float))
        or not math.isfinite(fsync_interval)
        or fsync_interval <= 0
    ):
        raise ConfigError(
            f"wal fsync_interval must be a positive number of seconds, got {fsync_interval!r}"
        )
    if isinstance(segment_bytes, bool) or not isinstance(segment_bytes, int) or segment_bytes < 1:
        raise ConfigError(
            f"wal segment_bytes must be a positive int (e.g. {DEFAULT_SEGMENT_BYTES}), "
            f"got {segment_bytes!r}"
        )


class WriteAheadLog:
    """Appends atomic, checksummed records of Arrow tables to numbered segment files.

    Every ``append`` hands its whole record to the OS before returning, so a killed process
    loses nothing acknowledged; ``fsync`` decides what a power loss can take: ``"always"``
    fsyncs before ``append`` returns, ``"interval"`` fsyncs every ``fsync_interval`` seconds
    on a background thread (one fsync covers every append since the last), ``"never"`` leaves
    it to the OS. Thread-safe. Positions returned by ``append`` are byte counts appended by
    this instance, so they compare only within it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: str = "interval",
        fsync_interval: float = 1.0,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        _check_options(fsync, fsync_interval, segment_bytes)
        self.directory = Path(directory)
        self.fsync = fsync
        self.fsync_interval = float(fsync_interval)
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()  # the current segment, offsets, appends
        self._sync_lock = threading.Lock()  # taken before _lock, never after it
        self._fd = -1
        self._segment = 0
        self._offset = 0  # bytes in the current segment
        self._written = 0  # bytes appended by this instance: the positions
        self._durable = 0  # every position up to this one is fsynced
        self._retired: list[int] = []  # fds of rolled segments, awaiting fsync and close
        self._dir_dirty = False  # a segment was created since the directory was fsynced
        self._failed: WalError | None = None
        self._closed = False
        self._open_directory()
        existing = _segment_numbers(self.directory, _ANY_SEGMENT_NAME)
        with self._lock:
            self._start_segment((existing[-1] if existing else 0) + 1)
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync == "interval":
            self._syncer = threading.Thread(
                target=self._sync_every_interval, name="tsdb-arrow-wal-fsync", daemon=True
            )
            self._syncer.start()

    # -- appending -------------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> int:
        """Write ``entries`` as one atomic record; return its position (see :meth:`sync_to`).

        A record of ``STREAM_RECORD_BYTES`` or more is written from the batch's buffers (its
        CRC run over them first); a smaller one is built in one buffer and written at once."""
        layout = _layout(entries)
        size = HEADER_BYTES + layout.payload_bytes
        if size >= STREAM_RECORD_BYTES:
            header = _header(layout.payload_bytes, _payload_crc(entries, layout))
            hand_over = partial(_streamed, entries, layout, header=header)
        else:
            record = memoryview(_encode(entries, layout)).cast("B")

            def hand_over(emit: Callable[[memoryview], None]) -> None:
                emit(record)

        with self._lock:
            self._check_usable()
            if self._offset > 0 and self._offset + size > self.segment_bytes:
                self._start_segment(self._segment + 1)
            self._write(hand_over)
            self._offset += size
            self._written += size
            position = self._written
        if self.fsync == "always":
            self.sync_to(position)
        return position

    def _write(self, hand_over: Callable[[Callable[[memoryview], None]], None]) -> None:
        """Hand a record to the OS, or leave the segment as it was and raise: ``hand_over``
        gives it piece by piece to the function it is called with. Pieces go to the OS as they
        come, the small ones gathered first (one system call for the dozens of bytes between
        two column buffers of a streamed record)."""
        pending = bytearray()

        def emit(piece: memoryview) -> None:
            if len(piece) < _GATHER_BYTES:
                pending.extend(piece)
                return
            self._write_all(memoryview(pending))
            pending.clear()
            self._write_all(piece)

        try:
            hand_over(emit)
            self._write_all(memoryview(pending))
        except BaseException as exc:
            # Arrow raises what a streamed record's sink raised (an OSError) or wraps it;
            # either way the segment is cut back to where the record began.
            self._undo_partial_write(exc)
            if isinstance(exc, OSError):
                raise WalError(
                    f"could not append to WAL segment {self._path(self._segment)}: {exc}; the "
                    "batch was not stored. Free disk space (or fix the permission) and retry."
                ) from exc
            raise

    def _write_all(self, view: memoryview) -> None:
        done = 0
        while done < len(view):
            done += os.write(self._fd, view[done:])

    def _undo_partial_write(self, exc: BaseException) -> None:
        try:
            os.ftruncate(self._fd, self._offset)
            os.lseek(self._fd, self._offset, os.SEEK_SET)
        except OSError as undo_exc:
            self._failed = WalError(
                f"WAL segment {self._path(self._segment)} holds a partly written record "
                f"after '{exc}' and could not be cut back ({undo_exc}); close the database "
                "and open it again (replay drops the partial record)."
            )

    def _check_usable(self) -> None:
        if self._closed:
            raise ClosedError(f"the write-ahead log in {self.directory} is closed")
        if self._failed is not None:
            raise self._failed

    # -- segments --------------------------------------------------------------------------

    def _path(self, number: int) -> Path:
        return self.directory / segment_name(number)

    def _open_directory(self) -> None:
        try:
            if not self.directory.is_dir():
                self.directory.mkdir(parents=True, exist_ok=True)
                if self.fsync != "never":
                    _fsync_dir(self.directory.parent)
        except OSError as exc:
            raise WalError(
                f"cannot create the WAL directory {self.directory}: {exc}; check the path "
                "and its permissions"
            ) from exc

    def _start_segment(self, number: int) -> None:
        """Make segment ``number`` the one appends go to (caller holds ``_lock``)."""
        path = self._path(number)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise WalError(
                f"cannot create WAL segment {path}: {exc}; check free space and permissions"
            ) from exc
        if self._fd >= 0:
            if self.fsync == "never":
                os.close(self._fd)
            else:
                self._retired.append(self._fd)
        self._fd, self._segment, self._offset = fd, number, 0
        self._dir_dirty = True

    def roll(self) -> int:
        """Finish the current segment (fsynced unless ``"never"``), start the next; return it."""
        with self._sync_lock:
            with self._lock:
                self._check_usable()
                self._start_segment(self._segment + 1)
                number = self._segment
            if self.fsync != "never":
                self._sync_locked()
        return number

    @property
    def segment(self) -> int:
        """The number of the segment appends currently go to."""
        return self._segment

    def segments(self) -> list[int]:
        """Numbers of the segment files on disk, ascending (set-aside ``.corrupt`` ones not)."""
        return _segment_numbers(self.directory)

    def drop_before(self, segment: int) -> None:
        """Delete the segments numbered below ``segment``: their records are in blocks now."""
        with self._lock:
            self._check_usable()
            if segment > self._segment:
                raise WalError(
                    f"cannot drop WAL segments before {segment}: segment {self._segment} is "
                    "still being written; roll() first and drop before the number it returns"
                )
        doomed = [n for n in self.segments() if n < segment]
        try:
            for number in doomed:
                self._path(number).unlink(missing_ok=True)
            if doomed:
                _fsync_dir(self.directory)
        except OSError as exc:
            raise WalError(
                f"cannot delete old WAL segments in {self.directory}: {exc}; check permissions"
            ) from exc

    # -- durability ------------------------------------------------------------------------

    @property
    def durable_position(self) -> int:
        """Every record up to this position is fsynced (always 0 in ``"never"`` mode)."""
        return self._durable

    def sync_to(self, position: int) -> None:
        """Return once the record at ``position`` is fsynced; one fsync covers all before it."""
        if self.fsync == "never" or self._durable >= position:
            return
        with self._sync_lock:
            if self._durable < position:
                self._sync_locked()

    def _sync_locked(self) -> None:
        """fsync what was appended so far (caller holds ``_sync_lock``, not ``_lock``)."""
        with self._lock:
            self._check_usable()
            target = self._written
            # A duplicate, so that a roll closing the original cannot pull it from under us.
            current = os.dup(self._fd)
            retired, self._retired = self._retired, []
            dir_dirty, self._dir_dirty = self._dir_dirty, False
        path = self.directory
        try:
            for fd in retired:
                _fsync_file(fd)
            _fsync_file(current)
            if dir_dirty:
                _fsync_dir(self.directory)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: nothing written
            # since the last good fsync can be trusted, so the log refuses further appends.
            self._failed = WalError(
                f"fsync of the write-ahead log in {path} failed: {exc}; records appended "
                "since the last fsync may not be on disk. Close the database and open it again."
            )
            raise self._failed from exc
        finally:
            for fd in [*retired, current]:
                os.close(fd)
        self._durable = max(self._durable, target)

    def _sync_every_interval(self) -> None:
        while not self._stop.wait(self.fsync_interval):
            if self._durable >= self._written and not self._retired:
                continue
            try:
                with self._sync_lock:
                    self._sync_locked()
            except (WalError, ClosedError):
                return  # recorded in _failed (or closed); appends raise it

    def close(self) -> None:
        """Stop the fsync thread, fsync (unless ``"never"``) and close the segment. Idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
        with self._sync_lock:
            try:
                if self.fsync != "never" and self._failed is None:
                    self._sync_locked()
            finally:
                with self._lock:
                    self._closed = True
                    for fd in [*self._retired, self._fd]:
                        os.close(fd)
                    self._retired, self._fd = [], -1

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- reading -------------------------------------------------------------------------------


class _Corrupt(Exception):
    """A record failed a check; carries the reason for the warning."""


class Replay:
    """Iterates ``(segment, entries)`` over every intact record of a WAL directory, in order.

    The first torn or corrupt record ends the iteration with a :class:`WalCorruptionWarning`;
    afterwards ``corruption`` says where it was (``None`` if every record was intact), ready
    for :func:`repair`.
    """

    def __init__(self, directory: str | os.PathLike[str], *, warn: bool = True) -> None:
        self.directory = Path(directory)
        self.corruption: WalCorruption | None = None
        self._warn = warn
        self._records = self._read()

    def __iter__(self) -> Replay:
        return self

    def __next__(self) -> tuple[int, list[tuple[int, pa.Table]]]:
        return next(self._records)

    def _read(self) -> Iterator[tuple[int, list[tuple[int, pa.Table]]]]:
        for number in _segment_numbers(self.directory):
            path = self.directory / segment_name(number)
            with open(path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                offset = 0
                while offset < size:
                    try:
                        entries, record_bytes = _read_record(file, path, size - offset)
                    except _Corrupt as exc:
                        self._stop(WalCorruption(number, path, offset, str(exc)))
                        return
                    yield number, entries
                    offset += record_bytes

    def _stop(self, corruption: WalCorruption) -> None:
        self.corruption = corruption
        if self._warn:
            message = (
                f"WAL segment {corruption.path} is torn or corrupt at byte offset "
                f"{corruption.offset} ({corruption.reason}): the records before it were "
                "replayed; it and everything after it were not"
            )
            warnings.warn(
                WalCorruptionWarning(message, corruption.path, corruption.offset), stacklevel=4
            )


def _read_record(
    file: io.BufferedReader, path: Path, remaining: int
) -> tuple[list[tuple[int, pa.Table]], int]:
    """Read the record at ``file``'s position; return its entries and its size in bytes."""
    header = file.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES:
        raise _Corrupt(f"short header: {len(header)} of {HEADER_BYTES} bytes")
    magic, version, length, payload_crc, header_crc = _HEADER.unpack(header)
    if magic != MAGIC:
        raise _Corrupt(f"bad magic {magic!r}")
    if crc32c.crc32c(header[:_HEADER_CRC_COVERS]) != header_crc:
        raise _Corrupt("header CRC32C mismatch")
    if version != VERSION:
        raise WalError(
            f"WAL segment {path} holds a record of format version {version}; this tsdb-arrow "
            f"reads version {VERSION}. Open the directory with the version that wrote it."
        )
    if length > remaining - HEADER_BYTES:
        raise _Corrupt(f"short payload: {remaining - HEADER_BYTES} of {length} bytes")
    payload = pa.allocate_buffer(length)
    if file.readinto(memoryview(payload)) != length:
        raise _Corrupt("short payload: the file shrank while it was read")
    if crc32c.crc32c(payload) != payload_crc:
        raise _Corrupt("payload CRC32C mismatch")
    return _decode_payload(payload), HEADER_BYTES + length


def _decode_payload(payload: pa.Buffer) -> list[tuple[int, pa.Table]]:
    """The entries of a checksummed payload; the tables reference ``payload`` without copies."""
    view = memoryview(payload)
    if payload.size < _COUNT.size:
        raise _Corrupt("payload shorter than its entry count")
    count, _ = _COUNT.unpack_from(view, 0)
    start = _COUNT.size + _SLOT.size * count
    if start > payload.size:
        raise _Corrupt(f"payload too short for {count} entries")
    entries = []
    for i in range(count):
        kind, _, size = _SLOT.unpack_from(view, _COUNT.size + _SLOT.size * i)
        if start + size > payload.size:
            raise _Corrupt(f"entry {i} runs past the payload")
        try:
            table = pa_ipc.open_stream(payload.slice(start, size)).read_all()
        except (pa.ArrowException, OSError) as exc:
            raise _Corrupt(f"entry {i} is not a readable Arrow IPC stream: {exc}") from exc
        entries.append((kind, table))
        start += _padded(size)
    if start != payload.size:
        raise _Corrupt("payload length does not match its entries")
    return entries


def replay(directory: str | os.PathLike[str]) -> Replay:
    """Iterate ``(segment, entries)`` over every intact WAL record; see :class:`Replay`."""
    return Replay(directory)


def repair(
    directory: str | os.PathLike[str], corruption: WalCorruption | None = None
) -> WalCorruption | None:
    """Cut the WAL at its first bad record so that it replays whole again; return that record.

    The segment holding it is truncated there; every later segment is renamed to
    ``<name>.corrupt`` (kept for inspection, never replayed). ``corruption`` is a replay's
    finding; without it the directory is scanned. Run it before opening a ``WriteAheadLog``.
    """
    directory = Path(directory)
    if corruption is None:
        scan = Replay(directory, warn=False)
        for _ in scan:
            pass
        corruption = scan.corruption
    if corruption is None:
        return None
    try:
        # Set later segments aside first: a crash before the truncation then repeats the repair
        # instead of replaying records that followed the corrupt one.
        for number in _segment_numbers(directory):
            if number > corruption.segment:
                path = directory / segment_name(number)
                os.replace(path, path.with_name(path.name + ".corrupt"))
        _fsync_dir(directory)
        with open(corruption.path, "r+b") as file:
            if os.fstat(file.fileno()).st_size > corruption.offset:  # never extend it
                file.truncate(corruption.offset)
                os.fsync(file.fileno())
    except OSError as exc:
        raise WalError(
            f"cannot repair the write-ahead log in {directory}: {exc}; check permissions"
        ) from exc
    return corruption
