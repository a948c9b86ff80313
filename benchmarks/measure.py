"""Shared pieces of the harness: the result row, timing and on-disk size helpers.

Every system module returns :class:`Row` objects, so the table renderer does not need to know
which system produced which figure, and a system that is missing or fails still yields a row.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Row:
    """One line of the results table: one system on one data set.

    ``None`` in a figure means "not measured" (not applicable, not installed or failed); the
    reason goes to ``notes``. ``failed`` marks a real error, as opposed to a missing peer.
    """

    system: str
    dataset: str
    samples: int
    load_sps: float | None = None
    bytes_per_sample: float | None = None
    select_all_sps: float | None = None
    select_one_ms: float | None = None
    notes: list[str] = field(default_factory=list)
    failed: bool = False

    def note(self, text: str) -> None:
        """Append a note shown in the table's notes column."""
        self.notes.append(text)

    def fail(self, error: BaseException) -> None:
        """Record that the system raised ``error``; the run goes on with the other systems."""
        self.failed = True
        self.note(f"FAILED: {type(error).__name__}: {error}"[:300])


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Run ``fn`` once; return (wall seconds, result), timed with ``time.perf_counter``."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(repetitions: int, fn: Callable[[], T]) -> tuple[float, T]:
    """Run ``fn`` ``repetitions`` times; return the fastest wall time and the last result.

    The minimum is the figure least disturbed by the other processes on a small machine.
    """
    best, result = timed(fn)
    for _ in range(repetitions - 1):
        seconds, result = timed(fn)
        best = min(best, seconds)
    return best, result


def dir_bytes(path: Path, *, skip: frozenset[str] = frozenset()) -> int:
    """Total size in bytes of the regular files under ``path`` (symlinks not followed).

    Top-level entries named in ``skip`` are left out (e.g. a server's ``cache`` directory).
    """
    total = 0
    for root, dirs, files in os.walk(path):
        if Path(root) == path:
            dirs[:] = [d for d in dirs if d not in skip]
            files = [f for f in files if f not in skip]
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.stat(full).st_size
    return total


def rate(samples: int, seconds: float) -> float:
    """Samples per second, guarding against a zero duration."""
    return samples / max(seconds, 1e-9)
