"""Protobuf wire format for the numba walks over request bytes (remote write, its histograms):
a varint, and one field's tag and value."""

from __future__ import annotations

import numpy as np

from tsdb_arrow.jit import njit


@njit(cache=True, nogil=True, inline="always")
def varint(buf, pos, end):
    """(value, new position); position -1 on a truncated or over-long varint."""
    result = np.uint64(0)
    shift = 0
    while True:
        if pos >= end or shift > 63:
            return np.uint64(0), -1
        byte = buf[pos]
        pos += 1
        result |= np.uint64(byte & 0x7F) << np.uint64(shift)
        if byte < 0x80:
            return result, pos
        shift += 7


@njit(cache=True, nogil=True, inline="always")
def next_field(buf, pos, end):
    """The field at ``buf[pos:end]``: (number, wire type, value of a varint or fixed64, start
    and end of a length-delimited payload, next position). The next position is -1 when the
    field is malformed: truncated, field number 0 or past 2^29, a group or unknown wire type.
    Fixed32 values are skipped (no field read here has one)."""
    tag, pos = varint(buf, pos, end)
    f = np.int64(tag >> np.uint64(3))
    wt = np.int64(tag & np.uint64(7))
    v = np.uint64(0)
    a = b = 0
    if pos < 0 or f == 0 or tag > np.uint64(0xFFFFFFFF):
        return f, wt, v, a, b, -1
    if wt == 0:
        v, pos = varint(buf, pos, end)
    elif wt == 1:
        if pos + 8 > end:
            return f, wt, v, a, b, -1
        for k in range(8):
            v |= np.uint64(buf[pos + k]) << np.uint64(8 * k)
        pos += 8
    elif wt == 5:
        if pos + 4 > end:
            return f, wt, v, a, b, -1
        pos += 4
    elif wt == 2:
        length, pos = varint(buf, pos, end)
        if pos < 0 or length > np.uint64(end - pos):
            return f, wt, v, a, b, -1
        a = pos
        b = pos + np.int64(length)
        pos = b
    else:
        return f, wt, v, a, b, -1
    return f, wt, v, a, b, pos
