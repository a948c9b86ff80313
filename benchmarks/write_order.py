"""Write-order rows: the same samples loaded series-sorted, time-sorted and shuffled, warm and cold.

load = ``db.write`` of every batch + ``db.flush()`` wall time, into a fresh directory with the
cache off. Cases (``CASES``): the data set as shipped (sorted by series), sorted by
``timestamp`` (the shape of exports from other databases and of concatenated scrapes), each in
one write; shuffled then cut into ``SHUFFLED_BATCHES`` batches; and shuffled in one write.
Warm = in this process after a warm-up (best of the repetitions); cold = a fresh Python process
per load (``python -m benchmarks.write_order TABLE N DIR``), timed from after ``import
tsdb_arrow`` and the Parquet read, so it counts what a first write pays: loading compiled
kernels, first-call set-up. Both allocate as the ``tsdb-arrow`` command does
(``tsdb_arrow.memory.own_process_default``: no huge pages), unless the environment chooses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import ours
from benchmarks.datasets import DataSet, repo_root
from benchmarks.measure import Row, rate

ORDERS = ("series-sorted", "time-sorted", "shuffled")
SHUFFLED_BATCHES = 41
#: (order, batches) of each measured case; the first is the base of the ratios.
CASES = (
    ("series-sorted", 1),
    ("time-sorted", 1),
    ("shuffled", SHUFFLED_BATCHES),
    ("shuffled", 1),
)
SEED = 42
COLD_TIMEOUT_S = 1800


def system_name(order: str, cold: bool, batches: int = 1) -> str:
    """The table's system cell of one write-order row (a shuffled case names its batches)."""
    count = "" if order != "shuffled" else f", {batches} batch{'es' if batches > 1 else ''}"
    return f"{ours.SYSTEM} {order}{count} ({'cold' if cold else 'warm'})"


def ordered(table: pa.Table, order: str) -> pa.Table:
    """``table`` in the given row order (``shuffled`` is seeded, so every run is the same)."""
    if order == "series-sorted":
        return table
    if order == "time-sorted":
        ts = table.column("timestamp").to_numpy()
        return table.take(pa.array(np.argsort(ts, kind="stable")))
    rng = np.random.default_rng(SEED)
    return table.take(pa.array(rng.permutation(table.num_rows)))


def batches_of(table: pa.Table, n: int) -> list[pa.Table]:
    """``n`` consecutive slices of ``table`` (zero-copy)."""
    bounds = np.linspace(0, table.num_rows, n + 1).astype(np.int64)
    return [table.slice(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]


def load_seconds(batches: list[pa.Table], data_dir: Path) -> float:
    """Open a fresh database in ``data_dir``; time writing ``batches`` and flushing."""
    import tsdb_arrow as ta

    seconds, db = ours.load(ta, data_dir, batches)
    db.close()
    return seconds


def _warm(table: pa.Table, n_batches: int, work_dir: Path, repetitions: int) -> float:
    best = float("inf")
    for _ in range(repetitions):
        with tempfile.TemporaryDirectory(prefix="order-warm-", dir=work_dir) as tmp:
            best = min(best, load_seconds(batches_of(table, n_batches), Path(tmp) / "db"))
    return best


def _cold(path: Path, n_batches: int, work_dir: Path, repetitions: int) -> float:
    best = float("inf")
    for _ in range(repetitions):
        with tempfile.TemporaryDirectory(prefix="order-cold-", dir=work_dir) as tmp:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.write_order", str(path), str(n_batches), tmp],
                capture_output=True,
                text=True,
                cwd=repo_root(),
                timeout=COLD_TIMEOUT_S,
                check=False,
            )
            if out.returncode != 0:
                raise RuntimeError(f"cold load failed: {out.stderr.strip()[-300:]}")
            best = min(best, json.loads(out.stdout)["seconds"])
    return best


def run(data: DataSet, work_dir: Path, repetitions: int) -> list[Row]:
    """Warm and cold rows for each order; a failure is recorded in its row, not raised."""
    rows: list[Row] = []
    warm_up = ours.warmup_sample(data)
    with tempfile.TemporaryDirectory(prefix="order-warmup-", dir=work_dir) as tmp:
        for order in ORDERS:  # compiles (or loads) every kernel each order meets
            load_seconds(batches_of(ordered(warm_up, order), 3), Path(tmp) / order)
    for order, n_batches in CASES:
        table = ordered(data.table, order)
        path = work_dir / f"order-{data.name}-{order}-{n_batches}.parquet"
        pq.write_table(table, path, compression="zstd")
        for cold in (False, True):
            row = Row(system_name(order, cold, n_batches), data.name, data.samples)
            try:
                if cold:
                    seconds = _cold(path, n_batches, work_dir, repetitions)
                else:
                    seconds = _warm(table, n_batches, work_dir, repetitions)
                row.load_sps = rate(data.samples, seconds)
                how = "fresh process per load" if cold else "in-process, after a warm-up"
                row.note(f"write+flush only, {how}, best of {repetitions}")
            except Exception as e:  # whatever a load raises belongs in the table
                row.fail(e)
            rows.append(row)
        path.unlink()
    return rows


def ratio_lines(rows: list[Row], vm: Row | None) -> list[str]:
    """Each case's load rate against series-sorted (same warmth) and against VictoriaMetrics."""
    by_name = {r.system: r for r in rows}
    base_order, base_batches = CASES[0]
    lines = []
    for cold in (False, True):
        base = by_name.get(system_name(base_order, cold, base_batches))
        for order, n_batches in CASES:
            row = by_name.get(system_name(order, cold, n_batches))
            if row is None or row.load_sps is None:
                continue
            parts = []
            if row is not base and base is not None and base.load_sps:
                parts.append(f"{row.load_sps / base.load_sps:.2f}x series-sorted")
            if vm is not None and vm.load_sps:
                parts.append(f"{row.load_sps / vm.load_sps:.2f}x VictoriaMetrics' import")
            if parts:
                lines.append(f"[{row.dataset}] {row.system} load: " + ", ".join(parts))
    return lines


def _child(argv: list[str]) -> int:
    """Cold load in this fresh process: ``TABLE N DIR``; prints ``{"seconds": ...}``."""
    path, n_batches, tmp = Path(argv[0]), int(argv[1]), Path(argv[2])
    import tsdb_arrow  # noqa: F401  (imported before the clock starts)
    from tsdb_arrow.memory import own_process_default

    own_process_default()  # as the tsdb-arrow command and benchmarks.run allocate

    table = pq.read_table(path)
    seconds = load_seconds(batches_of(table, n_batches), tmp / "db")
    print(json.dumps({"seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
