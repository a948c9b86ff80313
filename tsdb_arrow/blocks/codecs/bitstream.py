"""Numba bit and byte I/O shared by the codec kernels.

Two bit orders live here, each where its format family expects it: the Gorilla codecs (dod, xor)
write an MSB-first bit stream as Prometheus' ``bstream`` does; the integer packer writes
LSB-first packed fields as Parquet and most bit-packing libraries do. Readers never read past
``end`` and report a truncated payload by returning ``-1`` as the new position.
"""

from __future__ import annotations

import numpy as np

from tsdb_arrow.jit import njit

U64 = np.uint64
I64 = np.int64
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def zigzag(v: np.int64) -> np.uint64:
    """Map a signed int to unsigned so that small magnitudes give small numbers."""
    return U64(v << I64(1)) ^ U64(v >> I64(63))


@njit(cache=True, inline="always")
def unzigzag(u: np.uint64) -> np.int64:
    """Inverse of :func:`zigzag`."""
    return I64(u >> U64(1)) ^ -I64(u & U64(1))


@njit(cache=True, inline="always")
def mask(nbits: np.int64) -> np.uint64:
    """The low ``nbits`` bits set (0 <= nbits <= 64)."""
    if nbits >= 64:
        return _ONES
    return (U64(1) << U64(nbits)) - U64(1)


@njit(cache=True, inline="always")
def bit_width(u: np.uint64) -> np.int64:
    """Number of bits needed to hold ``u`` (0 for 0)."""
    w = I64(0)
    while u != U64(0):
        u >>= U64(1)
        w += 1
    return w


@njit(cache=True, inline="always")
def varint_size(u: np.uint64) -> np.int64:
    """Bytes of the unsigned LEB128 encoding of ``u``."""
    n = I64(1)
    while u >= U64(0x80):
        u >>= U64(7)
        n += 1
    return n


@njit(cache=True, inline="always")
def put_varint(buf: np.ndarray, pos: np.int64, u: np.uint64) -> np.int64:
    """Write ``u`` as unsigned LEB128 at ``buf[pos]``; return the position after it."""
    while u >= U64(0x80):
        buf[pos] = np.uint8((u & U64(0x7F)) | U64(0x80))
        u >>= U64(7)
        pos += 1
    buf[pos] = np.uint8(u)
    return pos + 1


@njit(cache=True, inline="always")
def get_varint(buf: np.ndarray, pos: np.int64, end: np.int64) -> tuple[np.uint64, np.int64]:
    """Read an unsigned LEB128 value; position -1 if it runs past ``end`` or exceeds 10 bytes."""
    u = U64(0)
    shift = U64(0)
    while pos < end and shift < U64(70):
        b = U64(buf[pos])
        pos += 1
        u |= (b & U64(0x7F)) << shift
        if b < U64(0x80):
            return u, pos
        shift += U64(7)
    return U64(0), I64(-1)


@njit(cache=True, inline="always")
def put_u64(buf: np.ndarray, pos: np.int64, u: np.uint64) -> np.int64:
    """Write 8 little-endian bytes."""
    for k in range(8):
        buf[pos + k] = np.uint8((u >> U64(8 * k)) & U64(0xFF))
    return pos + 8


@njit(cache=True, inline="always")
def get_u64(buf: np.ndarray, pos: np.int64) -> np.uint64:
    """Read 8 little-endian bytes (the caller checked the bounds)."""
    u = U64(0)
    for k in range(8):
        u |= U64(buf[pos + k]) << U64(8 * k)
    return u


# --- MSB-first bit stream (Gorilla codecs) -------------------------------------------------------


@njit(cache=True, inline="always")
def write_bits_msb(
    buf: np.ndarray, start: np.int64, bitpos: np.int64, value: np.uint64, nbits: np.int64
) -> np.int64:
    """Append the low ``nbits`` of ``value`` MSB-first at bit ``bitpos`` after byte ``start``.

    The target bytes must be zero beforehand (the output buffers are allocated zeroed).
    """
    while nbits > 0:
        byte = start + (bitpos >> 3)
        free = 8 - (bitpos & 7)
        take = nbits if nbits < free else free
        chunk = (value >> U64(nbits - take)) & mask(take)
        buf[byte] |= np.uint8(chunk << U64(free - take))
        bitpos += take
        nbits -= take
    return bitpos


@njit(cache=True, inline="always")
def read_bits_msb(
    buf: np.ndarray, start: np.int64, nbytes: np.int64, bitpos: np.int64, nbits: np.int64
) -> tuple[np.uint64, np.int64]:
    """Read ``nbits`` MSB-first; new bit position -1 if the stream is too short."""
    if bitpos + nbits > nbytes * 8:
        return U64(0), I64(-1)
    value = U64(0)
    while nbits > 0:
        byte = start + (bitpos >> 3)
        avail = 8 - (bitpos & 7)
        take = nbits if nbits < avail else avail
        chunk = (U64(buf[byte]) >> U64(avail - take)) & mask(take)
        value = (value << U64(take)) | chunk
        bitpos += take
        nbits -= take
    return value, bitpos


# --- LSB-first packed fields (integer packer) ----------------------------------------------------


@njit(cache=True)
def pack_lsb(src: np.ndarray, buf: np.ndarray, pos: np.int64, width: np.int64) -> np.int64:
    """Pack every ``src`` value (uint64) in ``width`` bits LSB-first at ``buf[pos]``.

    Returns the byte position after the last (partly filled) byte.
    """
    if width == 0:
        return pos
    acc = U64(0)
    nacc = I64(0)
    for i in range(src.shape[0]):
        u = src[i]
        if width < 64:
            u &= mask(width)
        acc |= u << U64(nacc)
        nacc += width
        if nacc >= 64:
            for k in range(8):
                buf[pos + k] = np.uint8((acc >> U64(8 * k)) & U64(0xFF))
            pos += 8
            nacc -= 64
            # the bits of u that did not fit in acc
            acc = (u >> U64(width - nacc)) if nacc > 0 else U64(0)
    while nacc > 0:
        buf[pos] = np.uint8(acc & U64(0xFF))
        acc >>= U64(8)
        pos += 1
        nacc -= 8
    return pos


@njit(cache=True, inline="always")
def load_u64(buf: np.ndarray, pos: np.int64, end: np.int64) -> np.uint64:
    """Read 8 little-endian bytes at ``pos``, bytes at or past ``end`` reading as zero."""
    if pos + 8 <= end:
        return get_u64(buf, pos)
    u = U64(0)
    for k in range(8):
        if pos + k < end:
            u |= U64(buf[pos + k]) << U64(8 * k)
    return u
