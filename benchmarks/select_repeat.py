"""``python -m benchmarks.select_repeat [FILE] [--runs N]``: repeated select-alls in one process.

Loads FILE (default: the real data set, as ``benchmarks.run`` finds it) into a fresh directory
with the cache off and times N select-alls back to back, so the first selects (kernel loading,
memory faulted in for the output) show apart from the steady state; ``pl.read_parquet`` of the
same table written by Polars is timed the same way, as the baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

import tsdb_arrow as ta
from benchmarks import ours
from benchmarks.datasets import load_real, repo_root
from benchmarks.measure import rate


def main() -> None:
    """Print one line per run: seconds, CPU seconds and M samples/s, ours then Parquet."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.select_repeat")
    p.add_argument("file", nargs="?", type=Path, default=None)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    table = pq.read_table(args.file) if args.file else load_real(repo_root()).table
    with tempfile.TemporaryDirectory() as work:
        plain = f"{work}/plain.parquet"
        pl.from_arrow(table).write_parquet(plain)
        _, db = ours.load(ta, Path(work) / "db", [table])
        with db:
            for name, run in (
                ("tsdb-arrow select-all", lambda: db.select().collect().height),
                ("pl.read_parquet", lambda: pl.read_parquet(plain).height),
            ):
                for i in range(args.runs):
                    t0, c0 = time.perf_counter(), time.process_time()
                    n = run()
                    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                    print(
                        f"{name:<22} run {i + 1}: {wall:6.3f} s  cpu {cpu:6.3f} s  "
                        f"{rate(n, wall) / 1e6:7.2f} M samples/s"
                    )


if __name__ == "__main__":
    main()
