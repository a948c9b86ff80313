"""Reading a block: its series table, an in-memory index of its chunks, and decoded row groups."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tsdb_arrow.blocks import codecs
from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.blocks.histograms import HISTOGRAMS_FILE, histogram_times, read_histograms
from tsdb_arrow.blocks.meta import CHUNKS_FILE, SERIES_FILE, BlockMeta
from tsdb_arrow.errors import CodecError, CorruptBlockError
from tsdb_arrow.model import REF, numpy_of

INDEX_COLUMNS = [REF, "min_time", "max_time", "count"]
_CODEC_COLUMNS = {"timestamps": "ts_codec", "values": "value_codec"}


@dataclass(frozen=True)
class ChunkIndex:
    """One entry per chunk, in file order: which series, what time span, where in the file."""

    refs: np.ndarray  # uint64
    min_time: np.ndarray  # int64
    max_time: np.ndarray  # int64
    counts: np.ndarray  # int64
    row_group: np.ndarray  # int32: row group holding the chunk
    sample_offset: np.ndarray  # int64: first sample of the chunk within its decoded row group


@dataclass(frozen=True)
class _Payloads:
    """A row group's payloads as a ``ChunkCache`` entry (which counts ``nbytes``)."""

    read: dict[str, tuple[np.ndarray, pa.Array]]

    @property
    def nbytes(self) -> int:
        return sum(ids.nbytes + payloads.nbytes for ids, payloads in self.read.values())


