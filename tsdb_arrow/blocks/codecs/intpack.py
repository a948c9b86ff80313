"""The integer packer: one int64 sequence as a predictor + frame of reference + gcd + bit-packing.

Used by PACKED timestamps and DECIMAL values. Four predictors (modes), the one giving the
narrowest fields wins: 0 = the values themselves, 1 = deltas, 2 = delta-of-deltas, 3 = residuals
from the line ``x0 + i*D``. The residuals (wrapping int64 arithmetic, so every sequence round
trips) are stored as ``(r - base) / g`` in ``width`` bits: LSB-first bit-packed, or as byte planes
when a zstd stage follows (bytes of equal significance together compress far better).
"""

from __future__ import annotations

import numpy as np

from tsdb_arrow.blocks.codecs.bitstream import (
    bit_width,
    get_varint,
    load_u64,
    mask,
    pack_lsb,
    put_varint,
    unzigzag,
    varint_size,
    zigzag,
)
from tsdb_arrow.blocks.codecs.status import CORRUPT, OK, TRUNCATED
from tsdb_arrow.jit import njit

U64 = np.uint64
I64 = np.int64

N_MODES = 4


@njit(cache=True, inline="always")
def order(mode: np.int64) -> np.int64:
    """How many leading samples a mode stores in its header instead of as residuals."""
    if mode == 0:
        return 0
    if mode == 2:
        return 2
    return 1


@njit(cache=True, inline="always")
def _gcd(a: np.uint64, b: np.uint64) -> np.uint64:
    while b != U64(0):
        a, b = b, a % b
    return a


@njit(cache=True, inline="always")
def _residual(x: np.ndarray, i: np.int64, mode: np.int64, slope: np.int64) -> np.int64:
    if mode == 0:
        return x[i]
    if mode == 1:
        return x[i] - x[i - 1]
    if mode == 2:
        return (x[i] - x[i - 1]) - (x[i - 1] - x[i - 2])
    return x[i] - x[0] - i * slope


