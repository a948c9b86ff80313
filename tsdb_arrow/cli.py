"""``tsdb-arrow``: load sample files, query, export and inspect a data directory.

Each command imports what it needs when it runs (rich for tables and progress bars, the file
readers for ``load``): ``tsdb-arrow query`` starts as fast as a query can.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

import tsdb_arrow as ta
from tsdb_arrow.datadir import MARKER_FILE, is_data_directory
from tsdb_arrow.errors import TsdbError
from tsdb_arrow.query.export import EXPORT_FORMATS, export_format, sink
from tsdb_arrow.timeutil import format_ms, to_ms

if TYPE_CHECKING:
    from rich.console import Console


def console() -> int:
    """The ``tsdb-arrow`` console script: ``main`` in a process of its own, whose Arrow memory
    comes in small pages (``tsdb_arrow.memory.own_process_default``)."""
    from tsdb_arrow.memory import own_process_default

    own_process_default()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's arguments) and run the command; returns the exit
    status. The console script enters through ``console``."""
    argv = _attach_time_values(list(sys.argv[1:] if argv is None else argv))
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # usage errors: argparse printed why; 2 as is the convention
        return int(exc.code or 0)
    try:
        return int(args.run(args) or 0)
    except TsdbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


_TIME_OPTIONS = ("--start", "--end")


def _attach_time_values(argv: list[str]) -> list[str]:
    """``--start -1h`` as ``--start=-1h``: argparse reads a value starting with '-' as an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return out + argv[i:]
        if (
            arg in _TIME_OPTIONS
            and i + 1 < len(argv)
            and argv[i + 1].startswith("-")
            and not argv[i + 1].startswith("--")
        ):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


_LOAD_EXAMPLES = """\
examples:
  tsdb-arrow load samples.parquet --data ./data
  tsdb-arrow load day1.csv day2.csv.gz --data ./data
  tsdb-arrow load cpu.arrow --data ./data --metric node_cpu_seconds_total
  tsdb-arrow load day1.parquet --server grpc://127.0.0.1:8815

A file is long format: timestamp (int ms since the epoch or RFC 3339), value, __name__ (or
--metric) and one column per label."""

_SERVE_EXAMPLES = """\
examples:
  tsdb-arrow serve --data ./data
  tsdb-arrow serve --data ./data --otlp-grpc 127.0.0.1:4317 --otlp-http off
  tsdb-arrow serve --data ./data --promote-resource-attributes deployment.environment
  tsdb-arrow serve --data ./data --http 127.0.0.1:9091 --query-timeout 30

Point an OpenTelemetry SDK or Collector at it (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317),
Grafana or promtool at http://127.0.0.1:9090, Prometheus' remote_write at .../api/v1/write.
Stop it with Ctrl-C or SIGTERM: requests in flight finish, the head is flushed."""

_INFO_EXAMPLES = """\
examples:
  tsdb-arrow info --data ./data
  tsdb-arrow info --server grpc://127.0.0.1:8815"""

_QUERY_EXAMPLES = """\
examples:
  tsdb-arrow query node_load1 --data ./data
  tsdb-arrow query 'node_cpu_seconds_total{mode!="idle", cpu=~"0|1"}' --data ./data --limit 20
  tsdb-arrow query up --data ./data --start -15m
  tsdb-arrow query up --server grpc://127.0.0.1:8815 --token-file token.txt
  tsdb-arrow query up --data ./data --start 2026-11-24T18:00:00Z --end 2026-11-24T18:05:00Z

Without SELECTOR every series is printed."""

_EXPORT_EXAMPLES = """\
examples:
  tsdb-arrow export node_load1 load.parquet --data ./data
  tsdb-arrow export 'node_cpu_seconds_total{mode="user"}' cpu.csv --data ./data --start -1h
  tsdb-arrow export all.arrow --data ./data
  tsdb-arrow export up up.parquet --server grpc://127.0.0.1:8815
  tsdb-arrow export up samples.out --data ./data --format parquet

The format follows OUT's extension (.parquet .pq, .arrow .feather .ipc, .csv) or --format.
Without SELECTOR every series is exported; OUT is then the only argument."""

