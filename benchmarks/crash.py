"""``python -m benchmarks.crash``: a writer SIGKILLed at random moments loses no acknowledged batch.

Usage::

    python -m benchmarks.crash --kills 1000 [--mode interval] [--seed N] [--compact-every N]

A child process (:func:`child`) opens a data directory with a small head and small blocks, so
that background flushes run by themselves, and writes :func:`batch` ``start``, ``start + 1``,
... printing each batch id once ``write`` has returned: the acknowledgement. The parent
(:func:`run`) SIGKILLs it after a random number of acknowledgements plus a random delay of up to
``max_delay`` s, so that kills land inside WAL appends, block writes, renames and checkpoints.
It then checks a copy of the directory (:func:`check`): every acknowledged batch whole, bit for
bit; the one batch in flight at the kill whole or absent; nothing else. The next child reopens
the directory as the killed one left it (recovery after recovery) and writes on from the id
after the one in flight. ``tests/test_crash_random.py`` runs a few kills of this harness.

Every batch is a pure function of its id, and no two batches share a (series, timestamp), so
that each stored row names its batch and row, and last-write-wins cannot hide a doubled or
partial batch. Some batches reach back up to ``BACK`` slots into time already flushed: their
blocks overlap older ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

import tsdb_arrow as ta
from tsdb_arrow.config import FSYNC_MODES
from tsdb_arrow.ingest.wal import WalCorruptionWarning

STEP = 1000  # ms between a series' rows in a batch
ROWS_PER_SERIES = 60
SPAN = STEP * ROWS_PER_SERIES  # ms of one batch's slot
BACK = 40  # slots a late batch reaches back at most
BLOCK_DURATION = 5 * SPAN  # ms: a flush every few batches, blocks of a few slots
STALE = 0x7FF0000000000002  # Prometheus' stale marker
QUIET_NAN = 0x7FF8000000000000  # a NaN; the low bits carry (batch, row)
MAX_BATCHES_PER_CHILD = 100_000  # a child whose parent is gone stops by itself
CHILD_TIMEOUT_S = 300.0

CHILD = """\
import ast, sys
sys.path.insert(0, sys.argv[1])
from benchmarks.crash import child
child(sys.argv[2], ast.literal_eval(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
"""


def batch(b: int) -> pl.DataFrame:
    """Batch ``b``: 3 to 6 series of 60 rows; a new series every 8 batches; every fifth batch
    from ``BACK + 3`` on reaches back into an older slot. Values are ``b * 1000 + row``, a NaN
    whose payload is ``(b, row)``, or a stale marker."""
    n_series = 3 + b % 4
    late = b % 5 == 3 and b > BACK
    # A late batch's rows sit at a phase in 1..STEP-1 of its slot (normal ones at 0); two late
    # batches sharing a slot are < BACK apart, so they cannot share a phase (b mod STEP - 1).
    slot = b - 1 - (b * 7919) % BACK if late else b
    phase = 1 + b % (STEP - 1) if late else 0
    series = np.repeat(b // 8 + np.arange(n_series), ROWS_PER_SERIES)
    row = np.arange(len(series), dtype=np.uint64)
    ts = slot * SPAN + np.tile(np.arange(ROWS_PER_SERIES), n_series) * STEP + phase
    bits = (b * 1000 + row).astype(np.float64).view(np.uint64)
    bits[row % 37 == 5] = QUIET_NAN | (np.uint64(b) << np.uint64(12)) | row[row % 37 == 5]
    bits[row % 53 == 7] = STALE
    return pl.DataFrame(
        {
            "timestamp": ts.astype(np.int64),
            "value": bits.view(np.float64),
            "__name__": np.where(series % 3 == 0, "crash_a", "crash_b"),
            "s": series.astype(str),
        }
    )


def child(path: str, config: dict, start: int, compact_every: int) -> None:
    """Write batches ``start``, ``start + 1``, ... and print each id once ``write`` returned;
    with ``compact_every``, call ``db.compact()`` after every that many batches."""
    db = ta.open(path, config=config)
    for b in range(start, start + MAX_BATCHES_PER_CHILD):
        db.write(batch(b))
        print(b, flush=True)  # the acknowledgement; a BrokenPipeError ends an orphan
        if compact_every and (b + 1) % compact_every == 0:
            db.compact()
    db.close()


def child_config(mode: str, head_max_bytes: int) -> dict:
    """The child's StorageConfig: a small head, blocks, WAL segments and fsync interval."""
    return {
        "head_max_bytes": head_max_bytes,
        "buffer_rows": 1024,
        "block_duration": BLOCK_DURATION,
        "wal_fsync": mode,
        "wal_fsync_interval": 0.05,
        "wal_segment_bytes": 2**16,
    }


class HarnessError(RuntimeError):
    """The child failed by itself (not by our SIGKILL); the message holds its stderr."""


def kill_after(
    path: Path,
    config: dict,
    start: int,
    acks: int,
    delay: float,
    *,
    compact_every: int = 0,
    stderr: Path,
) -> int:
    """Run a child from batch ``start``, SIGKILL it ``delay`` s after its ``acks``-th
    acknowledgement; return the last batch it acknowledged."""
    root = Path(__file__).resolve().parent.parent
    argv = [sys.executable, "-c", CHILD, str(root), str(path), repr(config), str(start)]
    with stderr.open("w") as err, subprocess.Popen(
        [*argv, str(compact_every)], stdout=subprocess.PIPE, stderr=err, text=True
    ) as proc:
        watchdog = threading.Timer(CHILD_TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(acks)]
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
            rest, _ = proc.communicate()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
    acked = [int(word) for text in [*lines, rest] for word in text.split()]
    if proc.returncode != -signal.SIGKILL or len(acked) < acks:
        raise HarnessError(
            f"the writer child ended by itself (exit {proc.returncode}) after acknowledging "
            f"{len(acked)} batches:\n{stderr.read_text()[-4000:]}"
        )
    if acked != list(range(start, start + len(acked))):
        raise HarnessError(f"the child acknowledged batches out of order: {acked}")
    return acked[-1]


@dataclass
class Finding:
    """What one reopened directory holds, against what was acknowledged."""

    acknowledged: int  # batches that must be there
    in_flight_kept: bool  # the batch in flight at the kill is there, whole
    lost: list[int]  # acknowledged batches entirely absent
    partial: list[int]  # batches partly there
    invented: int  # rows no batch wrote, wrong bits, or of a batch decided absent earlier
    duplicates: int  # rows of a (series, timestamp) returned more than once
    unflushed: int  # rows the close() flush failed to put in blocks (or put twice)
    torn_tails: int  # WAL tails dropped on open
    other_warnings: list[str]
    replayed: int  # samples the WAL gave back
    blocks: int
    half_blocks: bool  # a block .tmp directory (a flush the kill cut short) was found

    @property
    def ok(self) -> bool:
        bad = self.lost or self.partial or self.invented or self.duplicates or self.unflushed
        return not bad and not self.other_warnings


def expected_rows(ids: Sequence[int]) -> pl.DataFrame:
    """The rows of batches ``ids`` with their batch id, keyed like a select's rows."""
    if not ids:
        return pl.DataFrame(
            schema={
                "__name__": pl.String,
                "s": pl.String,
                "timestamp": pl.Int64,
                "want": pl.UInt64,
                "batch": pl.Int64,
            }
        )
    rows = pl.concat([batch(b).with_columns(batch=pl.lit(b, pl.Int64)) for b in ids])
    want = pl.Series("want", rows["value"].to_numpy().view(np.uint64))
    return rows.select("__name__", "s", "timestamp", want, "batch")


def check(path: Path, must: set[int], in_flight: int, attempted: int) -> Finding:
    """Open ``path`` (replaying its WAL), compare every stored row with batches ``0 ..
    attempted - 1``: ``must`` whole, ``in_flight`` whole or absent, the others absent; then
    close (a flush) and check the blocks hold each row once."""
    half_blocks = any(p.name.endswith(".tmp") for p in (path / "blocks").glob("*"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ta.open(path) as db:
            stats = db.stats()
            got = db.select().collect()
        with ta.open(path, read_only=True) as db:
            flushed = db.stats()
    torn = [w for w in caught if issubclass(w.category, WalCorruptionWarning)]
    others = [f"{w.category.__name__}: {w.message}" for w in caught if w not in torn]
    keys = ["__name__", "s", "timestamp"]
    got = got.select(
        "__name__",
        "s",
        pl.col("timestamp").dt.epoch("ms"),
        pl.Series("bits", got["value"].to_numpy().view(np.uint64)),
    )
    duplicates = got.height - got.select(keys).n_unique() if got.height else 0
    joined = got.join(expected_rows(range(attempted)), on=keys, how="left")
    good = joined.filter(pl.col("bits") == pl.col("want"))
    sizes = np.array([3 + b % 4 for b in range(attempted)], np.int64) * ROWS_PER_SERIES
    found = np.bincount(good["batch"].to_numpy(), minlength=attempted)[:attempted]
    whole = found == sizes
    allowed = np.zeros(attempted, bool)
    allowed[list(must)] = True
    kept = bool(in_flight < attempted and whole[in_flight])
    if kept:
        allowed[in_flight] = True
    must_mask = np.zeros(attempted, bool)
    must_mask[list(must)] = True
    return Finding(
        acknowledged=len(must),
        in_flight_kept=kept,
        lost=np.flatnonzero(must_mask & (found == 0)).tolist(),
        partial=np.flatnonzero((found > 0) & ~whole).tolist(),
        invented=joined.height - good.height + int(found[whole & ~allowed].sum()),
        duplicates=duplicates,
        unflushed=abs(flushed["block_samples"] - got.height) + flushed["head_samples"],
        torn_tails=len(torn),
        other_warnings=others,
        replayed=stats["wal"]["replayed_samples"],
        blocks=flushed["blocks"],
        half_blocks=half_blocks,
    )


@dataclass
class Summary:
    """The figures of one fsync mode's run."""

    mode: str
    kills: int = 0
    acknowledged: int = 0
    in_flight_kept: int = 0
    lost: int = 0
    partial: int = 0
    invented: int = 0
    duplicates: int = 0
    unflushed: int = 0
    torn_tails: int = 0
    half_blocks: int = 0
    replayed: int = 0
    elapsed: float = 0.0
    failures: list[str] = field(default_factory=list)

    def add(self, finding: Finding, where: str) -> None:
        self.lost += len(finding.lost)
        self.partial += len(finding.partial)
        self.invented += finding.invented
        self.duplicates += finding.duplicates
        self.unflushed += finding.unflushed
        self.torn_tails += finding.torn_tails
        self.half_blocks += finding.half_blocks
        self.replayed += finding.replayed
        self.in_flight_kept += finding.in_flight_kept
        if not finding.ok:
            self.failures.append(f"{where}: {finding}")


@dataclass
class _Directory:
    """One data directory's state across its kill/reopen cycles."""

    path: Path
    config: dict
    must: set[int] = field(default_factory=set)
    next_start: int = 0


def run(
    mode: str,
    kills: int,
    seed: int,
    workdir: Path,
    *,
    kills_per_directory: int = 10,
    max_acks: int = 30,
    max_delay: float = 0.05,
    compact_every: int = 0,
) -> Summary:
    """Kill ``kills`` children writing in ``mode``, ``kills_per_directory`` per data directory;
    check after each kill. The check of one kill overlaps the next child's start-up."""
    rng = np.random.default_rng(seed)
    summary = Summary(mode)
    started = time.perf_counter()
    pending: tuple[Path, set[int], int, str, _Directory] | None = None
    directory: _Directory | None = None

    def settle() -> None:
        nonlocal pending
        if pending is None:
            return
        where, must, in_flight, label, owner = pending
        finding = check(where, must, in_flight, in_flight + 1)
        if finding.in_flight_kept:
            owner.must.add(in_flight)
        summary.add(finding, label)
        if where != owner.path:
            shutil.rmtree(where)
        pending = None

    children = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crash-writer")
    for kill in range(kills):
        if kill % kills_per_directory == 0:
            settle()
            if directory is not None:
                shutil.rmtree(directory.path)
            head_max_bytes = int(2 ** rng.uniform(16, 20))
            path = workdir / f"{mode}-{kill // kills_per_directory}"
            directory = _Directory(path, child_config(mode, head_max_bytes))
        assert directory is not None
        start = directory.next_start
        acks, delay = int(rng.integers(1, max_acks + 1)), float(rng.uniform(0, max_delay))
        job = children.submit(
            kill_after,
            directory.path,
            directory.config,
            start,
            acks,
            delay,
            compact_every=compact_every,
            stderr=workdir / "child.err",
        )
        try:
            settle()  # the previous kill's copy, while this child imports and opens
        finally:
            last = job.result()
        directory.must.update(range(start, last + 1))
        directory.next_start = last + 2  # the batch in flight is never written again
        summary.kills += 1
        summary.acknowledged += last + 1 - start
        label = f"{mode} kill {kill} ({directory.path.name}, batches {start}..{last + 1})"
        final = (kill + 1) % kills_per_directory == 0 or kill + 1 == kills
        where = directory.path
        if not final:  # the next child reopens the original as the kill left it
            where = workdir / f"{directory.path.name}-check"
            shutil.copytree(directory.path, where)
        pending = (where, set(directory.must), last + 1, label, directory)
    settle()
    children.shutdown()
    if directory is not None:
        shutil.rmtree(directory.path)
    summary.elapsed = time.perf_counter() - started
    return summary


HEADERS = (
    "mode",
    "kills",
    "acked batches",
    "in-flight kept",
    "lost batches",
    "partial batches",
    "invented rows",
    "duplicate rows",
    "torn WAL tails",
    "kills mid-block",
    "elapsed s",
)


def table(summaries: Sequence[Summary]) -> str:
    """A fixed-width table of the runs; lost, partial, invented and duplicate must be 0."""
    rows = [
        [
            s.mode,
            s.kills,
            s.acknowledged,
            s.in_flight_kept,
            s.lost,
            s.partial,
            s.invented,
            s.duplicates,
            s.torn_tails,
            s.half_blocks,
            f"{s.elapsed:.0f}",
        ]
        for s in summaries
    ]
    cells = [list(HEADERS), *([str(c) for c in r] for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in cells
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crash", description=__doc__)
    parser.add_argument("--kills", type=int, default=1000, help="kills per fsync mode")
    parser.add_argument("--mode", choices=FSYNC_MODES, action="append", help="default: all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kills-per-directory", type=int, default=20)
    parser.add_argument("--compact-every", type=int, default=0, help="db.compact() every N")
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    args = parser.parse_args(argv)
    modes = args.mode or list(FSYNC_MODES)
    summaries = []
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="crash-") as work:
        for i, mode in enumerate(modes):
            summaries.append(
                run(
                    mode,
                    args.kills,
                    args.seed + i,
                    Path(work),
                    kills_per_directory=args.kills_per_directory,
                    compact_every=args.compact_every,
                )
            )
            print(table(summaries[-1:]), file=sys.stderr, flush=True)  # progress
    print(table(summaries))
    failures = [f for s in summaries for f in s.failures]
    for failure in failures:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
