"""numba kernels writing a float64 as Prometheus writes it in JSON, straight from its bits.

Prometheus calls Go's ``strconv.AppendFloat(f, 'f' or 'e', -1, 64)``: the shortest decimal
digits that read back as the same float (the closest such digits, ties to even), positional
from 1e-6 up to 1e21 and ``d.ddde±XX`` outside, ``NaN``, ``+Inf``, ``-Inf``, ``-0``. The digits
come from Ulf Adams' Ryū algorithm ("Ryū: fast float-to-string conversion", PLDI 2018): the
float's rounding interval scaled by a 128-bit power of five from a table, then digits removed
while the interval still holds the shortened value. Python's ``repr`` gives the same digits.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from tsdb_arrow.jit import njit

_U64 = np.uint64
_MANTISSA_BITS = 52
_BIAS = 1023
#: Bits of the table's powers of five and of their inverses (Ryū's choice for doubles).
_POW5_BITS = 125
_POW5_INV_BITS = 125
_DOT, _MINUS, _PLUS, _ZERO = ord("."), ord("-"), ord("+"), ord("0")
_NAN = np.frombuffer(b"NaN", dtype=np.uint8)
_POS_INF = np.frombuffer(b"+Inf", dtype=np.uint8)
_NEG_INF = np.frombuffer(b"-Inf", dtype=np.uint8)
#: The longest text: a sign, ``0.00000`` and 17 digits (``-0.0000012345678901234567``).
MAX_BYTES = 25
_POW10 = np.array([10**k for k in range(20)], dtype=np.uint64)
_PAIRS = np.frombuffer(b"".join(b"%02d" % k for k in range(100)), dtype=np.uint8)


def _pow5_tables() -> tuple[np.ndarray, np.ndarray]:
    """5^i to its top 125 bits (i < 326) and 2^k / 5^i + 1 to 125 bits (i < 342), as
    (low, high) 64-bit halves."""
    split = np.empty((326, 2), dtype=np.uint64)
    inverse = np.empty((342, 2), dtype=np.uint64)
    for i in range(342):
        power = 5**i
        length = power.bit_length()
        if i < 326:
            shift = length - _POW5_BITS
            top = power >> shift if shift >= 0 else power << -shift
            split[i] = (top & 0xFFFFFFFFFFFFFFFF, top >> 64)
        inv = (1 << (length - 1 + _POW5_INV_BITS)) // power + 1
        inverse[i] = (inv & 0xFFFFFFFFFFFFFFFF, inv >> 64)
    return split, inverse


_POW5_SPLIT, _POW5_INV_SPLIT = _pow5_tables()


@njit(cache=True, nogil=True, inline="always")
def _pow5_bits(e):
    """Bits of 5^e (e > 0; 1 for e == 0)."""
    return ((e * 1217359) >> 19) + 1


@intrinsic
def _mul_shift(typingctx, m, lo, hi, shift):
    """(m x (hi:lo)) >> (64 + shift), for a 55-bit m and a 125-bit factor, with LLVM's
    128-bit multiply (one ``mul`` instruction each on x86-64 and arm64)."""
    sig = types.uint64(types.uint64, types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        m, lo, hi, shift = args
        wide = ir.IntType(128)
        m = builder.zext(m, wide)
        low = builder.mul(m, builder.zext(lo, wide))
        high = builder.mul(m, builder.zext(hi, wide))
        total = builder.add(builder.lshr(low, ir.Constant(wide, 64)), high)
        return builder.trunc(builder.lshr(total, builder.zext(shift, wide)), ir.IntType(64))

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _pow5_factor(v):
    count = 0
    while v > _U64(0):
        if v % _U64(5) != _U64(0):
            return count
        v //= _U64(5)
        count += 1
    return 0


@njit(cache=True, nogil=True)
def shortest(bits):
    """The shortest digits of a finite, non-zero float (its bits): ``(digits, exponent)``
    with value ``digits x 10^exponent``, digits without trailing zeros."""
    mantissa = bits & _U64((1 << _MANTISSA_BITS) - 1)
    biased = np.int64((bits >> _U64(_MANTISSA_BITS)) & _U64(0x7FF))
    if biased == 0:
        e2 = 1 - _BIAS - _MANTISSA_BITS - 2
        m2 = mantissa
    else:
        e2 = biased - _BIAS - _MANTISSA_BITS - 2
        m2 = mantissa | _U64(1 << _MANTISSA_BITS)
        # small integers: the integer itself, trailing zeros dropped
        if -_MANTISSA_BITS <= e2 + 2 <= 0:
            fraction = _U64(-(e2 + 2))
            if m2 & ((_U64(1) << fraction) - _U64(1)) == _U64(0):
                digits = m2 >> fraction
                exponent = 0
                while digits % _U64(10) == _U64(0):
                    digits //= _U64(10)
                    exponent += 1
                return digits, exponent
    accept_bounds = (m2 & _U64(1)) == _U64(0)
    mv = _U64(4) * m2
    mm_shift = _U64(1) if (mantissa != _U64(0) or biased <= 1) else _U64(0)
    vm_trailing_zeros = False
    vr_trailing_zeros = False
    if e2 >= 0:
        q = max(0, ((e2 * 78913) >> 18) - (1 if e2 > 3 else 0))
        e10 = q
        k = _POW5_INV_BITS + _pow5_bits(q) - 1
        j = -e2 + q + k
        lo, hi, shift = _POW5_INV_SPLIT[q, 0], _POW5_INV_SPLIT[q, 1], _U64(j - 64)
        vr = _mul_shift(mv, lo, hi, shift)
        vp = _mul_shift(mv + _U64(2), lo, hi, shift)
        vm = _mul_shift(mv - _U64(1) - mm_shift, lo, hi, shift)
        if q <= 21:
            if mv % _U64(5) == _U64(0):
                vr_trailing_zeros = _pow5_factor(mv) >= q
            elif accept_bounds:
                vm_trailing_zeros = _pow5_factor(mv - _U64(1) - mm_shift) >= q
            elif _pow5_factor(mv + _U64(2)) >= q:
                vp -= _U64(1)
    else:
        q = max(0, ((-e2 * 732923) >> 20) - (1 if -e2 > 1 else 0))
        e10 = q + e2
        i = -e2 - q
        k = _pow5_bits(i) - _POW5_BITS
        j = q - k
        lo, hi, shift = _POW5_SPLIT[i, 0], _POW5_SPLIT[i, 1], _U64(j - 64)
        vr = _mul_shift(mv, lo, hi, shift)
        vp = _mul_shift(mv + _U64(2), lo, hi, shift)
        vm = _mul_shift(mv - _U64(1) - mm_shift, lo, hi, shift)
        if q <= 1:
            vr_trailing_zeros = True
            if accept_bounds:
                vm_trailing_zeros = mm_shift == _U64(1)
            else:
                vp -= _U64(1)
        elif q < 63:
            vr_trailing_zeros = (mv & ((_U64(1) << _U64(q)) - _U64(1))) == _U64(0)
    removed = 0
    last = _U64(0)
    ten = _U64(10)
    if vm_trailing_zeros or vr_trailing_zeros:  # rare: exact values, ties
        while vp // ten > vm // ten:
            vm_trailing_zeros &= vm % ten == _U64(0)
            vr_trailing_zeros &= last == _U64(0)
            last = vr % ten
            vr //= ten
            vp //= ten
            vm //= ten
            removed += 1
        if vm_trailing_zeros:
            while vm % ten == _U64(0):
                vr_trailing_zeros &= last == _U64(0)
                last = vr % ten
                vr //= ten
                vp //= ten
                vm //= ten
                removed += 1
        if vr_trailing_zeros and last == _U64(5) and vr % _U64(2) == _U64(0):
            last = _U64(4)  # round half to even
        up = (vr == vm and (not accept_bounds or not vm_trailing_zeros)) or last >= _U64(5)
    else:
        while vp // ten > vm // ten:
            last = vr % ten
            vr //= ten
            vp //= ten
            vm //= ten
            removed += 1
        up = vr == vm or last >= _U64(5)
    digits = vr + (_U64(1) if up else _U64(0))
    exponent = e10 + removed
    while digits % ten == _U64(0):
        digits //= ten
        exponent += 1
    return digits, exponent


@njit(cache=True, nogil=True, inline="always")
def _length(v):
    """Decimal digits of v (at most 17 here)."""
    n = 1
    while n < 20 and v >= _POW10[n]:
        n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def literal(out, o, lit, write):
    """The bytes ``lit`` at out[o] (when ``write``); the position after them."""
    if write:
        for k in range(lit.shape[0]):
            out[o + k] = lit[k]
    return o + lit.shape[0]


@njit(cache=True, nogil=True, inline="always")
def _put_digits(out, o, v, n):
    """The last n decimal digits of v at out[o:o+n], leading zeros included, two a time."""
    k = o + n
    while k - o >= 2:
        pair = v % _U64(100)
        v //= _U64(100)
        k -= 2
        out[k] = _PAIRS[2 * pair]
        out[k + 1] = _PAIRS[2 * pair + 1]
    if k > o:
        out[o] = _ZERO + np.uint8(v % _U64(10))


@njit(cache=True, nogil=True)
def write_float(bits, out, o, write):
    """Write Prometheus' text of the float with ``bits`` (its uint64 view) at out[o] (only
    measure it unless ``write``); returns the end. At most ``MAX_BYTES`` bytes."""
    magnitude = bits & _U64(0x7FFFFFFFFFFFFFFF)
    if magnitude >= _U64(0x7FF0000000000000):
        if magnitude > _U64(0x7FF0000000000000):
            return literal(out, o, _NAN, write)
        return literal(out, o, _NEG_INF if bits >> _U64(63) else _POS_INF, write)
    if bits >> _U64(63):
        if write:
            out[o] = _MINUS
        o += 1
    if magnitude == _U64(0):
        if write:
            out[o] = _ZERO
        return o + 1
    digits, exponent = shortest(bits)
    n = _length(digits)
    point = n + exponent  # value = 0.DIGITS x 10^point
    if point >= 22 or point <= -6:  # d.ddde±XX
        if n == 1:
            if write:
                out[o] = _ZERO + np.uint8(digits)
            o += 1
        else:
            if write:
                scale = _POW10[n - 1]
                out[o] = _ZERO + np.uint8(digits // scale)
                out[o + 1] = _DOT
                _put_digits(out, o + 2, digits % scale, n - 1)
            o += n + 1
        x10 = point - 1
        width = 2 if abs(x10) < 100 else 3
        if write:
            out[o] = ord("e")
            out[o + 1] = _MINUS if x10 < 0 else _PLUS
            _put_digits(out, o + 2, _U64(abs(x10)), width)
        return o + 2 + width
    if point <= 0:  # 0.000ddd
        if write:
            out[o] = _ZERO
            out[o + 1] = _DOT
            for k in range(-point):
                out[o + 2 + k] = _ZERO
            _put_digits(out, o + 2 - point, digits, n)
        return o + 2 - point + n
    if point >= n:  # ddd000
        if write:
            _put_digits(out, o, digits, n)
            for k in range(n, point):
                out[o + k] = _ZERO
        return o + point
    if write:  # ddd.ddd
        scale = _POW10[n - point]
        _put_digits(out, o, digits // scale, point)
        out[o + point] = _DOT
        _put_digits(out, o + point + 1, digits % scale, n - point)
    return o + n + 1


@njit(cache=True, nogil=True)
def float_texts(bits, out_offsets, out, write):
    """The text of every float (``bits``: their uint64 view) one after another;
    ``out_offsets`` (len + 1) filled when ``write``. Returns the bytes written."""
    o = 0
    for i in range(bits.shape[0]):
        if write:
            out_offsets[i] = o
        o = write_float(bits[i], out, o, write)
    if write:
        out_offsets[bits.shape[0]] = o
    return o
