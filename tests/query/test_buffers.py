"""Query output buffers: exactly sized and writable, big ones recycled once Arrow and Polars
release them (bounded in bytes and in time), small ones from a pool without huge pages."""

from __future__ import annotations

import ctypes
import io
import mmap
import sys
import threading

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.conftest import canonical, synthetic
from tsdb_arrow.query import buffers
from tsdb_arrow.query.buffers import (
    MIN_RECYCLED,
    RECYCLER,
    Recycler,
    pool_buffer,
    pool_empty,
    size_class,
    small_pool,
)

MIB = 1 << 20


@given(st.integers(min_value=0, max_value=1 << 40))
def test_size_class_fits_within_a_quarter_more(nbytes: int) -> None:
    size = size_class(nbytes)
    assert size >= nbytes and size % mmap.PAGESIZE == 0
    assert size <= max(nbytes * 5 // 4, mmap.PAGESIZE) + mmap.PAGESIZE


def test_size_classes_are_four_per_doubling() -> None:
    assert [size_class(n) for n in (MIB, MIB + 1, 3 * MIB // 2, 2 * MIB - 1)] == [
        MIB,
        5 * MIB // 4,
        3 * MIB // 2,
        2 * MIB,
    ]


def test_small_buffers_come_from_a_pool_without_huge_pages() -> None:
    # mimalloc (Arrow's default) maps big blocks in huge pages; first selects paid seconds
    assert small_pool().backend_name in ("jemalloc", "system")
    before = small_pool().bytes_allocated()
    small = pool_buffer(MIN_RECYCLED - 1)
    assert small.size == MIN_RECYCLED - 1 and small.is_mutable
    assert small_pool().bytes_allocated() >= before + MIN_RECYCLED - 1
    assert pool_buffer(0).size == 0 and pool_buffer(-5).size == 0


def test_released_map_is_handed_out_again() -> None:
    r = Recycler(keep_bytes=64 * MIB)
    a = np.frombuffer(r.buffer(3 * MIB), dtype=np.uint8)
    address = a.ctypes.data
    a[:] = 7
    assert r.kept == 0
    del a
    assert r.kept == 3 * MIB
    b = np.frombuffer(r.buffer(3 * MIB - 100), dtype=np.uint8)
    assert b.ctypes.data == address and len(b) == 3 * MIB - 100 and b.flags.writeable
    assert r.kept == 0 and r.reused == 1


def test_a_bigger_free_map_serves_up_to_half_its_size() -> None:
    r = Recycler(keep_bytes=64 * MIB)
    r.buffer(8 * MIB)  # released at once
    assert r.kept == 8 * MIB
    small = r.buffer(3 * MIB)  # 8 MiB > 2 x 3 MiB: a new map
    assert r.reused == 0 and r.kept == 8 * MIB
    held = r.buffer(5 * MIB)
    assert r.reused == 1 and r.kept == 0 and (small.size, held.size) == (3 * MIB, 5 * MIB)


def test_maps_held_by_polars_come_back_when_the_frame_is_dropped() -> None:
    r = Recycler(keep_bytes=64 * MIB)
    values = np.frombuffer(r.buffer(8 * MIB), dtype=np.float64)
    values[:] = np.arange(MIB) / 3
    frame = pl.DataFrame({"value": values})
    del values
    assert r.kept == 0
    assert frame["value"][-1] == (MIB - 1) / 3
    del frame
    assert r.kept == 8 * MIB


def test_free_maps_beyond_keep_bytes_are_let_go() -> None:
    r = Recycler(keep_bytes=5 * MIB)
    a, b = r.buffer(4 * MIB), r.buffer(4 * MIB)
    del a
    assert r.kept == 4 * MIB
    del b  # would make 8 MiB
    assert r.kept == 4 * MIB


def test_free_maps_unused_for_keep_seconds_are_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(buffers.time, "monotonic", lambda: clock[0])
    r = Recycler(keep_bytes=64 * MIB, keep_seconds=10.0)
    r.buffer(2 * MIB)  # released at once
    clock[0] += 5
    r.buffer(4 * MIB)
    assert r.kept == 6 * MIB
    clock[0] += 6  # the 2 MiB map has been free for 11 s, the 4 MiB one for 6 s
    held = r.buffer(MIB)
    assert r.kept == 4 * MIB and r.reused == 0 and held.size == MIB
    r.clear()
    assert r.kept == 0


def test_a_second_select_all_reuses_the_first_ones_memory(db) -> None:
    data = synthetic(n_series=100, n_samples=2000)  # 200,000 samples: outputs of 1 MiB and up
    db.write(data)
    db.flush()
    first = db.select().collect()
    copy = io.BytesIO()  # a real copy: clone() would share the buffers
    first.write_ipc(copy)
    copy.seek(0)
    expected = pl.read_ipc(copy)
    reused = RECYCLER.reused
    del first
    second = db.select().collect()
    assert RECYCLER.reused > reused
    assert second.height == 200_000
    assert_frame_equal(second, expected)
    assert_frame_equal(canonical(second), canonical(data))


def test_a_map_given_back_while_the_recycler_hands_one_out(monkeypatch: pytest.MonkeyPatch):
    # A garbage collection set off inside buffer(), lock held, can release a view in the same
    # thread: giving its map back must not wait for that lock.
    r = Recycler(keep_bytes=64 * MIB)
    held = [r.buffer(2 * MIB)]
    monkeypatch.setattr(r, "_sweep", lambda now: held.clear())  # runs with the lock held
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(r.buffer(MIB).size), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert done == [MIB]
    assert r.reused == 1  # the map given back during the call served it


def _resident_bytes(address: int, length: int) -> int:
    """Bytes of the pages in ``[address, address + length)`` that are in memory (mincore):
    the map's own pages, whatever the rest of the process does meanwhile."""
    libc = ctypes.CDLL(None, use_errno=True)
    pages = -(-length // mmap.PAGESIZE)
    vec = (ctypes.c_ubyte * pages)()
    if libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(length), vec) != 0:
        raise OSError(ctypes.get_errno(), "mincore")
    return sum(v & 1 for v in vec) * mmap.PAGESIZE


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_a_new_map_is_faulted_in_up_to_the_size_asked_for(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(buffers, "_can_populate", True)
    r = Recycler()
    held = r.buffer(40 * MIB + 100)  # class 48 MiB: the last 8 MiB are not touched
    # The map's resident pages: without populate ~0, with it ~40 MiB. (Process-wide RSS, used
    # before, moved by several MiB when other threads of the worker freed memory meanwhile.)
    grown = _resident_bytes(held.address, size_class(40 * MIB + 100))
    assert 38 * MIB <= grown < 44 * MIB, grown / MIB
    assert held.size == 40 * MIB + 100


def test_a_kernel_without_populate_leaves_pages_to_fault_in(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(buffers, "_can_populate", True)
    monkeypatch.setattr(buffers, "_MADV_POPULATE_WRITE", 0x7FFF)  # refused: EINVAL
    a = np.frombuffer(Recycler().buffer(2 * MIB), np.uint8)
    a[:] = 5
    assert buffers._can_populate is False and int(a.sum()) == 10 * MIB


@pytest.mark.parametrize("n", [0, 10, MIB])  # empty, from the Arrow pool, from a map
def test_pool_empty_is_a_writable_array_of_n_items(n: int) -> None:
    a = pool_empty(n, np.int64)
    assert a.shape == (n,) and a.dtype == np.int64 and a.flags.writeable
    a[:] = np.arange(n)
    assert int(a.sum()) == n * (n - 1) // 2
