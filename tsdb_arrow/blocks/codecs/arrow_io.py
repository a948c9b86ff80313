"""Zero-copy access to Arrow binary columns and building the encoded payload column."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import IntEnum

import numpy as np
import pyarrow as pa

from tsdb_arrow.errors import CodecError


def iter_binary_chunks(
    payloads: pa.Array | pa.ChunkedArray,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(offsets, data)`` numpy views of every Arrow chunk of a binary column.

    ``offsets`` has ``len + 1`` entries (int32 for ``binary``, int64 for ``large_binary``),
    already shifted by the array's slice offset; ``data`` is the whole values buffer (uint8).
    """
    arrays = payloads.chunks if isinstance(payloads, pa.ChunkedArray) else [payloads]
    for arr in arrays:
        if pa.types.is_binary(arr.type):
            offset_type = np.int32
        elif pa.types.is_large_binary(arr.type):
            offset_type = np.int64
        else:
            raise CodecError(
                f"chunk payloads must be binary or large_binary, got {arr.type}; "
                "read the payload column without casting it"
            )
        if arr.null_count:
            first_null = int(np.flatnonzero(~np.asarray(arr.is_valid()))[0])
            raise CodecError(
                f"chunk payload {first_null} of this array is null; the block is corrupt"
            )
        buffers = arr.buffers()
        n = len(arr)
        if n == 0:
            continue
        offsets = np.frombuffer(buffers[1], dtype=offset_type, count=arr.offset + n + 1)
        offsets = offsets[arr.offset :]
        data = (
            np.frombuffer(buffers[2], dtype=np.uint8)
            if buffers[2] is not None
            else np.zeros(0, dtype=np.uint8)
        )
        yield offsets, data


def binary_buffers(payloads: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, data)`` numpy views of a binary column, its Arrow chunks combined if several.

    Validated as :func:`iter_binary_chunks` does; zero-copy for a single chunk (the usual case:
    one Parquet row group read is one chunk).
    """
    parts = list(iter_binary_chunks(payloads))
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    assert isinstance(payloads, pa.ChunkedArray)
    return next(iter_binary_chunks(payloads.combine_chunks()))


def check_targets(
    chunks: np.ndarray | None,
    out_starts: np.ndarray | None,
    counts: np.ndarray,
    out: np.ndarray,
    dtype: type,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate where the decoders write: chunk ``chunks[j]`` goes to ``out[out_starts[j]:]``.

    ``None`` for both means every chunk, one after another from ``out[0]``. Returns int64
    ``(chunks, out_starts)``; every target range must lie inside ``out`` (the kernels do not
    check bounds).
    """
    if out.dtype != dtype or out.ndim != 1 or not out.flags.c_contiguous or not out.flags.writeable:
        raise CodecError(f"out must be a writable contiguous 1-D {np.dtype(dtype).name} array")
    if chunks is None or out_starts is None:
        if chunks is not None or out_starts is not None:
            raise CodecError("give both chunks and out_starts, or neither")
        chunks = np.arange(len(counts), dtype=np.int64)
        out_starts = np.cumsum(counts) - counts
    chunks = np.ascontiguousarray(chunks, dtype=np.int64)
    out_starts = np.ascontiguousarray(out_starts, dtype=np.int64)
    if chunks.ndim != 1 or chunks.shape != out_starts.shape:
        raise CodecError("chunks and out_starts must be 1-D with one entry each")
    if len(chunks) == 0:
        return chunks, out_starts
    if chunks.min() < 0 or chunks.max() >= len(counts):
        raise CodecError(f"chunk indices must lie in [0, {len(counts)})")
    if out_starts.min() < 0 or (out_starts + counts[chunks]).max() > len(out):
        raise CodecError(f"a chunk's samples would not fit in out ({len(out)} samples)")
    return chunks, out_starts


def to_large_binary(offsets: np.ndarray, data: np.ndarray) -> pa.LargeBinaryArray:
    """Wrap int64 ``offsets`` and uint8 ``data`` as a LargeBinaryArray without copying."""
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def check_chunks(
    samples: np.ndarray, offsets: np.ndarray, dtype: type, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validate the encoder input (1-D samples, int64 offsets with non-empty chunks)."""
    samples = np.ascontiguousarray(samples)
    if samples.dtype != dtype or samples.ndim != 1:
        raise CodecError(
            f"{what} must be a 1-D {np.dtype(dtype).name} array, got {samples.dtype} "
            f"with {samples.ndim} dimensions"
        )
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(samples):
        raise CodecError(f"offsets must start at 0 and end at len({what}) = {len(samples)}")
    steps = np.diff(offsets)
    if len(steps) and steps.min() <= 0:
        bad = int(np.flatnonzero(steps <= 0)[0])
        raise CodecError(f"chunk {bad} is empty or offsets decrease; every chunk needs a sample")
    return samples, offsets


def check_decode_args(
    codec_ids: np.ndarray, payloads: pa.Array | pa.ChunkedArray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate decoder input; return (codec_ids uint8, counts int64, output offsets int64)."""
    codec_ids = np.ascontiguousarray(codec_ids, dtype=np.uint8)
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    if not (len(codec_ids) == len(counts) == len(payloads)):
        raise CodecError(
            f"codec_ids ({len(codec_ids)}), payloads ({len(payloads)}) and counts "
            f"({len(counts)}) must have one entry per chunk"
        )
    if len(counts) and counts.min() <= 0:
        bad = int(np.flatnonzero(counts <= 0)[0])
        raise CodecError(f"chunk {bad} has sample count {counts[bad]}; counts must be positive")
    out_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out_offsets[1:])
    return codec_ids, counts, out_offsets


def allowed_ids(codecs: type[IntEnum], codec: IntEnum | None) -> np.ndarray:
    """A 256-entry mask of the ids the chooser may pick: all of ``codecs``, or just ``codec``."""
    allowed = np.zeros(256, dtype=np.bool_)
    if codec is None:
        allowed[[int(c) for c in codecs]] = True
    else:
        allowed[int(codecs(codec))] = True
    return allowed


def assemble(
    sizes: np.ndarray,
    frames: dict[int, bytes],
    emit: Callable[[np.ndarray, np.ndarray], None],
) -> pa.LargeBinaryArray:
    """One payload per chunk: ``emit(offsets, out)`` writes the non-zstd payloads in place,
    then the zstd frames are copied into their slots."""
    out_offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=out_offsets[1:])
    out = np.zeros(int(out_offsets[-1]), dtype=np.uint8)
    emit(out_offsets, out)
    for c, frame in frames.items():
        out[out_offsets[c] : out_offsets[c + 1]] = np.frombuffer(frame, dtype=np.uint8)
    return to_large_binary(out_offsets, out)
