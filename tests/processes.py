"""Child processes for crash tests: run until they say a line, then SIGKILL them."""

from __future__ import annotations

import os
import signal
import subprocess


def kill_after(argv: list[str], line: str) -> None:
    """Run ``argv``, wait for it to print ``line`` (its acknowledgement), SIGKILL it at once
    and wait for it to be gone; the child is killed whatever happens."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == line
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=60) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
