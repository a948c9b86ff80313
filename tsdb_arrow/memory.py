"""Where big allocations come from: memory in ordinary 4 KiB pages.

Arrow's default pool (mimalloc) asks for transparent huge pages on big blocks, and so does numpy
for arrays of 4 MiB and more. A huge page that is not free already must be assembled (memory
compaction, and on a virtual machine the host backing 2 MiB at once): that made a fresh
process's first select-all 5-10x slower than later ones, its first big write 1.5-1.8x slower,
and in numpy's case a cold write + flush of 3.6 M samples 2.2-3.1 s instead of 1.0-1.3 s (and
warm ones vary 0.5-1.8 s). Buffers that the database allocates by the megabyte (query outputs,
WAL records) come from :func:`small_pool`; a process tsdb-arrow runs uses small pages
throughout (:func:`own_process_default`).

Such a process also keeps the memory it frees for its next allocations (:func:`keep_freed_memory`):
glibc's malloc otherwise hands every freed block of some megabytes back to the system, and each
page of the next one is then faulted in again (about 1.3 us a page here). A load allocates and
frees a batch's arrays again and again: 41 shuffled batches of 3.6 M samples faulted 87-100 k
pages a load (350-400 MB) that way, 31-47 k with it, and loaded in 0.71-0.75 s instead of
0.78-0.83.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

import pyarrow as pa


@cache
def small_pool() -> pa.MemoryPool:
    """Arrow's jemalloc pool, else the system allocator's (both without huge pages)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()


def own_process_default() -> bool:
    """Make a process tsdb-arrow runs (the ``tsdb-arrow`` command, ``serve``) allocate in small
    pages: :func:`small_pool` as its default Arrow pool unless ``ARROW_DEFAULT_MEMORY_POOL``
    names one, and numpy's big arrays without huge pages unless ``NUMPY_MADVISE_HUGEPAGE`` says;
    and keep the memory it frees (:func:`keep_freed_memory`) unless the environment sets
    glibc's malloc. Returns whether freed memory is kept.

    Every Arrow allocation of such a process then avoids huge pages, the input files' too:
    ``tsdb-arrow load`` of 3.6 M samples took 4.4-5.7 s with mimalloc and 3.2-3.3 s with this.
    A library call never changes its caller's allocators.
    """
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(small_pool())
    if not os.environ.get("NUMPY_MADVISE_HUGEPAGE"):
        numpy_huge_pages(False)
    return not _malloc_set_by_user() and keep_freed_memory()


def _malloc_set_by_user() -> bool:
    """Whether the environment sets glibc's malloc (its tunables or its old variables)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return "glibc.malloc." in tunables or any(name in os.environ for name in _MALLOC_VARIABLES)


#: What :func:`keep_freed_memory` sets: blocks below 32 MiB (the most glibc allows) come from
#: its heap, not from a mapping of their own, and up to 256 MiB free at the heap's top stay.
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
#: glibc's own variables for these settings (before its tunables).
_MALLOC_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks of up to ``MMAP_THRESHOLD`` bytes for the process's
    next allocations (up to ``TRIM_THRESHOLD`` of them unused), instead of handing each back to
    the system and faulting its pages in again on the next. Returns whether it could (False
    with another C library). The process's resident size stays that much higher after a load.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # glibc returns 1 on success; musl's stub returns 0.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def numpy_huge_pages(enabled: bool | None = None) -> bool | None:
    """Whether numpy asked for huge pages on its big arrays (what ``NUMPY_MADVISE_HUGEPAGE``
    chooses at numpy's import), and with ``enabled`` the setting from now on; None when this
    numpy has no such switch."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        try:  # numpy 1.x
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:
            return None
    # numpy's switch only sets, returning the setting before: reading is setting back.
    before = bool(_set_madvise_hugepage(bool(enabled)))
    if enabled is None:
        _set_madvise_hugepage(before)
    return before