@njit(cache=True)
def analyze(x: np.ndarray, params: np.ndarray) -> np.int64:
    """Pick the mode giving the smallest bit-packed payload for int64 ``x``.

    Fills ``params`` (int64[5]) with mode, slope D, base, g, width and returns the payload size.
    """
    n = x.shape[0]
    slope = I64(0)
    if n >= 3:
        slope = (x[n - 1] - x[0] + (n - 1) // 2) // (n - 1)  # rounded: jitter at the ends
    mins = np.full(N_MODES, np.iinfo(np.int64).max, dtype=np.int64)
    maxs = np.full(N_MODES, np.iinfo(np.int64).min, dtype=np.int64)
    _min_max(x, slope, mins, maxs)
    gs = np.zeros(N_MODES, dtype=np.uint64)
    live = 0
    for m in range(N_MODES):
        if maxs[m] > mins[m]:
            live += 1
        else:
            gs[m] = U64(1)
    if live > 0:
        for i in range(n):
            for m in range(N_MODES):
                if gs[m] != U64(1) and i >= order(m):
                    gs[m] = _gcd(U64(_residual(x, i, m, slope)) - U64(mins[m]), gs[m])
            if live == 0:
                break
            live = 0
            for m in range(N_MODES):
                if gs[m] != U64(1):
                    live += 1
    best = I64(-1)
    for m in range(N_MODES):
        if (m == 2 or m == 3) and n < 3:
            continue
        k = n - order(m)
        g = gs[m] if gs[m] != U64(0) else U64(1)
        width = bit_width((U64(maxs[m]) - U64(mins[m])) // g) if k > 0 else I64(0)
        size = header_size(x, m, slope, mins[m], g, k) + ((k * width + 7) >> 3)
        if best < 0 or size < best:
            best = size
            params[0] = m
            params[1] = slope
            params[2] = mins[m]
            params[3] = I64(g)
            params[4] = width
    return best


@njit(cache=True)
def _min_max(x: np.ndarray, slope: np.int64, mins: np.ndarray, maxs: np.ndarray) -> None:
    """Fold the residual range of every mode into ``mins``/``maxs``.

    Scalar accumulators, a peeled loop and non-negative offsets from the loop index (``x[j]``,
    ``x[j + 1]``, ``x[j + 2]`` rather than ``x[i - 2]``: numba's negative-index wraparound would
    otherwise keep LLVM from vectorizing) make this several times faster than a plain loop.
    """
    n = x.shape[0]
    if n == 0:
        return
    x0 = x[0]
    mn0 = min(mins[0], x0)
    mx0 = max(maxs[0], x0)
    if n >= 2:
        x1 = x[1]
        d = x1 - x0
        mn0 = min(mn0, x1)
        mx0 = max(mx0, x1)
        mn1 = min(mins[1], d)
        mx1 = max(maxs[1], d)
        mn3 = min(mins[3], d - slope)
        mx3 = max(maxs[3], d - slope)
        mn2 = mins[2]
        mx2 = maxs[2]
        for j in range(n - 2):
            a = x[j]
            b = x[j + 1]
            xi = x[j + 2]
            d = xi - b
            dd = d - (b - a)
            r3 = xi - x0 - (j + 2) * slope
            mn0 = min(mn0, xi)
            mx0 = max(mx0, xi)
            mn1 = min(mn1, d)
            mx1 = max(mx1, d)
            mn2 = min(mn2, dd)
            mx2 = max(mx2, dd)
            mn3 = min(mn3, r3)
            mx3 = max(mx3, r3)
        mins[1] = mn1
        maxs[1] = mx1
        mins[2] = mn2
        maxs[2] = mx2
        mins[3] = mn3
        maxs[3] = mx3
    mins[0] = mn0
    maxs[0] = mx0


@njit(cache=True)
def header_size(
    x: np.ndarray, mode: np.int64, slope: np.int64, base: np.int64, g: np.uint64, k: np.int64
) -> np.int64:
    """Bytes before the packed fields."""
    n = x.shape[0]
    size = I64(1)
    if mode >= 1:
        size += varint_size(zigzag(x[0]))
    if mode == 2 and n >= 2:
        size += varint_size(zigzag(x[1] - x[0]))
    if mode == 3:
        size += varint_size(zigzag(slope))
    if k > 0:
        size += varint_size(zigzag(base)) + varint_size(g) + 1
    return size


@njit(cache=True)
def encode(
    x: np.ndarray,
    params: np.ndarray,
    buf: np.ndarray,
    pos: np.int64,
    planar: bool,
    scratch: np.ndarray,
) -> np.int64:
    """Write ``x`` with the ``params`` from :func:`analyze`; return the end position.

    ``scratch`` is a uint64 work array of at least ``len(x)`` elements.
    """
    n = x.shape[0]
    mode = params[0]
    slope = params[1]
    base = params[2]
    g = U64(params[3])
    width = params[4]
    buf[pos] = np.uint8(mode)
    pos += 1
    if mode >= 1:
        pos = put_varint(buf, pos, zigzag(x[0]))
    if mode == 2 and n >= 2:
        pos = put_varint(buf, pos, zigzag(x[1] - x[0]))
    if mode == 3:
        pos = put_varint(buf, pos, zigzag(slope))
    lo = order(mode)
    k = n - lo
    if k <= 0:
        return pos
    pos = put_varint(buf, pos, zigzag(base))
    pos = put_varint(buf, pos, g)
    buf[pos] = np.uint8(width)
    pos += 1
    u = scratch[:k]
    fields(x, mode, slope, base, g, u)
    if planar:
        return _put_planes(u, buf, pos, width)
    return pack_lsb(u, buf, pos, width)


@njit(cache=True)
def fields(
    x: np.ndarray, mode: np.int64, slope: np.int64, base: np.int64, g: np.uint64, u: np.ndarray
) -> None:
    """The stored fields ``(residual - base) / g`` of ``x`` in ``mode`` (one loop per mode)."""
    n = x.shape[0]
    ub = U64(base)
    # indices are offsets up from the loop variable (never ``i - 1``): numba's negative-index
    # wraparound would otherwise keep these loops from vectorizing
    if mode == 0:
        for i in range(n):
            u[i] = U64(x[i]) - ub
    elif mode == 1:
        for j in range(n - 1):
            u[j] = U64(x[j + 1] - x[j]) - ub
    elif mode == 2:
        for j in range(n - 2):
            u[j] = U64((x[j + 2] - x[j + 1]) - (x[j + 1] - x[j])) - ub
    else:
        x0 = x[0]
        for j in range(n - 1):
            u[j] = U64(x[j + 1] - x0 - (j + 1) * slope) - ub
    if g != U64(1):
        for i in range(u.shape[0]):
            u[i] //= g


@njit(cache=True)
def planar_estimate(u: np.ndarray, width: np.int64) -> np.int64:
    """Bytes zstd is expected to need for the byte planes of ``u`` (order-0 entropy per plane
    plus a table allowance): the zstd stage is only tried where this beats the plain kernels."""
    return planar_estimate_below(u, width, I64(1) << I64(62))


@njit(cache=True)
def planar_estimate_below(u: np.ndarray, width: np.int64, limit: np.int64) -> np.int64:
    """:func:`planar_estimate` where it is below ``limit``; else some value >= ``limit``.

    The entropy sum (a ``log2`` per used byte value) is skipped when a lower bound already
    reaches ``limit``: order-0 entropy is never below the collision entropy ``-log2(sum p^2)``,
    which needs one ``log2`` per plane.
    """
    k = u.shape[0]
    if k == 0:
        return I64(0)
    planes = (width + 7) >> 3
    hist = np.zeros((planes, 256), dtype=np.int64)
    for p in range(planes):
        h = hist[p]
        shift = U64(8 * p)
        for i in range(k):
            h[(u[i] >> shift) & U64(0xFF)] += 1
    # the bound: the same sum with each plane's collision entropy, less a margin far above the
    # floating-point error of either sum
    bound = 0.0
    fk = float(k)
    for p in range(planes):
        h = hist[p]
        used = 0
        sq = 0.0
        for b in range(256):
            c = h[b]
            if c > 0:
                used += 1
                sq += float(c) * float(c)
        bound += fk * np.log2(fk * fk / sq) * (1.0 - 1e-9) - 1.0
        if used > 1:
            bound += 8.0 * (used + 8)
    if bound > 0.0:
        low = I64(bound / 8.0) + 12
        if low >= limit:
            return low
    total = 0.0
    for p in range(planes):
        h = hist[p]
        used = 0
        for b in range(256):
            c = h[b]
            if c > 0:
                used += 1
                total -= c * np.log2(c / k)
        if used > 1:
            total += 8.0 * (used + 8)
    return I64(total / 8.0) + 12


@njit(cache=True)
def _put_planes(u: np.ndarray, buf: np.ndarray, pos: np.int64, width: np.int64) -> np.int64:
    k = u.shape[0]
    for p in range((width + 7) >> 3):
        shift = U64(8 * p)
        for i in range(k):
            buf[pos + i] = np.uint8((u[i] >> shift) & U64(0xFF))
        pos += k
    return pos


@njit(cache=True)
def _get_planes(buf: np.ndarray, pos: np.int64, width: np.int64, out: np.ndarray) -> None:
    k = out.shape[0]
    for i in range(k):
        out[i] = U64(0)
    for p in range((width + 7) >> 3):
        shift = U64(8 * p)
        for i in range(k):
            out[i] |= U64(buf[pos + i]) << shift
        pos += k


@njit(cache=True, inline="always")
def payload_bytes(k: np.int64, width: np.int64, planar: bool) -> np.int64:
    """Bytes of ``k`` fields of ``width`` bits in the given layout."""
    if planar:
        return k * ((width + 7) >> 3)
    return (k * width + 7) >> 3


@njit(cache=True)
def decode(
    buf: np.ndarray, start: np.int64, end: np.int64, out: np.ndarray, planar: bool
) -> np.int64:
    """Fill ``out`` (int64) from ``buf[start:end]``; return a status code."""
    n = out.shape[0]
    if end - start < 1:
        return TRUNCATED
    mode = I64(buf[start])
    pos = start + 1
    if mode >= N_MODES:
        return CORRUPT
    first = I64(0)
    second = I64(0)
    slope = I64(0)
    if mode >= 1:
        u, pos = get_varint(buf, pos, end)
        if pos < 0:
            return TRUNCATED
        first = unzigzag(u)
    if mode == 2 and n >= 2:
        u, pos = get_varint(buf, pos, end)
        if pos < 0:
            return TRUNCATED
        second = unzigzag(u)
    if mode == 3:
        u, pos = get_varint(buf, pos, end)
        if pos < 0:
            return TRUNCATED
        slope = unzigzag(u)
    lo = order(mode)
    k = n - lo
    if k > 0:
        u, pos = get_varint(buf, pos, end)
        if pos < 0:
            return TRUNCATED
        base = unzigzag(u)
        g, pos = get_varint(buf, pos, end)
        if pos < 0:
            return TRUNCATED
        if pos >= end:
            return TRUNCATED
        width = I64(buf[pos])
        pos += 1
        if width > 64 or g == U64(0):
            return CORRUPT
        need = payload_bytes(k, width, planar)
        if end - pos < need:
            return TRUNCATED
        if end - pos > need:
            return CORRUPT
        if not planar:
            # one pass: unpack, rebase and integrate each field while it is in a register
            _start(out, mode, first, second)
            if mode == 0:
                _unpack_integrate(buf, pos, end, width, base, g, out, 0, first, slope)
            elif mode == 1:
                _unpack_integrate(buf, pos, end, width, base, g, out, 1, first, slope)
            elif mode == 2:
                _unpack_integrate(buf, pos, end, width, base, g, out, 2, first, second)
            else:
                _unpack_integrate(buf, pos, end, width, base, g, out, 3, first, slope)
            return OK
        fields = out[lo:].view(np.uint64)
        _get_planes(buf, pos, width, fields)
        for i in range(lo, n):
            out[i] = I64(U64(base) + g * U64(out[i]))
    elif pos != end:
        return CORRUPT
    _integrate(out, mode, first, second, slope)
    return OK


@njit(cache=True, inline="always")
def _start(out: np.ndarray, mode: np.int64, first: np.int64, second: np.int64) -> None:
    """Write the samples a mode keeps in its header (``out[:order(mode)]``)."""
    if mode >= 1:
        out[0] = first
    if mode == 2:
        out[1] = first + second


@njit(cache=True, inline="always")
def _unpack_integrate(
    buf: np.ndarray,
    pos: np.int64,
    end: np.int64,
    width: np.int64,
    base: np.int64,
    g: np.uint64,
    out: np.ndarray,
    mode: np.int64,
    first: np.int64,
    param: np.int64,
) -> None:
    """Fill ``out[order(mode):]`` from LSB-first fields at ``buf[pos:end]`` (as
    :func:`pack_lsb` wrote them) in one pass: unpack, rebase (``base + g * field``) and
    :func:`_integrate` (``param`` is the second sample's delta in mode 2, the slope in mode 3)."""
    n = out.shape[0]
    m = mask(width)
    acc = U64(0)
    nacc = I64(0)
    prev = out[order(mode) - 1] if mode >= 1 else I64(0)
    d = param
    for i in range(order(mode), n):
        if width == 0:
            v = U64(0)
        elif nacc >= width:
            v = acc & m
            acc = (acc >> U64(width)) if width < 64 else U64(0)
            nacc -= width
        else:
            word = load_u64(buf, pos, end)
            pos += 8
            need = width - nacc
            v = (acc | (word << U64(nacc))) & m
            acc = (word >> U64(need)) if need < 64 else U64(0)
            nacc = 64 - need
        r = I64(U64(base) + g * v)
        if mode == 0:
            x = r
        elif mode == 1:
            x = prev + r
        elif mode == 2:
            d += r
            x = prev + d
        else:
            x = first + i * param + r
        out[i] = x
        prev = x


@njit(cache=True)
def _integrate(
    out: np.ndarray, mode: np.int64, first: np.int64, second: np.int64, slope: np.int64
) -> None:
    """Turn residuals (already in ``out[order:]``) back into samples, in place."""
    n = out.shape[0]
    if mode == 0:
        return
    out[0] = first
    if mode == 1:
        for i in range(1, n):
            out[i] = out[i - 1] + out[i]
    elif mode == 2:
        if n < 2:
            return
        d = second
        out[1] = first + d
        for i in range(2, n):
            d += out[i]
            out[i] = out[i - 1] + d
    else:
        for i in range(1, n):
            out[i] = first + i * slope + out[i]
