"""The database's background thread: runs flushes (and compactions) off the writers' threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("tsdb_arrow")

#: Seconds to wait before retrying a failed pass: doubled per failure up to the last.
BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class BackgroundWorker:
    """One daemon thread that runs ``work`` when woken by ``request`` or every ``interval`` s.

    A failing pass is logged, kept as ``last_error`` (cleared by the next pass that succeeds)
    and retried after a growing pause, during which requests do not wake it: a full disk is not
    hammered by every write.
    """

    def __init__(self, work: Callable[[], None], *, name: str, interval: float) -> None:
        self._work = work
        self._interval = interval
        self._wake = threading.Condition()
        self._requested = False
        self._due_at: float | None = None  # a pass asked for at this monotonic time
        self._stopping = False
        self._failures = 0
        self._running = False
        self.last_error: BaseException | None = None
        self.passes = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Run a pass soon (at once unless one runs now or a failure's pause lasts)."""
        with self._wake:
            self._requested = True
            if not self._failures:
                self._wake.notify_all()

    def request_at(self, when: float) -> None:
        """Run a pass at monotonic time ``when`` (or sooner, if one is requested before)."""
        with self._wake:
            if self._due_at is None or when < self._due_at:
                self._due_at = when
                self._wake.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no pass is requested (now or later) or running; False if ``timeout`` s
        passed first."""
        with self._wake:
            return self._wake.wait_for(
                lambda: (
                    not (self._requested or self._running or self._due_at is not None)
                    or self._stopping
                ),
                timeout,
            )

    def _wait_for_work(self) -> None:
        """Wait (holding ``_wake``) for a request, a pass asked for now, a stop, or
        ``interval`` seconds; ``request_at`` meanwhile shortens the wait."""
        deadline = time.monotonic() + self._interval
        while not (self._requested or self._stopping or self._scheduled()):
            now = time.monotonic()
            wait = deadline - now if self._due_at is None else min(deadline, self._due_at) - now
            if wait <= 0:
                return
            self._wake.wait(wait)

    def _scheduled(self) -> bool:
        return self._due_at is not None and time.monotonic() >= self._due_at

    def stop(self) -> None:
        """Let a running pass finish, then end the thread; idempotent."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                pause = BACKOFF[min(self._failures, len(BACKOFF)) - 1] if self._failures else None
                if pause is not None:
                    self._wake.wait_for(lambda: self._stopping, timeout=pause)
                else:
                    self._wait_for_work()
                if self._stopping:
                    self._wake.notify_all()
                    return
                self._requested = False
                if self._scheduled():
                    self._due_at = None
                self._running = True
            try:
                self._work()
            except Exception as exc:  # kept and logged: the thread must outlive a full disk
                self._failures += 1
                self.last_error = exc
                log.error("tsdb-arrow background flush/compaction failed: %s", exc, exc_info=exc)
            else:
                self._failures = 0
                self.last_error = None
            with self._wake:
                self._running = False
                self.passes += 1
                self._wake.notify_all()