_SELECTOR_HELP = "a Prometheus series selector, e.g. 'up{job=\"node\"}' (default: every series)"
_TIME_HELP = "RFC 3339 time, ms since the epoch, or relative to now: now-1h, -15m, now"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsdb-arrow", description="An embedded time-series database for metrics."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {ta.__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help: str, examples: str) -> argparse.ArgumentParser:  # noqa: A002
        return sub.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog=examples,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    load = command("load", "load long-format Parquet, Arrow IPC or CSV files", _LOAD_EXAMPLES)
    load.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _store_args(load)
    load.add_argument("--metric", help="metric name for files without a __name__ column")
    load.add_argument("--batch-rows", type=_positive, default=1_000_000, help="rows per write")
    load.set_defaults(run=_load)

    info = command("info", "print what a data directory stores", _INFO_EXAMPLES)
    _store_args(info)
    info.set_defaults(run=_info)

    query = command("query", "print the samples of a series selector", _QUERY_EXAMPLES)
    query.add_argument("selector", nargs="?", default=None, metavar="SELECTOR", help=_SELECTOR_HELP)
    _store_args(query)
    _range_args(query)
    query.add_argument("--limit", type=int, default=10, help="rows to print (default 10)")
    query.set_defaults(run=_query)

    export = command(
        "export", "write a selection as a long-format Parquet, Arrow or CSV file", _EXPORT_EXAMPLES
    )
    export.add_argument(
        "selector", nargs="?", default=None, metavar="SELECTOR", help=_SELECTOR_HELP
    )
    export.add_argument("out", metavar="OUT", help="the file to write")
    _store_args(export)
    _range_args(export)
    export.add_argument(
        "--format",
        choices=sorted(set(EXPORT_FORMATS.values())),
        help="the output format, when OUT's extension does not say it",
    )
    export.set_defaults(run=_export)

    serve = command(
        "serve",
        "run the server: OTLP over gRPC and HTTP, the Prometheus HTTP API",
        _SERVE_EXAMPLES,
    )
    _data_arg(serve)
    from tsdb_arrow.server.process import add_arguments

    add_arguments(serve)
    serve.set_defaults(run=_serve)

    promqltest = command(
        "promqltest", "run Prometheus PromQL test scripts against the engine", _PROMQLTEST_EXAMPLES
    )
    promqltest.add_argument("files", nargs="+", type=Path, metavar="FILE")
    promqltest.add_argument(
        "--exclusions",
        type=Path,
        default=None,
        help="known failures, one 'file.test:LINE reason' "
        "a line (default: the list shipped with tsdb-arrow)",
    )
    promqltest.add_argument(
        "-v", "--verbose", action="store_true", help="also print the excluded failures"
    )
    promqltest.set_defaults(run=_promqltest)
    return parser


_PROMQLTEST_EXAMPLES = """examples:
  tsdb-arrow promqltest ../shared/promql/*.test
  tsdb-arrow promqltest -v --exclusions my_exclusions.txt tests/promql/cases/*.test"""


def _promqltest(args: argparse.Namespace) -> int:
    from tsdb_arrow.errors import InputError
    from tsdb_arrow.promql import promqltest

    for path in args.files:
        if not path.is_file():
            raise InputError(f"{path}: no such test file; pass .test files such as promql/*.test")
    exclusions = promqltest.EXCLUSIONS if args.exclusions is None else args.exclusions
    return promqltest.main(
        [str(p) for p in args.files], exclusions=exclusions, verbose=args.verbose
    )


def _serve(args: argparse.Namespace) -> int:
    import os

    from tsdb_arrow.server.process import run

    code = run(args)
    # Every listener is stopped and the database closed (flushed, durable). A do_get whose client
    # stopped reading without closing the stream blocks in gRPC's write (flow control) and
    # nothing on the server can cancel it; pyarrow registers a finalizer for every Flight server
    # that runs at interpreter exit and calls Shutdown() without a deadline, which waits for that
    # call for ever. So the process ends here, once the listener stopped waiting, not at exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
    if not is_data_directory(path):
        raise ta.DataDirectoryError(
            f"{path} is not a tsdb-arrow data directory (no {MARKER_FILE} in it); check "
            "--data, or load some samples first"
        )
    return path


def _data_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="the data directory")


