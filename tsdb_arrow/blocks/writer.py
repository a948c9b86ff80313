"""Writing one block directory: series table, chunk table (encoded payloads), meta.json.

The directory is written under a temporary name, made durable and renamed into place
(``publish``), so a reader (or a crash) never sees half a block.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from concurrent.futures import Executor

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tsdb_arrow.blocks import codecs
from tsdb_arrow.blocks.codecs.zstd_stage import LEVEL as ZSTD_LEVEL
from tsdb_arrow.blocks.histograms import HISTOGRAMS_FILE, HistogramWindow, write_histograms
from tsdb_arrow.blocks.meta import CHUNKS_FILE, META_FILE, SERIES_FILE, TMP_SUFFIX, BlockMeta
from tsdb_arrow.errors import StorageError
from tsdb_arrow.ingest.cut import Window
from tsdb_arrow.jit import njit
from tsdb_arrow.model import REF

# Samples per Parquet row group of the chunk table: the unit that is decoded and cached at once.
ROW_GROUP_SAMPLES = 1 << 18

CHUNK_SCHEMA = pa.schema(
    [
        (REF, pa.uint64()),
        ("min_time", pa.int64()),
        ("max_time", pa.int64()),
        ("count", pa.int32()),
        ("ts_codec", pa.uint8()),
        ("timestamps", pa.large_binary()),
        ("value_codec", pa.uint8()),
        ("values", pa.large_binary()),
    ]
)


@njit(cache=True)
def chunk_offsets(refs: np.ndarray, chunk_samples: int) -> np.ndarray:
    """Chunk boundaries: a new chunk at each series change and every ``chunk_samples`` samples."""
    n = refs.shape[0]
    out = np.empty(n + 1, dtype=np.int64)
    k = 0
    run = 0
    for i in range(n):
        if i == 0 or refs[i] != refs[i - 1] or run == chunk_samples:
            out[k] = i
            k += 1
            run = 0
        run += 1
    out[k] = n
    return out[: k + 1]


def block_name(seq: int) -> str:
    """The directory name of the block flushed as ``seq``."""
    return f"b{seq:010d}"


def write_block(
    fs: pafs.FileSystem,
    blocks_dir: str,
    seq: int,
    series: pa.Table,
    chunk_samples: int,
    *,
    window: Window | None,
    histograms: HistogramWindow | None = None,
    pool: Executor | None = None,
    name: str | None = None,
    level: int = 1,
    sources: Sequence[str] = (),
    zstd_level: int = ZSTD_LEVEL,
) -> BlockMeta:
    """Encode one window's float samples (and histogram samples) as block ``seq``.

    The directory is ``name`` (default ``block_name(seq)``); ``level`` and ``sources`` are
    recorded in meta.json (a merged block's generation and the blocks it replaces). With a
    ``pool``, timestamps and values are encoded concurrently (the kernels release the GIL);
    ``zstd_level`` is the codecs' zstd stage effort (compaction spends more). On failure the
    temporary directory is removed and nothing is visible; an ``OSError`` (disk full,
    permissions) raises ``StorageError`` naming the block and what to do.
    """
    chunks, ends = _chunk_table(window, chunk_samples, pool, zstd_level)
    name = block_name(seq) if name is None else name
    tmp = f"{blocks_dir}/{name}{TMP_SUFFIX}"
    final = f"{blocks_dir}/{name}"
    try:
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_dir(tmp)  # left by an attempt that died: start afresh
        fs.create_dir(tmp, recursive=True)
        _write_chunks(fs, f"{tmp}/{CHUNKS_FILE}", chunks, ends)
        _write_series(fs, f"{tmp}/{SERIES_FILE}", series)
        times = [w.timestamps for w in (window, histograms) if w is not None and len(w.refs)]
        if histograms is not None and len(histograms.refs):
            write_histograms(fs, f"{tmp}/{HISTOGRAMS_FILE}", histograms)
        meta = BlockMeta(
            id=name,
            seq=seq,
            min_time=min(int(t.min()) for t in times),
            max_time=max(int(t.max()) for t in times),
            num_samples=len(window.refs) if window is not None else 0,
            num_series=series.num_rows,
            num_chunks=chunks.num_rows,
            chunk_samples=chunk_samples,
            codecs=codecs.codec_info(),
            num_histograms=len(histograms.refs) if histograms is not None else 0,
            level=level,
            sources=tuple(sources),
        )
        with fs.open_output_stream(f"{tmp}/{META_FILE}") as f:
            f.write(meta.to_json().encode())
        publish(fs, tmp, final, blocks_dir)
    except BaseException as exc:
        _discard(fs, tmp)  # the space back; a retry writes afresh
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise _storage_error(exc, name, blocks_dir) from exc
        raise
    return meta


def _discard(fs: pafs.FileSystem, tmp: str) -> None:
    """Delete a block's temporary directory, if any, after a failed write (one never created,
    or undeletable, is left: the next open removes it)."""
    with contextlib.suppress(OSError):
        fs.delete_dir(tmp)


# What to do about a failed block write, by errno.
_ADVICE = {
    errno.ENOSPC: "free space on that file system",
    errno.EDQUOT: "free space, or raise the disk quota of this user",
    errno.EACCES: "give this process write permission on {dir}",
    errno.EPERM: "give this process write permission on {dir}",
    errno.EROFS: "the file system is mounted read-only: remount it read-write",
}


def _storage_error(exc: OSError, name: str, blocks_dir: str) -> StorageError:
    """``exc`` as a ``StorageError`` naming the block, its directory and what to do."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    advice = _ADVICE.get(exc.errno or 0, "fix the cause").format(dir=blocks_dir)
    error = StorageError(
        f"cannot write block {name} in {blocks_dir}: {reason}; {advice}. Nothing acknowledged "
        "is lost: the samples stay where they were and the next write of them retries"
    )
    error.errno = exc.errno
    return error


