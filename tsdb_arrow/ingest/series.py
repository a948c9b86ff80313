"""Resolving label columns to series refs, vectorised: numba kernels over Arrow string buffers.

Rows of one series usually arrive together, so the resolver first finds runs of identical label
sets (one pass comparing each row with the one before), hashes only the first row of each run,
and checks that runs sharing a ref really share their labels (a 64-bit collision is refused).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tsdb_arrow.errors import SeriesCollisionError
from tsdb_arrow.model import FNV_OFFSET, FNV_PRIME, REF, SEPARATOR

_EMPTY_BITMAP = np.zeros(0, dtype=np.uint8)
_PRIME = FNV_PRIME
_SEP = np.uint64(SEPARATOR)


@nb.njit(cache=True, inline="always")
def _present(valid: np.ndarray, has_valid: bool, offsets: np.ndarray, base: int, i: int) -> bool:
    if has_valid and not (valid[(base + i) >> 3] >> ((base + i) & 7)) & 1:
        return False
    return offsets[base + i + 1] > offsets[base + i]


@nb.njit(cache=True)
def _same(valid, has_valid, offsets, data, base, a, b) -> bool:
    pa_ = _present(valid, has_valid, offsets, base, a)
    pb = _present(valid, has_valid, offsets, base, b)
    if pa_ != pb:
        return False
    if not pa_:
        return True
    sa, ea = offsets[base + a], offsets[base + a + 1]
    sb, eb = offsets[base + b], offsets[base + b + 1]
    if ea - sa != eb - sb:
        return False
    if sa == sb:
        return True
    for k in range(ea - sa):
        if data[sa + k] != data[sb + k]:
            return False
    return True


@nb.njit(cache=True)
def _mark_changes(valid, has_valid, offsets, data, base, n, changed):
    """changed[i] |= row i differs from row i-1 in this column (absent and "" are equal)."""
    prev_s = offsets[base]
    prev_e = offsets[base + 1]
    if has_valid and not (valid[base >> 3] >> (base & 7)) & 1:
        prev_e = prev_s
    i = 1
    while i < n:
        j = base + i
        if has_valid and prev_e == prev_s and (j & 7) == 0 and i + 8 <= n and valid[j >> 3] == 0:
            i += 8  # eight absent values after an absent one: nothing changes
            continue
        s = offsets[j]
        e = offsets[j + 1]
        if has_valid and not (valid[j >> 3] >> (j & 7)) & 1:
            e = s
        if not changed[i]:
            length = e - s
            if length != prev_e - prev_s:
                changed[i] = True
            else:
                for k in range(length):
                    if data[s + k] != data[prev_s + k]:
                        changed[i] = True
                        break
        prev_s = s
        prev_e = e
        i += 1


@nb.njit(cache=True)
def _hash_rows(valid, has_valid, offsets, data, base, rows, name, h):
    """Fold ``name 0xFF value 0xFF`` into h[k] for each present value of row rows[k]."""
    prime = _PRIME
    sep = _SEP
    for k in range(rows.shape[0]):
        i = rows[k]
        if not _present(valid, has_valid, offsets, base, i):
            continue
        x = h[k]
        for j in range(name.shape[0]):
            x = (x ^ np.uint64(name[j])) * prime
        x = (x ^ sep) * prime
        for j in range(offsets[base + i], offsets[base + i + 1]):
            x = (x ^ np.uint64(data[j])) * prime
        h[k] = (x ^ sep) * prime


@nb.njit(cache=True)
def _rows_equal(valid, has_valid, offsets, data, base, rows_a, rows_b, equal):
    for k in range(rows_a.shape[0]):
        if equal[k] and not _same(valid, has_valid, offsets, data, base, rows_a[k], rows_b[k]):
            equal[k] = False


def _mix64(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _buffers(arr: pa.Array) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray, int]:
    """Zero-copy numpy views of a large_string array's validity, offsets and data buffers."""
    validity, offsets, data = arr.buffers()
    n = arr.offset + len(arr)
    off = np.frombuffer(offsets, dtype=np.int64, count=n + 1)
    dat = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    if validity is None or arr.null_count == 0:
        return _EMPTY_BITMAP, False, off, dat, arr.offset
    return np.frombuffer(validity, dtype=np.uint8), True, off, dat, arr.offset


@dataclass(frozen=True)
class Resolved:
    """Series refs of a batch: one per row, plus the batch's distinct series and their labels."""

    row_refs: np.ndarray  # uint64, one per row
    series: pa.Table  # REF + one large_string column per label name; one row per distinct ref