def _store_args(parser: argparse.ArgumentParser) -> None:
    """--data DIR, or --server URL of a running ``tsdb-arrow serve`` (with --token-file)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path, help="the data directory")
    where.add_argument(
        "--server", metavar="URL", help="a running server's Flight address: grpc://HOST:PORT"
    )
    parser.add_argument(
        "--token-file", metavar="FILE", help="the server's bearer token (its --auth-token-file)"
    )


def _store(args: argparse.Namespace, *, create: bool = False) -> Any:
    """The database of --data (opened) or --server (connected): both have the same API."""
    if args.server is not None:
        from tsdb_arrow.server.auth import load_token

        token = load_token(args.token_file) if args.token_file else None
        return ta.connect(args.server, token=token)
    return ta.open(args.data if create else _existing(args.data))


def _written(store: Any, batches: Iterator[Any], metric: str | None) -> Iterator[Any]:
    """Each batch's WriteResult, in order; a refused one raises with its ``batch_index``."""
    if isinstance(store, ta.Database):
        for index, batch in enumerate(batches):
            try:
                yield store.write(batch, metric=metric)
            except TsdbError as exc:
                exc.batch_index = index  # type: ignore[attr-defined]
                raise
    else:  # a client: a few batches in flight while the server writes
        yield from store.write_batches(batches, metric=metric)


def _range_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", metavar="TIME", help=f"first time (inclusive): {_TIME_HELP}")
    parser.add_argument("--end", metavar="TIME", help=f"last time (inclusive): {_TIME_HELP}")


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
    loaded = replaced = 0
    with _store(args, create=True) as db:
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
                sizes: list[int] = []

                def tracked(sample_file=sample_file, sizes=sizes) -> Iterator[Any]:
                    for batch in sample_file.batches(args.batch_rows):
                        sizes.append(batch.num_rows)
                        yield batch

                try:
                    for result in _written(db, tracked(), args.metric):
                        loaded += result.rows
                        replaced += result.replaced
                        rate = loaded / max(time.perf_counter() - started, 1e-9)
                        progress.update(
                            task, completed=loaded, rate=f"{rate / 1e6:.2f} M samples/s"
                        )
                except TsdbError as exc:
                    index = getattr(exc, "batch_index", None)
                    if index is None or index >= len(sizes):
                        raise  # not a refused batch: the file itself could not be read
                    row = sum(sizes[:index])
                    raise type(exc)(
                        f"{sample_file.path}, rows {row}..{row + sizes[index] - 1}: {exc} "
                        f"({loaded:,} samples before this batch were stored)"
                    ) from exc
        db.flush()
        elapsed = time.perf_counter() - started
        stats = db.stats()
    console.print(
        f"loaded {loaded:,} samples from {len(files)} file(s) in {elapsed:.2f} s "
        f"({loaded / max(elapsed, 1e-9) / 1e6:.2f} M samples/s)"
        + (
            f"; {replaced:,} of them replaced samples with the same series and timestamp"
            if replaced
            else ""
        ),
        soft_wrap=True,
    )
    _print_stats(stats, console)
    return 0


def _info(args: argparse.Namespace) -> int:
    with _store(args) as db:
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
    with _store(args) as db:
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
    try:
        kind = export_format(args.out, args.format)
    except ta.ExportError:
        if args.selector is not None or args.format is not None:
            raise
        # One argument, taken as OUT, with no known extension: most likely a selector.
        raise ta.ExportError(
            f"export was given one argument, {args.out!r}, and takes it as the output file, "
            f"but it has none of the extensions {', '.join(EXPORT_FORMATS)}. To export a "
            f"selector, add the output file after it: tsdb-arrow export {shlex.quote(args.out)} "
            "out.parquet --data DIR; to export every series, name the output file with one of "
            "those extensions"
        ) from None
    start, end = _times(args)
    with _store(args) as db:
        if isinstance(db, ta.Database):
            rows = db.export(args.selector, args.out, start=start, end=end, format=kind)
        else:  # the server's samples streamed into the file here
            sink(db.select(args.selector, start=start, end=end), args.out, kind)
            scan = {"parquet": pl.scan_parquet, "ipc": pl.scan_ipc, "csv": pl.scan_csv}[kind]
            rows = scan(str(args.out)).select(pl.len()).collect().item()
    _console().print(f"exported {rows:,} samples to {args.out} ({kind})", soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(console())
