"""PLAIN: n x 8-byte little-endian words (int64 timestamps or float64 bit patterns), the fallback
that always applies."""

from __future__ import annotations

import numpy as np

from tsdb_arrow.blocks.codecs.bitstream import get_u64, put_u64
from tsdb_arrow.blocks.codecs.status import CORRUPT, OK, TRUNCATED
from tsdb_arrow.jit import njit


@njit(cache=True, inline="always")
def size(n: np.int64) -> np.int64:
    """Payload bytes of ``n`` samples."""
    return 8 * n


@njit(cache=True)
def encode(x: np.ndarray, buf: np.ndarray, pos: np.int64) -> np.int64:
    """Write ``x`` (int64) at ``buf[pos]``; return the end position."""
    for i in range(x.shape[0]):
        pos = put_u64(buf, pos, np.uint64(x[i]))
    return pos


@njit(cache=True)
def decode(buf: np.ndarray, start: np.int64, end: np.int64, out: np.ndarray) -> np.int64:
    """Fill ``out`` (int64) from ``buf[start:end]``; return a status code."""
    n = out.shape[0]
    if end - start < 8 * n:
        return TRUNCATED
    if end - start > 8 * n:
        return CORRUPT
    for i in range(n):
        out[i] = np.int64(get_u64(buf, start + 8 * i))
    return OK


@njit(cache=True)
def encode_planes(x: np.ndarray, buf: np.ndarray, pos: np.int64) -> np.int64:
    """Write ``x`` (int64) as 8 byte planes (all lowest bytes first): the zstd stage's input."""
    n = x.shape[0]
    for p in range(8):
        shift = np.uint64(8 * p)
        for i in range(n):
            buf[pos + i] = np.uint8((np.uint64(x[i]) >> shift) & np.uint64(0xFF))
        pos += n
    return pos


@njit(cache=True)
def decode_planes(buf: np.ndarray, start: np.int64, end: np.int64, out: np.ndarray) -> np.int64:
    """Inverse of :func:`encode_planes`; returns a status code."""
    n = out.shape[0]
    if end - start < 8 * n:
        return TRUNCATED
    if end - start > 8 * n:
        return CORRUPT
    for i in range(n):
        out[i] = np.int64(buf[start + i])
    for p in range(1, 8):
        base = start + p * n
        shift = np.uint64(8 * p)
        for i in range(n):
            out[i] |= np.int64(np.uint64(buf[base + i]) << shift)
    return OK
