"""DECIMAL: a chunk's floats as exact decimal integers ``m`` and one scale per chunk, packed by
the integer packer. Most metrics are integers or have a few decimals, and their deltas then take a
handful of bits. Bit-exact only: a chunk where some value is NaN, infinite, -0.0 or not exactly
rebuilt by the chunk's scale does not use this codec.

The scale byte holds the exponent ``e <= MAX_EXPONENT`` in bits 0-4 and, in bits 5-7, the
formula exporters use to make the float (tried in this order, the first that fits all wins):
0 = ``m / 10**e``; 1 = ``m * 10**-e`` (Go's ``x * 0.001``); 2 = ``m / 10**(e-3) / 1000``
(``e >= 3``; the kernel's microseconds ``/ 1000 / 1000``).

Layout: u8 scale, then the integer packer payload of ``m`` (see intpack).
"""

from __future__ import annotations

import numpy as np

from tsdb_arrow.blocks.codecs import intpack
from tsdb_arrow.blocks.codecs.status import CORRUPT, OK, TRUNCATED
from tsdb_arrow.jit import njit

MAX_EXPONENT = 18
POW10 = np.array([float(f"1e{k}") for k in range(MAX_EXPONENT + 1)], dtype=np.float64)
#: the float64 nearest to 10**-k, as a literal parses
NEG_POW10 = np.array([float(f"1e-{k}") for k in range(MAX_EXPONENT + 1)], dtype=np.float64)
N_KINDS = 3
_LIMIT = 9.2e18  # |m| must fit int64
_NEG_ZERO = np.int64(-0x8000000000000000)
_PROBE = 16  # values checked one by one before a whole-chunk pass


@njit(cache=True, inline="always")
def rebuild(m: np.float64, e: np.int64, kind: np.int64) -> np.float64:
    """The float a decimal integer stands for under scale ``(e, kind)``."""
    if kind == 0:
        return m / POW10[e]
    if kind == 1:
        return m * NEG_POW10[e]
    return m / POW10[e - 3] / 1000.0


@njit(cache=True, inline="always")
def _fits(v: np.float64, e: np.int64, kind: np.int64) -> bool:
    if kind == 2 and e < 3:
        return False
    s = v * POW10[e]
    if not abs(s) < _LIMIT:
        return False
    return rebuild(np.rint(s), e, kind) == v


@njit(cache=True)
def to_decimal(x: np.ndarray, bits: np.ndarray, m: np.ndarray) -> np.int64:
    """The scale byte of the smallest exponent that rebuilds every ``x`` exactly, writing ``m``.

    ``bits`` is the int64 view of ``x``. Returns -1 when the chunk is not decimal.
    """
    for kind in range(N_KINDS):
        e = _exponent(x, bits, m, kind)
        if e >= 0:
            return (kind << 5) | e
        if e == -2:
            return -1
    return -1


@njit(cache=True)
def _exponent(x: np.ndarray, bits: np.ndarray, m: np.ndarray, kind: np.int64) -> np.int64:
    """Smallest common exponent for one formula; -1 if none, -2 if no formula can work.

    The search: start at ``e = 0``; at the first value (in order) that does not fit, raise ``e``
    to the next exponent at which that value fits and check all values again. Each check is a
    branch-free pass over the whole chunk (it vectorizes); only when it fails is the first
    failing value looked up, so the result is that of scanning value by value.
    """
    n = x.shape[0]
    e = 0
    while True:
        # a short sequential probe first: most bumps are due to the first values
        i = _first_misfit(x, bits, e, kind, 0, min(n, _PROBE))
        if i == n and n > _PROBE:
            if _all_fit(x, bits, m, e, kind):
                return e
            i = _first_misfit(x, bits, e, kind, _PROBE, n)
        if i == n:
            if n <= _PROBE:
                _all_fit(x, bits, m, e, kind)  # writes m
            return e
        if i < 0:
            return -2
        v = x[i]
        while True:
            e += 1
            if e > MAX_EXPONENT:
                return -1
            if _fits(v, e, kind):
                break


@njit(cache=True)
def _first_misfit(
    x: np.ndarray, bits: np.ndarray, e: np.int64, kind: np.int64, lo: np.int64, hi: np.int64
) -> np.int64:
    """Index of the first value in ``[lo, hi)`` not fitting ``(e, kind)``, ``-1`` if that value
    can fit no scale (NaN, infinite, -0.0, too big), ``x.shape[0]`` if all fit."""
    for i in range(lo, hi):
        v = x[i]
        if bits[i] == _NEG_ZERO or v != v or not abs(v) < _LIMIT:
            return -1
        if not _fits(v, e, kind):
            return i
    return x.shape[0]


@njit(cache=True)
def _all_fit(x: np.ndarray, bits: np.ndarray, m: np.ndarray, e: np.int64, kind: np.int64) -> bool:
    """Whether every value is finite, not -0.0 and fits ``(e, kind)``; writes ``m`` (meaningful
    only when all fit)."""
    if kind == 2 and e < 3:
        return False
    p = POW10[e]
    ok = True
    for i in range(x.shape[0]):
        v = x[i]
        s = v * p
        good = bits[i] != _NEG_ZERO and abs(v) < _LIMIT and abs(s) < _LIMIT
        r = np.rint(s) if good else 0.0
        m[i] = np.int64(r)
        ok &= good & (rebuild(r, e, kind) == v)
    return ok


@njit(cache=True)
def encode(
    scale: np.int64,
    m: np.ndarray,
    params: np.ndarray,
    buf: np.ndarray,
    pos: np.int64,
    planar: bool,
    scratch: np.ndarray,
) -> np.int64:
    """Write the scale byte and the packed integers; return the end position."""
    buf[pos] = np.uint8(scale)
    return intpack.encode(m, params, buf, pos + 1, planar, scratch)


@njit(cache=True)
def decode(
    buf: np.ndarray,
    start: np.int64,
    end: np.int64,
    out_bits: np.ndarray,
    out: np.ndarray,
    planar: bool,
) -> np.int64:
    """Fill ``out`` (float64; ``out_bits`` its int64 view) from ``buf[start:end]``."""
    if end - start < 1:
        return TRUNCATED
    e = np.int64(buf[start]) & 31
    kind = np.int64(buf[start]) >> 5
    if e > MAX_EXPONENT or kind >= N_KINDS or (kind == 2 and e < 3):
        return CORRUPT
    status = intpack.decode(buf, start + 1, end, out_bits, planar)
    if status != OK:
        return status
    if kind == 0:
        p = POW10[e]
        for i in range(out.shape[0]):
            out[i] = np.float64(out_bits[i]) / p
    else:
        for i in range(out.shape[0]):
            out[i] = rebuild(np.float64(out_bits[i]), e, kind)
    return OK
