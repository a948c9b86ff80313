"""The zstd stage: a general-purpose compressor on top of a byte-aligned payload where it pays.

The only per-chunk Python loop of the codecs (one zstd call per chunk), so it runs only for chunks
whose best plain-kernel payload is at least ``MIN_INPUT_BYTES`` long.
"""

from __future__ import annotations

import numpy as np
import zstandard

#: zstd level of chunk payloads as flushed; 3 is zstd's default, higher levels cost encode speed
#: for ~1-2 % (decoding speed does not depend on it).
LEVEL = 3
#: zstd level of merged blocks: compaction runs in the background and writes each sample once
#: more, so it spends ~3x the encode time of LEVEL for ~4 % smaller value payloads.
COMPACTION_LEVEL = 15
#: Chunks whose best payload is smaller than this are not offered to zstd (its frame header
#: alone is ~6 bytes and a call costs a few microseconds).
MIN_INPUT_BYTES = 64
#: Bytes an inner payload may have beyond 8 per sample (headers of the integer packer).
_HEADER_SLACK = 64
#: multi_compress_to_buffer is only in python-zstandard's C backend
_HAS_BATCH = hasattr(zstandard, "BufferWithSegments") and hasattr(
    zstandard.ZstdCompressor, "multi_compress_to_buffer"
)


def compress_each(
    offsets: np.ndarray, data: np.ndarray, limits: np.ndarray, level: int = LEVEL
) -> list[bytes | None]:
    """zstd-compress every payload ``data[offsets[j]:offsets[j+1]]`` at ``level``; ``None``
    where the frame would not be smaller than ``limits[j]``."""
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=False, write_content_size=True)
    n = len(limits)
    if n == 0:
        return []
    if _HAS_BATCH:
        # One C call for all payloads (single-threaded; the same frames as ``cctx.compress``),
        # instead of one Python-level call and bytes object per chunk.
        segments = np.empty((n, 2), dtype=np.uint64)
        segments[:, 0] = offsets[:-1]
        segments[:, 1] = np.diff(offsets)
        batch = cctx.multi_compress_to_buffer(
            zstandard.BufferWithSegments(np.ascontiguousarray(data), segments.tobytes()),
            threads=0,
        )
        frames: list[bytes | None] = [None] * n
        for j in range(n):
            seg = batch[j]
            if len(seg) < limits[j]:
                frames[j] = seg.tobytes()
        return frames
    frames = []
    for j in range(n):
        frame = cctx.compress(data[offsets[j] : offsets[j + 1]])
        frames.append(frame if len(frame) < limits[j] else None)
    return frames


def decompress_selected(
    selected: np.ndarray, offsets: np.ndarray, data: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Decompress the payloads of the chunks flagged in ``selected`` into one side buffer.

    Returns ``(aux_offsets int64[n+1], aux_data uint8, bad)`` with empty entries for unflagged
    chunks; ``bad`` is the first chunk whose frame is not valid zstd or is too big, else -1.
    """
    n = len(selected)
    if not selected.any():  # the usual case: no decompressor context to set up
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.uint8), -1
    sizes = np.zeros(n, dtype=np.int64)
    parts: list[bytes] = []
    dctx = zstandard.ZstdDecompressor()
    for j in np.flatnonzero(selected):
        frame = data[offsets[j] : offsets[j + 1]]
        bound = 8 * int(counts[j]) + _HEADER_SLACK
        try:
            content = zstandard.frame_content_size(frame)
            if content > bound:
                return sizes, np.zeros(0, np.uint8), int(j)
            raw = dctx.decompress(frame, max_output_size=bound)
        except zstandard.ZstdError:
            return sizes, np.zeros(0, np.uint8), int(j)
        sizes[j] = len(raw)
        parts.append(raw)
    aux_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=aux_offsets[1:])
    aux_data = np.frombuffer(b"".join(parts), dtype=np.uint8) if parts else np.zeros(0, np.uint8)
    return aux_offsets, aux_data, -1


def offer(
    sub_offsets: np.ndarray,
    sub: np.ndarray,
    cand: np.ndarray,
    zstd_ids: np.ndarray,
    ids: np.ndarray,
    sizes: np.ndarray,
    level: int = LEVEL,
) -> dict[int, bytes]:
    """Compress the candidates' stage inputs; where a frame beats ``sizes``, switch the chunk
    to its zstd codec (``zstd_ids``, one per candidate) and return the frame by chunk index."""
    chosen: dict[int, bytes] = {}
    for j, frame in enumerate(compress_each(sub_offsets, sub, sizes[cand], level)):
        if frame is not None:
            c = int(cand[j])
            chosen[c] = frame
            ids[c] = zstd_ids[j]
            sizes[c] = len(frame)
    return chosen
