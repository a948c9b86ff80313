"""XOR: Gorilla float compression as in Prometheus' chunkenc, an MSB-first bit stream.

Layout: the first value's 64 bits, then per later value the XOR with the previous one as ``0``
(equal) | ``10`` + the significant bits inside the previous window | ``11`` + 5 bits leading zeros
+ 6 bits significant-bit count (64 stored as 0) + the significant bits; zero-padded to a byte.
"""

from __future__ import annotations

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

from tsdb_arrow.blocks.codecs.bitstream import read_bits_msb, write_bits_msb
from tsdb_arrow.blocks.codecs.status import CORRUPT, OK, TRUNCATED
from tsdb_arrow.jit import njit

U64 = np.uint64
I64 = np.int64


@njit(cache=True)
def size(x: np.ndarray) -> np.int64:
    """Payload bytes of the float64 bit patterns ``x`` (int64 view)."""
    bits = I64(64)
    lead = I64(0xFF)
    trail = I64(0)
    for i in range(1, x.shape[0]):
        v = U64(x[i]) ^ U64(x[i - 1])
        if v == 0:
            bits += 1
            continue
        nl = I64(leading_zeros(v))
        nt = I64(trailing_zeros(v))
        if nl >= 32:
            nl = 31
        if lead != 0xFF and nl >= lead and nt >= trail:
            bits += 2 + 64 - lead - trail
        else:
            lead = nl
            trail = nt
            bits += 2 + 5 + 6 + 64 - nl - nt
    return (bits + 7) >> 3


@njit(cache=True)
def size_lower_bound(x: np.ndarray) -> np.int64:
    """A lower bound of :func:`size`, branch-free so that it vectorizes.

    A repeated value costs 1 bit; a changed one ``v`` costs at least ``2 + 64 - min(clz(v), 31)
    - ctz(v)`` bits, in a new window (11 more) or in the current one, whose leading and trailing
    counts are at most ``v``'s.
    """
    bits = I64(64)
    for j in range(x.shape[0] - 1):
        v = U64(x[j + 1]) ^ U64(x[j])
        nl = min(I64(leading_zeros(v)), I64(31))
        nt = I64(trailing_zeros(v))
        bits += I64(1) if v == U64(0) else I64(66) - nl - nt
    return (bits + 7) >> 3


@njit(cache=True)
def encode(x: np.ndarray, buf: np.ndarray, start: np.int64) -> np.int64:
    """Write the bit stream at ``buf[start]`` (zeroed bytes); return the end position."""
    bp = write_bits_msb(buf, start, I64(0), U64(x[0]), I64(64))
    lead = I64(0xFF)
    trail = I64(0)
    for i in range(1, x.shape[0]):
        v = U64(x[i]) ^ U64(x[i - 1])
        if v == 0:
            bp = write_bits_msb(buf, start, bp, U64(0), I64(1))
            continue
        nl = I64(leading_zeros(v))
        nt = I64(trailing_zeros(v))
        if nl >= 32:
            nl = 31
        if lead != 0xFF and nl >= lead and nt >= trail:
            bp = write_bits_msb(buf, start, bp, U64(0b10), I64(2))
            sig = 64 - lead - trail
            bp = write_bits_msb(buf, start, bp, v >> U64(trail), sig)
        else:
            lead = nl
            trail = nt
            sig = 64 - nl - nt
            bp = write_bits_msb(buf, start, bp, U64(0b11), I64(2))
            bp = write_bits_msb(buf, start, bp, U64(nl), I64(5))
            bp = write_bits_msb(buf, start, bp, U64(sig & 63), I64(6))
            bp = write_bits_msb(buf, start, bp, v >> U64(nt), sig)
    return start + ((bp + 7) >> 3)


@njit(cache=True)
def decode(buf: np.ndarray, start: np.int64, end: np.int64, out: np.ndarray) -> np.int64:
    """Fill ``out`` (int64 bit patterns) from ``buf[start:end]``; return a status code."""
    nbytes = end - start
    u, bp = read_bits_msb(buf, start, nbytes, I64(0), I64(64))
    if bp < 0:
        return TRUNCATED
    out[0] = I64(u)
    lead = I64(0)
    trail = I64(0)
    have_window = False
    for i in range(1, out.shape[0]):
        b, bp = read_bits_msb(buf, start, nbytes, bp, I64(1))
        if bp < 0:
            return TRUNCATED
        if b == 0:
            out[i] = out[i - 1]
            continue
        b, bp = read_bits_msb(buf, start, nbytes, bp, I64(1))
        if bp < 0:
            return TRUNCATED
        if b == 1:
            nl, bp = read_bits_msb(buf, start, nbytes, bp, I64(5))
            if bp < 0:
                return TRUNCATED
            sig, bp = read_bits_msb(buf, start, nbytes, bp, I64(6))
            if bp < 0:
                return TRUNCATED
            s = I64(sig) if sig != 0 else I64(64)
            if I64(nl) + s > 64:
                return CORRUPT
            lead = I64(nl)
            trail = 64 - lead - s
            have_window = True
        elif not have_window:
            return CORRUPT
        sig_bits = 64 - lead - trail
        v, bp = read_bits_msb(buf, start, nbytes, bp, sig_bits)
        if bp < 0:
            return TRUNCATED
        out[i] = I64(U64(out[i - 1]) ^ (v << U64(trail)))
    if (bp + 7) >> 3 != nbytes:
        return CORRUPT
    return OK
