"""``Database``: an embedded data directory you write samples to and select Polars frames from."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.fs as pafs

from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.blocks.histograms import HistogramWindow
from tsdb_arrow.blocks.reader import Block
from tsdb_arrow.blocks.writer import write_block
from tsdb_arrow.config import StorageConfig
from tsdb_arrow.errors import ClosedError, DataDirectoryError, FlushError
from tsdb_arrow.index import SeriesIndex
from tsdb_arrow.ingest.convert import check_metric_names, check_utf8, normalize
from tsdb_arrow.ingest.cut import Window, cut, cut_rows
from tsdb_arrow.ingest.head import Head
from tsdb_arrow.ingest.histograms import HistogramHead
from tsdb_arrow.ingest.pool import ROW_BYTES, BufferPool
from tsdb_arrow.ingest.series import resolve_series
from tsdb_arrow.lockfile import DirectoryLock
from tsdb_arrow.model import REF, is_member
from tsdb_arrow.query.histograms import HistogramScan
from tsdb_arrow.query.read import Snapshot
from tsdb_arrow.query.scan import Scan
from tsdb_arrow.query.selector import parse_selector
from tsdb_arrow.timeutil import check_range, to_ms

BLOCKS_DIR = "blocks"


class Database:
    """An open data directory. Thread-safe; one process owns a directory at a time.

    Samples are buffered in the head and flushed to Parquet blocks by ``flush()``, by ``close()``,
    or by themselves when the head spans more than ``config.block_duration`` or holds more than
    ``config.head_max_bytes``. Until the write-ahead log exists, a crash loses unflushed samples.
    """

    def __init__(self, path: str | os.PathLike[str], config: StorageConfig | None = None) -> None:
        self.path = Path(path).absolute()
        self.config = config or StorageConfig()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirectoryError(
                f"cannot use {self.path} as a data directory ({exc.strerror}); give the path of "
                "a directory, new or made by tsdb-arrow"
            ) from exc
        self._lockfile = DirectoryLock(self.path)
        self._lockfile.acquire()
        try:
            self._fs = pafs.LocalFileSystem()
            self._blocks_dir = str(self.path / BLOCKS_DIR)
            self._fs.create_dir(self._blocks_dir, recursive=True)
            self._lock = threading.RLock()
            self._flush_lock = threading.Lock()
            self._cache = ChunkCache(self.config.cache_bytes)
            # Codec kernels release the GIL: row groups and columns encode/decode in parallel.
            self._pool_threads = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="tsdb-arrow"
            )
            max_free = max(
                2, self.config.head_max_bytes // (ROW_BYTES * self.config.buffer_rows) + 2
            )
            self._pool = BufferPool(self.config.buffer_rows, max_free=max_free)
            self._head = Head(self._pool)
            self._flushing: list[Head] = []
            self._hist_head = HistogramHead()
            self._hist_flushing: list[HistogramHead] = []
            self._index = SeriesIndex()
            self._blocks: list[Block] = []
            self._closed = False
            self._closing = False
            self._load_blocks()
        except BaseException:
            self._lockfile.release()
            raise

    # -- lifecycle ---------------------------------------------------------------------------

    def _load_blocks(self) -> None:
        infos = self._fs.get_file_info(pafs.FileSelector(self._blocks_dir))
        for info in sorted(infos, key=lambda i: i.base_name):
            if info.type != pafs.FileType.Directory:
                continue
            if info.base_name.endswith(".tmp"):
                # A flush that died before its rename: the block never became visible.
                self._fs.delete_dir(info.path)
                continue
            block = Block.open(self._fs, info.path)
            self._index.add(block.series())
            self._blocks.append(block)
        self._blocks.sort(key=lambda b: b.meta.seq)
        self._seq = max((b.meta.seq for b in self._blocks), default=0)

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
        try:
            self.flush()
        except BaseException:
            with self._lock:
                self._closing = False
            raise
        with self._lock:
            self._closed = True
        self._pool_threads.shutdown(wait=True)
        self._lockfile.release()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the database at {self.path} is closed; open it again with ta.open")

    def _check_writable(self) -> None:
        if self._closed or self._closing:
            raise ClosedError(
                f"the database at {self.path} is closed or closing; open it again with ta.open"
            )

    # -- writing -----------------------------------------------------------------------------

    def write(self, data: Any, *, metric: str | None = None) -> int:
        """Add samples from a long-format frame; returns how many rows were accepted.

        ``data`` is a pyarrow Table/RecordBatch or a Polars/pandas DataFrame with ``timestamp``
        (int64 ms or datetime), ``value`` (castable to float64) or ``histogram`` (an exponential
        histogram struct, see ``docs/sketches.md``), ``__name__`` (or ``metric=``) and one string
        column per label. A refused batch raises an ``InputError`` (or
        ``SeriesCollisionError``) and stores nothing.
        """
        self._check_writable()
        batch = normalize(data, metric=metric)
        if batch.num_rows == 0:
            return 0
        resolved = resolve_series(batch.labels, batch.num_rows)
        check_utf8(resolved.series)
        check_metric_names(resolved.series, resolved.row_refs)
        with self._lock:
            self._check_writable()
            self._index.add(resolved.series)
            if batch.histograms is not None:
                self._hist_head.append(resolved.row_refs, batch.timestamps, batch.histograms)
            else:
                self._head.append(resolved.row_refs, batch.timestamps, batch.values)
            due = self._flush_due()
        if due:
            try:
                self._flush(keep_last_window=due == "span")
            except Exception as exc:
                raise FlushError(
                    f"the {batch.num_rows} samples were accepted and are kept in the head, but "
                    f"the automatic flush failed ({exc}); fix the cause and call flush()",
                    accepted=batch.num_rows,
                ) from exc
        return batch.num_rows

    def _flush_due(self) -> str | None:
        heads = [h for h in (self._head, self._hist_head) if h.rows]
        if sum(h.nbytes for h in heads) > self.config.head_max_bytes:
            return "size"
        if heads:
            span = max(h.max_time for h in heads) - min(h.min_time for h in heads)
            if span > self.config.block_duration:
                return "span"
        return None

    def flush(self) -> list[str]:
        """Write everything in the head to blocks now; returns the new block ids."""
        self._check_open()
        return self._flush(keep_last_window=False)

    def _flush(self, *, keep_last_window: bool) -> list[str]:
        duration = self.config.block_duration
        with self._flush_lock:
            with self._lock:
                head, hist = self._head, self._hist_head
                if head.rows == 0 and hist.rows == 0:
                    return []
                self._head, self._hist_head = Head(self._pool), HistogramHead()
                self._flushing.append(head)
                self._hist_flushing.append(hist)
            floats: dict[int, Window] = {}
            hists: dict[int, HistogramWindow] = {}
            done: set[int] = set()
            written: list[str] = []
            try:
                floats = {w.start: w for w in cut(*head.columns(), duration)}
                h_refs, h_ts, h_fields = hist.columns()
                hists = {
                    start: HistogramWindow(start, h_refs[idx], h_ts[idx], h_fields.take(idx))
                    for start, idx in cut_rows(h_refs, h_ts, duration)
                }
                starts = sorted(floats.keys() | hists.keys())
                # With keep_last_window, the newest window is still filling: it stays in the head.
                keep = starts.pop() if keep_last_window and len(starts) > 1 else None
                for start in starts:
                    written.append(self._write_window(floats.get(start), hists.get(start)))
                    done.add(start)
            except BaseException:
                with self._lock:
                    # Nothing is lost and nothing doubled: what did not reach a block goes back
                    # in front of newer samples, for a retry.
                    self._flushing.remove(head)
                    self._hist_flushing.remove(hist)
                    if floats or hists:
                        self._head = self._rest(floats, done).followed_by(self._head)
                        self._hist_head = _rest_histograms(hists, done).followed_by(self._hist_head)
                        head.release()
                    else:
                        self._head = head.followed_by(self._head)
                        self._hist_head = hist.followed_by(self._hist_head)
                raise
            with self._lock:
                if keep in floats:
                    kept = Head(self._pool)
                    kept.append(floats[keep].refs, floats[keep].timestamps, floats[keep].values)
                    self._head = kept.followed_by(self._head)
                if keep in hists:
                    kept_h = HistogramHead()
                    kept_h.append(hists[keep].refs, hists[keep].timestamps, hists[keep].fields)
                    self._hist_head = kept_h.followed_by(self._hist_head)
                self._flushing.remove(head)
                self._hist_flushing.remove(hist)
                head.release()
            return written

    def _rest(self, floats: dict[int, Window], done: set[int]) -> Head:
        rest = Head(self._pool)
        for start in sorted(floats.keys() - done):
            rest.append(floats[start].refs, floats[start].timestamps, floats[start].values)
        return rest

    def _write_window(self, window: Window | None, hist: HistogramWindow | None) -> str:
        with self._lock:
            self._seq += 1
            seq = self._seq
            frame = self._index.frame
        refs = np.union1d(
            window.series_refs() if window is not None else np.empty(0, np.uint64),
            np.unique(hist.refs) if hist is not None else np.empty(0, np.uint64),
        )
        series = frame.filter(pl.Series(is_member(refs, frame[REF].to_numpy())))
        series = series.select(REF, *_present_labels(series))
        meta = write_block(
            self._fs,
            self._blocks_dir,
            seq,
            series.to_arrow(),
            self.config.chunk_samples,
            window=window,
            histograms=hist,
            pool=self._pool_threads,
        )
        block = Block.open(self._fs, f"{self._blocks_dir}/{meta.id}")
        with self._lock:
            self._blocks.append(block)
        return meta.id

    # -- reading -----------------------------------------------------------------------------

    def series(self, selector: str | None = None) -> pl.DataFrame:
        """Label sets of the series matching ``selector`` (all when None), one row each."""
        self._check_open()
        matchers = parse_selector(selector)
        with self._lock:
            frame = self._index.select(matchers)
        return frame.select(REF, *_present_labels(frame))

    def select(
        self,
        selector: str | None = None,
        *,
        start: Any = None,
        end: Any = None,
    ) -> pl.LazyFrame:
        """Samples of the matching series in [start, end] as a Polars LazyFrame.

        Columns: ``timestamp`` (Datetime ms UTC), ``value`` (Float64) and one String column per
        label name present, sorted by series then time. The series are those matching when
        ``select`` is called; their samples are read when the frame is collected.
        """
        self._check_open()
        lo, hi = to_ms(start, name="start"), to_ms(end, name="end")
        check_range(lo, hi)
        series = self.series(selector)
        return Scan(series, lo, hi, self._snapshot, self._cache, self._pool_threads).lazy()

    def select_histograms(
        self, selector: str | None = None, *, start: Any = None, end: Any = None
    ) -> pl.LazyFrame:
        """Histogram samples of the matching series in [start, end] as a Polars LazyFrame.

        Columns: ``timestamp`` (Datetime ms UTC), ``histogram`` (a struct with the fields of an
        OpenTelemetry exponential histogram, see ``docs/sketches.md``) and one String column per
        label, sorted by series then time. ``ta.sketch`` computes quantiles from it.
        """
        self._check_open()
        lo, hi = to_ms(start, name="start"), to_ms(end, name="end")
        check_range(lo, hi)
        return HistogramScan(self.series(selector), lo, hi, self._snapshot).lazy()

    def _snapshot(self) -> tuple[Snapshot, Callable[[], None]]:
        with self._lock:
            self._check_open()
            buffers = [
                (buf, buf.size) for head in [*self._flushing, self._head] for buf in head.buffers
            ]
            for buf, _ in buffers:
                self._pool.pin(buf)
            pieces = [p for h in [*self._hist_flushing, self._hist_head] for p in h.pieces]
            snap = Snapshot(tuple(self._blocks), tuple(buffers), tuple(pieces))

        def release() -> None:
            for buf, _ in buffers:
                self._pool.unpin(buf)

        return snap, release

    def export(
        self,
        selector: str | None,
        path: str | os.PathLike[str],
        *,
        start: Any = None,
        end: Any = None,
    ) -> int:
        """Write the selection as plain long-format Parquet (zstd); returns the rows written."""
        lf = self.select(selector, start=start, end=end)
        lf.sink_parquet(str(path), compression="zstd")
        return pl.scan_parquet(str(path)).select(pl.len()).collect().item()

    # -- stats -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts and sizes: series, samples, blocks, bytes on disk, head, cache and pool.

        ``samples`` counts stored samples: a sample later overwritten (same series and
        timestamp) counts until the blocks holding both are merged; ``select`` returns it once.
        """
        self._check_open()
        with self._lock:
            blocks = list(self._blocks)
            head_rows = self._head.rows + sum(h.rows for h in self._flushing)
            head_histograms = self._hist_head.rows + sum(h.rows for h in self._hist_flushing)
            n_series = len(self._index)
        block_samples = sum(b.meta.num_samples for b in blocks)
        on_disk = _blocks_bytes(self._fs, blocks)
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
        }


def _rest_histograms(hists: dict[int, HistogramWindow], done: set[int]) -> HistogramHead:
    rest = HistogramHead()
    for start in sorted(hists.keys() - done):
        rest.append(hists[start].refs, hists[start].timestamps, hists[start].fields)
    return rest


def _present_labels(frame: pl.DataFrame) -> list[str]:
    """Label columns that at least one row of ``frame`` has."""
    return [c for c in frame.columns if c != REF and frame[c].null_count() < frame.height]


def _blocks_bytes(fs: pafs.FileSystem, blocks: list[Block]) -> int:
    """Bytes of the files of ``blocks``: only their directories are listed, never a ``.tmp``
    directory that a concurrent flush is writing or renaming."""
    total = 0
    for block in blocks:
        selector = pafs.FileSelector(block.path, recursive=True, allow_not_found=True)
        total += sum(i.size for i in fs.get_file_info(selector) if i.type == pafs.FileType.File)
    return total


def open(path: str | os.PathLike[str], *, config: StorageConfig | None = None) -> Database:  # noqa: A001
    """Open (creating if needed) the data directory at ``path``."""
    return Database(path, config)
