"""``Database``: an embedded data directory you write samples to and select Polars frames from."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs

from tsdb_arrow import datadir
from tsdb_arrow.background import BackgroundWorker
from tsdb_arrow.blocks.blockset import BlockSet
from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.blocks.directory import BlockDirectory
from tsdb_arrow.blocks.ranges import overlapping_groups
from tsdb_arrow.blocks.reader import Block
from tsdb_arrow.config import StorageConfig, storage_config
from tsdb_arrow.datadir import BLOCKS_DIR, TOMBSTONES_FILE, data_path
from tsdb_arrow.errors import (
    BackpressureError,
    ClosedError,
    CorruptBlockError,
    DataDirectoryError,
    InputError,
    ReadOnlyError,
)
from tsdb_arrow.index import SeriesIndex
from tsdb_arrow.ingest import journal
from tsdb_arrow.ingest.head import Head, HeadWindow
from tsdb_arrow.ingest.journal import Journal
from tsdb_arrow.ingest.pool import ROW_BYTES, BufferPool
from tsdb_arrow.ingest.recent import RecentWrites, all_held, held, window_start
from tsdb_arrow.lockfile import LOCK_FILE, DirectoryLock
from tsdb_arrow.model import (
    METRIC_NAME,
    REF,
    TIMESTAMP,
    VALUE,
    Numbered,
    is_member,
    numpy_of,
    present_labels,
)
from tsdb_arrow.query.export import export_format, sink
from tsdb_arrow.query.selector import Matcher, matches_empty, query_matchers
from tsdb_arrow.timeutil import check_range, to_ms

# The modules holding numba kernels (writing: labelsets, series, cut, writer, overlap; reading:
# read, scan, histograms) and the input checks (convert: pyarrow.compute) are imported by the
# methods that use them, so that importing tsdb_arrow and opening a directory stay cheap
# (benchmarks/cold_start.py).
if TYPE_CHECKING:
    from tsdb_arrow.blocks.tombstones import Tombstones
    from tsdb_arrow.ingest.convert import SampleBatch
    from tsdb_arrow.ingest.known import KnownSeries
    from tsdb_arrow.ingest.newest import SeriesNewest
    from tsdb_arrow.ingest.series import Resolved
    from tsdb_arrow.query.read import Snapshot
    from tsdb_arrow.query.scan import Scan


@dataclass(frozen=True)
class WriteResult:
    """What one ``write`` stored.

    Attributes
    ----------
    rows
        Rows of the batch; all of them were accepted (a refused batch raises instead).
    replaced
        Rows whose series and timestamp had been written before, earlier in the same batch
        or by an earlier write (flushed or not): each replaced that sample (the last write
        wins), so once flushed it adds nothing to ``stats()["samples"]`` (until the flush,
        ``head_samples`` counts rows as written). For histogram samples only repeats within
        the batch are counted.
    """

    rows: int
    replaced: int

    @property
    def added(self) -> int:
        """Samples that did not exist before: ``rows - replaced``."""
        return self.rows - self.replaced


class Database:
    """An open data directory. Thread-safe; one process owns a directory at a time.

    Samples are buffered in the head and flushed to Parquet blocks by ``flush()``, by ``close()``,
    or by the database's background thread once the head spans more than
    ``config.block_duration`` (the newest window stays in the head, and so does every window a
    write reached within ``ingest.recent.QUIET_SECONDS``) or holds more than
    ``config.head_max_bytes``. Unflushed samples are in the write-ahead log (``config.wal``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: StorageConfig | Mapping[str, Any] | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        self.config = storage_config(config)
        self.path = data_path(path)
        self.read_only = read_only
        if read_only:
            datadir.check_existing(self.path)
        self._lockfile = None if read_only else self._lock_directory()
        try:
            self._fs = pafs.LocalFileSystem()
            self._blocks_dir = str(self.path / BLOCKS_DIR)
            if not read_only:
                self._fs.create_dir(self._blocks_dir, recursive=True)
            self._lock = threading.RLock()
            self._flush_lock = threading.Lock()
            self._compact_lock = threading.Lock()
            self._last_compaction = time.monotonic()
            self._cache = ChunkCache(self.config.cache_bytes)
            # Codec kernels release the GIL: row groups and columns encode/decode in parallel.
            self._pool_threads = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="tsdb-arrow"
            )
            # Writes and flushes split a long batch's label work, pair set probes and sample
            # placing across two cores, if there are (ingest/split.py).
            self._split_pool = self._pool_threads if (os.cpu_count() or 1) > 1 else None
            # Free buffers kept for reuse: enough for the head and the one being flushed (the
            # background flush swaps a full head while writes fill the next).
            max_free = 2 * (self.config.head_max_bytes // (ROW_BYTES * self.config.buffer_rows)) + 4
            self._pool = BufferPool(self.config.buffer_rows, max_free=max_free)
            self._head = Head(self._pool)
            self._flushing: list[Head] = []  # taken by a running flush, still read by queries
            self._room = threading.Condition(self._lock)  # notified when the head is swapped
            self._recent = RecentWrites(self.config.block_duration)  # windows writes reach
            self._span_hold_until = 0.0  # a span flush found nothing to write: not before then
            self._index = SeriesIndex()
            self._known: KnownSeries | None = None  # label sets of the index a write admitted
            self._newest: SeriesNewest | None = None  # per-series newest time, made on first write
            self._directory = BlockDirectory(
                self._fs, self.path, self._blocks_dir, owner=not read_only
            )
            self._blockset = BlockSet(on_unused=self._directory.delete)
            # Distinct samples of a group of overlapping blocks, by their ids (see stats()).
            self._distinct_counts: dict[tuple[str, ...], int] = {}
            self._closed = False
            self._closing = False
            self._seq = 0
            self._background: BackgroundWorker | None = None
            self._journal: Journal | None = None
            self.replayed_samples = 0  # samples the write-ahead log gave back on open
            # Deleted ranges of block samples; None while there are none (no numba import).
            self._tombstones: Tombstones | None = self._read_tombstones()
            self._refresh_blocks()
            if not read_only:
                self._recover()
                self._background = self._start_background()
        except BaseException:
            if self._journal is not None:
                self._journal.close()
            if self._lockfile is not None:
                self._lockfile.release()
            raise

    # -- lifecycle ---------------------------------------------------------------------------

    def _read_tombstones(self) -> Tombstones | None:
        if not (self.path / TOMBSTONES_FILE).exists():
            return None
        from tsdb_arrow.blocks.tombstones import read_tombstones

        return read_tombstones(self.path)

    def _recover(self) -> None:
        """Replay the write-ahead log into the head, then open it for appends (``wal=True``).

        With ``wal=False`` a log left by an earlier open is still replayed, then flushed to
        blocks at once and removed, since nothing logs what stays in the head.
        """
        wal_dir = self.path / journal.WAL_DIR
        replayed = 0
        for logged in journal.recover(wal_dir):
            if logged.tombstones is not None:  # a delete: what was written before it goes
                self._apply_delete(logged.tombstones, persist=False)
                continue
            if logged.series is not None:
                self._index.add(logged.series)
            if len(logged.refs) == 0:  # label sets only (see journal)
                continue
            self._head.append(
                logged.refs,
                logged.timestamps,
                values=logged.values,
                histograms=logged.histograms,
            )
            replayed += len(logged.refs)
        self.replayed_samples = replayed
        if self._tombstones is not None:  # deletes replayed from the log: keep them on disk
            from tsdb_arrow.blocks.tombstones import write_tombstones

            write_tombstones(self.path, self._tombstones)
        if self.config.wal:
            self._journal = Journal(
                wal_dir,
                fsync=self.config.wal_fsync,
                fsync_interval=self.config.wal_fsync_interval,
                segment_bytes=self.config.wal_segment_bytes,
            )
        elif wal_dir.exists():
            self._flush()
            shutil.rmtree(wal_dir)

    def _lock_directory(self) -> DirectoryLock:
        new = datadir.prepare(self.path)
        lock = DirectoryLock(self.path)
        try:
            lock.acquire()
        except OSError as exc:  # no permission, a read-only file system, LOCK not a file
            raise DataDirectoryError(
                f"cannot lock {self.path} ({exc.strerror} on {LOCK_FILE}): a data directory must "
                "be writable; fix its permissions, give another directory, or open it with "
                "read_only=True"
            ) from exc
        if new:
            try:
                datadir.write_marker(self.path)
            except BaseException:
                lock.release()
                raise
        return lock

    def refresh(self) -> list[str]:
        """Pick up blocks written since the directory was opened (by the process that owns it);
        returns the ids of the blocks added.

        For read-only opens: blocks a compaction replaced or retention removed leave the set
        (queries running on them finish on the files they hold). An owner sees its own blocks
        at once, so this finds nothing new there.
        """
        self._check_open()
        return self._refresh_blocks()

    def _refresh_blocks(self) -> list[str]:
        """Bring the block set in line with ``blocks/`` (see ``BlockDirectory.scan``). Runs
        under the lock: one refresh at a time."""
        with self._lock:
            scan = self._directory.scan({b.meta.id: b for b in self._blockset.blocks()})
            for block in scan.added:
                self._index.add(scan.series[block.meta.id])
                block.remember_series_refs(numpy_of(scan.series[block.meta.id][REF]))
            self._blockset.add(scan.added)
            if scan.added and self._newest is not None:
                self._newest.clear()  # samples that no write noted
            self._seq = max([self._seq, *(b.meta.seq for b in scan.added)])
            self._blockset.retire(scan.gone)
            if self.read_only:
                self._tombstones = self._read_tombstones()  # the owner's deletes so far
            return [b.meta.id for b in scan.added]

    def _start_background(self) -> BackgroundWorker:
        return BackgroundWorker(
            self._background_pass, name=f"tsdb-arrow-background {self.path}", interval=1.0
        )

    def _background_pass(self) -> None:
        """What the background thread does when woken (and every second): flush the head if it
        is due; compact and apply retention every ``config.compaction_interval`` seconds."""
        if self._closed or self._closing:
            return
        self._flush(only_if_due=True)
        if time.monotonic() - self._last_compaction >= self.config.compaction_interval:
            self._compact()

    def close(self) -> None:
        """Flush the head and release the directory; further use raises ``ClosedError``.

        Writes are refused from the moment ``close`` starts. If the final flush fails, the
        database stays open with every sample still in the head: fix the cause (e.g. free disk
        space) and call ``close()`` again.
        """
        with self._lock:
            if self._closed or self._closing:
                return
            self._closing = True
            self._room.notify_all()  # writers waiting for room give up: the database closes
        if self._background is not None:
            self._background.stop()
            try:
                self.flush()
            except BaseException:
                with self._lock:
                    self._closing = False
                self._background = self._start_background()
                raise
        with self._lock:
            self._closed = True
        if self._journal is not None:
            self._journal.close()
        self._pool_threads.shutdown(wait=True)
        self._blockset.close()  # no query can read them any more: their files close
        if self._lockfile is not None:
            self._lockfile.release()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the database at {self.path} is closed; open it again with ta.open")

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(
                f"the database at {self.path} was opened read-only: write, flush, compact and "
                "delete go to the process that owns the directory (open it without read_only "
                "once that process has closed it)"
            )
        if self._closed or self._closing:
            raise ClosedError(
                f"the database at {self.path} is closed or closing; open it again with ta.open"
            )

    # -- writing -----------------------------------------------------------------------------

    def write(self, data: Any, *, metric: str | None = None) -> WriteResult:
        """Add samples from a long-format frame; returns how many rows were stored and replaced.

        ``data`` is a pyarrow Table/RecordBatch or a Polars/pandas DataFrame with ``timestamp``
        (int64 ms or datetime), ``value`` (castable to float64) or ``histogram`` (an exponential
        histogram struct, see ``docs/sketches.md``), ``__name__`` (or ``metric=``) and one string
        column per label. A refused batch raises an ``InputError`` (or
        ``SeriesCollisionError``) and stores nothing. When the head is full and the background
        flush cannot keep up, ``write`` waits up to ``config.write_timeout`` seconds, then raises
        ``BackpressureError`` (nothing stored; retry later). A row whose series and timestamp were
        written before (earlier in the batch, or by an earlier write) replaces that sample:
        ``WriteResult.replaced`` counts those rows, ``WriteResult.added`` the samples that are
        new. Appending newer samples costs one pass over the batch to count; a batch that
        reaches back into stored times also reads its series' stored timestamps there.
        """
        from tsdb_arrow.ingest.convert import normalize
        from tsdb_arrow.ingest.series import resolve_series

        self._check_writable()
        batch = normalize(data, metric=metric)
        if batch.num_rows == 0:
            return WriteResult(rows=0, replaced=0)
        found = self._known_series().lookup(batch.labels, batch.num_rows, self._split_pool)
        if found is None:  # some row's label set may be new: the batch's sets are resolved
            resolved = resolve_series(batch.labels, batch.num_rows, self._split_pool)
            return self._write_resolved(batch, resolved)
        if found.row_sets is None:  # every label set passed the checks, is in the index,
            # and has one row here: nothing more to find out about them
            each = Numbered(np.arange(len(found.refs)), found.refs)
            return self._append(batch, found.refs, each, None, None)
        numbered = Numbered(found.row_sets, found.set_refs)
        return self._append(batch, found.refs, numbered, found.series, None)

    def write_refs(
        self, refs: np.ndarray, timestamps: np.ndarray, values: np.ndarray
    ) -> WriteResult:
        """Add float samples of series earlier writes admitted, named by their refs (uint64):
        the OTLP receiver's path for a feed repeating its series, with no labels to check or
        hash again (``ingest/otlp/repeat.py``). A ref not in the index is refused with
        ``InputError`` (nothing stored); otherwise as ``write``."""
        from tsdb_arrow.ingest.convert import SampleBatch

        self._check_writable()
        if len(refs) == 0:
            return WriteResult(rows=0, replaced=0)
        refs = np.asarray(refs, dtype=np.uint64)
        if not is_member(self._index.refs, refs).all():
            raise InputError(
                "write_refs got series refs that no earlier write admitted; write the samples "
                "with their labels (Database.write)"
            )
        batch = SampleBatch(np.asarray(timestamps, dtype=np.int64),
                            np.asarray(values, dtype=np.float64), {})  # fmt: skip
        return self._append(batch, refs, None, None, None)

    def _write_resolved(self, batch: SampleBatch, resolved: Resolved) -> WriteResult:
        """``write`` of a validated batch whose rows are resolved to series already (the
        Flight server resolves a batch's distinct label sets only, not its rows)."""
        from tsdb_arrow.ingest.convert import check_metric_names, check_utf8

        self._check_writable()
        series = numpy_of(resolved.series.column(REF))
        numbered = Numbered(resolved.row_sets, resolved.set_refs)
        if self._known_series().admitted(resolved.series):
            # Every set was admitted before (a bulk load's later batches, a loader's later
            # frames over Flight): no check again, nothing new for the index or the memory.
            return self._append(batch, resolved.row_refs, numbered, series, None)
        check_utf8(resolved.series)
        check_metric_names(resolved.series, resolved.row_refs)
        return self._append(batch, resolved.row_refs, numbered, series, resolved)

    def _append(
        self,
        batch: SampleBatch,
        refs: np.ndarray,
        numbered: Numbered | None,
        series: np.ndarray | None,
        resolved: Resolved | None,
    ) -> WriteResult:
        """Log and append a checked batch. ``numbered``: the rows' series numbered densely
        (None: not worked out yet); ``resolved`` holds the batch's series when some may be new
        (``series``: their refs), None when every one is known (``series``: their refs sorted,
        or None when each has one row or ``numbered`` is None)."""
        from tsdb_arrow.query.overlap import in_series_order, repeats_within_batch

        if numbered is None:  # worked out below if the batch's rows need counting
            series = None
        ts, values = batch.timestamps, batch.values
        with self._lock:
            self._wait_for_room(batch.num_rows)
            before = self._index.state()
            new = new_refs = None
            if resolved is not None:
                known = self._index.add(resolved.series)
                new = resolved.series.filter(pa.array(~known))
                new_refs, series = series[~known], series[known]
            try:
                noted = False
                if self._moves_forward(refs, ts, new_refs, numbered):
                    replaced = 0
                else:
                    if numbered is None:
                        series, row_sets = np.unique(refs, return_inverse=True)
                        numbered = Numbered(row_sets, series)
                    if batch.histograms is not None:
                        # Histogram samples: only rows repeating a pair of the batch count.
                        replaced = repeats_within_batch(
                            refs, ts, numbered.row_sets, self._split_pool
                        )
                    elif self._reaches_back(ts, series):
                        replaced, noted = self._count_replaced(refs, ts, numbered, series)
                    else:  # only its own rows can repeat: sorted to count them, kept sorted
                        ordered = in_series_order(
                            refs, ts, values, numbered, self.config.block_duration,
                            self._split_pool,
                        )
                        replaced = 0 if ordered is None else ordered.repeats
                        if ordered is not None:
                            refs, ts, values = ordered.refs, ordered.timestamps, ordered.values
                if self._journal is not None:  # logged before the head has it: all or nothing
                    self._journal.append(
                        journal.entries(new, refs, ts, values=values, histograms=batch.histograms)
                    )
                self._head.append(
                    refs, ts, values=values, histograms=batch.histograms, noted=noted
                )
                self._recent.note(int(ts.min()), int(ts.max()), time.monotonic())
            except BaseException:
                self._index.restore(before)  # a refused batch adds no series either
                self._head.forget_pairs()  # it may hold pairs of rows that were not appended
                raise
            if resolved is not None:  # admitted: later batches of these series skip resolving
                from tsdb_arrow.ingest.known import in_row_order

                self._known_series().remember(
                    in_row_order(resolved.series, resolved.row_refs, resolved.row_sets)
                )
            due = self._flush_due()
        if due and self._background is not None:
            self._background.request()
        return WriteResult(rows=batch.num_rows, replaced=replaced)

    def _series_newest(self) -> SeriesNewest:
        """The per-series newest-time bounds (``ingest/newest.py``), made on first use (caller
        holds the lock)."""
        if self._newest is None:
            from tsdb_arrow.ingest.newest import SeriesNewest

            self._newest = SeriesNewest()
        return self._newest

    def _moves_forward(
        self,
        refs: np.ndarray,
        ts: np.ndarray,
        new_refs: np.ndarray | None,
        numbered: Numbered | None = None,
    ) -> bool:
        """Whether every row of a batch is newer than its series' newest sample and its earlier
        rows (``ingest/newest.py``; the bounds are raised to the batch on the way): then it
        replaces nothing. ``new_refs``: the batch's series that were not in the index before it
        (they had no sample), None when all were; ``numbered``: the rows' series numbered
        densely, when known (caller holds the lock)."""
        from tsdb_arrow.ingest.newest import NOTHING

        newest = self._series_newest()
        if new_refs is not None and len(new_refs):
            newest.enter(new_refs, NOTHING)
        stored_max = self._stored_max()
        floor = NOTHING if stored_max is None else stored_max
        return newest.advance(refs, ts, floor, numbered)

    def _known_series(self) -> KnownSeries:
        """The label sets writes admitted so far (``ingest/known.py``), made on first use."""
        if self._known is None:
            from tsdb_arrow.ingest.known import KnownSeries

            with self._lock:
                if self._known is None:
                    self._known = KnownSeries()
        return self._known

    def _wait_for_room(self, rows: int) -> None:
        """Wait (caller holds the lock) until the head is below ``head_max_bytes``.

        The background flush swaps a full head for an empty one as soon as the previous flush
        is done; until then a writer waits, at most ``config.write_timeout`` seconds.
        """
        self._check_writable()
        deadline = None
        while self._head.nbytes >= self.config.head_max_bytes:
            assert self._background is not None  # writable: the owner's thread runs
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + self.config.write_timeout
            if now >= deadline:
                failure = self._background.last_error
                cause = f" (the last flush failed: {failure})" if failure is not None else ""
                raise BackpressureError(
                    f"the head is full ({self._head.nbytes} bytes, head_max_bytes="
                    f"{self.config.head_max_bytes}) and the background flush made no room within "
                    f"write_timeout={self.config.write_timeout} s{cause}; none of the {rows} "
                    "rows was stored: retry the batch later"
                )
            self._background.request()
            self._room.wait(deadline - now)
            self._check_writable()

    def _reaches_back(self, ts: np.ndarray, known: np.ndarray | None) -> bool:
        """Whether a float batch may repeat a stored pair: some of its series were stored
        before (``known``: those series, sorted, or None when all were) and it reaches into
        the stored times. Otherwise it can only repeat its own rows (caller holds the lock)."""
        stored_max = self._stored_max()
        if stored_max is None or int(ts.min()) > stored_max:
            return False
        return known is None or len(known) > 0

    def _count_replaced(
        self,
        refs: np.ndarray,
        ts: np.ndarray,
        numbered: Numbered,
        known: np.ndarray | None,
    ) -> tuple[int, bool]:
        """How many rows of a float batch that reaches back (``_reaches_back``) replace an
        earlier sample, and whether the head's pair set noted the batch's pairs (pass on to
        ``Head.append``).

        The rows are checked against the head's pair set (one probe per row, which also finds
        the batch's own repeats), and the rows not found there against blocks and flushing
        heads. ``numbered``: the rows' series numbered densely from 0; ``known``: the batch's
        series known before it, sorted, or None when all of them were and each has one row
        (caller holds the lock).
        """
        from tsdb_arrow.query.overlap import stored_matches

        new = ~self._head.repeats(refs, ts, self._split_pool, numbered)
        replaced = len(refs) - int(np.count_nonzero(new))
        if self._flushing or self._blockset.blocks():
            replaced += stored_matches(
                refs[new],
                ts[new],
                np.sort(refs) if known is None else known,
                lambda: self._snapshot(current_head=False),
                self._cache,
                self._pool_threads,
            )
        return replaced, True

    def _stored_max(self) -> int | None:
        """Newest timestamp of a float sample in the blocks and the head (caller holds the lock)."""
        floats = [h.floats for h in (self._head, *self._flushing) if h.floats.rows]
        times = [b.meta.max_time for b in self._blockset.blocks() if b.meta.num_samples]
        times += [f.max_time for f in floats]
        return max(times, default=None)

    def _flush_due(self) -> str | None:
        """Why the head should be flushed now ("size" or "span"), or None (caller holds the
        lock)."""
        head = self._head
        if head.nbytes >= self.config.head_max_bytes:  # the bound _wait_for_room waits on
            return "size"
        if head.rows and head.max_time - head.min_time > self.config.block_duration:
            return "span"
        return None

    def flush(self) -> list[str]:
        """Write everything in the head to blocks now; returns the new block ids."""
        self._check_open()
        if self.read_only:
            self._check_writable()
        return self._flush()

    def _flush(self, *, only_if_due: bool = False) -> list[str]:
        """Cut the head into windows and write a block of each; returns the new block ids.

        ``only_if_due`` (the background thread): flush only if the head is due, judged after
        taking the flush lock; when only its span made it due, keep its newest window and
        every window a write reached within ``recent.QUIET_SECONDS`` (asking for a pass when
        they are quiet).
        If writing fails, what did not reach a block goes back in front of the newer head:
        nothing is lost and nothing doubled, and the next flush retries.
        """
        with self._flush_lock:
            with self._lock:
                due = self._flush_due() if only_if_due else "all"
                head = self._head
                if due is None or head.rows == 0:
                    return []
                now = time.monotonic()
                recent = self._recent.ranges(now) if due == "span" else []
                if due == "span" and self._complete_windows_held(head, recent, now):
                    return []
                # Writes from now on go to a new segment: the older ones hold only this head.
                # Rolled first: if that fails, the head stays where it is, not half swapped.
                segment = self._journal.roll() if self._journal is not None else None
                self._head = Head(self._pool)
                self._flushing.append(head)
                self._room.notify_all()
            windows: list[HeadWindow] = []
            keep: list[HeadWindow] = []
            # Published with the head's removal, in one step: never both counted or read.
            written: list[Block] = []
            try:
                windows = head.windows(self.config.block_duration, self._split_pool)
                if due == "span":
                    keep = [w for w in windows[:-1] if held(w.start, recent)]
                    keep.append(windows[-1])  # the newest window is still filling
                    windows = [w for w in windows[:-1] if not held(w.start, recent)]
                for window in windows:
                    written.append(self._write_window(window))
            except BaseException:
                with self._lock:
                    self._blockset.add(written)
                    self._flushing.remove(head)
                    if windows:
                        rest = Head.of_windows(self._pool, windows[len(written) :] + keep)
                        self._head = rest.followed_by(self._head)
                        head.release()
                    else:
                        self._head = head.followed_by(self._head)
                raise
            with self._lock:
                self._blockset.add(written)
                if keep:
                    self._head = Head.of_windows(self._pool, keep).followed_by(self._head)
                self._flushing.remove(head)
                head.release()
                kept = [record for w in keep for record in self._logged_window(w)]
                if self._journal is not None and (unblocked := self._unblocked(kept)):
                    kept.append(unblocked)
                if due == "span" and len(keep) > 1:  # windows held besides the newest
                    release = self._recent.next_release(time.monotonic())
                    if not windows:  # every window with samples was held
                        self._span_hold_until = release or 0.0
                    self._look_again_at(release)  # not only at the next write
            if segment is not None and self._journal is not None:
                # The blocks are durable: the segments before `segment` can go, once what the
                # flush kept in the head is in a checkpoint.
                self._journal.checkpoint(segment, kept)
            return [block.meta.id for block in written]

    def _complete_windows_held(self, head: Head, recent: list[tuple[int, int]], now: float) -> bool:
        """Whether writes reached every window of ``head`` but the newest within the quiet
        time (``recent``: their ranges), or a span flush found nothing to write before; if
        so, ask the background thread to look again when the oldest write is quiet (caller
        holds the lock)."""
        duration = self.config.block_duration
        newest = window_start(head.max_time, duration)
        lo = window_start(head.min_time, duration)
        if now >= self._span_hold_until and not all_held(lo, newest - duration, duration, recent):
            return False
        release = max(self._span_hold_until, self._recent.next_release(now) or now)
        self._look_again_at(release if release > now else None)
        return True

    def _look_again_at(self, release: float | None) -> None:
        """Ask the background thread for a pass at monotonic time ``release`` (when held
        windows are quiet), if there is one."""
        if release is not None and self._background is not None:
            self._background.request_at(release)

    def _logged_window(self, window: HeadWindow) -> list[list[tuple[int, pa.Table]]]:
        """WAL records of a window's floats and histograms, each with its series (caller holds
        the lock)."""
        records = []
        for part, key in ((window.floats, "values"), (window.histograms, "fields")):
            if part is None:
                continue
            refs = np.unique(part.refs)
            series = self._series_table(refs)
            payload = getattr(part, key)
            records.append(
                journal.entries(
                    series,
                    part.refs,
                    part.timestamps,
                    values=payload if key == "values" else None,
                    histograms=payload if key == "fields" else None,
                )
            )
        return records

    def _write_window(self, window: HeadWindow) -> Block:
        """Write one window's block; the caller publishes it."""
        from tsdb_arrow.blocks.writer import write_block

        with self._lock:
            self._seq += 1
            seq = self._seq
            frame = self._index.frame
        floats, hist = window.floats, window.histograms
        refs = np.union1d(
            floats.series_refs() if floats is not None else np.empty(0, np.uint64),
            np.unique(hist.refs) if hist is not None else np.empty(0, np.uint64),
        )
        series = frame.filter(pl.Series(is_member(refs, frame[REF].to_numpy())))
        series = series.select(REF, *present_labels(series))
        meta = write_block(
            self._fs,
            self._blocks_dir,
            seq,
            series.to_arrow(),
            self.config.chunk_samples,
            window=floats,
            histograms=hist,
            pool=self._pool_threads,
        )
        block = Block.open(self._fs, f"{self._blocks_dir}/{meta.id}")
        block.remember_series_refs(refs)
        return block

    def delete(self, selector: str | None = None, *, start: Any = None, end: Any = None) -> int:
        """Delete the samples of the series matching ``selector`` in [start, end] (all time
        when None); returns how many series matched.

        The samples are gone from every query and from ``stats()`` at once; the delete is
        logged and persisted (``tombstones.parquet``), so it survives a reopen or a crash, and
        compaction removes the samples from the blocks. Samples written afterwards in that range
        are kept. The series stay known (``series()``) until compaction leaves them no sample.
        """
        from tsdb_arrow.blocks.tombstones import SCHEMA as TOMBSTONE_SCHEMA

        self._check_writable()
        lo, hi = to_ms(start, name="start"), to_ms(end, name="end")
        check_range(lo, hi)
        lo = int(np.iinfo(np.int64).min) if lo is None else lo
        hi = int(np.iinfo(np.int64).max) if hi is None else hi
        matchers = query_matchers(selector)
        with self._flush_lock:  # no flush in flight: unflushed samples are all in the head
            with self._lock:
                self._check_writable()
                refs = np.sort(self._index.select(matchers)[REF].to_numpy())
                if len(refs) == 0:
                    return 0
                n = len(refs)
                table = pa.Table.from_arrays(
                    [
                        pa.array(refs, pa.uint64()),
                        pa.array(np.full(n, lo, np.int64)),
                        pa.array(np.full(n, hi, np.int64)),
                        pa.array(np.full(n, self._seq, np.int64)),
                    ],
                    schema=TOMBSTONE_SCHEMA,
                )
                if self._journal is not None:
                    position = self._journal.append([(journal.TOMBSTONES, table)])
                    self._journal.log.sync_to(position)
                self._apply_delete(table, persist=True)
        return n

    def _apply_delete(self, table: pa.Table, *, persist: bool) -> None:
        """Add tombstones and drop their samples from the head (caller holds the locks)."""
        from tsdb_arrow.blocks.tombstones import Tombstones, write_tombstones

        refs = np.sort(table.column(REF).to_numpy())
        lo = int(table.column("min_time")[0].as_py())
        hi = int(table.column("max_time")[0].as_py())
        seq = int(table.column("seq")[0].as_py())
        tombstones = (self._tombstones or Tombstones.empty()).added(refs, lo, hi, seq)
        if persist:
            write_tombstones(self.path, tombstones)
        self._tombstones = tombstones
        self._head = self._head.without(refs, lo, hi)
        self._distinct_counts = {}

    def compact(self) -> dict[str, list[Any]]:
        """Merge blocks and apply retention now (the background thread does it by itself every
        ``config.compaction_interval`` seconds); returns what was done.

        Overlapping blocks (out-of-order or late writes) are merged, the last write winning;
        blocks of a complete aligned range (``config.compaction_levels``) become one; blocks
        holding deleted samples are rewritten without them; blocks past ``config.retention`` or
        beyond ``config.retention_bytes`` are deleted whole. Returns ``{"merged": [{"sources":
        [ids], "block": new id or None}], "expired": [ids]}``. Queries running meanwhile finish
        on the blocks they started with.
        """
        self._check_writable()
        return self._compact()

    def _compact(self) -> dict[str, list[Any]]:
        from tsdb_arrow.blocks.compactor import compact

        with self._compact_lock:
            with self._lock:
                newest = self._newest_time()
                tombstones = self._tombstones
            done = compact(
                self._fs,
                self._blocks_dir,
                self._blockset,
                self.config,
                newest_time=newest,
                tombstones=tombstones,
                pool=self._pool_threads,
                swap=self._swap_blocks,
            )
            if tombstones is not None and done.tombstones_applied:
                self._drop_applied(tombstones)
            self._last_compaction = time.monotonic()
            return done.summary()

    def _swap_blocks(self, removed: list[Block], added: Block | None) -> None:
        """Compaction's swap: take ``removed`` out (``added`` in their place), first logging
        the label sets that no block holds afterwards. Writes log a known series by ref
        only, so a series whose last block goes (all its samples deleted or expired) must
        have its labels in the WAL, or a later write of it would not replay after a crash.
        Under the lock, so that a flush's checkpoint sees either the old set or the new set
        and this record."""
        gone = np.unique(np.concatenate([b.series_refs() for b in removed]))
        if added is not None:
            gone = gone[~is_member(added.series_refs(), gone)]
        ids = {b.meta.id for b in removed}
        for block in self._blockset.blocks():
            block.series_refs()  # read (once per block) before taking the lock
        with self._lock:
            for block in self._blockset.blocks():
                if block.meta.id not in ids and len(gone):
                    gone = gone[~is_member(block.series_refs(), gone)]
            if len(gone) and self._journal is not None:
                position = self._journal.append([(journal.SERIES, self._series_table(gone))])
                self._journal.log.sync_to(position)
            self._blockset.replace(ids, added)

    def _series_table(self, refs: np.ndarray) -> pa.Table:
        """``REF`` and the labels of the series ``refs`` (caller holds the lock)."""
        frame = self._index.frame
        series = frame.filter(pl.Series(is_member(np.sort(refs), frame[REF].to_numpy())))
        return series.select(REF, *present_labels(series)).to_arrow()

    def _unblocked(self, besides: list[list[tuple[int, pa.Table]]]) -> list[tuple[int, pa.Table]]:
        """A WAL record of the label sets no block holds and no record of ``besides`` carries
        (a flush's checkpoint keeps them; caller holds the lock): series whose samples were
        all deleted or expired, and their later writes."""
        refs = self._index.frame[REF].to_numpy()
        logged = [numpy_of(t.column(REF)) for r in besides for k, t in r if k == journal.SERIES]
        held = [np.unique(np.concatenate(logged))] if logged else []
        # newest first: most series are in the newest blocks, and the rest is soon empty
        for sorted_refs in [*held, *(b.series_refs() for b in reversed(self._blockset.blocks()))]:
            if len(refs) == 0:
                break
            refs = refs[~is_member(sorted_refs, refs)]
        return [(journal.SERIES, self._series_table(refs))] if len(refs) else []

    def _newest_time(self) -> int | None:
        """The newest sample's time in blocks and head (caller holds the lock)."""
        times = [b.meta.max_time for b in self._blockset.blocks()]
        times += [h.max_time for h in (self._head, *self._flushing) if h.rows]
        return max(times, default=None)

    def _drop_applied(self, applied: Tombstones) -> None:
        """Forget the tombstones of ``applied``: every block they touched was rewritten
        without the samples they hide (deletes made meanwhile are kept)."""
        from tsdb_arrow.blocks.tombstones import Tombstones, write_tombstones

        with self._lock:
            current = self._tombstones
            if current is None:
                return
            done = pl.from_arrow(applied.table())
            left = pl.from_arrow(current.table()).join(done, on=done.columns, how="anti")
            remaining = Tombstones.of_table(left.to_arrow())
            write_tombstones(self.path, remaining)
            self._tombstones = remaining if len(remaining) else None
            self._distinct_counts = {}

    # -- reading -----------------------------------------------------------------------------

    def series(
        self, selector: str | None = None, *, start: Any = None, end: Any = None
    ) -> pl.DataFrame:
        """Label sets of the series matching ``selector`` (all when None), one row each.

        With ``start`` or ``end``, only the series with samples in that range, decided from the
        chunk index as Prometheus' series endpoint does: a stored chunk overlapping the range
        counts even when its samples fall on both sides of it (use ``select`` for exactness).
        """
        return self._series_between(selector, start, end, whole_blocks=False)

    def _series_between(
        self, selector: str | None, start: Any, end: Any, *, whole_blocks: bool
    ) -> pl.DataFrame:
        """``series`` over a time range decided per chunk, or per block (``whole_blocks``: as
        Prometheus' label endpoints, every series of a block or head the range touches)."""
        self._check_open()
        lo, hi = to_ms(start, name="start"), to_ms(end, name="end")
        check_range(lo, hi)
        frame = self._series(query_matchers(selector))
        if lo is None and hi is None:
            return frame
        from tsdb_arrow.query.read import T_MAX, T_MIN, refs_in_blocks, refs_in_range

        snapshot, release = self._snapshot()
        try:
            find = refs_in_blocks if whole_blocks else refs_in_range
            refs = find(snapshot, T_MIN if lo is None else lo, T_MAX if hi is None else hi)
        finally:
            release()
        frame = frame.filter(pl.Series(is_member(refs, frame[REF].to_numpy())))
        return frame.select(REF, *present_labels(frame))

    def _series(self, matchers: tuple[Matcher, ...]) -> pl.DataFrame:
        with self._lock:
            frame = self._index.select(matchers)
        return frame.select(REF, *present_labels(frame))

    def select(
        self,
        selector: str | None = None,
        *,
        start: Any = None,
        end: Any = None,
    ) -> pl.LazyFrame:
        """Samples of the matching series in [start, end] as a Polars LazyFrame.

        Columns: ``timestamp`` (Datetime ms UTC), ``value`` (Float64) and one String column per
        label name that a matching series has, sorted by name; rows sorted by series then
        time. When no series matches, the frame is empty with the label columns the selector
        requires (``__name__`` and every label it needs non-empty), so that code written for
        a found metric runs on a missing one. ``selector=None`` selects every series.

        The series are those matching when ``select`` is called; their samples are read when
        the frame is collected, from the open database: collect (or ``sink_*``) before
        ``close()`` or the end of the ``with`` block, after which collecting raises
        ``ClosedError``.
        """
        from tsdb_arrow.query.scan import TIME_DTYPE

        self._check_open()
        lo, hi = to_ms(start, name="start"), to_ms(end, name="end")
        check_range(lo, hi)
        matchers = query_matchers(selector)
        series = self._series(matchers)
        if series.height == 0:
            required = {METRIC_NAME} | {m.name for m in matchers if not matches_empty(m)}
            schema = {
                TIMESTAMP: TIME_DTYPE,
                VALUE: pl.Float64(),
                **{name: pl.String() for name in sorted(required)},
            }
            return pl.LazyFrame(schema=schema)
        return self._scan(series, lo, hi).lazy()

    def _scan(self, series: pl.DataFrame, lo: int | None, hi: int | None) -> Scan:
        """The IO source reading ``series`` (REF + labels, sorted by ref) in [lo, hi]."""
        from tsdb_arrow.query.scan import Scan

        return Scan(series, lo, hi, self._snapshot, self._cache, self._pool_threads)

    def query(self, expr: str, time: Any = None, *, lookback: Any = "5m") -> pl.DataFrame:
        """Evaluate the PromQL ``expr`` at ``time`` (default now) into a long Polars frame.

        Columns: one String column per label, ``timestamp`` (Datetime ms UTC) and ``value``;
        a range selector (``x[5m]``) gives its raw samples. Semantics are Prometheus 3's:
        ``lookback`` (default 5m) bounds how far back an instant selector looks; a malformed
        or ill-typed expression raises ``QueryError``.
        """
        from tsdb_arrow.promql.frames import instant_query

        self._check_open()
        return instant_query(self, expr, time, lookback=lookback)

    def query_range(
        self, expr: str, start: Any, end: Any, step: Any, *, lookback: Any = "5m"
    ) -> pl.DataFrame:
        """Evaluate the PromQL ``expr`` at ``start, start + step, ... <= end`` (``step`` in
        ms, a timedelta or ``"15s"``) into a long frame as :meth:`query` does."""
        from tsdb_arrow.promql.frames import range_query

        self._check_open()
        return range_query(self, expr, start, end, step, lookback=lookback)

    def select_histograms(
        self, selector: str | None = None, *, start: Any = None, end: Any = None
    ) -> pl.LazyFrame:
        """Histogram samples of the matching series in [start, end] as a Polars LazyFrame.

        Columns: ``timestamp`` (Datetime ms UTC), ``histogram`` (a struct with the fields of an
        OpenTelemetry exponential histogram, see ``docs/sketches.md``) and one String column per
        label, sorted by series then time. ``ta.sketch`` computes quantiles from it.
        """
        from tsdb_arrow.query.histograms import HistogramScan

        self._check_open()
        lo, hi = to_ms(start, name="start"), to_ms(end, name="end")
        check_range(lo, hi)
        return HistogramScan(self.series(selector), lo, hi, self._snapshot).lazy()

    def _snapshot(self, *, current_head: bool = True) -> tuple[Snapshot, Callable[[], None]]:
        from tsdb_arrow.query.read import Snapshot

        with self._lock:
            if self._closed:
                raise ClosedError(
                    f"the database at {self.path} is closed: a frame from select() reads when "
                    "it is collected, so collect it (or sink it) before close() or the end of "
                    "the with block, or open the directory again with ta.open"
                )
            heads = [*self._flushing, *([self._head] if current_head else [])]
            buffers = [b for head in heads for b in head.buffers()]
            for buf, _ in buffers:
                self._pool.pin(buf)
            # Histogram pieces are immutable tables: the whole head's, whatever current_head.
            pieces = [p for h in [*self._flushing, self._head] for p in h.histogram_pieces()]
            try:
                blocks, release_blocks = self._acquire_blocks()
            except BaseException:
                for buf, _ in buffers:
                    self._pool.unpin(buf)
                raise
            snap = Snapshot(blocks, tuple(buffers), tuple(pieces), **self._tombstone_arg())

        def release() -> None:
            for buf, _ in buffers:
                self._pool.unpin(buf)
            release_blocks()

        return snap, release

    def _tombstone_arg(self) -> dict[str, Tombstones]:
        return {} if self._tombstones is None else {"tombstones": self._tombstones}

    def _acquire_blocks(self) -> tuple[tuple[Block, ...], Callable[[], None]]:
        """Hold the current blocks; a read-only open whose block the owner removed since the
        last refresh (compaction, retention) refreshes and tries again."""
        for _ in range(10):
            try:
                return self._blockset.acquire()
            except CorruptBlockError:
                if not self.read_only:
                    raise
                gone = [b.meta.id for b in self._blockset.blocks() if not os.path.isdir(b.path)]
                if not gone:
                    raise
                self._refresh_blocks()
        return self._blockset.acquire()

    def export(
        self,
        selector: str | None,
        path: str | os.PathLike[str],
        *,
        start: Any = None,
        end: Any = None,
        format: str | None = None,  # noqa: A002
    ) -> int:
        """Write the selection as a plain long-format file; returns the rows written.

        The format follows ``path``'s extension (``.parquet``/``.pq``: Parquet with zstd;
        ``.arrow``/``.feather``/``.ipc``: Arrow IPC; ``.csv``: CSV with RFC 3339 times) or is
        given as ``format`` (``"parquet"``, ``"ipc"`` or ``"csv"``); otherwise an
        ``ExportError`` is raised before anything is written.
        """
        kind = export_format(path, format)
        lf = self.select(selector, start=start, end=end)
        sink(lf, path, kind)
        scan = {"parquet": pl.scan_parquet, "ipc": pl.scan_ipc, "csv": pl.scan_csv}[kind]
        return scan(str(path)).select(pl.len()).collect().item()

    # -- stats -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts and sizes: series, samples, blocks, bytes on disk, head, cache and pool.

        ``block_samples`` counts distinct (series, timestamp) pairs in the blocks, exactly the
        rows a select-all returns after ``flush()``: a sample written twice counts once.
        ``head_samples`` counts rows written since the last flush as they came (a repeat is
        resolved at the flush); ``samples`` is their sum. ``histogram_samples`` counts stored
        histogram rows. ``flush_error`` is the last background flush's failure (None once
        one succeeds), ``quarantined`` the blocks moved aside as unreadable, ``wal`` the
        write-ahead log's mode, files, bytes and the samples it gave back when opened.
        """
        self._check_open()
        with self._lock:
            blocks = list(self._blockset.blocks())
            heads = [self._head, *self._flushing]
            head_rows = sum(h.floats.rows for h in heads)
            head_histograms = sum(h.histograms.rows for h in heads)
            n_series = len(self._index)
        failure = self._background.last_error if self._background is not None else None
        block_samples = self._distinct_block_samples(blocks)
        # Only the blocks' own directories: never a .tmp one a flush is writing or renaming.
        on_disk = sum(b.nbytes() for b in blocks)
        return {
            "path": str(self.path),
            "series": n_series,
            "samples": block_samples + head_rows,
            "block_samples": block_samples,
            "head_samples": head_rows,
            "histogram_samples": sum(b.meta.num_histograms for b in blocks) + head_histograms,
            "blocks": len(blocks),
            "bytes_on_disk": on_disk,
            "bytes_per_sample": on_disk / block_samples if block_samples else 0.0,
            "min_time": min((b.meta.min_time for b in blocks), default=None),
            "max_time": max((b.meta.max_time for b in blocks), default=None),
            "cache": self._cache.stats(),
            "pool": self._pool.stats(),
            "block_reads": sum(b.reads for b in blocks),
            "flush_error": None if failure is None else str(failure),
            "quarantined": self._directory.quarantined(),
            "read_only": self.read_only,
            "wal": self._wal_stats(),
        }

    def _wal_stats(self) -> dict[str, Any]:
        """The write-ahead log: mode, files and bytes on disk, samples replayed at open."""
        files, size = 0, 0
        for root, _, names in os.walk(self.path / journal.WAL_DIR):
            for name in names:
                try:  # a flush may delete segments meanwhile
                    size += os.stat(os.path.join(root, name)).st_size
                    files += 1
                except FileNotFoundError:
                    continue
        return {
            "enabled": self._journal is not None,
            "fsync": self.config.wal_fsync if self._journal is not None else None,
            "files": files,
            "bytes": size,
            "replayed_samples": self.replayed_samples,
        }

    def _distinct_block_samples(self, blocks: list[Block]) -> int:
        """Distinct float samples of ``blocks``; overlapping groups are read once and memoized."""
        total = 0
        counts: dict[tuple[str, ...], int] = {}
        # Groups a tombstone touches are read too: the count excludes deleted samples.
        tombstones = self._tombstones
        for group in overlapping_groups(blocks):
            deleted = bool(tombstones is not None and len(tombstones)) and any(
                b.meta.seq <= int(tombstones.seq.max())
                and tombstones.touches(b.index.refs, b.index.min_time, b.index.max_time)
                for b in group
            )
            if len(group) == 1 and not deleted:
                total += group[0].meta.num_samples
                continue
            key = (*(b.meta.id for b in group), f"tombstones={len(tombstones or ())}")
            count = self._distinct_counts.get(key)
            if count is None:
                from tsdb_arrow.query.overlap import distinct_block_samples

                count = distinct_block_samples(group, self._pool_threads, tombstones)
            counts[key] = count
            total += count
        self._distinct_counts = counts
        return total


def open(  # noqa: A001
    path: str | os.PathLike[str],
    *,
    config: StorageConfig | Mapping[str, Any] | None = None,
    read_only: bool = False,
) -> Database:
    """Open the data directory at ``path``, creating it in a new or empty directory.

    ``path`` must be new, empty, or a directory made by tsdb-arrow (it holds
    ``tsdb-arrow.json``); anything else raises ``DataDirectoryError`` naming the path, as do
    missing permissions. ``config`` is a ``StorageConfig`` or a dict of its fields
    (``{"cache_bytes": 0}``); an unknown field raises ``ConfigError``.

    ``read_only=True`` takes no lock and works while another process owns the directory (a
    notebook reading what a running server stores): it sees the blocks flushed when it opened,
    ``db.refresh()`` picks up newer ones, and ``write``/``flush``/``compact``/``delete`` raise
    ``ReadOnlyError``. The directory must exist and be a tsdb-arrow data directory.
    """
    return Database(path, config, read_only=read_only)
