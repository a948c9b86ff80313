"""``python -m benchmarks.durability``: what the write-ahead log costs and gives back.

Prints three tables, all measured in the same run:

- write + flush of the real data set in 100,000-row batches (a server's request size) with
  ``wal=False`` and with each ``wal_fsync`` mode, as a ratio to ``wal=False`` (target: the
  default ``"interval"`` at 0.8x or better);
- the replay of a WAL left by a process that died without closing: ``--replay-samples``
  (10 M by default) synthetic samples, the time ``ta.open`` takes to give them back;
- the head's buffer pool under a steady write load (flushes by themselves): how many buffers a
  write took from the pool again instead of allocating (the seed promised 99 % reuse).

Usage::

    python -m benchmarks.durability [--replay-samples N] [--repetitions R] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

import tsdb_arrow as ta
from benchmarks.datasets import load_real, repo_root
from benchmarks.measure import dir_bytes

BATCH_ROWS = 100_000
T0 = 1_795_392_000_000  # 2026-11-22T00:00Z
MODES: list[tuple[str, dict]] = [
    ("wal=False", {"wal": False}),
    ("never", {"wal_fsync": "never"}),
    ("interval (default)", {"wal_fsync": "interval"}),
    ("always", {"wal_fsync": "always"}),
]


def write_rates(frame: pl.DataFrame, work_dir: Path, repetitions: int) -> list[tuple[str, float]]:
    """Best write + flush rate (samples/s) of ``frame`` in batches, per WAL mode; the modes are
    interleaved round by round so that the machine's noise hits them alike."""
    batches = [frame.slice(i, BATCH_ROWS) for i in range(0, frame.height, BATCH_ROWS)]
    best = {name: float("inf") for name, _ in MODES}
    for _ in range(repetitions):
        for name, config in MODES:
            with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
                start = time.perf_counter()
                with ta.open(Path(tmp) / "db", config={"cache_bytes": 0, **config}) as db:
                    for batch in batches:
                        db.write(batch)
                    db.flush()
                best[name] = min(best[name], time.perf_counter() - start)
    return [(name, frame.height / best[name]) for name, _ in MODES]


CHILD = textwrap.dedent(
    """
    import os, sys
    import numpy as np, polars as pl
    import tsdb_arrow as ta
    path, total, series = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    per = total // series
    # block_duration large enough that nothing is flushed: everything stays in the WAL.
    db = ta.open(path, config={"block_duration": 10 ** 12, "head_max_bytes": 2 ** 40})
    names = np.array([f"s{i}" for i in range(series)])
    rng = np.random.default_rng(1)
    step = 100_000 // series or 1
    for t0 in range(0, per, step):
        ts = np.tile(np.arange(t0, min(t0 + step, per)) * 1000, series)
        n = len(ts)
        db.write(pl.DataFrame({
            "timestamp": ts, "value": rng.normal(size=n), "__name__": "m",
            "instance": np.repeat(names, n // series)}))
    print(db.stats()["wal"]["bytes"], flush=True)
    os._exit(0)  # dies without closing: the head is only in the WAL
    """
)


def replay_time(samples: int, work_dir: Path) -> tuple[float, int, int]:
    """(seconds ``ta.open`` took to replay, samples replayed, WAL bytes) for ``samples``
    written by a process that exited without closing."""
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        path = Path(tmp) / "db"
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(samples), "1000"],
            check=True,
            capture_output=True,
            text=True,
        )
        wal_bytes = int(out.stdout.split()[-1])
        start = time.perf_counter()
        db = ta.open(path, config={"block_duration": 10**12, "head_max_bytes": 2**40})
        seconds = time.perf_counter() - start
        replayed = db.stats()["wal"]["replayed_samples"]
        db.close()
    return seconds, replayed, wal_bytes


def pool_reuse(work_dir: Path, batches: int = 4000) -> dict[str, float]:
    """Steady time-ordered writes of 100 series with a 4 MiB head (flushes by themselves)."""
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        config = {"head_max_bytes": 4 * 2**20, "buffer_rows": 16_384, "cache_bytes": 0}
        with ta.open(Path(tmp) / "db", config=config) as db:
            names = np.repeat([f"s{i}" for i in range(100)], 100)
            for i in range(batches):
                ts = T0 + (i * 100 + np.tile(np.arange(100), 100)) * 1000
                db.write(
                    pl.DataFrame(
                        {"timestamp": ts, "value": np.ones(len(ts)), "__name__": "m", "s": names}
                    )
                )
            db._background.wait_idle(timeout=600)
            pool = db.stats()["pool"]
            size = dir_bytes(Path(tmp) / "db")
    taken = pool["allocated"] + pool["reused"]
    ratio = pool["reused"] / taken if taken else 0.0
    return {**pool, "reuse_ratio": ratio, "bytes": size, "batches": batches}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.durability")
    parser.add_argument("--replay-samples", type=int, default=10_000_000)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=Path("bench-work"))
    args = parser.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = load_real(repo_root())
    frame = pl.from_arrow(data.table)
    assert isinstance(frame, pl.DataFrame)

    print(
        f"write + flush, {frame.height:,} real samples in {BATCH_ROWS:,}-row batches, "
        f"best of {args.repetitions}, {os.cpu_count()} cores"
    )
    rates = write_rates(frame, args.work_dir, args.repetitions)
    base = rates[0][1]
    print(f"{'WAL':<22}{'M samples/s':>12}{'x wal=False':>13}")
    for name, sps in rates:
        print(f"{name:<22}{sps / 1e6:>12.2f}{sps / base:>13.2f}")

    seconds, replayed, wal_bytes = replay_time(args.replay_samples, args.work_dir)
    print(
        f"\nWAL replay on open: {replayed:,} samples ({wal_bytes / 2**20:.0f} MiB of WAL) in "
        f"{seconds:.2f} s = {replayed / seconds / 1e6:.1f} M samples/s"
    )

    pool = pool_reuse(args.work_dir)
    print(
        f"\nhead buffer pool, {pool['batches']:,} steady batches of 10,000 rows, 4 MiB head: "
        f"{pool['allocated']} allocated, {pool['reused']} reused, "
        f"reuse ratio {pool['reuse_ratio']:.3f}, {pool['dropped']} dropped"
    )
    return 0 if replayed == args.replay_samples else 1


if __name__ == "__main__":
    sys.exit(main())