def resolve_series(labels: dict[str, pa.ChunkedArray], n_rows: int) -> Resolved:
    """Compute the ref of every row from its label columns (large_string, ""/null = absent).

    Columns chunked alike (a Table read from Parquet) are resolved chunk by chunk, zero-copy.
    """
    names = sorted(labels)
    layouts = {tuple(len(c) for c in labels[name].chunks) for name in names}
    if len(layouts) != 1 or len(next(iter(layouts))) <= 1:
        flat = {name: _flat(labels[name]) for name in names}
        resolved = _resolve_flat(flat, n_rows)
        return Resolved(resolved.row_refs, _nulls_for_empty(resolved.series))
    parts = [
        _resolve_flat({name: labels[name].chunk(k) for name in names}, length)
        for k, length in enumerate(next(iter(layouts)))
    ]
    series = pa.concat_tables([p.series for p in parts])
    refs = series[REF].to_numpy()
    _, first = np.unique(refs, return_index=True)
    if len(first) < len(refs):
        _check_duplicates(series, refs, first)
        series = series.take(pa.array(first))
    return Resolved(np.concatenate([p.row_refs for p in parts]), _nulls_for_empty(series))


def _flat(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _check_duplicates(series: pa.Table, refs: np.ndarray, first: np.ndarray) -> None:
    """Rows of ``series`` sharing a ref must hold the same labels, else two label sets collided."""
    uniq, inverse = np.unique(refs, return_inverse=True)
    rep = pa.array(first[inverse])
    names = [c for c in series.column_names if c != REF]
    cols = {name: _buffers(_flat(series.column(name))) for name in names}
    rows_a = np.arange(len(refs), dtype=np.int64)
    rows_b = first[inverse].astype(np.int64)
    equal = np.ones(len(refs), dtype=np.bool_)
    for valid, has_valid, off, dat, base in cols.values():
        _rows_equal(valid, has_valid, off, dat, base, rows_a, rows_b, equal)
    if not equal.all():
        k = int(np.flatnonzero(~equal)[0])
        raise SeriesCollisionError(_collision_message(int(refs[k])))
    del uniq, rep


def _collision_message(ref: int) -> str:
    return (
        f"two different label sets have the same series ref {ref:#018x}; the batch was "
        "refused. Rename a label of one of these series (e.g. add a distinguishing label)."
    )


def _resolve_flat(labels: dict[str, pa.Array], n_rows: int) -> Resolved:
    names = sorted(labels)
    changed = np.zeros(n_rows, dtype=np.bool_)
    if n_rows:
        changed[0] = True
    for name in names:
        _mark(labels[name], n_rows, changed)
    run_starts = np.flatnonzero(changed)

    # From here on only the first row of each run matters: a small large_string table.
    runs = {name: _take_large(labels[name], run_starts) for name in names}
    cols = [_buffers(runs[name]) for name in names]
    local = np.arange(len(run_starts), dtype=np.int64)
    h = np.full(len(run_starts), FNV_OFFSET, dtype=np.uint64)
    for name, (valid, has_valid, off, dat, base) in zip(names, cols):
        name_bytes = np.frombuffer(name.encode(), dtype=np.uint8)
        _hash_rows(valid, has_valid, off, dat, base, local, name_bytes, h)
    run_refs = _mix64(h)

    uniq_refs, first_run, run_to_uniq = np.unique(run_refs, return_index=True, return_inverse=True)
    if len(uniq_refs) < len(run_refs):
        # Runs that share a ref must share their labels, else two label sets collided.
        rows_b = first_run[run_to_uniq].astype(np.int64)
        equal = np.ones(len(local), dtype=np.bool_)
        for valid, has_valid, off, dat, base in cols:
            _rows_equal(valid, has_valid, off, dat, base, local, rows_b, equal)
        if not equal.all():
            k = int(np.flatnonzero(~equal)[0])
            raise SeriesCollisionError(_collision_message(int(run_refs[k])))

    lengths = np.diff(np.append(run_starts, n_rows))
    row_refs = np.repeat(run_refs, lengths)
    first = pa.array(first_run)
    series_cols = {REF: pa.array(uniq_refs, type=pa.uint64())}
    for name in names:
        series_cols[name] = runs[name].take(first)
    return Resolved(row_refs=row_refs, series=pa.table(series_cols))


def _take_large(arr: pa.Array, rows: np.ndarray) -> pa.Array:
    """The given rows of a string column as a large_string array."""
    if not pa.types.is_string_view(arr.type):
        taken = arr.take(pa.array(rows))
        return taken if pa.types.is_large_string(taken.type) else taken.cast(pa.large_string())
    valid, has_valid, raw, flat, starts = _view_buffers(arr)
    offsets, data, present = _take_views(valid, has_valid, raw, flat, starts, arr.offset, rows)
    validity = None if present.all() else pa.array(present, pa.bool_()).buffers()[1]
    return pa.LargeStringArray.from_buffers(
        len(rows), pa.py_buffer(offsets), pa.py_buffer(data), validity
    )


def _view_buffers(arr: pa.Array):
    validity, views = arr.buffers()[:2]
    data = [np.frombuffer(b, dtype=np.uint8) for b in arr.buffers()[2:] if b is not None]
    starts = np.cumsum([0] + [len(d) for d in data]).astype(np.int64)
    flat = np.concatenate(data) if data else np.zeros(0, np.uint8)
    has_valid = validity is not None and arr.null_count > 0
    valid = np.frombuffer(validity, dtype=np.uint8) if has_valid else _EMPTY_BITMAP
    raw = np.frombuffer(views, dtype=np.uint8, count=16 * (arr.offset + len(arr)))
    return valid, has_valid, raw, flat, starts


@nb.njit(cache=True)
def _take_views(valid, has_valid, raw, data, starts, base, rows):
    n = rows.shape[0]
    offsets = np.zeros(n + 1, dtype=np.int64)
    present = np.ones(n, dtype=np.bool_)
    for k in range(n):
        j = base + rows[k]
        if has_valid and not (valid[j >> 3] >> (j & 7)) & 1:
            present[k] = False
        offsets[k + 1] = offsets[k] + _view_len(valid, has_valid, raw, j)
    out = np.empty(offsets[n], dtype=np.uint8)
    for k in range(n):
        j = base + rows[k]
        length = offsets[k + 1] - offsets[k]
        a = j * 16
        if length <= 12:
            src = raw
            p = a + 4
        else:
            src = data
            p = starts[_int32_at(raw, a + 8)] + _int32_at(raw, a + 12)
        for i in range(length):
            out[offsets[k] + i] = src[p + i]
    return offsets, out, present


def _mark(arr: pa.Array, n_rows: int, changed: np.ndarray) -> None:
    """OR into ``changed`` where this label column differs from the row before."""
    if pa.types.is_string_view(arr.type):
        valid, has_valid, raw, flat, starts = _view_buffers(arr)
        _mark_changes_views(valid, has_valid, raw, flat, starts, arr.offset, n_rows, changed)
        return
    _mark_changes(*_buffers(arr), n_rows, changed)


@nb.njit(cache=True, inline="always")
def _view_len(valid, has_valid, raw, j):
    if has_valid and not (valid[j >> 3] >> (j & 7)) & 1:
        return 0
    v = j * 16
    return (
        np.int64(raw[v])
        | (np.int64(raw[v + 1]) << 8)
        | (np.int64(raw[v + 2]) << 16)
        | (np.int64(raw[v + 3]) << 24)
    )


@nb.njit(cache=True, inline="always")
def _int32_at(raw, p):
    x = np.int64(raw[p]) | (np.int64(raw[p + 1]) << 8) | (np.int64(raw[p + 2]) << 16)
    return x | (np.int64(raw[p + 3]) << 24)


@nb.njit(cache=True)
def _mark_changes_views(valid, has_valid, raw, data, starts, base, n, changed):
    """_mark_changes for a string_view column (16-byte views, variadic data buffers)."""
    words = raw.view(np.int32)  # per view: length, then inline bytes or prefix/buffer/offset
    for i in range(1, n):
        if changed[i]:
            continue
        j = base + i
        a = 4 * j
        b = a - 4
        la = words[a]
        lb = words[b]
        if has_valid:
            if not (valid[j >> 3] >> (j & 7)) & 1:
                la = 0
            if not (valid[(j - 1) >> 3] >> ((j - 1) & 7)) & 1:
                lb = 0
        if la != lb:
            changed[i] = True
            continue
        if la == 0:
            continue
        if (
            words[a + 1] == words[b + 1]
            and words[a + 2] == words[b + 2]
            and (words[a + 3] == words[b + 3])
        ):
            continue  # the same 16 bytes: the same string
        if la <= 12:  # inline bytes differ (or only their padding: compare exactly)
            for k in range(la):
                if raw[16 * j + 4 + k] != raw[16 * j - 12 + k]:
                    changed[i] = True
                    break
            continue
        if words[a + 1] != words[b + 1]:  # different 4-byte prefixes
            changed[i] = True
            continue
        pa_ = starts[words[a + 2]] + words[a + 3]
        pb = starts[words[b + 2]] + words[b + 3]
        for k in range(la):
            if data[pa_ + k] != data[pb + k]:
                changed[i] = True
                break


def _nulls_for_empty(series: pa.Table) -> pa.Table:
    """The empty string means "label absent": store it as null."""
    for i, name in enumerate(series.column_names):
        if name != REF:
            col = series.column(i)
            series = series.set_column(
                i, name, pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)
            )
    return series
