"""Timestamp chunks: the per-chunk chooser and the many-chunk encode/decode kernels."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tsdb_arrow.blocks.codecs import dod, intpack, plain, rle, zstd_stage
from tsdb_arrow.blocks.codecs.arrow_io import (
    allowed_ids,
    assemble,
    check_chunks,
    check_decode_args,
)
from tsdb_arrow.blocks.codecs.decoding import decode_inputs
from tsdb_arrow.blocks.codecs.ids import TimestampCodec
from tsdb_arrow.blocks.codecs.status import OK, UNKNOWN, raise_for_status
from tsdb_arrow.jit import njit

_PLAIN = np.uint8(TimestampCodec.PLAIN)
_DOD = np.uint8(TimestampCodec.DOD)
_RLE = np.uint8(TimestampCodec.RLE)
_PACKED = np.uint8(TimestampCodec.PACKED)
_PACKED_ZSTD = np.uint8(TimestampCodec.PACKED_ZSTD)
_NONE = np.int64(1) << np.int64(62)  # size of a codec that is not allowed


@njit(cache=True, nogil=True)
def _choose(
    ts: np.ndarray,
    offsets: np.ndarray,
    allowed: np.ndarray,
    params: np.ndarray,
    ids: np.ndarray,
    sizes: np.ndarray,
    planar_sizes: np.ndarray,
    estimates: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Per chunk: the smallest allowed plain-kernel codec and its size; the PACKED byte-plane
    size (the zstd stage's input) and the estimated zstd frame size of big chunks."""
    for c in range(offsets.shape[0] - 1):
        x = ts[offsets[c] : offsets[c + 1]]
        n = x.shape[0]
        best_id = _PLAIN
        best = plain.size(n) if allowed[_PLAIN] else _NONE
        # PACKED is sized before RLE so that the RLE scan can stop once it is beaten; on a tie
        # RLE still wins, as when it was sized first (the smallest, earliest-listed codec wins).
        packed = _NONE
        if allowed[_PACKED] or allowed[_PACKED_ZSTD]:
            p = params[c]
            s = intpack.analyze(x, p)
            k = n - intpack.order(p[0])
            planar_sizes[c] = (
                s - intpack.payload_bytes(k, p[4], False) + intpack.payload_bytes(k, p[4], True)
            )
            packed = s
        if allowed[_RLE]:
            s = rle.delta_size_capped(x, min(best, packed))
            if s < best:
                best_id, best = _RLE, s
        if packed < best:
            best_id, best = _PACKED, packed
        if allowed[_DOD] and 8 + (n + 6) // 8 < best:
            s = dod.size(x)
            if s < best:
                best_id, best = _DOD, s
        ids[c] = best_id
        sizes[c] = best
        estimates[c] = _NONE
        if allowed[_PACKED_ZSTD] and best >= zstd_stage.MIN_INPUT_BYTES:
            p = params[c]
            k = n - intpack.order(p[0])
            u = scratch[: max(k, 0)]
            intpack.fields(x, p[0], p[1], p[2], np.uint64(p[3]), u)
            estimates[c] = intpack.planar_estimate_below(u, p[4], best)


