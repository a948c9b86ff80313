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

import numpy as np

from tsdb_arrow.jit import njit

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MEMO = 64  # attribute positions remembered by ``intern``


@njit(cache=True, nogil=True, inline="always")
def _equal(buf, a, b, length):
    """Whether buf[a:a+length] == buf[b:b+length], compared eight bytes at a time (LLVM
    merges the byte loads of a word into one load)."""
    ua, ub, n = np.uint64(a), np.uint64(b), np.uint64(length)
    k = np.uint64(0)
    while k + np.uint64(8) <= n:
        wa = np.uint64(0)
        wb = np.uint64(0)
        for t in range(8):
            wa |= np.uint64(buf[ua + k + np.uint64(t)]) << np.uint64(8 * t)
            wb |= np.uint64(buf[ub + k + np.uint64(t)]) << np.uint64(8 * t)
        if wa != wb:
            return False
        k += np.uint64(8)
    while k < n:
        if buf[ua + k] != buf[ub + k]:
            return False
        k += np.uint64(1)
    return True


@njit(cache=True, nogil=True)
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
                    same = _equal(buf, rows[f, col_s], s, length)
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
                same = _equal(buf, rows[f, col_s], s, length)
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


@njit(cache=True, nogil=True)
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


# Columns of the context items and listed attributes handed to ``columns``.
C_LABEL, C_OVER, C_SRC, C_START, C_END = range(5)
A_POINT, A_SRC, A_START, A_END = range(4)


@njit(cache=True, nogil=True)
def columns(wanted, own_slot, own, row_point, row_ctx, ctx_ptr, ctx, att_ptr, att, body, side):
    """The label columns ``wanted`` (label ids) over all rows, built in one call.

    A row's value of a label is, by precedence: its own (``own[own_slot[label]]``: source,
    start, end per row, source -1 where it has none), its context's overriding item, its data
    point's attributes of that label (joined by ';'), its context's promoted item; else null.
    Context c's items are ``ctx[ctx_ptr[c]:ctx_ptr[c + 1]]`` (label, overrides, source, start,
    end); label L's attributes are ``att[att_ptr[L]:att_ptr[L + 1]]`` (point, source, start,
    end), by point. Rows come in non-decreasing point order (-1: no data point). An empty value
    (from any source) is no label.

    Returns (offsets: int64 (labels, rows + 1) into ``data``, validity bitmaps: uint8
    (labels, bytes), data, null counts).
    """
    n = row_point.shape[0]
    n_wanted = wanted.shape[0]
    n_ctx = ctx_ptr.shape[0] - 1
    offsets = np.empty((n_wanted, n + 1), dtype=np.int64)
    valid = np.zeros((n_wanted, (n + 7) // 8), dtype=np.uint8)
    nulls = np.zeros(n_wanted, dtype=np.int64)
    # what each row takes: 0 null, 1 its own value, 2 a context item, 3 attributes
    what = np.zeros((n_wanted, n), dtype=np.int8)
    which = np.zeros((n_wanted, n), dtype=np.int64)  # the context item, or the first attribute
    upto = np.zeros((n_wanted, n), dtype=np.int64)  # one past the last attribute
    c_over = np.empty(n_ctx, dtype=np.int64)  # per context: its item for this label
    c_promo = np.empty(n_ctx, dtype=np.int64)
    total = 0
    for w in range(n_wanted):
        label = wanted[w]
        slot = own_slot[label]
        for c in range(n_ctx):
            c_over[c] = -1
            c_promo[c] = -1
            for k in range(ctx_ptr[c], ctx_ptr[c + 1]):
                if ctx[k, C_LABEL] == label:
                    if ctx[k, C_OVER]:
                        c_over[c] = k
                    else:
                        c_promo[c] = k
        j = att_ptr[label]
        j_end = att_ptr[label + 1]
        for r in range(n):
            offsets[w, r] = total
            length = 0
            kind = 0
            if slot >= 0 and own[slot, 0, r] >= 0:
                kind = 1
                length = own[slot, 2, r] - own[slot, 1, r]
            else:
                c = np.uint64(row_ctx[r])  # unsigned: numba checks signed indices for wraparound
                k = c_over[c]
                if k < 0:
                    p = row_point[r]
                    if p >= 0:
                        while j < j_end and att[np.uint64(j), A_POINT] < p:
                            j += 1
                        t = j
                        while t < j_end and att[np.uint64(t), A_POINT] == p:
                            ut = np.uint64(t)
                            length += att[ut, A_END] - att[ut, A_START] + (t > j)  # ';' between
                            t += 1
                        if t > j:
                            kind = 3
                            which[w, r] = j
                            upto[w, r] = t
                    if kind == 0:
                        k = c_promo[c]
                if k >= 0:
                    kind = 2
                    which[w, r] = k
                    length = ctx[np.uint64(k), C_END] - ctx[np.uint64(k), C_START]
            if length == 0:
                nulls[w] += 1
            else:
                what[w, r] = kind
                valid[w, r >> 3] |= np.uint8(1 << (r & 7))
                total += length
        offsets[w, n] = total
    data = np.empty(total, dtype=np.uint8)
    for w in range(n_wanted):
        slot = own_slot[wanted[w]]
        for r in range(n):
            kind = what[w, r]
            if kind == 0:
                continue
            at = offsets[w, r]
            q = which[w, r]
            stop = upto[w, r] if kind == 3 else q + 1
            while q < stop:
                uq = np.uint64(q)
                if kind == 1:
                    src, s, e = own[slot, 0, r], own[slot, 1, r], own[slot, 2, r]
                elif kind == 2:
                    src, s, e = ctx[uq, C_SRC], ctx[uq, C_START], ctx[uq, C_END]
                else:
                    if q > which[w, r]:
                        data[np.uint64(at)] = 59  # ';' between colliding attributes
                        at += 1
                    src, s, e = att[uq, A_SRC], att[uq, A_START], att[uq, A_END]
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
