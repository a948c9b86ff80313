"""Bytes of a byte array read eight (or four) at a time, for numba kernels that hash or compare
strings: the loads, and the hash and the equality test built on them.

numba reads ``data[k]`` one byte at a time, and a word assembled from eight such reads stays
eight loads, shifts and ors (the index checks between them keep LLVM from merging them). One
unaligned load does the same: label values of 10-40 bytes hash in about half the time.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from tsdb_arrow.jit import njit


def _unaligned_load(bits: int, doc: str):
    """An intrinsic reading ``bits // 8`` bytes of a uint8 array at any byte index."""
    result = {32: types.uint32, 64: types.uint64}[bits]
    pointer = ir.IntType(bits).as_pointer()

    def load(typingctx, data, index):
        if not (
            isinstance(data, types.Array)
            and data.layout == "C"
            and data.ndim == 1
            and data.dtype == types.uint8
            and isinstance(index, types.Integer)
        ):
            return None
        sig = result(data, types.int64)

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            index = context.cast(builder, args[1], signature.args[1], types.int64)
            address = builder.bitcast(builder.gep(array.data, [index]), pointer)
            return builder.load(address, align=1)

        return sig, codegen

    load.__doc__ = doc
    return intrinsic(load)


load_word = _unaligned_load(
    64,
    """Bytes ``index .. index+7`` of a C-contiguous uint8 ``data`` as a uint64, in the
    machine's byte order. Unchecked: the caller keeps ``0 <= index <= len(data) - 8``.""",
)
load_half = _unaligned_load(
    32,
    """Bytes ``index .. index+3`` of a C-contiguous uint8 ``data`` as a uint32, in the
    machine's byte order. Unchecked: the caller keeps ``0 <= index <= len(data) - 4``.""",
)


@njit(cache=True, nogil=True, inline="always")
def last_word(data, s, e):
    """The last bytes of ``data[s:e]`` as one uint64 (all of them when fewer than eight): the
    last eight when there are as many, else the first and last four (overlapping), else the
    first, middle and last byte. Equal strings of equal length give equal words."""
    n = e - s
    if n >= 8:
        return load_word(data, e - 8)
    if n >= 4:
        return np.uint64(load_half(data, s)) | (np.uint64(load_half(data, e - 4)) << np.uint64(32))
    if n > 0:
        return (
            np.uint64(data[s])
            | (np.uint64(data[s + (n >> 1)]) << np.uint64(8))
            | (np.uint64(data[e - 1]) << np.uint64(16))
        )
    return np.uint64(0)


MIX1 = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64's multipliers
MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, nogil=True, inline="always")
def mix_bytes(x, data, s, e):
    """``x`` mixed with ``data[s:e]`` and its length, a word at a time: a hash of byte strings
    (the label-set memory's key, the label-set refinement's table) far cheaper per byte than
    the byte-at-a-time FNV-1a of series refs. Not an avalanche: mix its result once more
    before taking low bits of it as a table slot."""
    x = (x ^ np.uint64(e - s)) * MIX2
    k = s
    while k + 8 < e:
        x = (x ^ load_word(data, k)) * MIX1
        x ^= x >> np.uint64(29)
        k += 8
    x = (x ^ last_word(data, k, e)) * MIX2
    return x ^ (x >> np.uint64(32))


@njit(cache=True, nogil=True, inline="always")
def same_bytes(a, i, b, j, n):
    """Whether ``a[i:i+n] == b[j:j+n]``, compared a word at a time."""
    k = 0
    while k + 8 < n:
        if load_word(a, i + k) != load_word(b, j + k):
            return False
        k += 8
    return last_word(a, i + k, i + n) == last_word(b, j + k, j + n)
