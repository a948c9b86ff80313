"""Block windows written recently: a flush due to the head's span leaves them in the head.

A bulk load of shuffled (or time-sorted, several-batch) data writes into every window of its
range with each batch. Flushing the older windows between two such batches would write a small
block per window and batch, and make each later batch read those blocks back to count the rows
it replaces. So a window stays in the head while writes keep reaching it: it is flushed once no
write has touched it for ``QUIET_SECONDS`` (a live feed's older window is complete by then, its
late samples had their chance), by ``flush()``, or when the head outgrows ``head_max_bytes``.
Samples that reach a window after its block was written go to a new, overlapping block, which
compaction merges.
"""

from __future__ import annotations

from collections import deque

import numpy as np

#: Seconds without a write to a window before a span-due flush writes it.
QUIET_SECONDS = 2.0

_INT64_MIN = int(np.iinfo(np.int64).min)


def window_start(timestamp: int, duration: int) -> int:
    """The aligned start of ``timestamp``'s window, as ``cut.window_starts`` gives it."""
    return max(timestamp - timestamp % duration, _INT64_MIN)


class RecentWrites:
    """The ranges of window starts that writes touched in the last ``quiet`` seconds.

    A write notes the windows of its oldest and newest sample and every one between (a batch
    rarely leaves a window of its range empty; one that does is only held a little longer).
    Not thread-safe: the database calls it under its lock.
    """

    def __init__(self, duration: int, quiet: float | None = None) -> None:
        self.duration = duration
        self.quiet = QUIET_SECONDS if quiet is None else quiet
        self._touches: deque[tuple[float, int, int]] = deque()  # (time, lo, hi), oldest first

    def note(self, min_time: int, max_time: int, now: float) -> None:
        """A write of samples in [min_time, max_time] at monotonic time ``now``."""
        lo, hi = window_start(min_time, self.duration), window_start(max_time, self.duration)
        if self._touches and self._touches[-1][1:] == (lo, hi):
            self._touches.pop()  # a feed writing the same windows again: one entry, renewed
        self._touches.append((now, lo, hi))
        self._forget(now)

    def ranges(self, now: float) -> list[tuple[int, int]]:
        """The [lo, hi] ranges of window starts that writes touched within the quiet time."""
        self._forget(now)
        return [(lo, hi) for _, lo, hi in self._touches]

    def next_release(self, now: float) -> float | None:
        """The monotonic time the oldest recent write stops holding its windows."""
        self._forget(now)
        return self._touches[0][0] + self.quiet if self._touches else None

    def _forget(self, now: float) -> None:
        while self._touches and now - self._touches[0][0] >= self.quiet:
            self._touches.popleft()


def held(start: int, ranges: list[tuple[int, int]]) -> bool:
    """Whether the window starting at ``start`` lies in one of ``ranges``."""
    return any(lo <= start <= hi for lo, hi in ranges)


def all_held(lo: int, hi: int, duration: int, ranges: list[tuple[int, int]]) -> bool:
    """Whether every window start in [lo, hi] (``duration`` apart) lies in ``ranges``."""
    for a, b in sorted(ranges):
        if a > lo:
            break
        if b >= lo:
            lo = b + duration
        if lo > hi:
            return True
    return lo > hi
