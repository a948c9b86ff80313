"""Where big allocations come from: memory in ordinary 4 KiB pages.

Arrow's default pool (mimalloc) asks for transparent huge pages on big blocks, and so does numpy
for arrays of 4 MiB and more. A huge page that is not free already must be assembled (memory
compaction, and on a virtual machine the host backing 2 MiB at once): that made a fresh
process's first select-all 5-10x slower than later ones, its first big write 1.5-1.8x slower,
and in numpy's case a cold write + flush of 3.6 M samples 2.2-3.1 s instead of 1.0-1.3 s (and
warm ones vary 0.5-1.8 s). Buffers that the database allocates by the megabyte (query outputs,
WAL records) come from :func:`small_pool`; a process tsdb-arrow runs uses small pages
throughout (:func:`own_process_default`).
"""

from __future__ import annotations

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


def own_process_default() -> None:
    """Make a process tsdb-arrow runs (the ``tsdb-arrow`` command, ``serve``) allocate in small
    pages: :func:`small_pool` as its default Arrow pool unless ``ARROW_DEFAULT_MEMORY_POOL``
    names one, and numpy's big arrays without huge pages unless ``NUMPY_MADVISE_HUGEPAGE`` says.

    Every Arrow allocation of such a process then avoids huge pages, the input files' too:
    ``tsdb-arrow load`` of 3.6 M samples took 4.4-5.7 s with mimalloc and 3.2-3.3 s with this.
    A library call never changes its caller's allocators.
    """
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(small_pool())
    if not os.environ.get("NUMPY_MADVISE_HUGEPAGE"):
        numpy_huge_pages(False)


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
