"""RLE: run-length encodings for constant stretches.

Timestamps keep their first value and then runs of equal deltas (a regular scrape collapses to a
dozen bytes); values store runs of equal bit patterns (a constant chunk costs 9-10 bytes).
"""

from __future__ import annotations

import numpy as np

from tsdb_arrow.blocks.codecs.bitstream import (
    get_u64,
    get_varint,
    put_u64,
    put_varint,
    unzigzag,
    varint_size,
    zigzag,
)
from tsdb_arrow.blocks.codecs.status import CORRUPT, OK, TRUNCATED
from tsdb_arrow.jit import njit


@njit(cache=True)
def delta_size(x: np.ndarray) -> np.int64:
    """Payload bytes of :func:`delta_encode` for int64 ``x``."""
    return delta_size_capped(x, np.int64(np.iinfo(np.int64).max))


@njit(cache=True)
def delta_size_capped(x: np.ndarray, cap: np.int64) -> np.int64:
    """:func:`delta_size`, but once the size exceeds ``cap`` a value above ``cap`` is returned
    without scanning the rest (sizes only grow, so the exact size is above ``cap`` too)."""
    n = x.shape[0]
    size = np.int64(8)
    i = 1
    while i < n:
        d = x[i] - x[i - 1]
        j = i + 1
        while j < n and x[j] - x[j - 1] == d:
            j += 1
        size += varint_size(zigzag(d)) + varint_size(np.uint64(j - i))
        if size > cap:
            return size
        i = j
    return size


@njit(cache=True)
def delta_encode(x: np.ndarray, buf: np.ndarray, pos: np.int64) -> np.int64:
    """Write first value (8 bytes LE), then (zigzag varint delta, varint run) pairs."""
    n = x.shape[0]
    pos = put_u64(buf, pos, np.uint64(x[0]))
    i = 1
    while i < n:
        d = x[i] - x[i - 1]
        j = i + 1
        while j < n and x[j] - x[j - 1] == d:
            j += 1
        pos = put_varint(buf, pos, zigzag(d))
        pos = put_varint(buf, pos, np.uint64(j - i))
        i = j
    return pos


@njit(cache=True)
def delta_decode(buf: np.ndarray, start: np.int64, end: np.int64, out: np.ndarray) -> np.int64:
    """Inverse of :func:`delta_encode`; returns a status code."""
    n = out.shape[0]
    if end - start < 8:
        return TRUNCATED
    v = np.int64(get_u64(buf, start))
    out[0] = v
    pos = start + 8
    i = 1
    while i < n:
        zd, pos = get_varint(buf, pos, end)
        if pos < 0:
            return TRUNCATED
        run, pos = get_varint(buf, pos, end)
        if pos < 0:
            return TRUNCATED
        d = unzigzag(zd)
        if run == 0 or run > np.uint64(n - i):
            return CORRUPT
        for _ in range(np.int64(run)):
            v += d
            out[i] = v
            i += 1
    if pos != end:
        return CORRUPT
    return OK


@njit(cache=True)
def value_size(x: np.ndarray) -> np.int64:
    """Payload bytes of :func:`value_encode` for int64 bit patterns ``x``."""
    n = x.shape[0]
    size = np.int64(0)
    i = 0
    while i < n:
        j = i + 1
        while j < n and x[j] == x[i]:
            j += 1
        size += 8 + varint_size(np.uint64(j - i))
        i = j
    return size


@njit(cache=True)
def value_count_runs(x: np.ndarray, limit: np.int64) -> np.int64:
    """Number of runs of equal words, counting stops once it exceeds ``limit``."""
    runs = np.int64(1)
    for i in range(1, x.shape[0]):
        if x[i] != x[i - 1]:
            runs += 1
            if runs > limit:
                return runs
    return runs


@njit(cache=True)
def value_encode(x: np.ndarray, buf: np.ndarray, pos: np.int64) -> np.int64:
    """Write (8-byte LE word, varint run length) pairs."""
    n = x.shape[0]
    i = 0
    while i < n:
        j = i + 1
        while j < n and x[j] == x[i]:
            j += 1
        pos = put_u64(buf, pos, np.uint64(x[i]))
        pos = put_varint(buf, pos, np.uint64(j - i))
        i = j
    return pos


@njit(cache=True)
def value_decode(buf: np.ndarray, start: np.int64, end: np.int64, out: np.ndarray) -> np.int64:
    """Inverse of :func:`value_encode`; returns a status code."""
    n = out.shape[0]
    pos = start
    i = 0
    while i < n:
        if pos + 8 > end:
            return TRUNCATED
        v = np.int64(get_u64(buf, pos))
        run, pos = get_varint(buf, pos + 8, end)
        if pos < 0:
            return TRUNCATED
        if run == 0 or run > np.uint64(n - i):
            return CORRUPT
        for _ in range(np.int64(run)):
            out[i] = v
            i += 1
    if pos != end:
        return CORRUPT
    return OK
