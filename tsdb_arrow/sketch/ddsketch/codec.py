"""The DDSketch bytes codec: ``Sketch.to_bytes`` and the serialized sketch column, many sketches
encoded or decoded in one numba pass.

One serialized sketch (version 1) is a 72-byte little-endian header, then each side's keys as
varint deltas and its counts as uvarints or float64s; the byte layout is documented in
``docs/sketches.md`` ("DDSketch bytes").
"""

from __future__ import annotations

import math

import numpy as np

from tsdb_arrow.errors import ConfigError, SketchError
from tsdb_arrow.jit import njit
from tsdb_arrow.sketch.ddsketch.arrays import SketchArrays, validate_arrays
from tsdb_arrow.sketch.ddsketch.mapping import LogarithmicMapping

# Layout: docs/sketches.md, "DDSketch bytes" (magic b"DDSK", version 1, a 72-byte header, flag
# bit 1 = integer counts); the kernels below spell these out as literals.
_MAX_EXACT_INT = float(2**53)
_DECODE_ERRORS = {
    1: "is shorter than the 72-byte header",
    2: "does not start with the magic b'DDSK'",
    3: "has an unsupported version (this reader knows version 1)",
    4: "has unknown flag or reserved bits set",
    5: "has another mapping (relative_accuracy, offset) than the first sketch",
    6: "is truncated, or holds a varint longer than 9 bytes",
    7: "has bytes after its last bucket",
    8: "has keys that are not strictly increasing",
}


def encode_arrays(
    mapping: LogarithmicMapping, arrays: SketchArrays
) -> tuple[np.ndarray, np.ndarray]:
    """Serialize every sketch of ``arrays``: (int64 offsets of length groups + 1, uint8 data),
    i.e. the two buffers of an Arrow (large) binary array."""
    return _encode_kernel(
        mapping.relative_accuracy,
        mapping.offset,
        *(
            np.ascontiguousarray(a, dtype=np.float64)
            for a in (arrays.count, arrays.zero_count, arrays.sum, arrays.min, arrays.max)
        ),
        np.ascontiguousarray(arrays.pos_offsets, dtype=np.int64),
        np.ascontiguousarray(arrays.pos_keys, dtype=np.int64),
        np.ascontiguousarray(arrays.pos_counts, dtype=np.float64),
        np.ascontiguousarray(arrays.neg_offsets, dtype=np.int64),
        np.ascontiguousarray(arrays.neg_keys, dtype=np.int64),
        np.ascontiguousarray(arrays.neg_counts, dtype=np.float64),
    )


def decode_arrays(offsets: np.ndarray, data: np.ndarray) -> tuple[LogarithmicMapping, SketchArrays]:
    """Parse the sketches serialized in ``data[offsets[i]:offsets[i + 1]]`` (one mapping).

    Raises
    ------
    SketchError
        Naming the sketch and byte offset of the first invalid one.
    """
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    data = np.ascontiguousarray(data, dtype=np.uint8)
    if offsets.size < 2:
        raise SketchError("no serialized sketch to decode")
    err, where, pos, header, sizes = _decode_headers(offsets, data)
    if err == 0:
        body = _decode_body(offsets, data, sizes)
        err, where, pos = body[0], body[1], body[2]
    if err:
        raise SketchError(f"serialized sketch {where} {_DECODE_ERRORS[err]} (byte {pos})")
    try:
        mapping = LogarithmicMapping(float(header[0, 0]), float(header[0, 1]))
    except ConfigError as exc:
        raise SketchError(f"serialized sketch 0 has an invalid mapping: {exc}") from None
    arrays = SketchArrays(
        header[:, 2].copy(),
        header[:, 3].copy(),
        *body[3:9],
        header[:, 4].copy(),
        header[:, 5].copy(),
        header[:, 6].copy(),
    )
    validate_arrays(arrays)
    return mapping, arrays


