"""``python -m benchmarks.cold_start``: how long a fresh process takes to import, open and answer.

Usage::

    python -m benchmarks.cold_start [--repeat 7] [--data DIR]

Every figure is the wall time of a new interpreter (``sys.executable``), best of ``--repeat``,
the commands taking turns so that other work on the machine skews them alike. The baseline is
``python -c "import polars, pyarrow.parquet"``: what any Polars-on-Arrow program pays. The target
is that importing tsdb_arrow, opening a directory and answering a one-series query (in Python or
with ``tsdb-arrow query``) adds at most 0.45 s to it.

The data directory holds the shipped 15-minute sample (``tests/data``), loaded once into
``--data`` (default: a temporary directory); every command runs once before timing, so the
compiled kernels are in numba's on-disk cache, as they are after a package's first use. The
package's bytecode is compiled first, as ``pip install`` does: a checkout installed in editable
mode under ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile every module from source in
every process (about 0.1 s here), which no installed copy does.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.datasets import REAL_FALLBACK, repo_root

TARGET_S = 0.45
DEFAULT_REPEAT = 7
SELECTOR = "node_load1"
# What a first kernel costs through numba's own cache: numba's import, its one-time set-up of the
# compiler context (numba does it even when loading from the cache), and one cached kernel. The
# package's kernels load without that set-up (tsdb_arrow/jit.py), so its queries can beat this.
NUMBA_FLOOR = """\
import numpy as np
import polars, pyarrow.parquet
from numba import njit

@njit(cache=True)
def first(a):
    return a[0]

first(np.zeros(1))
"""


@dataclass(frozen=True)
class Command:
    """One measured command: its label, its argv, and whether the target applies to it."""

    label: str
    argv: list[str]
    targeted: bool = False


def commands(data: Path, scratch: Path) -> list[Command]:
    """The measured commands, baseline first; ``scratch`` holds the numba reference script."""
    floor = scratch / "numba_floor.py"
    floor.write_text(NUMBA_FLOOR, encoding="utf-8")
    py = sys.executable
    cli = str(Path(py).parent / "tsdb-arrow")
    query = (
        f"import tsdb_arrow as ta; db = ta.open({str(data)!r}); "
        f"db.select({SELECTOR!r}).collect(); db.close()"
    )
    return [
        Command(
            "baseline: import polars, pyarrow.parquet", [py, "-c", "import polars, pyarrow.parquet"]
        ),
        Command("import tsdb_arrow", [py, "-c", "import tsdb_arrow"]),
        Command("import + open + one-series query", [py, "-c", query], targeted=True),
        Command(
            f"tsdb-arrow query '{SELECTOR}' --limit 1",
            [cli, "query", SELECTOR, "--data", str(data), "--limit", "1"],
            targeted=True,
        ),
        Command("tsdb-arrow info", [cli, "info", "--data", str(data)]),
        # Not ours, for reference: what numba adds to the baseline, loading as numba does.
        Command("reference: + import numba", [py, "-c", "import polars, pyarrow.parquet, numba"]),
        Command("reference: + import numba, 1 cached kernel", [py, str(floor)]),
    ]


def run_once(command: Command) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one fresh process running ``command``; raises
    if it fails. CPU time is the steadier figure when other work shares the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command.argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(
            f"{command.label} exited with status {done.returncode}:\n{done.stderr[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(cmds: Sequence[Command], repeat: int) -> tuple[list[float], list[float]]:
    """Best of ``repeat`` wall and CPU times per command, the commands taking turns."""
    wall = [float("inf")] * len(cmds)
    cpu = [float("inf")] * len(cmds)
    for _ in range(repeat):
        for i, command in enumerate(cmds):
            w, c = run_once(command)
            wall[i], cpu[i] = min(wall[i], w), min(cpu[i], c)
    return wall, cpu


def load_sample(data: Path) -> int:
    """Load the shipped sample into a new data directory; returns the samples stored."""
    import pyarrow.parquet as pq

    import tsdb_arrow as ta

    with ta.open(data) as db:
        db.write(pq.read_table(repo_root() / REAL_FALLBACK))
        db.flush()
        return int(db.stats()["samples"])


def compile_package() -> None:
    """Write the package's ``.pyc`` files, as ``pip install`` does for an installed copy."""
    import tsdb_arrow

    package = Path(tsdb_arrow.__file__).parent
    if not compileall.compile_dir(package, quiet=1):
        raise SystemExit(f"could not compile the bytecode of {package}")


def table(cmds: Sequence[Command], wall: Sequence[float], cpu: Sequence[float]) -> list[str]:
    """The result lines: wall seconds, difference and ratio to the baseline, the target where it
    applies (on wall time), and the same difference in CPU time."""
    width = max(len(c.label) for c in cmds)
    head = ["best s", "vs baseline", "ratio", "cpu s", "cpu vs base", "target"]
    lines = [
        "  ".join(["command (fresh process)".ljust(width), *(h.rjust(11) for h in head[:-1])])
        + "  target",
        "  ".join(["-" * width, *(["-" * 11] * (len(head) - 1)), "-" * 6]),
    ]
    for n, (command, w, c) in enumerate(zip(cmds, wall, cpu)):
        extra = w - wall[0]
        cells = [f"{w:.3f}", "", "", f"{c:.3f}", ""]
        if n:
            cells[1], cells[2], cells[4] = (
                f"{extra:+.3f}",
                f"{w / wall[0]:.2f}x",
                f"{c - cpu[0]:+.3f}",
            )
        verdict = ""
        if command.targeted:
            verdict = f"<= +{TARGET_S:.2f} s: {'met' if extra <= TARGET_S else 'missed'}"
        line = "  ".join([command.label.ljust(width), *(x.rjust(11) for x in cells), verdict])
        lines.append(line.rstrip())
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table; exit status 1 if a command failed."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.cold_start", description=__doc__.split("\n")[0]
    )
    p.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="runs per command (best of)")
    p.add_argument("--data", type=Path, default=None, help="data directory to create and use")
    args = p.parse_args(argv)
    from tsdb_arrow.datadir import is_data_directory  # light: no kernels, no numba

    with tempfile.TemporaryDirectory(prefix="tsdb-cold-") as tmp:
        data = (args.data or Path(tmp) / "data").resolve()
        if is_data_directory(data):
            raise SystemExit(f"{data} exists already; give a new --data directory")
        samples = load_sample(data)
        compile_package()
        cmds = commands(data, Path(tmp))
        try:
            measure(cmds, 1)  # warm-up: kernels compiled and cached, files in the page cache
            wall, cpu = measure(cmds, max(1, args.repeat))
        except RuntimeError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"tsdb-arrow cold start: {samples:,} samples of {REAL_FALLBACK} in one block; "
        f"best of {args.repeat} fresh processes each, kernels cached on disk; "
        f"{os.cpu_count()} cores, load average {load}"
    )
    print("\n".join(table(cmds, wall, cpu)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
