"""A long batch's work done in two halves at once, on a caller's thread pool.

The kernels release the GIL, so two halves run on two cores: the rows' label sets searched
(``known.py``) or grouped (``labelsets.py``), the head's two pair tables filled (``pairs.py``),
a flush's samples placed (``cut.py``); the caller then joins the halves' results. For label
work, worth it from some tens of thousands of present label values (about a millisecond of
work) against tens of microseconds to hand a half over: the known-series search of 41
shuffled batches of 1 M synthetic samples (24,390 rows of 4 labels each) took 0.072-0.084 s
split from 65,536 values on, 0.086-0.088 in one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor, wait
from typing import TypeVar

import pyarrow as pa

#: Present label values from which a batch's label work is split in two.
SPLIT_VALUES = 1 << 16

T = TypeVar("T")


def worth_it(labels: Mapping[str, pa.Array | pa.ChunkedArray], pool: Executor | None) -> bool:
    """Whether a pool is given and the label columns hold ``SPLIT_VALUES`` values or more."""
    return pool is not None and sum(len(c) - c.null_count for c in labels.values()) >= SPLIT_VALUES


def halves(n: int) -> list[tuple[int, int]]:
    """Rows ``0:n`` as two parts ``(lo, hi)``."""
    half = n // 2
    return [(0, half), (half, n)]


def each(pool: Executor | None, calls: list[Callable[[], T]]) -> list[T]:
    """Every call's result, in order: the first in this thread, the others in ``pool`` (in this
    thread too without one); all have finished when it returns or raises.

    A call still queued in the pool when the first is done (the pool busy with other work, a
    query's reads say) is taken back and run here: never slower than one thread by more than
    the hand-over."""
    if pool is None:
        return [call() for call in calls]
    futures = [pool.submit(call) for call in calls[1:]]
    try:
        results = [calls[0]()]
        for call, future in zip(calls[1:], futures):
            results.append(call() if future.cancel() else future.result())
    except BaseException:
        for future in futures:
            future.cancel()
        wait(futures)
        raise
    return results