@njit(cache=True)
def _uvarint_size(x: int) -> int:
    n = 1
    while x >= 0x80:
        x >>= 7
        n += 1
    return n


@njit(cache=True)
def _put_uvarint(buf: np.ndarray, pos: int, x: int) -> int:
    while x >= 0x80:
        buf[pos] = (x & 0x7F) | 0x80
        x >>= 7
        pos += 1
    buf[pos] = x
    return pos + 1


@njit(cache=True)
def _zigzag(x: int) -> int:
    return (x << 1) ^ (x >> 63)


@njit(cache=True)
def _integral(counts: np.ndarray, lo: int, hi: int) -> bool:
    for i in range(lo, hi):
        c = counts[i]
        if c != math.floor(c) or c > _MAX_EXACT_INT:
            return False
    return True


@njit(cache=True)
def _side_size(keys: np.ndarray, counts: np.ndarray, lo: int, hi: int, integral: bool) -> int:
    size = 0
    for i in range(lo, hi):
        size += _uvarint_size(_zigzag(keys[i]) if i == lo else keys[i] - keys[i - 1])
        size += _uvarint_size(np.int64(counts[i])) if integral else 8
    return size


@njit(cache=True)
def _put_side(buf, pos, keys, counts, lo, hi, integral, scratch, scratch_bytes) -> int:
    for i in range(lo, hi):
        pos = _put_uvarint(buf, pos, _zigzag(keys[i]) if i == lo else keys[i] - keys[i - 1])
    for i in range(lo, hi):
        if integral:
            pos = _put_uvarint(buf, pos, np.int64(counts[i]))
        else:
            scratch[0] = counts[i]
            buf[pos : pos + 8] = scratch_bytes
            pos += 8
    return pos


@njit(cache=True)
def _encode_kernel(ra, offset, count, zero, sums, mins, maxs, po, pk, pc, no, nk, nc):
    groups = count.size
    flags = np.zeros(groups, np.uint8)
    sizes = np.zeros(groups + 1, np.int64)
    for g in range(groups):
        integral = _integral(pc, po[g], po[g + 1]) and _integral(nc, no[g], no[g + 1])
        flags[g] = 1 if integral else 0
        sizes[g + 1] = (
            sizes[g]
            + 72
            + _side_size(pk, pc, po[g], po[g + 1], integral)
            + _side_size(nk, nc, no[g], no[g + 1], integral)
        )
    data = np.zeros(sizes[groups], np.uint8)
    scratch = np.empty(1, np.float64)
    scratch_bytes = scratch.view(np.uint8)
    for g in range(groups):
        pos = sizes[g]
        data[pos : pos + 4] = np.array([68, 68, 83, 75], np.uint8)  # b"DDSK"
        data[pos + 4] = 1
        data[pos + 5] = flags[g]
        header = (ra, offset, count[g], zero[g], sums[g], mins[g], maxs[g])
        for j in range(7):
            scratch[0] = header[j]
            data[pos + 8 + 8 * j : pos + 16 + 8 * j] = scratch_bytes
        for j, n in ((64, po[g + 1] - po[g]), (68, no[g + 1] - no[g])):
            for b in range(4):
                data[pos + j + b] = (n >> (8 * b)) & 0xFF
        pos = _put_side(
            data, pos + 72, pk, pc, po[g], po[g + 1], flags[g] == 1, scratch, scratch_bytes
        )
        _put_side(data, pos, nk, nc, no[g], no[g + 1], flags[g] == 1, scratch, scratch_bytes)
    return sizes, data


@njit(cache=True)
def _get_f64(data: np.ndarray, pos: int, scratch: np.ndarray, scratch_bytes: np.ndarray):
    scratch_bytes[:] = data[pos : pos + 8]
    return scratch[0]


@njit(cache=True)
def _get_u32(data: np.ndarray, pos: int) -> int:
    return (
        np.int64(data[pos])
        | (np.int64(data[pos + 1]) << 8)
        | (np.int64(data[pos + 2]) << 16)
        | (np.int64(data[pos + 3]) << 24)
    )