@njit(cache=True, nogil=True)
def _emit(
    ts: np.ndarray,
    offsets: np.ndarray,
    ids: np.ndarray,
    params: np.ndarray,
    out_offsets: np.ndarray,
    out: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Write every chunk whose id is a plain-kernel codec at ``out[out_offsets[c]]``."""
    for c in range(offsets.shape[0] - 1):
        x = ts[offsets[c] : offsets[c + 1]]
        pos = out_offsets[c]
        cid = ids[c]
        if cid == _RLE:
            rle.delta_encode(x, out, pos)
        elif cid == _PACKED:
            intpack.encode(x, params[c], out, pos, False, scratch)
        elif cid == _DOD:
            dod.encode(x, out, pos)
        elif cid == _PLAIN:
            plain.encode(x, out, pos)


@njit(cache=True, nogil=True)
def _decode(
    ids: np.ndarray,
    offsets: np.ndarray,
    data: np.ndarray,
    aux_offsets: np.ndarray,
    aux_data: np.ndarray,
    chunks: np.ndarray,
    counts: np.ndarray,
    out_starts: np.ndarray,
    out: np.ndarray,
) -> tuple[int, int]:
    """Decode chunk ``chunks[j]`` into ``out[out_starts[j]:]`` for every j; return
    ``(status, chunk)`` of the first failure or ``(OK, -1)``."""
    for j in range(chunks.shape[0]):
        c = chunks[j]
        o = out[out_starts[j] : out_starts[j] + counts[c]]
        start = np.int64(offsets[c])
        end = np.int64(offsets[c + 1])
        cid = ids[c]
        if cid == _RLE:
            status = rle.delta_decode(data, start, end, o)
        elif cid == _PACKED:
            status = intpack.decode(data, start, end, o, False)
        elif cid == _PACKED_ZSTD:
            status = intpack.decode(aux_data, aux_offsets[c], aux_offsets[c + 1], o, True)
        elif cid == _DOD:
            status = dod.decode(data, start, end, o)
        elif cid == _PLAIN:
            status = plain.decode(data, start, end, o)
        else:
            status = UNKNOWN
        if status != OK:
            return status, c
    return OK, -1


def encode_timestamps(
    ts: np.ndarray, offsets: np.ndarray, *, zstd_level: int = zstd_stage.LEVEL
) -> tuple[np.ndarray, pa.LargeBinaryArray]:
    """Encode each chunk ``ts[offsets[i]:offsets[i+1]]`` (int64) with its smallest codec.

    Returns ``(codec_ids uint8[n_chunks], payloads)``, one payload per chunk. ``zstd_level``:
    the zstd stage's effort (the layout does not depend on it).
    """
    return encode_timestamps_as(ts, offsets, None, zstd_level=zstd_level)


def encode_timestamps_as(
    ts: np.ndarray,
    offsets: np.ndarray,
    codec: TimestampCodec | None,
    *,
    zstd_level: int = zstd_stage.LEVEL,
) -> tuple[np.ndarray, pa.LargeBinaryArray]:
    """Like :func:`encode_timestamps`, but every chunk with ``codec`` (``None``: the smallest).

    For tests, benchmarks and tools that must write one particular layout.
    """
    ts, offsets = check_chunks(ts, offsets, np.int64, "ts")
    n_chunks = len(offsets) - 1
    allowed = allowed_ids(TimestampCodec, codec)
    params = np.zeros((n_chunks, 5), dtype=np.int64)
    ids = np.zeros(n_chunks, dtype=np.uint8)
    sizes = np.zeros(n_chunks, dtype=np.int64)
    planar_sizes = np.zeros(n_chunks, dtype=np.int64)
    estimates = np.zeros(n_chunks, dtype=np.int64)
    scratch = np.empty(int(np.diff(offsets).max()) if n_chunks else 0, dtype=np.uint64)
    _choose(ts, offsets, allowed, params, ids, sizes, planar_sizes, estimates, scratch)
    if codec == TimestampCodec.PACKED_ZSTD:
        ids[:] = _PACKED
        cand = np.arange(n_chunks)
        sizes[:] = _NONE
    elif codec is None:
        cand = np.flatnonzero(estimates < sizes)
    else:
        cand = np.zeros(0, dtype=np.int64)
    frames = _zstd_candidates(
        ts, offsets, cand, ids, params, sizes, planar_sizes, scratch, zstd_level
    )
    return ids, assemble(
        sizes,
        frames,
        lambda out_offsets, out: _emit(ts, offsets, ids, params, out_offsets, out, scratch),
    )


def _zstd_candidates(
    ts: np.ndarray,
    offsets: np.ndarray,
    cand: np.ndarray,
    ids: np.ndarray,
    params: np.ndarray,
    sizes: np.ndarray,
    planar_sizes: np.ndarray,
    scratch: np.ndarray,
    level: int,
) -> dict[int, bytes]:
    """Offer chunks ``cand`` to PACKED_ZSTD; switch ``ids``/``sizes`` where the frame is smaller."""
    if len(cand) == 0:
        return {}
    sub_offsets = np.zeros(len(cand) + 1, dtype=np.int64)
    np.cumsum(planar_sizes[cand], out=sub_offsets[1:])
    sub = np.zeros(int(sub_offsets[-1]), dtype=np.uint8)
    _emit_planar(ts, offsets, cand, params, sub_offsets, sub, scratch)
    zstd_ids = np.full(len(cand), _PACKED_ZSTD, dtype=np.uint8)
    return zstd_stage.offer(sub_offsets, sub, cand, zstd_ids, ids, sizes, level)


@njit(cache=True, nogil=True)
def _emit_planar(
    ts: np.ndarray,
    offsets: np.ndarray,
    cand: np.ndarray,
    params: np.ndarray,
    sub_offsets: np.ndarray,
    sub: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Write PACKED byte-plane payloads of the chunks ``cand`` one after another into ``sub``."""
    for j in range(cand.shape[0]):
        c = cand[j]
        intpack.encode(
            ts[offsets[c] : offsets[c + 1]], params[c], sub, sub_offsets[j], True, scratch
        )


def decode_timestamps(
    codec_ids: np.ndarray, payloads: pa.Array | pa.ChunkedArray, counts: np.ndarray
) -> np.ndarray:
    """Decode the chunks' payloads back to their concatenated int64 timestamps."""
    codec_ids, counts, out_offsets = check_decode_args(codec_ids, payloads, counts)
    out = np.empty(int(out_offsets[-1]), dtype=np.int64)
    decode_timestamps_into(codec_ids, payloads, counts, out)
    return out


def decode_timestamps_into(
    codec_ids: np.ndarray,
    payloads: pa.Array | pa.ChunkedArray,
    counts: np.ndarray,
    out: np.ndarray,
    chunks: np.ndarray | None = None,
    out_starts: np.ndarray | None = None,
) -> None:
    """Decode chunks ``chunks`` (default: all) straight into ``out`` at ``out_starts``.

    Chunk ``chunks[j]`` fills ``out[out_starts[j] : out_starts[j] + counts[chunks[j]]]``; the
    other chunks are not decoded. Lets a reader decode many chunks into their final place in
    one call, without an intermediate array.
    """
    args = decode_inputs(
        "timestamp", np.int64, (_PACKED_ZSTD,), codec_ids, payloads, counts, out, chunks, out_starts
    )
    status, c = _decode(*args, out)
    if status != OK:
        raise_for_status("timestamp", status, c, int(args.codec_ids[c]))