class Block:
    """A block directory opened for reading; payloads are decoded per row group, on demand."""

    def __init__(self, fs: pafs.FileSystem, path: str, meta: BlockMeta) -> None:
        self.fs = fs
        self.path = path
        self.meta = meta
        self.reads = 0  # row-group payload reads from the file, for stats and tests
        self._read_lock = threading.Lock()  # a ParquetFile is not safe for concurrent reads
        # Open only while a reader holds the block (see BlockSet); the footer is parsed once.
        self._file: pq.ParquetFile | None = None
        self._series_refs: np.ndarray | None = None
        try:
            with pq.ParquetFile(
                f"{path}/{CHUNKS_FILE}", filesystem=fs, page_checksum_verification=True
            ) as file:
                self._metadata = file.metadata
                # Through Polars: pyarrow's to_numpy imports pandas (when installed) on first
                # use, a large part of a cold start's cost.
                index = pl.from_arrow(file.read(columns=INDEX_COLUMNS))
        except (OSError, pa.ArrowInvalid) as exc:
            raise CorruptBlockError(f"cannot read {path}/{CHUNKS_FILE}: {exc}") from exc
        counts = index["count"].to_numpy().astype(np.int64)
        rg_rows = [
            self._metadata.row_group(i).num_rows for i in range(self._metadata.num_row_groups)
        ]
        row_group = np.repeat(np.arange(len(rg_rows), dtype=np.int32), rg_rows)
        starts = np.cumsum(counts) - counts
        rg_first = np.concatenate(([0], np.cumsum(rg_rows)[:-1])).astype(np.int64)
        rg_base = starts[rg_first[row_group]] if len(counts) else starts
        self.index = ChunkIndex(
            refs=index[REF].to_numpy(),
            min_time=index["min_time"].to_numpy(),
            max_time=index["max_time"].to_numpy(),
            counts=counts,
            row_group=row_group,
            sample_offset=starts - rg_base,
        )
        self._rg_chunks = np.concatenate(([0], np.cumsum(rg_rows))).astype(np.int64)

    @classmethod
    def open(cls, fs: pafs.FileSystem, path: str) -> Block:
        return cls(fs, path, BlockMeta.read(fs, path))

    def histograms(self, refs: np.ndarray, t_lo: int, t_hi: int) -> pa.Table | None:
        """This block's histogram samples of ``refs`` in [t_lo, t_hi], or None if it has none."""
        if self.meta.num_histograms == 0:
            return None
        return read_histograms(self.fs, f"{self.path}/{HISTOGRAMS_FILE}", refs, t_lo, t_hi)

    def histogram_times(self, t_lo: int, t_hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The refs and timestamps of this block's histogram samples in [t_lo, t_hi]."""
        if self.meta.num_histograms == 0:
            return np.empty(0, np.uint64), np.empty(0, np.int64)
        return histogram_times(self.fs, f"{self.path}/{HISTOGRAMS_FILE}", t_lo, t_hi)

    def series_refs(self) -> np.ndarray:
        """The refs of the series this block holds (floats or histograms), sorted; read once."""
        if self._series_refs is None:
            self._series_refs = np.sort(numpy_of(self.series().column(REF)))
        return self._series_refs

    def remember_series_refs(self, refs: np.ndarray) -> None:
        """Keep the refs of the series table the caller has read or written (not read again)."""
        self._series_refs = np.sort(refs)

    def series(self) -> pa.Table:
        """The block's series table: ``series_ref`` and one string column per label name."""
        try:
            # ParquetFile, not read_table: one file needs no pyarrow.dataset (nor its import).
            with pq.ParquetFile(
                f"{self.path}/{SERIES_FILE}", filesystem=self.fs, page_checksum_verification=True
            ) as file:
                return file.read()
        except (OSError, pa.ArrowInvalid) as exc:
            raise CorruptBlockError(f"cannot read {self.path}/{SERIES_FILE}: {exc}") from exc

    def samples(self, pool: Executor | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every float sample of the block, sorted by (ref, timestamp): refs, timestamps, values.

        For compaction, which reads each block once: see :meth:`samples_into`.
        """
        n = self.meta.num_samples
        ts, values = np.empty(n, np.int64), np.empty(n, np.float64)
        return self.samples_into(ts, values, pool), ts, values

    def samples_into(
        self, ts: np.ndarray, values: np.ndarray, pool: Executor | None = None
    ) -> np.ndarray:
        """Decode every timestamp and value of the block into ``ts`` and ``values`` (each
        ``meta.num_samples`` long); return the ref of each sample.

        Whole row groups are decoded (on ``pool`` when given) past any cache. A chunk index
        whose counts disagree with ``meta.num_samples`` or the output means a damaged block
        and raises ``CorruptBlockError``.
        """
        counts = self.index.counts
        total = int(counts.sum())
        if not total == len(ts) == len(values) == self.meta.num_samples:
            raise CorruptBlockError(
                f"{self.path}/{CHUNKS_FILE} indexes {total} samples, meta.json says "
                f"{self.meta.num_samples}"
            )
        starts = np.cumsum(counts) - counts
        outs = {"timestamps": ts, "values": values}

        def job(rg: int, column: str) -> None:
            lo, hi = self.chunk_range(rg)
            read = self.payloads(rg, column)
            self.decode_into(rg, column, read, np.arange(lo, hi), outs[column], starts[lo:hi])

        jobs = [(rg, col) for rg in range(self.num_row_groups) for col in outs]
        if pool is None:
            for rg, col in jobs:
                job(rg, col)
        else:
            for future in [pool.submit(job, rg, col) for rg, col in jobs]:
                future.result()
        return np.repeat(self.index.refs, counts)

    def decoded(self, rg: int, column: str, cache: ChunkCache) -> np.ndarray:
        """All samples of one row group's ``timestamps`` or ``values``, decoded (cached)."""
        return cache.get_or_load((self.meta.id, rg, column), lambda: self._decode(rg, column))

    def nbytes(self) -> int:
        """Bytes of the block's files on disk."""
        selector = pafs.FileSelector(self.path, recursive=True, allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        return sum(i.size for i in infos if i.type == pafs.FileType.File)

    @property
    def num_row_groups(self) -> int:
        return self._metadata.num_row_groups

    def open_file(self) -> None:
        """Open the chunk file for reading (a no-op when open): the block set opens it when a
        reader takes hold of the block, so that a block deleted later stays readable."""
        with self._read_lock:
            self._open_locked()

    def _open_locked(self) -> pq.ParquetFile:
        if self._file is None:
            try:
                # No pre-buffering: it hands each read to Arrow's I/O threads and back, which
                # costs more than the read itself for a query that reads on its own pool.
                self._file = pq.ParquetFile(
                    f"{self.path}/{CHUNKS_FILE}",
                    filesystem=self.fs,
                    metadata=self._metadata,
                    pre_buffer=False,
                    page_checksum_verification=True,
                )
            except (OSError, pa.ArrowInvalid) as exc:
                raise CorruptBlockError(
                    f"cannot open {self.path}/{CHUNKS_FILE}: {exc}; the block was removed or "
                    "damaged since it was opened"
                ) from exc
        return self._file

    def close(self) -> None:
        """Close the chunk file (the block set does when no reader holds the block)."""
        with self._read_lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def chunk_range(self, rg: int) -> tuple[int, int]:
        """Block-wide indices ``[lo, hi)`` of the chunks in row group ``rg``."""
        return int(self._rg_chunks[rg]), int(self._rg_chunks[rg + 1])

    def locate_chunks(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Block-wide chunk indices as (row group, index within the row group)."""
        rg = self.index.row_group[chunks].astype(np.int64)
        return rg, chunks - self._rg_chunks[rg]

    def payloads(self, rg: int, column: str) -> tuple[np.ndarray, pa.Array]:
        """One row group's codec ids and encoded ``timestamps`` or ``values``, as stored."""
        return self.read_payloads(rg, (column,))[column]

    def stored(
        self, rg: int, columns: tuple[str, ...], cache: ChunkCache
    ) -> dict[str, tuple[np.ndarray, pa.Array]]:
        """:meth:`read_payloads`, kept in ``cache`` (for readers that send payloads as stored)."""
        key = (self.meta.id, rg, "payloads", columns)
        return cache.get_or_load(key, lambda: _Payloads(self.read_payloads(rg, columns))).read

    def read_payloads(
        self, rg: int, columns: tuple[str, ...]
    ) -> dict[str, tuple[np.ndarray, pa.Array]]:
        """:meth:`payloads` of each of ``columns`` (timestamps, values), in one read."""
        names = [name for column in columns for name in (_CODEC_COLUMNS[column], column)]
        with self._read_lock:
            file = self._open_locked()  # open already when a reader holds the block
            # Single-threaded: queries already read row groups in parallel on their own pool,
            # and Arrow's thread pool would only add hand-offs (twice the CPU time here).
            try:
                table = file.read_row_group(rg, columns=names, use_threads=False)
            except (OSError, pa.ArrowInvalid) as exc:
                raise CorruptBlockError(
                    f"cannot read row group {rg} of {self.path}/{CHUNKS_FILE}: {exc}"
                ) from exc
            self.reads += len(columns)
        read = {}
        for column in columns:
            payloads = table[column]
            if payloads.num_chunks == 1:
                payloads = payloads.chunk(0)
            read[column] = (self._codec_ids(rg, table[_CODEC_COLUMNS[column]]), payloads)
        return read

    def _codec_ids(self, rg: int, ids: pa.ChunkedArray) -> np.ndarray:
        """The uint8 codec ids as numpy, zero-copy for one chunk (not through pyarrow's
        to_numpy, which imports pandas when installed: a cold start's cost)."""
        if ids.null_count or ids.type != pa.uint8():
            raise CorruptBlockError(
                f"{self.path}/{CHUNKS_FILE} row group {rg}: codec ids must be non-null uint8, "
                f"got {ids.type} with {ids.null_count} nulls"
            )
        parts = [
            np.frombuffer(c.buffers()[1], np.uint8)[c.offset : c.offset + len(c)]
            for c in ids.chunks
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts or [np.zeros(0, np.uint8)])

    def decode_into(
        self,
        rg: int,
        column: str,
        read: tuple[np.ndarray, pa.Array],
        chunks: np.ndarray,
        out: np.ndarray,
        out_starts: np.ndarray,
    ) -> None:
        """Decode chunks ``chunks`` (block-wide indices, all in row group ``rg``) of ``read``
        (from :meth:`payloads`) straight into ``out`` at ``out_starts``."""
        lo, hi = self.chunk_range(rg)
        ids, payloads = read
        local = np.asarray(chunks, dtype=np.int64) - lo
        decode = (
            codecs.decode_timestamps_into if column == "timestamps" else codecs.decode_values_into
        )
        with self._corrupt_if_refused(rg):
            decode(ids, payloads, self.index.counts[lo:hi], out, local, out_starts)

    def _decode(self, rg: int, column: str) -> np.ndarray:
        lo, hi = self.chunk_range(rg)
        ids, payloads = self.payloads(rg, column)
        decode = codecs.decode_timestamps if column == "timestamps" else codecs.decode_values
        with self._corrupt_if_refused(rg):
            return decode(ids, payloads, self.index.counts[lo:hi])

    @contextmanager
    def _corrupt_if_refused(self, rg: int) -> Iterator[None]:
        """A codec refusing a stored payload means the block is damaged: say which one."""
        try:
            yield
        except CodecError as exc:
            raise CorruptBlockError(f"{self.path}/{CHUNKS_FILE} row group {rg}: {exc}") from exc
