"""Runs of rows with equal label sets, found by comparing each row with the row before.

A frame read from a file or exported by a database usually comes series by series: its rows form
a few long runs of one label set. Comparing each row's labels with the previous row's (a bit
test for an absent value, a byte comparison for a present one, no hashing) finds the runs at a
fraction of the cost of grouping every row (``labelsets``); the distinct sets are then found
among the runs' first rows only. Rows in another order (time by time) differ from row to row:
the search stops as soon as more than a share of the rows start a run, and the caller groups
the rows the usual way.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pyarrow as pa

#: Most run starts, as a share of the rows, for runs to pay off.
MAX_RUN_SHARE = 1 / 16


@nb.njit(cache=True, nogil=True)
def _mark_changes(valid, has_valid, offsets, data, base, changed):
    """Set ``changed[i]`` where row i's value differs from row i-1's (absent = null or "");
    returns how many rows it newly marked. Row 0 is left as it is. Absent values are found by
    their validity bit, eight at a time where a validity byte is 0, before any offset is read
    (a wide label set is mostly absent values)."""
    n = changed.shape[0]
    marked = 0
    prev_present = False
    prev_s = 0
    prev_len = 0
    i = 0
    while i < n:
        j = base + i
        if has_valid:
            if (j & 7) == 0 and i + 8 <= n and valid[j >> 3] == 0:
                if prev_present and i > 0 and not changed[i]:
                    changed[i] = True
                    marked += 1
                prev_present = False
                i += 8
                continue
            if not (valid[j >> 3] >> (j & 7)) & 1:
                if prev_present and i > 0 and not changed[i]:
                    changed[i] = True
                    marked += 1
                prev_present = False
                i += 1
                continue
        s = offsets[j]
        length = offsets[j + 1] - s
        present = length > 0
        if i > 0 and not changed[i]:
            differs = present != prev_present
            if not differs and present:
                if length != prev_len:
                    differs = True
                else:  # eight bytes at a time (LLVM merges the byte loads of a word)
                    k = 0
                    while k + 8 <= length:
                        wa = np.uint64(0)
                        wb = np.uint64(0)
                        for t in range(8):
                            wa |= np.uint64(data[s + k + t]) << np.uint64(8 * t)
                            wb |= np.uint64(data[prev_s + k + t]) << np.uint64(8 * t)
                        if wa != wb:
                            differs = True
                            break
                        k += 8
                    if not differs:
                        for t in range(k, length):
                            if data[s + t] != data[prev_s + t]:
                                differs = True
                                break
            if differs:
                changed[i] = True
                marked += 1
        prev_present = present
        prev_s = s
        prev_len = length
        i += 1
    return marked


def run_starts(labels: dict[str, pa.ChunkedArray], n_rows: int) -> np.ndarray | None:
    """The rows where a run of one label set starts (row 0 first), or None when more than
    ``MAX_RUN_SHARE`` of the rows would (group the rows instead). Columns are large_string;
    a row at a chunk boundary counts as a start (harmless: runs of one set may follow)."""
    from tsdb_arrow.ingest.labelsets import string_buffers

    changed = np.zeros(n_rows, dtype=np.bool_)
    if n_rows:
        changed[0] = True
    starts = 1 if n_rows else 0
    limit = max(1, int(n_rows * MAX_RUN_SHARE))
    for name in sorted(labels):
        column = labels[name]
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        lo = 0
        for chunk in chunks:
            hi = lo + len(chunk)
            if lo and lo < n_rows and not changed[lo]:
                changed[lo] = True
                starts += 1
            if not pa.types.is_large_string(chunk.type):
                return None
            if chunk.null_count == len(chunk):  # all absent: no change inside
                lo = hi
                continue
            valid, has_valid, offsets, _, data, _, base, _ = string_buffers(chunk)
            starts += _mark_changes(valid, has_valid, offsets, data, base, changed[lo:hi])
            lo = hi
        if starts > limit:
            return None
    return np.flatnonzero(changed)


def take_rows(column: pa.ChunkedArray | pa.Array, rows: np.ndarray) -> pa.Array:
    """The values of ``column`` at ``rows`` (sorted), taken chunk by chunk: Arrow's take of a
    chunked array first joins its chunks, copying the whole column for a few rows."""
    if not isinstance(column, pa.ChunkedArray):
        return column.take(pa.array(rows))
    ends = np.cumsum([len(c) for c in column.chunks])
    which = np.searchsorted(ends, rows, side="right")
    starts = ends - np.array([len(c) for c in column.chunks])
    pieces = [
        column.chunk(c).take(pa.array(rows[which == c] - starts[c]))
        for c in np.unique(which).tolist()
    ]
    return pa.concat_arrays(pieces) if pieces else pa.array([], column.type)
