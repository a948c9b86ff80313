"""Non-temporal ("streaming") stores for numba kernels that fill large outputs nobody reads soon.

A plain store to memory that is not cached first reads the line it writes (read for ownership),
so filling label views cost twice their size in memory traffic; a streaming store writes the
line without reading it and keeps it out of the caches. Filling 640 MB of views took 0.09 s with
plain stores and 0.03 s with streaming ones on the project's machine. Streaming stores are
weakly ordered: a kernel that uses them ends with :func:`store_fence`, so the data is visible
to the thread that hands the buffer on. Only x86-64 gets them (``AVAILABLE``); elsewhere the
callers keep plain stores.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

AVAILABLE = platform.machine().lower() in ("x86_64", "amd64")

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_PAIR = ir.VectorType(_I64, 2)


@intrinsic
def store_pair(typingctx, out, i, lo, hi):
    """``out[2*i] = lo; out[2*i + 1] = hi`` as one 16-byte streaming store.

    ``out`` is a C-contiguous 1-D uint64 array whose data is 16-byte aligned (not checked).
    """
    if not (
        isinstance(out, types.Array)
        and out.dtype == types.uint64
        and out.ndim == 1
        and out.layout == "C"
    ):
        return None
    sig = types.void(out, types.int64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.int64)
        at = builder.gep(array.data, [builder.mul(index, ir.Constant(_I64, 2))])
        pair = ir.Constant(_PAIR, ir.Undefined)
        pair = builder.insert_element(pair, args[2], ir.Constant(_I32, 0))
        pair = builder.insert_element(pair, args[3], ir.Constant(_I32, 1))
        store = builder.store(pair, builder.bitcast(at, _PAIR.as_pointer()), align=16)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(_I32, 1)]))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def store_fence(typingctx):
    """``sfence``: every earlier streaming store is visible before any later store."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        fence = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence"
        )
        builder.call(fence, [])
        return context.get_dummy_value()

    return sig, codegen
