"""split.each: halves in order, on the pool or taken back when the pool is busy, errors whole."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from tsdb_arrow.ingest import split


def test_results_come_in_call_order_with_and_without_a_pool():
    calls = [lambda k=k: k * k for k in range(4)]
    assert split.each(None, calls) == [0, 1, 4, 9]
    with ThreadPoolExecutor(2) as pool:
        assert split.each(pool, calls) == [0, 1, 4, 9]


def test_the_other_half_runs_on_the_pool():
    ran_on = []
    with ThreadPoolExecutor(1) as pool:
        started = threading.Event()

        def second():
            ran_on.append(threading.current_thread().name)
            started.set()

        def first():
            assert started.wait(10)  # only returns once the pool ran the second half
            ran_on.append(threading.current_thread().name)

        split.each(pool, [first, second])
    assert ran_on[1] == threading.current_thread().name
    assert ran_on[0] != ran_on[1]


def test_a_half_queued_behind_other_work_is_taken_back():
    """The pool's one worker is busy: the second half runs in the caller's thread instead of
    waiting for it, and the busy work is not disturbed."""
    release = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(release.wait, 10)
        here = threading.current_thread().name
        names = split.each(pool, [lambda: threading.current_thread().name] * 2)
        assert names == [here, here]
        assert not busy.done()
        release.set()
        assert busy.result() is True


def test_an_error_in_either_half_propagates_after_both_finished():
    finished = []

    def slow_ok():
        threading.Event().wait(0.2)
        finished.append("other")

    def failing():
        raise ValueError("bad half")

    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="bad half"):
            split.each(pool, [failing, slow_ok])
        assert finished in ([], ["other"])  # cancelled while queued, or waited for
        with pytest.raises(ValueError, match="bad half"):
            split.each(pool, [slow_ok, failing])


def test_worth_it_counts_present_values_only():
    labels = {
        "a": pa.array(["x", None, "y"]),
        "b": pa.chunked_array([[None, None], ["z"]], pa.large_string()),
    }
    with ThreadPoolExecutor(1) as pool:
        assert not split.worth_it(labels, None)
        old = split.SPLIT_VALUES
        try:
            split.SPLIT_VALUES = 3
            assert split.worth_it(labels, pool)
            split.SPLIT_VALUES = 4
            assert not split.worth_it(labels, pool)
        finally:
            split.SPLIT_VALUES = old


def test_halves_cover_the_rows():
    assert split.halves(0) == [(0, 0), (0, 0)]
    assert split.halves(7) == [(0, 3), (3, 7)]
