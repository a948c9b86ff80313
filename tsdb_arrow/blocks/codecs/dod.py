"""DOD: Gorilla delta-of-delta timestamps, an MSB-first bit stream with Prometheus' buckets.

Layout: the first timestamp in 64 bits, then for every later sample the delta-of-delta (the first
delta counts as a delta-of-delta against 0) as ``0`` | ``10``+14 bits | ``110``+17 bits |
``1110``+20 bits | ``1111``+64 bits (two's complement), padded with zero bits to a whole byte.
"""

from __future__ import annotations

import numpy as np

from tsdb_arrow.blocks.codecs.bitstream import read_bits_msb, write_bits_msb
from tsdb_arrow.blocks.codecs.status import CORRUPT, OK, TRUNCATED
from tsdb_arrow.jit import njit

U64 = np.uint64
I64 = np.int64


@njit(cache=True, inline="always")
def _bucket_bits(dod: np.int64) -> np.int64:
    if dod == 0:
        return 1
    if -(1 << 13) <= dod < (1 << 13):
        return 2 + 14
    if -(1 << 16) <= dod < (1 << 16):
        return 3 + 17
    if -(1 << 19) <= dod < (1 << 19):
        return 4 + 20
    return 4 + 64


@njit(cache=True)
def size(x: np.ndarray) -> np.int64:
    """Payload bytes of int64 ``x``."""
    bits = I64(64)
    prev = I64(0)
    for i in range(1, x.shape[0]):
        d = x[i] - x[i - 1]
        bits += _bucket_bits(d - prev)
        prev = d
    return (bits + 7) >> 3


@njit(cache=True)
def encode(x: np.ndarray, buf: np.ndarray, start: np.int64) -> np.int64:
    """Write the bit stream at ``buf[start]`` (zeroed bytes); return the end position."""
    bp = write_bits_msb(buf, start, I64(0), U64(x[0]), I64(64))
    prev = I64(0)
    for i in range(1, x.shape[0]):
        d = x[i] - x[i - 1]
        dod = d - prev
        prev = d
        if dod == 0:
            bp = write_bits_msb(buf, start, bp, U64(0), I64(1))
        elif -(1 << 13) <= dod < (1 << 13):
            bp = write_bits_msb(buf, start, bp, U64(0b10), I64(2))
            bp = write_bits_msb(buf, start, bp, U64(dod), I64(14))
        elif -(1 << 16) <= dod < (1 << 16):
            bp = write_bits_msb(buf, start, bp, U64(0b110), I64(3))
            bp = write_bits_msb(buf, start, bp, U64(dod), I64(17))
        elif -(1 << 19) <= dod < (1 << 19):
            bp = write_bits_msb(buf, start, bp, U64(0b1110), I64(4))
            bp = write_bits_msb(buf, start, bp, U64(dod), I64(20))
        else:
            bp = write_bits_msb(buf, start, bp, U64(0b1111), I64(4))
            bp = write_bits_msb(buf, start, bp, U64(dod), I64(64))
    return start + ((bp + 7) >> 3)


@njit(cache=True, inline="always")
def _signed(u: np.uint64, nbits: np.int64) -> np.int64:
    """Sign-extend the low ``nbits`` of ``u``."""
    shift = U64(64 - nbits)
    return I64(u << shift) >> I64(shift)


@njit(cache=True)
def decode(buf: np.ndarray, start: np.int64, end: np.int64, out: np.ndarray) -> np.int64:
    """Fill ``out`` (int64) from the bit stream ``buf[start:end]``; return a status code."""
    nbytes = end - start
    u, bp = read_bits_msb(buf, start, nbytes, I64(0), I64(64))
    if bp < 0:
        return TRUNCATED
    t = I64(u)
    out[0] = t
    d = I64(0)
    for i in range(1, out.shape[0]):
        # count the leading ones of the bucket prefix (at most 4)
        ones = 0
        while ones < 4:
            b, bp = read_bits_msb(buf, start, nbytes, bp, I64(1))
            if bp < 0:
                return TRUNCATED
            if b == 0:
                break
            ones += 1
        if ones == 0:
            dod = I64(0)
        else:
            nb = 14 if ones == 1 else (17 if ones == 2 else (20 if ones == 3 else 64))
            u, bp = read_bits_msb(buf, start, nbytes, bp, I64(nb))
            if bp < 0:
                return TRUNCATED
            dod = _signed(u, I64(nb))
        d += dod
        t += d
        out[i] = t
    if (bp + 7) >> 3 != nbytes:
        return CORRUPT
    return OK
