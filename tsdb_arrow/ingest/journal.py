"""What the database writes to its write-ahead log, and how it reads it back on open.

One ``write`` is one WAL record: the label sets of the series it introduces and its samples
(floats or histograms), so that a crash leaves a batch whole or absent. A record of label sets
alone keeps the series that no block holds any more (compaction dropped their deleted samples,
or retention their blocks): later writes log them by ref only. After a flush the
segments the new blocks cover go; the samples the flush kept in the head (the newest window,
still filling, and windows writes still reach) are first written to a checkpoint,
``wal/checkpoint.<N>/``: a WAL directory of its own that replays before segments ``N`` and
later, as Prometheus' tsdb does. Layout in ``docs/format.md``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tsdb_arrow.errors import WalError
from tsdb_arrow.ingest.wal import Replay, WriteAheadLog, repair

WAL_DIR = "wal"

# Entry kinds of a record.
SERIES = 1  # series_ref and one string column per label: series new to the database
FLOATS = 2  # series_ref, timestamp, value
HISTOGRAMS = 3  # series_ref, timestamp and the histogram fields
TOMBSTONES = 4  # series_ref, min_time, max_time, seq: a delete (blocks/tombstones.py)

_CHECKPOINT = re.compile(r"^checkpoint\.(\d{8,})$")


@dataclass(frozen=True)
class Logged:
    """One replayed write (new series or None, and samples: floats or histogram fields), or a
    delete (``tombstones``)."""

    series: pa.Table | None
    refs: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray | None
    histograms: pa.Table | None
    tombstones: pa.Table | None = None


def entries(
    series: pa.Table | None,
    refs: np.ndarray,
    timestamps: np.ndarray,
    *,
    values: np.ndarray | None = None,
    histograms: pa.Table | None = None,
) -> list[tuple[int, pa.Table]]:
    """The entries of one record: the new series first, then the samples (zero-copy)."""
    out: list[tuple[int, pa.Table]] = []
    if series is not None and series.num_rows:
        out.append((SERIES, series))
    columns = {"series_ref": pa.array(refs, pa.uint64()), "timestamp": pa.array(timestamps)}
    if histograms is not None:
        table = pa.table({**columns, **{n: histograms[n] for n in histograms.column_names}})
        out.append((HISTOGRAMS, table))
    else:
        assert values is not None
        out.append((FLOATS, pa.table({**columns, "value": pa.array(values, pa.float64())})))
    return out


def _logged(record: Sequence[tuple[int, pa.Table]], where: str) -> Logged:
    series = None
    for kind, table in record:
        if kind == SERIES:
            series = table
            continue
        if kind == TOMBSTONES:
            empty = np.empty(0, np.uint64)
            return Logged(None, empty, np.empty(0, np.int64), None, None, tombstones=table)
        if kind not in (FLOATS, HISTOGRAMS):
            raise WalError(
                f"{where} holds an entry of unknown kind {kind}; open the directory with the "
                "tsdb-arrow version that wrote it"
            )
        refs = table.column("series_ref").to_numpy()
        timestamps = table.column("timestamp").to_numpy()
        if kind == FLOATS:
            return Logged(series, refs, timestamps, table.column("value").to_numpy(), None)
        return Logged(series, refs, timestamps, None, table.drop(["series_ref", "timestamp"]))
    if series is not None:  # label sets only: series that no block holds any more
        empty = np.empty(0, np.uint64)
        return Logged(series, empty, np.empty(0, np.int64), np.empty(0), None)
    raise WalError(f"{where} holds a record without samples; the WAL is damaged")


def _checkpoints(directory: Path) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_CHECKPOINT.match, names) if m)


def recover(directory: Path) -> Iterator[Logged]:
    """Every write the WAL in ``directory`` holds, in write order: the newest checkpoint, then
    the segments from its number on. A torn or corrupt tail is dropped with a warning (naming
    the segment and offset) and cut off, so that the log replays whole from then on."""
    for leftover in directory.glob("checkpoint.*.tmp"):
        shutil.rmtree(leftover)  # a checkpoint that was never completed
    checkpoints = _checkpoints(directory)
    start = checkpoints[-1] if checkpoints else 0
    if checkpoints:
        cp = directory / f"checkpoint.{start:08d}"
        for _, record in (replayed := Replay(cp)):
            yield _logged(record, str(cp))
        if replayed.corruption is not None:
            raise WalError(
                f"the WAL checkpoint {cp} is damaged ({replayed.corruption.reason} at byte "
                f"{replayed.corruption.offset}); it was fsynced before the segments it "
                "replaces were deleted, so the disk corrupted it: restore it from a backup"
            )
    replayed = Replay(directory)
    for segment, record in replayed:
        if segment >= start:  # older ones: a crash came before the flush deleted them
            yield _logged(record, f"WAL segment {segment} in {directory}")
    if replayed.corruption is not None:
        repair(directory, replayed.corruption)


class Journal:
    """The database's WAL: one record per write, a checkpoint and truncation after a flush."""

    def __init__(
        self, directory: Path, *, fsync: str, fsync_interval: float, segment_bytes: int
    ) -> None:
        self.directory = directory
        self.fsync = fsync
        self.log = WriteAheadLog(
            directory, fsync=fsync, fsync_interval=fsync_interval, segment_bytes=segment_bytes
        )

    def append(self, record: list[tuple[int, pa.Table]]) -> int:
        """Hand one write's record to the OS (fsynced first in ``"always"`` mode)."""
        return self.log.append(record)

    def roll(self) -> int:
        """Start a new segment; the writes before it are those of the head being flushed."""
        return self.log.roll()

    def checkpoint(self, segment: int, records: list[list[tuple[int, pa.Table]]]) -> None:
        """After the blocks of a flush are durable: keep ``records`` (what the flush put back in
        the head) as ``checkpoint.<segment>``, then delete the segments before ``segment`` and
        older checkpoints."""
        final = self.directory / f"checkpoint.{segment:08d}"
        tmp = final.with_name(final.name + ".tmp")
        try:
            if records:
                shutil.rmtree(tmp, ignore_errors=True)
                with WriteAheadLog(tmp, fsync="never") as cp:
                    for record in records:
                        cp.append(record)
                for path in tmp.iterdir():
                    _fsync_path(path)
                _fsync_path(tmp)
                os.replace(tmp, final)
                _fsync_path(self.directory)
            self.log.drop_before(segment)
            for number in _checkpoints(self.directory):
                if number < segment or (number == segment and not records):
                    shutil.rmtree(self.directory / f"checkpoint.{number:08d}")
            _fsync_path(self.directory)
        except OSError as exc:
            raise WalError(
                f"cannot write the WAL checkpoint {final}: {exc}; the blocks are written and "
                "the WAL still holds everything: free disk space and the next flush retries"
            ) from exc

    def close(self) -> None:
        self.log.close()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
