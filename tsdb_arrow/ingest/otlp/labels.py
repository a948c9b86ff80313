"""Kernels that turn attribute entries into label columns, one pass per column.

Strings are referred to by (source, start, end): source 0 is the request body, source 1 the
side buffer of strings made here (metric names, formatted numbers, resource and scope labels).
A label column's value for a row is, by precedence (as Prometheus assigns them):

1. the row's own value (``__name__``, ``le``, ``quantile``);
2. the value its context (resource and scope) sets over attributes (``job``, ``instance``,
   ``otel_scope_*``);
3. the data point's attributes of that label name, joined by ``;`` in key order when several
   keys collide;
4. the context's promoted resource attribute;

and null when none has it.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MEMO = 64  # attribute positions remembered by ``intern``


@nb.njit(cache=True, nogil=True)
def intern(buf, rows, col_s, col_e, col_group, keep, table):
    """Number the distinct byte strings buf[rows[i, col_s]:rows[i, col_e]] by first appearance.

    Rows where ``keep`` (bool per row, or empty for all) is false get the id -1.

    ``table`` (int64, a power of two at least twice ``len(rows)``, filled with -1) is the hash
    table. ``rows[:, col_group]`` (e.g. the data point of each attribute; -1 for none) lets a
    string be matched first against the one at the same position of the previous group:
    attributes come in the same key order point after point, so most keys cost one comparison
    and no hash. Returns (id per string, row of each id's first string).
    """
    n = rows.shape[0]
    mask = table.shape[0] - 1
    ids = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    hashes = np.empty(n, dtype=np.uint64)
    memo = np.full(_MEMO, -1, dtype=np.int64)
    n_ids = 0
    position = 0
    for i in range(n):
        if col_group < 0 or (i > 0 and rows[i, col_group] != rows[i - 1, col_group]):
            position = 0
        if keep.shape[0] and not keep[i]:
            ids[i] = -1
            continue
        s = rows[i, col_s]
        length = rows[i, col_e] - s
        if position < _MEMO:
            m = memo[position]
            if m >= 0:
                f = first[m]
                same = rows[f, col_e] - rows[f, col_s] == length
                if same:
                    a, b = np.uint64(rows[f, col_s]), np.uint64(s)
                    for k in range(np.uint64(length)):
                        if buf[a + k] != buf[b + k]:
                            same = False
                            break
                if same:
                    ids[i] = m
                    position += 1
                    continue
        h = _FNV_OFFSET
        for k in range(np.uint64(s), np.uint64(s + length)):
            h = (h ^ np.uint64(buf[k])) * _FNV_PRIME
        slot = np.int64(h & np.uint64(mask))
        while True:
            t = table[slot]
            if t < 0:
                table[slot] = n_ids
                first[n_ids] = i
                hashes[n_ids] = h
                ids[i] = n_ids
                n_ids += 1
                break
            f = first[t]
            same = hashes[t] == h and rows[f, col_e] - rows[f, col_s] == length
            if same:
                a, b = np.uint64(rows[f, col_s]), np.uint64(s)
                for k in range(np.uint64(length)):
                    if buf[a + k] != buf[b + k]:
                        same = False
                        break
            if same:
                ids[i] = t
                break
            slot = (slot + 1) & mask
        if position < _MEMO:
            memo[position] = ids[i]
        position += 1
    return ids, first[:n_ids]


_ALL = np.zeros(0, dtype=np.bool_)


def intern_ranges(
    buf: np.ndarray,
    rows: np.ndarray,
    col_s: int,
    col_e: int,
    col_group: int = -1,
    keep: np.ndarray = _ALL,
) -> tuple[np.ndarray, np.ndarray]:
    """``intern`` with its hash table made here."""
    size = 1 << max(4, int(2 * len(rows)).bit_length())
    table = np.full(size, -1, dtype=np.int64)
    return intern(buf, rows, col_s, col_e, col_group, keep, table)


@nb.njit(cache=True, nogil=True)
def group_attributes(a0, a1, ok, ent_key, key_label, key_rank, n_labels):
    """Find points with a repeated key, and list each label's entries of the other ok points.

    Returns (repeated: bool per point, ptr: int64 n_labels + 1, entries: int64): label L's
    entries are entries[ptr[L]:ptr[L + 1]], by point, then by key (``key_rank``) where keys
    of one point collide on L.
    """
    n_p = a0.shape[0]
    repeated = np.zeros(n_p, dtype=np.bool_)
    counts = np.zeros(n_labels + 1, dtype=np.int64)
    label_of = np.empty(ent_key.shape[0], dtype=np.uint64)
    for p in range(n_p):
        if not ok[p]:
            continue
        lo, hi = np.uint64(a0[p]), np.uint64(a1[p])
        for i in range(lo, hi):
            key = ent_key[i]
            for j in range(lo, i):
                if ent_key[j] == key:
                    repeated[p] = True
        if repeated[p]:
            continue
        for i in range(lo, hi):
            label = np.uint64(key_label[np.uint64(ent_key[i])])
            label_of[i] = label
            counts[label + np.uint64(1)] += 1
    ptr = np.cumsum(counts)
    fill = ptr[:-1].copy()
    entries = np.empty(ptr[-1], dtype=np.int64)
    for p in range(n_p):
        if not ok[p] or repeated[p]:
            continue
        lo, hi = np.uint64(a0[p]), np.uint64(a1[p])
        for i in range(lo, hi):
            label = label_of[i]
            k = fill[label]
            entries[np.uint64(k)] = i
            fill[label] = k + 1
            # keep colliding keys of this point in key order (insertion into a tiny run)
            while k > ptr[label]:
                prev = entries[np.uint64(k - 1)]
                if np.int64(lo) <= prev and (key_rank[np.uint64(ent_key[np.uint64(prev)])]
                                             > key_rank[np.uint64(ent_key[i])]):  # fmt: skip
                    entries[np.uint64(k)] = prev
                    entries[np.uint64(k - 1)] = i
                    k -= 1
                else:
                    break
    return repeated, ptr, entries


@nb.njit(cache=True, nogil=True)
def column(
    label, row_point, row_ctx, row_src, row_s, row_e,
    ctx_ptr, ctx_label, ctx_over, ctx_src, ctx_s, ctx_e,
    att_point, att_src, att_s, att_e, body, side,
):  # fmt: skip
    """One label column over all rows: (int64 offsets, validity bitmap, bytes, null count).

    ``row_src`` is empty when no row has a value of its own for this label, else -1 for the
    rows without. ``att_*`` are this label's attribute values (point, source, start, end), by
    point; rows come in non-decreasing point order (-1: a row without a data point). An empty
    value (from any source) is no label: the row is null.
    """
    n = row_point.shape[0]
    n_att = att_point.shape[0]
    has_rows = row_src.shape[0] > 0
    n_ctx = ctx_ptr.shape[0] - 1
    c_over = np.full(n_ctx, -1, dtype=np.int64)  # per context: its item for this label
    c_promo = np.full(n_ctx, -1, dtype=np.int64)
    for c in range(n_ctx):
        for k in range(ctx_ptr[c], ctx_ptr[c + 1]):
            if ctx_label[k] == label:
                if ctx_over[k]:
                    c_over[c] = k
                else:
                    c_promo[c] = k
    offsets = np.empty(n + 1, dtype=np.int64)
    valid = np.zeros((n + 7) // 8, dtype=np.uint8)
    # what each row takes: 0 null, 1 its own value, 2 a context item, 3 attributes
    what = np.zeros(n, dtype=np.int8)
    which = np.zeros(n, dtype=np.int64)  # the context item, or the first attribute
    upto = np.zeros(n, dtype=np.int64)  # one past the last attribute
    j = 0
    total = 0
    nulls = 0
    for r in range(n):
        offsets[r] = total
        length = 0
        if has_rows and row_src[r] >= 0:
            what[r] = 1
            length = row_e[r] - row_s[r]
        else:
            c = np.uint64(row_ctx[r])  # unsigned: numba checks signed indices for wraparound
            k = c_over[c]
            if k < 0:
                p = row_point[r]
                if p >= 0:
                    while j < n_att and att_point[j] < p:
                        j += 1
                    t = j
                    while t < n_att and att_point[t] == p:
                        length += att_e[t] - att_s[t] + (t > j)  # with ';' between
                        t += 1
                    if t > j:
                        what[r] = 3
                        which[r] = j
                        upto[r] = t
                if what[r] == 0:
                    k = c_promo[c]
            if k >= 0:
                what[r] = 2
                which[r] = k
                length = ctx_e[np.uint64(k)] - ctx_s[np.uint64(k)]
        if length == 0:
            what[r] = 0
            nulls += 1
        else:
            valid[r >> 3] |= np.uint8(1 << (r & 7))
            total += length
    offsets[n] = total
    data = np.empty(total, dtype=np.uint8)
    for r in range(n):
        kind = what[r]
        if kind == 0:
            continue
        at = offsets[r]
        q = which[r]
        stop = upto[r] if kind == 3 else q + 1
        while q < stop:
            uq = np.uint64(q)
            if kind == 1:
                src, s, e = row_src[r], row_s[r], row_e[r]
            elif kind == 2:
                src, s, e = ctx_src[uq], ctx_s[uq], ctx_e[uq]
            else:
                if q > which[r]:
                    data[np.uint64(at)] = 59  # ';' between colliding attributes
                    at += 1
                src, s, e = att_src[uq], att_s[uq], att_e[uq]
            to, fro = np.uint64(at), np.uint64(s)
            if src == 0:
                for k in range(np.uint64(e - s)):
                    data[to + k] = body[fro + k]
            else:
                for k in range(np.uint64(e - s)):
                    data[to + k] = side[fro + k]
            at += e - s
            q += 1
    return offsets, valid, data, nulls