def publish(fs: pafs.FileSystem, tmp: str, final: str, parent: str) -> None:
    """Make the directory ``tmp`` durable and visible as ``final`` (in ``parent``).

    Every file of ``tmp`` and ``tmp`` itself are fsynced, ``tmp`` is renamed to ``final``, then
    ``parent`` is fsynced so that the rename survives a power loss. The fsyncs need a local
    path: on other pyarrow filesystems (object stores) only the rename is done, and the store's
    own durability applies.
    """
    local = isinstance(fs, pafs.LocalFileSystem)
    if local:
        for info in fs.get_file_info(pafs.FileSelector(tmp, recursive=True)):
            if info.type == pafs.FileType.File:
                _fsync(info.path, directory=False)
        _fsync(tmp, directory=True)
    fs.move(tmp, final)
    if local:
        _fsync(parent, directory=True)


def _fsync(path: str, *, directory: bool) -> None:
    if directory and not hasattr(os, "O_DIRECTORY"):
        return  # directories cannot be opened for fsync there (Windows); renames are durable
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_series(fs: pafs.FileSystem, path: str, series: pa.Table) -> None:
    """The series table: dictionary pages for the labels only (refs are distinct hashes), and
    statistics for ``series_ref`` only (label statistics would only grow the footer)."""
    labels = [name for name in series.column_names if name != REF]
    pq.write_table(
        series,
        path,
        filesystem=fs,
        compression="zstd",
        write_page_checksum=True,
        use_dictionary=labels,
        write_statistics=[REF],
    )


def _chunk_table(
    window: Window | None, chunk_samples: int, pool: Executor | None, zstd_level: int
) -> tuple[pa.Table, np.ndarray]:
    if window is None or len(window.refs) == 0:
        return CHUNK_SCHEMA.empty_table(), np.empty(0, np.int64)
    offsets = chunk_offsets(window.refs, chunk_samples)
    starts, ends = offsets[:-1], offsets[1:]
    level = {"zstd_level": zstd_level}
    if pool is not None:
        ts_job = pool.submit(codecs.encode_timestamps, window.timestamps, offsets, **level)
        val_ids, val_payloads = codecs.encode_values(window.values, offsets, **level)
        ts_ids, ts_payloads = ts_job.result()
    else:
        ts_ids, ts_payloads = codecs.encode_timestamps(window.timestamps, offsets, **level)
        val_ids, val_payloads = codecs.encode_values(window.values, offsets, **level)
    chunks = pa.Table.from_arrays(
        [
            pa.array(window.refs[starts], pa.uint64()),
            pa.array(np.minimum.reduceat(window.timestamps, starts)),
            pa.array(np.maximum.reduceat(window.timestamps, starts)),
            pa.array((ends - starts).astype(np.int32)),
            pa.array(ts_ids, pa.uint8()),
            ts_payloads,
            pa.array(val_ids, pa.uint8()),
            val_payloads,
        ],
        schema=CHUNK_SCHEMA,
    )
    return chunks, ends


def _write_chunks(fs: pafs.FileSystem, path: str, chunks: pa.Table, ends: np.ndarray) -> None:
    """Write the chunk table in row groups of about ROW_GROUP_SAMPLES samples each."""
    if chunks.num_rows == 0:
        pq.write_table(chunks, path, filesystem=fs, compression="zstd", write_page_checksum=True)
        return
    cuts = np.searchsorted(ends, np.arange(ROW_GROUP_SAMPLES, ends[-1], ROW_GROUP_SAMPLES))
    bounds = np.unique(np.concatenate(([0], cuts + 1, [chunks.num_rows])))
    bounds = bounds[bounds <= chunks.num_rows]
    with pq.ParquetWriter(
        path,
        CHUNK_SCHEMA,
        filesystem=fs,
        compression="zstd",
        write_page_checksum=True,  # a flipped bit is an error on read, not a wrong sample
        use_dictionary=["timestamps", "values"],  # payloads shared by many series stored once
        write_statistics=[REF, "min_time", "max_time"],
    ) as writer:
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            writer.write_table(chunks.slice(lo, hi - lo), row_group_size=hi - lo)