@njit(cache=True)
def _decode_headers(offsets, data):
    groups = offsets.size - 1
    header = np.empty((groups, 7), np.float64)
    sizes = np.zeros((groups, 2), np.int64)
    scratch = np.empty(1, np.float64)
    scratch_bytes = scratch.view(np.uint8)
    for g in range(groups):
        pos = offsets[g]
        if offsets[g + 1] - pos < 72 or offsets[g + 1] > data.size:
            return 1, g, pos, header, sizes
        if data[pos] != 68 or data[pos + 1] != 68 or data[pos + 2] != 83 or data[pos + 3] != 75:
            return 2, g, pos, header, sizes
        if data[pos + 4] != 1:
            return 3, g, pos + 4, header, sizes
        if data[pos + 5] > 1 or data[pos + 6] != 0 or data[pos + 7] != 0:
            return 4, g, pos + 5, header, sizes
        for j in range(7):
            header[g, j] = _get_f64(data, pos + 8 + 8 * j, scratch, scratch_bytes)
        if g > 0 and (header[g, 0] != header[0, 0] or header[g, 1] != header[0, 1]):
            return 5, g, pos + 8, header, sizes
        sizes[g, 0] = _get_u32(data, pos + 64)
        sizes[g, 1] = _get_u32(data, pos + 68)
    return 0, 0, 0, header, sizes


@njit(cache=True)
def _get_uvarint(data: np.ndarray, pos: int, end: int):
    """(value, next position), or (-1, position) if truncated or longer than 9 bytes."""
    x = 0
    for i in range(9):
        if pos >= end:
            return -1, pos
        b = np.int64(data[pos])
        pos += 1
        x |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            return x, pos
    return -1, pos


@njit(cache=True)
def _get_side(data, pos, end, keys, counts, lo, n, integral, scratch, scratch_bytes):
    """Decode one side into keys/counts[lo:lo + n]; (error code, next position)."""
    key = 0
    for i in range(n):
        x, pos = _get_uvarint(data, pos, end)
        if x < 0:
            return 6, pos
        if i == 0:
            key = (x >> 1) ^ -(x & 1)
        elif x == 0:
            return 8, pos
        else:
            key += x
        keys[lo + i] = key
    for i in range(n):
        if integral:
            x, pos = _get_uvarint(data, pos, end)
            if x < 0:
                return 6, pos
            counts[lo + i] = x
        else:
            if pos + 8 > end:
                return 6, pos
            counts[lo + i] = _get_f64(data, pos, scratch, scratch_bytes)
            pos += 8
    return 0, pos


@njit(cache=True)
def _decode_body(offsets, data, sizes):
    groups = offsets.size - 1
    po = np.zeros(groups + 1, np.int64)
    no = np.zeros(groups + 1, np.int64)
    for g in range(groups):
        po[g + 1] = po[g] + sizes[g, 0]
        no[g + 1] = no[g] + sizes[g, 1]
    pk = np.empty(po[groups], np.int64)
    pc = np.empty(po[groups], np.float64)
    nk = np.empty(no[groups], np.int64)
    nc = np.empty(no[groups], np.float64)
    scratch = np.empty(1, np.float64)
    scratch_bytes = scratch.view(np.uint8)
    for g in range(groups):
        end = offsets[g + 1]
        integral = data[offsets[g] + 5] == 1
        err, pos = _get_side(
            data, offsets[g] + 72, end, pk, pc, po[g], sizes[g, 0], integral, scratch, scratch_bytes
        )
        if err == 0:
            err, pos = _get_side(
                data, pos, end, nk, nc, no[g], sizes[g, 1], integral, scratch, scratch_bytes
            )
        if err == 0 and pos != end:
            err = 7
        if err:
            return err, g, pos, po, pk, pc, no, nk, nc
    return 0, 0, 0, po, pk, pc, no, nk, nc
