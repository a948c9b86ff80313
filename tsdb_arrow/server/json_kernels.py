"""numba kernels writing Prometheus JSON: numbers, timestamps, whole vectors and matrices.

Floats arrive as Polars' shortest round-trip text (``Float64`` cast to ``String``: ``"0.1"``,
``"1e-7"``, ``"1.5e+22"``, ``"NaN"``, ``"inf"``); the kernels rewrite them the way Go's
``strconv.FormatFloat(f, 'f' or 'e', -1, 64)`` writes the same digits, as Prometheus does:
positional from 1e-6 up to 1e21, ``d.ddde±XX`` outside, ``NaN``, ``+Inf``, ``-Inf``.
Every kernel runs twice: once to size the output (``write`` False), once to fill it.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_DOT, _MINUS, _PLUS, _ZERO = ord("."), ord("-"), ord("+"), ord("0")
_NAN = np.frombuffer(b"NaN", dtype=np.uint8)
_POS_INF = np.frombuffer(b"+Inf", dtype=np.uint8)
_NEG_INF = np.frombuffer(b"-Inf", dtype=np.uint8)
_METRIC = np.frombuffer(b'{"metric":', dtype=np.uint8)
_VALUES = np.frombuffer(b',"values":[', dtype=np.uint8)
_VALUE = np.frombuffer(b',"value":', dtype=np.uint8)


@nb.njit(cache=True, nogil=True, inline="always")
def _put(out, o, byte, write):
    if write:
        out[o] = byte
    return o + 1


@nb.njit(cache=True, nogil=True, inline="always")
def _lit(out, o, lit, write):
    for k in range(lit.shape[0]):
        if write:
            out[o + k] = lit[k]
    return o + lit.shape[0]


@nb.njit(cache=True, nogil=True, inline="always")
def _digit(src, s, int_len, dot, k):
    """The k-th digit of the mantissa (integer digits, then fraction digits)."""
    return src[s + k] if k < int_len else src[dot + 1 + k - int_len]


@nb.njit(cache=True, nogil=True, inline="always")
def number(src, s, e, out, o, write):
    """Write Go's form of the float text src[s:e] at out[o]; returns the end."""
    plain = True
    for p in range(s, e):
        c = src[p]
        if c == ord("e") or c == ord("N") or c == ord("i"):
            plain = False
            break
    if plain:  # Polars' positional text (1e-5 <= |x| < 1e16) is Go's, less a trailing ".0"
        end = e - 2 if e - s >= 2 and src[e - 1] == _ZERO and src[e - 2] == _DOT else e
        if write:
            for p in range(s, end):
                out[o + p - s] = src[p]
        return o + end - s
    return _scientific(src, s, e, out, o, write)


@nb.njit(cache=True, nogil=True)
def _scientific(src, s, e, out, o, write):
    """``number`` for texts with an exponent, NaN and the infinities."""
    if src[s] == ord("N"):
        return _lit(out, o, _NAN, write)
    if src[s] == ord("i"):
        return _lit(out, o, _POS_INF, write)
    if src[s] == _MINUS and src[s + 1] == ord("i"):
        return _lit(out, o, _NEG_INF, write)
    negative = src[s] == _MINUS
    if negative:
        s += 1
    # mantissa: integer digits [s, dot), fraction digits (dot, m_end); exponent after 'e'
    m_end = s
    while m_end < e and src[m_end] != ord("e") and src[m_end] != ord("E"):
        m_end += 1
    dot = s
    while dot < m_end and src[dot] != _DOT:
        dot += 1
    int_len = dot - s
    n_digits = int_len + (m_end - dot - 1 if dot < m_end else 0)
    exponent = 0
    if m_end < e:
        p = m_end + 1
        minus = src[p] == _MINUS
        if src[p] == _MINUS or src[p] == _PLUS:
            p += 1
        while p < e:
            exponent = exponent * 10 + (src[p] - _ZERO)
            p += 1
        if minus:
            exponent = -exponent
    first = 0
    while first < n_digits and _digit(src, s, int_len, dot, first) == _ZERO:
        first += 1
    if negative:
        o = _put(out, o, _MINUS, write)
    if first == n_digits:
        return _put(out, o, _ZERO, write)
    last = n_digits - 1
    while _digit(src, s, int_len, dot, last) == _ZERO:
        last -= 1
    nd = last - first + 1
    point = int_len + exponent - first  # value = 0.D x 10^point
    if point >= 22 or point <= -6:
        o = _put(out, o, _digit(src, s, int_len, dot, first), write)
        if nd > 1:
            o = _put(out, o, _DOT, write)
            for k in range(first + 1, last + 1):
                o = _put(out, o, _digit(src, s, int_len, dot, k), write)
        o = _put(out, o, ord("e"), write)
        x = point - 1
        o = _put(out, o, _MINUS if x < 0 else _PLUS, write)
        x = abs(x)
        if x < 10:
            o = _put(out, o, _ZERO, write)
        return _integer(out, o, x, write)
    if point <= 0:
        o = _put(out, o, _ZERO, write)
        o = _put(out, o, _DOT, write)
        for _ in range(-point):
            o = _put(out, o, _ZERO, write)
        for k in range(first, last + 1):
            o = _put(out, o, _digit(src, s, int_len, dot, k), write)
        return o
    for k in range(nd):
        if k == point:
            o = _put(out, o, _DOT, write)
        o = _put(out, o, _digit(src, s, int_len, dot, first + k), write)
    for _ in range(point - nd):
        o = _put(out, o, _ZERO, write)
    return o


