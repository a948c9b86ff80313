"""Prometheus' hash of a label set (``labels.Labels.Hash``: xxHash64 of ``name 0xff value
0xff ...`` over the labels sorted by name), for ``limit_ratio`` to pick the series Prometheus
picks. One numba call hashes every series."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from tsdb_arrow.jit import njit

_P1 = np.uint64(11400714785074694791)
_P2 = np.uint64(14029467366897019727)
_P3 = np.uint64(1609587929392839161)
_P4 = np.uint64(9650029242287828579)
_P5 = np.uint64(2870177450012600261)
_SEP = 0xFF


@njit(cache=True, nogil=True, inline="always")
def _rotl(x, r):  # pragma: no cover - compiled
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@njit(cache=True, nogil=True, inline="always")
def _round(acc, lane):  # pragma: no cover - compiled
    acc = acc + lane * _P2
    acc = _rotl(acc, 31)
    return acc * _P1


@njit(cache=True, nogil=True, inline="always")
def _merge(acc, val):  # pragma: no cover - compiled
    acc = acc ^ _round(np.uint64(0), val)
    return acc * _P1 + _P4


@njit(cache=True, nogil=True)
def _u64(b, i):  # pragma: no cover - compiled
    v = np.uint64(0)
    for k in range(8):
        v |= np.uint64(b[i + k]) << np.uint64(8 * k)
    return v


@njit(cache=True, nogil=True)
def _u32(b, i):  # pragma: no cover - compiled
    v = np.uint64(0)
    for k in range(4):
        v |= np.uint64(b[i + k]) << np.uint64(8 * k)
    return v


@njit(cache=True, nogil=True)
def xxh64(b, n):  # pragma: no cover - compiled
    """xxHash64 (seed 0) of the first ``n`` bytes of ``b``."""
    i = 0
    if n >= 32:
        v1 = _P1 + _P2
        v2 = _P2
        v3 = np.uint64(0)
        v4 = np.uint64(0) - _P1
        while i + 32 <= n:
            v1 = _round(v1, _u64(b, i))
            v2 = _round(v2, _u64(b, i + 8))
            v3 = _round(v3, _u64(b, i + 16))
            v4 = _round(v4, _u64(b, i + 24))
            i += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = _P5
    h = h + np.uint64(n)
    while i + 8 <= n:
        h = h ^ _round(np.uint64(0), _u64(b, i))
        h = _rotl(h, 27) * _P1 + _P4
        i += 8
    if i + 4 <= n:
        h = h ^ (_u32(b, i) * _P1)
        h = _rotl(h, 23) * _P2 + _P3
        i += 4
    while i < n:
        h = h ^ (np.uint64(b[i]) * _P5)
        h = _rotl(h, 11) * _P1
        i += 1
    h = h ^ (h >> np.uint64(33))
    h = h * _P2
    h = h ^ (h >> np.uint64(29))
    h = h * _P3
    h = h ^ (h >> np.uint64(32))
    return h


@njit(cache=True, nogil=True)
def _hash_rows(names, name_offsets, data, offsets, valid, width):  # pragma: no cover - compiled
    n_cols, n_rows = valid.shape
    out = np.empty(n_rows, dtype=np.uint64)
    key = np.empty(width, dtype=np.uint8)
    for i in range(n_rows):
        pos = 0
        for c in range(n_cols):
            if not valid[c, i]:
                continue
            for k in range(name_offsets[c], name_offsets[c + 1]):
                key[pos] = names[k]
                pos += 1
            key[pos] = _SEP
            pos += 1
            for k in range(offsets[c, i], offsets[c, i + 1]):
                key[pos] = data[k]
                pos += 1
            key[pos] = _SEP
            pos += 1
        out[i] = xxh64(key, pos)
    return out


def label_hashes(labels: pl.DataFrame) -> np.ndarray:
    """Prometheus' ``Labels.Hash()`` of every row (absent labels left out), uint64."""
    cols = sorted(labels.columns)
    if not cols:
        return np.full(labels.height, xxh64(np.zeros(1, np.uint8), 0), dtype=np.uint64)
    names = [c.encode() for c in cols]
    name_offsets = np.r_[0, np.cumsum([len(n) for n in names])].astype(np.int64)
    datas, offsets, valids = [], [], []
    base = 0
    for c in cols:
        arr = pc.cast(labels[c].to_arrow(), pa.large_string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        offs = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + len(arr) + 1]
        data = (
            np.frombuffer(arr.buffers()[2], np.uint8) if arr.buffers()[2] else np.zeros(0, np.uint8)
        )
        datas.append(data)
        offsets.append(offs + base)
        valids.append(arr.is_valid().to_numpy(zero_copy_only=False))
        base += data.size
    lengths = np.diff(np.stack(offsets), axis=1).sum(axis=0) if labels.height else np.zeros(0)
    width = int(lengths.max(initial=0)) + int(name_offsets[-1]) + 2 * len(cols)
    return _hash_rows(
        np.frombuffer(b"".join(names), np.uint8),
        name_offsets,
        np.concatenate(datas) if datas else np.zeros(0, np.uint8),
        np.stack(offsets),
        np.stack(valids),
        width,
    )
