"""``njit`` for the package's kernels: numba's, with cached kernels loaded without its compiler.

Every kernel is cached on disk (``cache=True``). Loading one, numba first sets up its whole
compiler: it imports and installs every typing and lowering registry (about 0.15-0.2 s, once a
process), although rebuilding machine code from the cache needs none of them. That set-up was
most of a fresh process's first query. Kernels decorated here load from the cache with only the
runtime their code links against (NRT); a kernel that is not in the cache (first use, changed
source, another CPU) is compiled as numba always does, and compiling sets the compiler up then.

Importing this module imports numba: only kernel modules import it, on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numba
from llvmlite.binding import ffi
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import nrt

# The numba internals the light load calls; with another numba lacking them, kernels use
# numba's own cache (slower first load, same results).
_LIGHT_LOAD = all(
    hasattr(FunctionCache, name) for name in ("_load_overload", "_guard_against_spurious_io_errors")
)


class KernelCache(FunctionCache):
    """numba's on-disk cache of a kernel, loading without the compiler's registries."""

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        """The cached compile result for ``sig``, or None when it must be compiled."""
        # numba's own load_overload calls target_context.refresh() here: the compiler set-up.
        with _llvm_held():
            nrt.rtsys.initialize(target_context)  # compiles NRT's helpers, once a process
            with self._guard_against_spurious_io_errors():
                return self._load_overload(sig, target_context)
        return None  # the guard swallowed an I/O error: compile instead


@contextmanager
def _llvm_held() -> Iterator[None]:
    """Hold llvmlite's lock for a whole load, so that the callbacks numba hangs on it (its lock
    events, timing compilations) run once, not around each of the load's hundreds of calls
    into LLVM (it lists every symbol of the kernel's module): about 0.7 ms of a kernel's 5.
    Taken inside numba's compiler lock, as every call into LLVM of a compilation is."""
    lock = getattr(ffi.lib, "_lock", None)
    callbacks = getattr(lock, "_cblist", None)
    if lock is None or not isinstance(callbacks, list):  # another llvmlite: as it comes
        yield
        return
    with lock:
        lock._cblist = []
        try:
            yield
        finally:
            lock._cblist = callbacks


def njit(function: Callable[..., Any] | None = None, **options: Any) -> Any:
    """``numba.njit(**options)``; with ``cache=True`` the kernel loads through `KernelCache`."""

    options = dict(options)
    light = bool(options.get("cache")) and _LIGHT_LOAD
    if light:
        del options["cache"]  # numba would make its own FunctionCache

    def decorate(py_func: Callable[..., Any]) -> Any:
        dispatcher = numba.njit(**options)(py_func)
        if light and isinstance(dispatcher, Dispatcher):  # not under NUMBA_DISABLE_JIT
            dispatcher._cache = KernelCache(py_func)
        return dispatcher

    return decorate if function is None else decorate(function)
