"""numba kernels writing Prometheus JSON: timestamps, whole vectors and matrices.

Floats are written from their bits by ``float_text.write_float`` (Go's shortest form, as
Prometheus writes them). ``series_list`` runs twice: once to size the output (``write``
False), once to fill it; ``step_matrix`` writes once into a buffer sized by an upper bound.
"""

from __future__ import annotations

import numpy as np

from tsdb_arrow.jit import njit
from tsdb_arrow.server.float_text import literal, write_float

_DOT, _MINUS, _ZERO = ord("."), ord("-"), ord("0")
_METRIC = np.frombuffer(b'{"metric":', dtype=np.uint8)
_VALUES = np.frombuffer(b',"values":[', dtype=np.uint8)
_VALUE = np.frombuffer(b',"value":', dtype=np.uint8)


@njit(cache=True, nogil=True, inline="always")
def _put(out, o, byte, write):
    if write:
        out[o] = byte
    return o + 1


@njit(cache=True, nogil=True, inline="always")
def copy_text(out, o, offsets, data, i, write):
    """Text ``i`` of ``data`` cut at ``offsets`` at out[o] (when ``write``); the position
    after it."""
    for b in range(offsets[i], offsets[i + 1]):
        if write:
            out[o] = data[b]
        o += 1
    return o


@njit(cache=True, nogil=True, inline="always")
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


@njit(cache=True, nogil=True, inline="always")
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def series_list(m_offsets, m_data, starts, ts, bits, many, out, write):
    """``[{"metric":M,"values":[[t,"v"],...]},...]`` (``"value":[t,"v"]`` unless ``many``):
    series i is metric object i with samples [starts[i], starts[i+1]) (values as uint64
    bits)."""
    o = _put(out, 0, ord("["), write)
    for i in range(starts.shape[0] - 1):
        if i:
            o = _put(out, o, ord(","), write)
        o = literal(out, o, _METRIC, write)
        o = copy_text(out, o, m_offsets, m_data, i, write)
        o = literal(out, o, _VALUES if many else _VALUE, write)
        for k in range(starts[i], starts[i + 1]):
            if k > starts[i]:
                o = _put(out, o, ord(","), write)
            o = _put(out, o, ord("["), write)
            o = timestamp(ts[k], out, o, write)
            o = _put(out, o, ord(","), write)
            o = _put(out, o, ord('"'), write)
            o = write_float(bits[k], out, o, write)
            o = _put(out, o, ord('"'), write)
            o = _put(out, o, ord("]"), write)
        if many:
            o = _put(out, o, ord("]"), write)
        o = _put(out, o, ord("}"), write)
    return _put(out, o, ord("]"), write)


@njit(cache=True, nogil=True)
def step_matrix(m_offsets, m_data, rows, first, last, bits, present, p_offsets, p_data, out, o):
    """Series ``rows[first:last]`` of a range matrix at out[o], one pass, into a buffer sized
    by an upper bound: ``{"metric":M,"values":[[t,"v"],...]}`` joined by commas (and one
    before the first unless it is ``rows[0]``). Row j's metric object is m_data[m_offsets[j]:
    m_offsets[j+1]]; series i's values are the uint64 ``bits[i, s]`` where ``present[i, s]``;
    step s starts with its precomputed ``[t,"`` bytes p_data[p_offsets[s]:p_offsets[s+1]].
    Returns the end."""
    n_steps = present.shape[1]
    for j in range(first, last):
        i = rows[j]
        if j:
            out[o] = ord(",")
            o += 1
        o = literal(out, o, _METRIC, True)
        o = copy_text(out, o, m_offsets, m_data, j, True)
        o = literal(out, o, _VALUES, True)
        comma = False
        for s in range(n_steps):
            if not present[i, s]:
                continue
            if comma:
                out[o] = ord(",")
                o += 1
            comma = True
            for p in range(p_offsets[s], p_offsets[s + 1]):
                out[o] = p_data[p]
                o += 1
            o = write_float(bits[i, s], out, o, True)
            out[o] = ord('"')
            out[o + 1] = ord("]")
            o += 2
        out[o] = ord("]")
        out[o + 1] = ord("}")
        o += 2
    return o
