"""``tsdb-arrow``: load sample files, query, export and inspect a data directory.

Each command imports what it needs when it runs (rich for tables and progress bars, the file
readers for ``load``): ``tsdb-arrow query`` starts as fast as a query can.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

import tsdb_arrow as ta
from tsdb_arrow.errors import TsdbError
from tsdb_arrow.timeutil import format_ms, to_ms

if TYPE_CHECKING:
    from rich.console import Console


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tsdb-arrow`` console script; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # usage errors: argparse printed why; 2 as is the convention
        return int(exc.code or 0)
    try:
        return int(args.run(args) or 0)
    except TsdbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsdb-arrow", description="An embedded time-series database for metrics."
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    load = sub.add_parser("load", help="load long-format Parquet, Arrow IPC or CSV files")
    load.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _data_arg(load)
    load.add_argument("--metric", help="metric name for files without a __name__ column")
    load.add_argument("--batch-rows", type=_positive, default=1_000_000, help="rows per write")
    load.set_defaults(run=_load)

    info = sub.add_parser("info", help="print what a data directory stores")
    _data_arg(info)
    info.set_defaults(run=_info)

    query = sub.add_parser("query", help="print the samples of a series selector")
    query.add_argument("selector", nargs="?", default=None)
    _data_arg(query)
    _range_args(query)
    query.add_argument("--limit", type=int, default=10, help="rows to print (default 10)")
    query.set_defaults(run=_query)

    export = sub.add_parser("export", help="write a selection as plain long-format Parquet")
    export.add_argument("args", nargs="+", metavar="[SELECTOR] OUT")
    _data_arg(export)
    _range_args(export)
    export.set_defaults(run=_export)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _existing(path: Path) -> Path:
    """A data directory that must exist already (reading commands never create one)."""
    if not (path / "blocks").is_dir():
        raise ta.TsdbError(
            f"{path} is not a tsdb-arrow data directory (no blocks/ in it); check --data, or "
            "load some samples first"
        )
    return path


def _data_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="the data directory")


def _range_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", help="RFC 3339 time, ms since the epoch, or now-1h")
    parser.add_argument("--end", help="RFC 3339 time, ms since the epoch, or now")


def _times(args: argparse.Namespace) -> tuple[int | None, int | None]:
    now = int(time.time() * 1000)
    return to_ms(args.start, name="--start", now=now), to_ms(args.end, name="--end", now=now)


def _console() -> Console:
    """The console that tables and progress bars go to (rich is imported only here)."""
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def _load(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from tsdb_arrow.ingest.files import open_sample_file

    console = _console()
    files = [open_sample_file(path) for path in args.files]
    total = sum(f.total_rows or 0 for f in files) or None
    started = time.perf_counter()
    loaded = 0
    with ta.open(args.data) as db:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f} samples"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=not console.is_terminal,
            disable=not console.is_terminal,
        ) as progress:
            task = progress.add_task("loading", total=total, rate="")
            for sample_file in files:
                progress.update(task, description=sample_file.path.name)
                row = 0
                for batch in sample_file.batches(args.batch_rows):
                    try:
                        db.write(batch, metric=args.metric)
                    except TsdbError as exc:
                        raise type(exc)(
                            f"{sample_file.path}, rows {row}..{row + batch.num_rows - 1}: {exc} "
                            f"({loaded:,} samples before this batch were stored)"
                        ) from exc
                    row += batch.num_rows
                    loaded += batch.num_rows
                    rate = loaded / max(time.perf_counter() - started, 1e-9)
                    progress.update(task, completed=loaded, rate=f"{rate / 1e6:.2f} M samples/s")
        db.flush()
        elapsed = time.perf_counter() - started
        stats = db.stats()
    console.print(
        f"loaded {loaded:,} samples from {len(files)} file(s) in {elapsed:.2f} s "
        f"({loaded / max(elapsed, 1e-9) / 1e6:.2f} M samples/s)"
    )
    _print_stats(stats, console)
    return 0


def _info(args: argparse.Namespace) -> int:
    with ta.open(_existing(args.data)) as db:
        _print_stats(db.stats(), _console())
    return 0


def _print_stats(stats: dict, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"tsdb-arrow data directory {stats['path']}", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("series", f"{stats['series']:,}"),
        ("samples", f"{stats['samples']:,}"),
        ("blocks", f"{stats['blocks']:,}"),
        ("bytes on disk", f"{stats['bytes_on_disk']:,}"),
        ("bytes/sample", f"{stats['bytes_per_sample']:.3f}"),
    ]
    if stats["min_time"] is not None:
        rows.append(
            ("time range", f"{format_ms(stats['min_time'])} .. {format_ms(stats['max_time'])}")
        )
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)


def _query(args: argparse.Namespace) -> int:
    start, end = _times(args)
    with ta.open(_existing(args.data)) as db:
        lazy = db.select(args.selector, start=start, end=end)
        started = time.perf_counter()
        frame = lazy.collect()
        first = time.perf_counter() - started
        # The first query of a process also loads the compiled decode kernels; time a second
        # run too, so the figure says what a query costs in a notebook or a server.
        started = time.perf_counter()
        lazy.collect()
        again = time.perf_counter() - started
    with pl.Config(tbl_rows=args.limit, tbl_cols=12, fmt_str_lengths=40, tbl_width_chars=160):
        print(frame.head(args.limit), flush=True)
    print(
        f"{frame.height:,} samples of selector {args.selector or '(all series)'!s}: "
        f"{again * 1000:.1f} ms ({frame.height / max(again, 1e-9) / 1e6:.2f} M samples/s); "
        f"the first run took {first * 1000:.1f} ms, kernel loading included"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    if len(args.args) > 2:
        raise ta.TsdbError("export takes at most a SELECTOR and an OUT path")
    selector, out = (None, args.args[0]) if len(args.args) == 1 else args.args
    start, end = _times(args)
    with ta.open(_existing(args.data)) as db:
        rows = db.export(selector, out, start=start, end=end)
    _console().print(f"exported {rows:,} samples to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
