"""Value chunks: the per-chunk chooser and the many-chunk encode/decode kernels."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tsdb_arrow.blocks.codecs import decimal, intpack, plain, rle, xor, zstd_stage
from tsdb_arrow.blocks.codecs.arrow_io import (
    allowed_ids,
    assemble,
    check_chunks,
    check_decode_args,
)
from tsdb_arrow.blocks.codecs.decoding import decode_inputs
from tsdb_arrow.blocks.codecs.ids import ValueCodec
from tsdb_arrow.blocks.codecs.status import OK, UNKNOWN, raise_for_status
from tsdb_arrow.errors import CodecError
from tsdb_arrow.jit import njit

_PLAIN = np.uint8(ValueCodec.PLAIN)
_XOR = np.uint8(ValueCodec.XOR)
_RLE = np.uint8(ValueCodec.RLE)
_DECIMAL = np.uint8(ValueCodec.DECIMAL)
_DECIMAL_ZSTD = np.uint8(ValueCodec.DECIMAL_ZSTD)
_PLAIN_ZSTD = np.uint8(ValueCodec.PLAIN_ZSTD)
_ZSTD_IDS = (ValueCodec.DECIMAL_ZSTD, ValueCodec.PLAIN_ZSTD)
_NONE = np.int64(1) << np.int64(62)  # size of a codec that is not allowed


@njit(cache=True, nogil=True)
def _choose(
    x: np.ndarray,
    bits: np.ndarray,
    offsets: np.ndarray,
    allowed: np.ndarray,
    m: np.ndarray,
    exponents: np.ndarray,
    params: np.ndarray,
    ids: np.ndarray,
    sizes: np.ndarray,
    zstd_input_sizes: np.ndarray,
    estimates: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Per chunk: the smallest plain-kernel codec and its size, the decimal exponent (-1 if the
    chunk is not decimal; ``m`` then holds its integers), the size of its zstd-stage input and,
    for big chunks, the estimated zstd frame size."""
    for c in range(offsets.shape[0] - 1):
        a = offsets[c]
        b = offsets[c + 1]
        n = b - a
        xb = bits[a:b]
        best_id = _PLAIN
        best = plain.size(n) if allowed[_PLAIN] else _NONE
        runs = rle.value_count_runs(xb, n // 9)
        if allowed[_RLE] and runs * 9 < best:
            s = rle.value_size(xb)
            if s < best:
                best_id, best = _RLE, s
        p = params[c]
        mc = m[a:b]
        s = _NONE
        if not (allowed[_DECIMAL] or allowed[_DECIMAL_ZSTD]):
            e = -1
        elif runs == 1:
            e = decimal.to_decimal(x[a : a + 1], xb[:1], mc[:1])
            if e >= 0:
                mc[:] = mc[0]
                # widths are 0 for a constant, so two samples give the size of all n
                s = 1 + intpack.analyze(mc[: min(n, 2)], p)
        else:
            e = decimal.to_decimal(x[a:b], xb, mc)
            if e >= 0:
                s = 1 + intpack.analyze(mc, p)
        exponents[c] = e
        if e >= 0:
            k = n - intpack.order(p[0])
            zstd_input_sizes[c] = (
                s - intpack.payload_bytes(k, p[4], False) + intpack.payload_bytes(k, p[4], True)
            )
            if allowed[_DECIMAL] and s < best:
                best_id, best = _DECIMAL, s
        else:
            zstd_input_sizes[c] = 8 * n
        if allowed[_XOR] and 8 + (n + 6) // 8 < best and xor.size_lower_bound(xb) < best:
            s = xor.size(xb)
            if s < best:
                best_id, best = _XOR, s
        ids[c] = best_id
        sizes[c] = best
        estimates[c] = _NONE
        if best < zstd_stage.MIN_INPUT_BYTES:
            continue
        if e >= 0 and allowed[_DECIMAL_ZSTD]:
            k = n - intpack.order(p[0])
            u = scratch[: max(k, 0)]
            intpack.fields(mc, p[0], p[1], p[2], np.uint64(p[3]), u)
            estimates[c] = intpack.planar_estimate_below(u, p[4], best)
        elif e < 0 and allowed[_PLAIN_ZSTD]:
            estimates[c] = intpack.planar_estimate_below(xb.view(np.uint64), 64, best)


@njit(cache=True, nogil=True)
def _emit(
    bits: np.ndarray,
    offsets: np.ndarray,
    m: np.ndarray,
    exponents: np.ndarray,
    params: np.ndarray,
    ids: np.ndarray,
    out_offsets: np.ndarray,
    out: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Write every chunk whose id is a plain-kernel codec at ``out[out_offsets[c]]``."""
    for c in range(offsets.shape[0] - 1):
        a = offsets[c]
        b = offsets[c + 1]
        pos = out_offsets[c]
        cid = ids[c]
        if cid == _DECIMAL:
            decimal.encode(exponents[c], m[a:b], params[c], out, pos, False, scratch)
        elif cid == _RLE:
            rle.value_encode(bits[a:b], out, pos)
        elif cid == _XOR:
            xor.encode(bits[a:b], out, pos)
        elif cid == _PLAIN:
            plain.encode(bits[a:b], out, pos)


@njit(cache=True, nogil=True)
def _emit_zstd_inputs(
    bits: np.ndarray,
    offsets: np.ndarray,
    m: np.ndarray,
    exponents: np.ndarray,
    params: np.ndarray,
    cand: np.ndarray,
    sub_offsets: np.ndarray,
    sub: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Write the zstd-stage inputs of chunks ``cand`` one after another: DECIMAL with byte planes
    for decimal chunks, the byte-transposed bit patterns for the others."""
    for j in range(cand.shape[0]):
        c = cand[j]
        a = offsets[c]
        b = offsets[c + 1]
        if exponents[c] >= 0:
            decimal.encode(exponents[c], m[a:b], params[c], sub, sub_offsets[j], True, scratch)
        else:
            plain.encode_planes(bits[a:b], sub, sub_offsets[j])


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
    out_bits: np.ndarray,
) -> tuple[int, int]:
    """Decode chunk ``chunks[j]`` into ``out[out_starts[j]:]`` for every j; return
    ``(status, chunk)`` of the first failure or ``(OK, -1)``."""
    for j in range(chunks.shape[0]):
        c = chunks[j]
        a = out_starts[j]
        b = a + counts[c]
        ob = out_bits[a:b]
        start = np.int64(offsets[c])
        end = np.int64(offsets[c + 1])
        cid = ids[c]
        if cid == _DECIMAL:
            status = decimal.decode(data, start, end, ob, out[a:b], False)
        elif cid == _RLE:
            status = rle.value_decode(data, start, end, ob)
        elif cid == _DECIMAL_ZSTD:
            status = decimal.decode(
                aux_data, aux_offsets[c], aux_offsets[c + 1], ob, out[a:b], True
            )
        elif cid == _XOR:
            status = xor.decode(data, start, end, ob)
        elif cid == _PLAIN_ZSTD:
            status = plain.decode_planes(aux_data, aux_offsets[c], aux_offsets[c + 1], ob)
        elif cid == _PLAIN:
            status = plain.decode(data, start, end, ob)
        else:
            status = UNKNOWN
        if status != OK:
            return status, c
    return OK, -1


def encode_values(
    values: np.ndarray, offsets: np.ndarray, *, zstd_level: int = zstd_stage.LEVEL
) -> tuple[np.ndarray, pa.LargeBinaryArray]:
    """Encode each chunk ``values[offsets[i]:offsets[i+1]]`` (float64) with its smallest codec.

    Returns ``(codec_ids uint8[n_chunks], payloads)``, one payload per chunk; every bit pattern
    (NaN payloads, -0.0, infinities) round-trips exactly. ``zstd_level``: the zstd stage's
    effort (the layout does not depend on it).
    """
    return encode_values_as(values, offsets, None, zstd_level=zstd_level)


def encode_values_as(
    values: np.ndarray,
    offsets: np.ndarray,
    codec: ValueCodec | None,
    *,
    zstd_level: int = zstd_stage.LEVEL,
) -> tuple[np.ndarray, pa.LargeBinaryArray]:
    """Like :func:`encode_values`, but every chunk with ``codec`` (``None``: the smallest).

    For tests, benchmarks and tools that must write one particular layout; a chunk the codec
    cannot hold (DECIMAL on a non-decimal chunk) raises CodecError.
    """
    values, offsets = check_chunks(values, offsets, np.float64, "values")
    bits = values.view(np.int64)
    n_chunks = len(offsets) - 1
    allowed = allowed_ids(ValueCodec, codec)
    m = np.empty(len(values), dtype=np.int64)
    exponents = np.zeros(n_chunks, dtype=np.int64)
    params = np.zeros((n_chunks, 5), dtype=np.int64)
    ids = np.zeros(n_chunks, dtype=np.uint8)
    sizes = np.zeros(n_chunks, dtype=np.int64)
    zsizes = np.zeros(n_chunks, dtype=np.int64)
    estimates = np.zeros(n_chunks, dtype=np.int64)
    scratch = np.empty(int(np.diff(offsets).max()) if n_chunks else 0, dtype=np.uint64)
    _choose(
        values, bits, offsets, allowed, m, exponents, params, ids, sizes, zsizes, estimates, scratch
    )
    if codec in _ZSTD_IDS:
        cand = np.arange(n_chunks)
        sizes[:] = _NONE
        ids[:] = _DECIMAL if codec == ValueCodec.DECIMAL_ZSTD else _PLAIN
    elif codec is None:
        cand = np.flatnonzero(estimates < sizes)
    else:
        cand = np.zeros(0, dtype=np.int64)
    if codec == ValueCodec.DECIMAL_ZSTD or codec == ValueCodec.DECIMAL:
        bad = np.flatnonzero(exponents < 0)
        if len(bad):
            raise CodecError(
                f"value chunk {int(bad[0])} is not exactly decimal; "
                f"{ValueCodec(codec).name} cannot hold it"
            )
    frames = _zstd_candidates(
        bits, offsets, cand, m, exponents, params, ids, sizes, zsizes, scratch, zstd_level
    )
    return ids, assemble(
        sizes,
        frames,
        lambda out_offsets, out: _emit(
            bits, offsets, m, exponents, params, ids, out_offsets, out, scratch
        ),
    )


def _zstd_candidates(
    bits: np.ndarray,
    offsets: np.ndarray,
    cand: np.ndarray,
    m: np.ndarray,
    exponents: np.ndarray,
    params: np.ndarray,
    ids: np.ndarray,
    sizes: np.ndarray,
    zsizes: np.ndarray,
    scratch: np.ndarray,
    level: int,
) -> dict[int, bytes]:
    """Offer chunks ``cand`` to the zstd stage; switch ``ids``/``sizes`` where the frame is
    smaller."""
    if len(cand) == 0:
        return {}
    sub_offsets = np.zeros(len(cand) + 1, dtype=np.int64)
    np.cumsum(zsizes[cand], out=sub_offsets[1:])
    sub = np.zeros(int(sub_offsets[-1]), dtype=np.uint8)
    _emit_zstd_inputs(bits, offsets, m, exponents, params, cand, sub_offsets, sub, scratch)
    zstd_ids = np.where(exponents[cand] >= 0, _DECIMAL_ZSTD, _PLAIN_ZSTD).astype(np.uint8)
    return zstd_stage.offer(sub_offsets, sub, cand, zstd_ids, ids, sizes, level)


def decode_values(
    codec_ids: np.ndarray, payloads: pa.Array | pa.ChunkedArray, counts: np.ndarray
) -> np.ndarray:
    """Decode the chunks' payloads back to their concatenated float64 values."""
    codec_ids, counts, out_offsets = check_decode_args(codec_ids, payloads, counts)
    out = np.empty(int(out_offsets[-1]), dtype=np.float64)
    decode_values_into(codec_ids, payloads, counts, out)
    return out


def decode_values_into(
    codec_ids: np.ndarray,
    payloads: pa.Array | pa.ChunkedArray,
    counts: np.ndarray,
    out: np.ndarray,
    chunks: np.ndarray | None = None,
    out_starts: np.ndarray | None = None,
) -> None:
    """Decode chunks ``chunks`` (default: all) straight into ``out`` at ``out_starts``.

    Chunk ``chunks[j]`` fills ``out[out_starts[j] : out_starts[j] + counts[chunks[j]]]`` with
    the exact bit patterns; the other chunks are not decoded.
    """
    args = decode_inputs(
        "value", np.float64, _ZSTD_IDS, codec_ids, payloads, counts, out, chunks, out_starts
    )
    status, c = _decode(*args, out, out.view(np.int64))
    if status != OK:
        raise_for_status("value", status, c, int(args.codec_ids[c]))