@nb.njit(cache=True, nogil=True, inline="always")
def _integer(out, o, x, write):
    """Decimal digits of a non-negative integer."""
    width = 1
    y = x
    while y >= 10:
        y //= 10
        width += 1
    if write:
        for k in range(width - 1, -1, -1):
            out[o + k] = _ZERO + x % 10
            x //= 10
    return o + width


@nb.njit(cache=True, nogil=True, inline="always")
def timestamp(t, out, o, write):
    """Milliseconds as Prometheus writes them: seconds, and ``.ddd`` when not whole."""
    if t < 0:
        o = _put(out, o, _MINUS, write)
        t = -t
    o = _integer(out, o, t // 1000, write)
    fraction = t % 1000
    if fraction:
        o = _put(out, o, _DOT, write)
        o = _put(out, o, _ZERO + fraction // 100, write)
        o = _put(out, o, _ZERO + fraction // 10 % 10, write)
        o = _put(out, o, _ZERO + fraction % 10, write)
    return o


@nb.njit(cache=True, nogil=True)
def numbers(offsets, data, out_offsets, out, write):
    """Every float text of an Arrow string column, formatted; ``out_offsets`` filled when
    ``write``. Returns the bytes written."""
    o = 0
    for i in range(offsets.shape[0] - 1):
        if write:
            out_offsets[i] = o
        o = number(data, offsets[i], offsets[i + 1], out, o, write)
    if write:
        out_offsets[offsets.shape[0] - 1] = o
    return o


@nb.njit(cache=True, nogil=True)
def timestamps(ts, out_offsets, out, write):
    """Every timestamp formatted; ``out_offsets`` filled when ``write``."""
    o = 0
    for i in range(ts.shape[0]):
        if write:
            out_offsets[i] = o
        o = timestamp(ts[i], out, o, write)
    if write:
        out_offsets[ts.shape[0]] = o
    return o


@nb.njit(cache=True, nogil=True)
def series_list(m_offsets, m_data, starts, ts, v_offsets, v_data, many, out, write):
    """``[{"metric":M,"values":[[t,"v"],...]},...]`` (``"value":[t,"v"]`` unless ``many``):
    series i is metric object i with samples [starts[i], starts[i+1])."""
    o = _put(out, 0, ord("["), write)
    for i in range(starts.shape[0] - 1):
        if i:
            o = _put(out, o, ord(","), write)
        o = _lit(out, o, _METRIC, write)
        for k in range(m_offsets[i], m_offsets[i + 1]):
            o = _put(out, o, m_data[k], write)
        o = _lit(out, o, _VALUES if many else _VALUE, write)
        for k in range(starts[i], starts[i + 1]):
            if k > starts[i]:
                o = _put(out, o, ord(","), write)
            o = _put(out, o, ord("["), write)
            o = timestamp(ts[k], out, o, write)
            o = _put(out, o, ord(","), write)
            o = _put(out, o, ord('"'), write)
            o = number(v_data, v_offsets[k], v_offsets[k + 1], out, o, write)
            o = _put(out, o, ord('"'), write)
            o = _put(out, o, ord("]"), write)
        if many:
            o = _put(out, o, ord("]"), write)
        o = _put(out, o, ord("}"), write)
    return _put(out, o, ord("]"), write)


@nb.njit(cache=True, nogil=True)
def step_matrix(
    m_offsets, m_data, rows, row_starts, present, dense, p_offsets, p_data, v_offsets, v_data,
    out, o,
):  # fmt: skip
    """A range matrix's series at out[o], one pass, into a buffer sized by an upper bound:
    ``{"metric":M,"values":[[t,"v"],...]}`` joined by commas, for the value rows ``rows``.
    Step s starts with its precomputed ``[t,"`` bytes p_data[p_offsets[s]:p_offsets[s+1]];
    row i's value texts start at index row_starts[i] and hold every step (``dense``) or only
    the present ones. Returns the end."""
    n_steps = present.shape[1]
    for j in range(rows.shape[0]):
        i = rows[j]
        if j:
            out[o] = ord(",")
            o += 1
        o = _lit(out, o, _METRIC, True)
        for k in range(m_offsets[j], m_offsets[j + 1]):
            out[o] = m_data[k]
            o += 1
        o = _lit(out, o, _VALUES, True)
        k = row_starts[i]
        first = True
        for s in range(n_steps):
            if not present[i, s]:
                if dense:
                    k += 1
                continue
            if not first:
                out[o] = ord(",")
                o += 1
            first = False
            for p in range(p_offsets[s], p_offsets[s + 1]):
                out[o] = p_data[p]
                o += 1
            o = number(v_data, v_offsets[k], v_offsets[k + 1], out, o, True)
            out[o] = ord('"')
            out[o + 1] = ord("]")
            o += 2
            k += 1
        out[o] = ord("]")
        out[o + 1] = ord("}")
        o += 2
    return o
