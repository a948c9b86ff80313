"""Writing one block directory: series table, chunk table (encoded payloads), meta.json.

The directory is written under a temporary name and renamed into place, so a reader (or a crash)
never sees half a block.
"""

from __future__ import annotations

import errno
import os
from concurrent.futures import Executor

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tsdb_arrow.blocks import codecs
from tsdb_arrow.blocks.histograms import HISTOGRAMS_FILE, HistogramWindow, write_histograms
from tsdb_arrow.blocks.meta import CHUNKS_FILE, META_FILE, SERIES_FILE, BlockMeta
from tsdb_arrow.errors import StorageError
from tsdb_arrow.ingest.cut import Window
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


@nb.njit(cache=True)
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
) -> BlockMeta:
    """Encode one window's float samples (and histogram samples) as block ``seq``.

    With a ``pool``, timestamps and values are encoded concurrently (the kernels release the GIL).
    An ``OSError`` (disk full, permissions) raises ``StorageError`` and leaves no ``.tmp``
    directory behind.
    """
    name = block_name(seq)
    try:
        return _write_block(
            fs,
            blocks_dir,
            seq,
            series,
            chunk_samples,
            window=window,
            histograms=histograms,
            pool=pool,
        )
    except BaseException as exc:
        _discard(fs, f"{blocks_dir}/{name}.tmp")  # space back; the retry writes a new name
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise _storage_error(exc, name, blocks_dir) from exc
        raise


def _discard(fs: pafs.FileSystem, tmp: str) -> None:
    """Delete a block's temporary directory, if any, after a failed write."""
    try:
        fs.delete_dir(tmp)
    except OSError:
        pass  # never created, or undeletable: the next open removes it


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
        "is lost: the samples stay where they were and the next flush retries"
    )
    error.errno = exc.errno
    return error


def _write_block(
    fs: pafs.FileSystem,
    blocks_dir: str,
    seq: int,
    series: pa.Table,
    chunk_samples: int,
    *,
    window: Window | None,
    histograms: HistogramWindow | None,
    pool: Executor | None,
) -> BlockMeta:
    chunks, ends = _chunk_table(window, chunk_samples, pool)
    name = block_name(seq)
    tmp = f"{blocks_dir}/{name}.tmp"
    final = f"{blocks_dir}/{name}"
    fs.create_dir(tmp, recursive=True)
    _write_chunks(fs, f"{tmp}/{CHUNKS_FILE}", chunks, ends)
    pq.write_table(series, f"{tmp}/{SERIES_FILE}", filesystem=fs, compression="zstd")
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
    )
    with fs.open_output_stream(f"{tmp}/{META_FILE}") as f:
        f.write(meta.to_json().encode())
    fs.move(tmp, final)
    return meta


def _chunk_table(
    window: Window | None, chunk_samples: int, pool: Executor | None
) -> tuple[pa.Table, np.ndarray]:
    if window is None or len(window.refs) == 0:
        return CHUNK_SCHEMA.empty_table(), np.empty(0, np.int64)
    offsets = chunk_offsets(window.refs, chunk_samples)
    starts, ends = offsets[:-1], offsets[1:]
    if pool is not None:
        ts_job = pool.submit(codecs.encode_timestamps, window.timestamps, offsets)
        val_ids, val_payloads = codecs.encode_values(window.values, offsets)
        ts_ids, ts_payloads = ts_job.result()
    else:
        ts_ids, ts_payloads = codecs.encode_timestamps(window.timestamps, offsets)
        val_ids, val_payloads = codecs.encode_values(window.values, offsets)
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
        pq.write_table(chunks, path, filesystem=fs, compression="zstd")
        return
    cuts = np.searchsorted(ends, np.arange(ROW_GROUP_SAMPLES, ends[-1], ROW_GROUP_SAMPLES))
    bounds = np.unique(np.concatenate(([0], cuts + 1, [chunks.num_rows])))
    bounds = bounds[bounds <= chunks.num_rows]
    with pq.ParquetWriter(
        path,
        CHUNK_SCHEMA,
        filesystem=fs,
        compression="zstd",
        use_dictionary=["timestamps", "values"],  # payloads shared by many series stored once
        write_statistics=[REF, "min_time", "max_time"],
    ) as writer:
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            writer.write_table(chunks.slice(lo, hi - lo), row_group_size=hi - lo)
