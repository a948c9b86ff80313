"""``python -m benchmarks.run``: tsdb-arrow and its peers on the same data, in one table.

Usage::

    python -m benchmarks.run [--data-sets real,synthetic,synthetic-2m] [--quick]
                             [--out docs-table.md]
                             [--systems parquet,ours,write-order,prometheus,victoriametrics]

Every selected system gets the same long Arrow table of each data set in the same run; the
table goes to stdout (fixed width) and, with ``--out``, to a Markdown file. ``synthetic-2m`` is
the synthetic generator at 2,000 series x 1,000 samples at every size, the set on which
select-all trailed ``pl.read_parquet`` most. ``--quick`` takes the best of 2 instead of 3 timings,
runs only the real data set unless ``--data-sets`` says otherwise, and shrinks the synthetic one
to 1 M samples. Progress goes to stderr. Exit status 1
means some system failed (its row says why); a peer that is not installed is not a failure.
``write-order`` loads the same data series-sorted, time-sorted and shuffled, each warm and in a
fresh process (cold); see ``benchmarks/write_order.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from benchmarks import baselines, ours, prometheus, table, victoriametrics, write_order
from benchmarks.datasets import DataSet, load_real, load_synthetic, repo_root
from benchmarks.measure import Row
from tsdb_arrow.memory import numpy_huge_pages, own_process_default

DATA_SETS = ("real", "synthetic", "synthetic-2m")
SYSTEMS = ("parquet", "ours", "write-order", "prometheus", "victoriametrics")
FULL_SYNTHETIC = (10_000, 1_000)
QUICK_SYNTHETIC = (1_000, 1_000)
SMALL_SYNTHETIC = (2_000, 1_000)
FULL_REPETITIONS = 3
QUICK_REPETITIONS = 2


def _csv(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """argparse type: a comma-separated subset of ``allowed``."""

    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}; got {text!r}")
        return items

    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument(
        "--data-sets",
        type=_csv(DATA_SETS),
        default=None,
        help=f"comma-separated: {','.join(DATA_SETS)} (default: all; real with --quick)",
    )
    p.add_argument(
        "--systems",
        type=_csv(SYSTEMS),
        default=list(SYSTEMS),
        help=f"comma-separated subset of {','.join(SYSTEMS)} (default: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="best of 2 instead of 3, real data only by default, 1 M-sample synthetic",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the table as Markdown here")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=repo_root() / "bench-work",
        help="cache and scratch directory (default: bench-work/ in the repo)",
    )
    return p.parse_args(argv)


def load_data_set(name: str, work_dir: Path, quick: bool) -> DataSet:
    """The named data set, at quick or full size."""
    if name == "real":
        return load_real(repo_root())
    if name == "synthetic-2m":
        return load_synthetic(work_dir, *SMALL_SYNTHETIC, name=name)
    n_series, per_series = QUICK_SYNTHETIC if quick else FULL_SYNTHETIC
    return load_synthetic(work_dir, n_series, per_series)


def run_systems(data: DataSet, systems: Sequence[str], work_dir: Path, reps: int) -> list[Row]:
    """Every selected system on one data set, in a fixed order, logging progress to stderr."""
    steps: dict[str, Callable[[], list[Row]]] = {
        "parquet": lambda: baselines.run(data, work_dir, reps),
        "ours": lambda: ours.run(data, work_dir, reps),
        "write-order": lambda: write_order.run(data, work_dir, reps),
        "prometheus": lambda: [prometheus.run(data, work_dir, reps)],
        "victoriametrics": lambda: [victoriametrics.run(data, work_dir, reps)],
    }
    rows: list[Row] = []
    for name in SYSTEMS:
        if name in systems:
            start = time.perf_counter()
            _log(f"[{data.name}] {name} ...")
            rows += steps[name]()
            _log(f"[{data.name}] {name} done in {time.perf_counter() - start:.1f} s")
    return rows


def header(
    data_sets: Sequence[DataSet], quick: bool, reps: int, keeps_freed: bool = False
) -> list[str]:
    """Context lines printed above the table: machine, versions, data sets, mode."""
    lines = [
        f"tsdb-arrow benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, "
        f"{'quick' if quick else 'full'} run, best of {reps} for loads and reads",
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
        f", Polars {pl.__version__}, pyarrow {pa.__version__}, numpy {np.__version__}",
    ]
    for d in data_sets:
        lines.append(
            f"data set {d.name}: {d.samples:,} samples, {d.series.height:,} series, "
            f"{len(d.labels)} label columns; {d.source}"
        )
    pages = {True: "on", False: "off", None: "not switchable"}[numpy_huge_pages()]
    lines.append(
        f"memory as the tsdb-arrow command allocates (tsdb_arrow.memory): Arrow pool "
        f"{pa.default_memory_pool().backend_name}, numpy huge pages {pages}, freed memory "
        f"{'kept by malloc' if keeps_freed else 'as malloc was set'}"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines.append(
        f"OS page cache warm for every system; our cache off (cache_bytes=0); "
        f"load average at the end {load} (other work on the machine skews timings)"
    )
    return lines


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the table; return the exit status."""
    args = parse_args(argv)
    keeps_freed = own_process_default()  # the cold loads' child processes do the same
    names = args.data_sets or (["real"] if args.quick else list(DATA_SETS))
    reps = QUICK_REPETITIONS if args.quick else FULL_REPETITIONS
    work_dir: Path = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data_sets: list[DataSet] = []
    rows: list[Row] = []
    for name in names:
        _log(f"[{name}] loading data set ...")
        data = load_data_set(name, work_dir, args.quick)
        data_sets.append(data)
        rows += run_systems(data, args.systems, work_dir, reps)
    head = header(data_sets, args.quick, reps, keeps_freed)
    ratio_lines = table.ratios(rows)
    elapsed = f"total run time {time.perf_counter() - start:.0f} s"
    print("\n".join([*head, "", table.fixed_width(rows), "", *ratio_lines, elapsed]))
    if args.out is not None:
        md = [*(f"{line}  " for line in head), "", table.markdown(rows), ""]
        md += [f"- {line}" for line in ratio_lines] + ["", elapsed, ""]
        args.out.write_text("\n".join(md), encoding="utf-8")
        _log(f"wrote {args.out}")
    return 1 if any(r.failed for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
