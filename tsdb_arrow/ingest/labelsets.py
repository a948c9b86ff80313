"""Distinct label sets of a batch, whatever its row order: one numba pass per label column.

Each row starts in the empty label set (id 0). A label column then refines every row's set: a
row whose value is absent (null or "") keeps its id, a row with value v moves to the id of
(its id, column, v), found in one hash table shared by all columns and created on first sight.
After the last column, rows with equal ids have equal label sets and vice versa: identity is
decided by exact byte comparison, never by a hash alone. Each id keeps a copy of its value in
an arena, so the distinct label sets are rebuilt from the ids without touching the rows again,
and chunks or Arrow layouts (large_string, string_view) can differ from column to column.

Each set remembers the id a column last gave it, so rows in series order (and rows in time
order, for columns with one value per set) cost one comparison per present value; other rows
cost one hash lookup; absent values (most of a wide label set) cost a bit test.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa

from tsdb_arrow.ingest import split
from tsdb_arrow.jit import njit
from tsdb_arrow.words import MIX1, MIX2, mix_bytes, same_bytes


def readonly(arr: np.ndarray) -> np.ndarray:
    """``arr`` (a fresh view) marked read-only.

    numba compiles one kernel per argument type, and read-only is part of the type: handing
    kernels read-only buffers always keeps one compiled variant instead of one per mixture.
    """
    arr.setflags(write=False)
    return arr


_EMPTY_U8 = readonly(np.zeros(0, dtype=np.uint8))
_EMPTY_I64 = readonly(np.zeros(0, dtype=np.int64))
_ROOT = 0  # the id of the empty label set
_MIN_TABLE = 1024


@njit(cache=True, nogil=True)
def _refine(
    col, valid, has_valid, offsets, views, data, starts, base, is_view, ids, i,
    table, parent, column, hashes, arena_start, arena, memo, scratch, state,
):  # fmt: skip
    """Move each row's id (``ids``, in place) to the id of (id, col, value) for present values.

    The column is a large_string (``offsets``, ``data``) or a string_view (``views``, variadic
    buffers concatenated in ``data`` at ``starts``; each value is first copied to ``scratch``).
    Starts at row ``i``; returns the row at which it stopped: ``len(ids)`` when done, earlier
    when an array must grow first (``state``: ids in use, arena bytes in use, bytes needed).
    ``memo[g]`` is the id this column last gave to set g: rows in series order, and rows in
    time order with one value per set, cost one comparison instead of a hash lookup. The loop
    calls no function but the inlined word helpers and reassigns no array: numba would count
    references on every row. Bytes are hashed and compared a word at a time
    (``tsdb_arrow.words``).
    """
    n = ids.shape[0]
    mask = table.shape[0] - 1
    src = scratch if is_view else data
    while i < n:
        j = base + i
        if has_valid:
            if (j & 7) == 0 and i + 8 <= n and valid[j >> 3] == 0:
                i += 8  # eight absent values: eight ids unchanged
                continue
            if not (valid[j >> 3] >> (j & 7)) & 1:
                i += 1
                continue
        if is_view:
            v = 16 * j
            length = np.int64(views[v]) | (np.int64(views[v + 1]) << 8)
            length |= (np.int64(views[v + 2]) << 16) | (np.int64(views[v + 3]) << 24)
            if length > scratch.shape[0]:
                state[2] = length
                break  # the caller grows ``scratch`` and calls again from row i
            if length <= 12:
                for k in range(length):
                    scratch[k] = views[v + 4 + k]
            else:
                b = np.int64(views[v + 8]) | (np.int64(views[v + 9]) << 8)
                b |= (np.int64(views[v + 10]) << 16) | (np.int64(views[v + 11]) << 24)
                o = np.int64(views[v + 12]) | (np.int64(views[v + 13]) << 8)
                o |= (np.int64(views[v + 14]) << 16) | (np.int64(views[v + 15]) << 24)
                p = starts[b] + o
                for k in range(length):
                    scratch[k] = data[p + k]
            s = 0
        else:
            s = offsets[j]
            length = offsets[j + 1] - s
        if length == 0:
            i += 1
            continue
        g = ids[i]
        e = memo[g]
        if (
            e > 0
            and column[e] == col
            and arena_start[e + 1] - arena_start[e] == length
            and same_bytes(arena, arena_start[e], src, s, length)
        ):
            ids[i] = e
            i += 1
            continue
        x = mix_bytes(np.uint64(g) * MIX2 + np.uint64(col), src, s, s + length)
        x = (x ^ (x >> np.uint64(30))) * MIX1
        x = (x ^ (x >> np.uint64(27))) * MIX2
        x = x ^ (x >> np.uint64(31))
        slot = np.int64(x & np.uint64(mask))
        while True:
            e = table[slot]
            if e < 0:
                break
            if (
                hashes[e] == x
                and parent[e] == g
                and column[e] == col
                and arena_start[e + 1] - arena_start[e] == length
                and same_bytes(arena, arena_start[e], src, s, length)
            ):
                break
            slot = (slot + 1) & mask
        if e < 0:
            e = state[0]
            used = state[1]
            if (
                e + 2 >= parent.shape[0]
                or 2 * (e + 1) > table.shape[0]
                or used + length > arena.shape[0]
            ):
                state[2] = length
                break  # the caller grows the arrays and calls again from row i
            for k in range(length):
                arena[used + k] = src[s + k]
            state[0] = e + 1
            state[1] = used + length
            parent[e] = g
            column[e] = col
            hashes[e] = x
            arena_start[e + 1] = used + length
            table[slot] = e
        memo[g] = e
        ids[i] = e
        i += 1
    return i


def _grown(arr: np.ndarray, size: int, fill: int = 0) -> np.ndarray:
    out = np.full(size, fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


@njit(cache=True, nogil=True)
def _rehash(hashes, n_ids, size):
    table = np.full(size, -1, dtype=np.int64)
    mask = np.uint64(size - 1)
    for e in range(1, n_ids):
        slot = np.int64(hashes[e] & mask)
        while table[slot] >= 0:
            slot = (slot + 1) & (size - 1)
        table[slot] = e
    return table


class _Arena:
    """The growing state of one grouping: the hash table, each id's parent, column and value."""

    def __init__(self, capacity: int) -> None:
        size = max(_MIN_TABLE, 1 << int(2 * capacity).bit_length())
        self.table = np.full(size, -1, dtype=np.int64)
        self.parent = np.zeros(size // 2, dtype=np.int64)
        self.column = np.full(size // 2, -1, dtype=np.int64)
        self.hashes = np.zeros(size // 2, dtype=np.uint64)
        self.start = np.zeros(size // 2 + 1, dtype=np.int64)
        self.memo = np.zeros(size // 2, dtype=np.int64)
        self.scratch = np.zeros(256, dtype=np.uint8)  # a string_view value, copied
        self.bytes = np.zeros(16 * size, dtype=np.uint8)
        # ids in use (id 0 is the empty label set), arena bytes in use, bytes the next value needs
        self.state = np.array([1, 0, 0], dtype=np.int64)

    def refine(self, col: int, arr: pa.Array, ids: np.ndarray) -> None:
        """Refine ``ids`` (one per row of ``arr``) by the values of label column ``col``."""
        buffers = string_buffers(arr)
        i = 0
        while True:
            i = _refine(
                col, *buffers, ids, i,
                self.table, self.parent, self.column, self.hashes, self.start, self.bytes,
                self.memo, self.scratch, self.state,
            )  # fmt: skip
            if i == len(ids):
                return
            self._grow()

    def _grow(self) -> None:
        """Double whatever is (nearly) full: the id arrays with the table, or the arena."""
        n_ids, used = (int(x) for x in self.state[:2])
        if n_ids + 2 >= len(self.parent) or 2 * (n_ids + 1) > len(self.table):
            size = 2 * len(self.parent)
            self.parent = _grown(self.parent, size)
            self.column = _grown(self.column, size, fill=-1)
            self.hashes = _grown(self.hashes, size)
            self.start = _grown(self.start, size + 1)
            self.memo = _grown(self.memo, size)
            self.table = _rehash(self.hashes, n_ids, 2 * size)
        if int(self.state[2]) > len(self.scratch):
            self.scratch = np.zeros(2 * int(self.state[2]), dtype=np.uint8)
        needed = used + int(self.state[2])
        if needed > len(self.bytes):
            self.bytes = _grown(self.bytes, max(2 * len(self.bytes), needed))
        self.state[2] = 0

    def values(self) -> pa.LargeStringArray:
        """Every id's value (the root's is empty), as one large_string array indexed by id."""
        n_ids, used = (int(x) for x in self.state[:2])
        return pa.LargeStringArray.from_buffers(
            n_ids, pa.py_buffer(self.start[: n_ids + 1]), pa.py_buffer(self.bytes[:used])
        )


def string_buffers(arr: pa.Array) -> tuple:
    """Read-only numpy views of a large_string or string_view array: validity bitmap, whether
    it has nulls, offsets, views, data, view data starts, array offset, is-view (as ``_refine``
    and the ref hash take them)."""
    validity = arr.buffers()[0]
    has_valid = validity is not None and arr.null_count > 0
    valid = readonly(np.frombuffer(validity, dtype=np.uint8)) if has_valid else _EMPTY_U8
    n = arr.offset + len(arr)
    if pa.types.is_string_view(arr.type):
        views = readonly(np.frombuffer(arr.buffers()[1], dtype=np.uint8, count=16 * n))
        parts = [np.frombuffer(b, dtype=np.uint8) for b in arr.buffers()[2:] if b is not None]
        starts = readonly(np.cumsum([0] + [len(d) for d in parts]).astype(np.int64))
        data = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else _EMPTY_U8
        return valid, has_valid, _EMPTY_I64, views, readonly(data), starts, arr.offset, True
    _, offsets, data_buf = arr.buffers()
    offsets_np = readonly(np.frombuffer(offsets, dtype=np.int64, count=n + 1))
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else _EMPTY_U8
    return valid, has_valid, offsets_np, _EMPTY_U8, readonly(data), _EMPTY_I64, arr.offset, False


def chunks_of(column: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    """The arrays of a label column, chunked or not."""
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def present_chunks(column: pa.ChunkedArray | pa.Array) -> Iterator[tuple[int, pa.Array]]:
    """Each chunk of a label column that holds a value, with the row it starts at."""
    lo = 0
    for chunk in chunks_of(column):
        if chunk.null_count < len(chunk):
            yield lo, chunk
        lo += len(chunk)


@dataclass(frozen=True)
class LabelSets:
    """The distinct label sets of a batch and which one each row holds."""

    row_set: np.ndarray  # int64, one per row: an index into the distinct sets
    sets: dict[str, pa.LargeStringArray]  # label name -> one value (null = absent) per set


def distinct_label_sets(
    labels: dict[str, pa.ChunkedArray], n_rows: int, pool: Executor | None = None
) -> LabelSets:
    """Find the distinct label sets of ``n_rows`` rows (columns large_string or string_view).

    With a ``pool``, a batch of many present values is grouped in two halves at once, whose
    sets are then grouped once more to join them (the first half's sets first)."""
    if not split.worth_it(labels, pool):
        return _distinct(labels, n_rows)
    parts = [
        partial(_distinct, {name: col.slice(lo, hi - lo) for name, col in labels.items()}, hi - lo)
        for lo, hi in split.halves(n_rows)
    ]
    first, second = split.each(pool, parts)
    names = sorted(labels)
    n_first = len(first.sets[names[0]])
    both = _distinct(
        {name: pa.chunked_array([first.sets[name], second.sets[name]]) for name in names},
        n_first + len(second.sets[names[0]]),
    )
    row_set = np.concatenate(
        (both.row_set[:n_first][first.row_set], both.row_set[n_first:][second.row_set])
    )
    return LabelSets(row_set, both.sets)


def _distinct(labels: dict[str, pa.ChunkedArray], n_rows: int) -> LabelSets:
    """``distinct_label_sets`` in this thread."""
    names = sorted(labels)
    ids = np.zeros(n_rows, dtype=np.int64)
    arena = _Arena(capacity=min(n_rows, 4096))
    for col, name in enumerate(names):
        for lo, chunk in present_chunks(labels[name]):
            arena.refine(col, chunk, ids[lo : lo + len(chunk)])
    n_ids = int(arena.state[0])
    seen = np.zeros(n_ids, dtype=np.bool_)
    seen[ids] = True
    final = np.flatnonzero(seen)
    dense = np.zeros(n_ids, dtype=np.int64)
    dense[final] = np.arange(len(final), dtype=np.int64)
    return LabelSets(dense[ids], _set_columns(arena, names, final))


def _set_columns(
    arena: _Arena, names: list[str], final: np.ndarray
) -> dict[str, pa.LargeStringArray]:
    """Walk each final id back to the root: the id a column added is that column's value."""
    n_ids = int(arena.state[0])
    parent = arena.parent[:n_ids]
    column = arena.column[:n_ids]
    picked = np.full((len(names), len(final)), -1, dtype=np.int64)
    cur = final.copy()
    sets = np.arange(len(final))
    while True:
        live = cur != _ROOT
        if not live.any():
            break
        cur, sets = cur[live], sets[live]
        picked[column[cur], sets] = cur
        cur = parent[cur]
    values = arena.values()
    return {
        name: values.take(pa.array(picked[c], mask=picked[c] < 0)) for c, name in enumerate(names)
    }
