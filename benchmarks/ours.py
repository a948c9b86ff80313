"""tsdb-arrow rows, through the public API only (``tsdb_arrow.open``): cache off, then warm.

load = ``db.write(table)`` + ``db.flush()`` wall time; bytes/sample = every file under the data
directory (walked with ``os.walk``) over the samples; select-all = ``db.select(ALL).collect()``;
select one = an equality selector on all labels of one series. The first row has the cache off
(every select decodes its blocks); the second reopens the same directory with the default cache
and times the selects once one select-all has filled it. A small untimed warm-up first pays the
one-off costs (numba compiling its kernels). Until the API exists the row says "not yet
importable" rather than showing numbers.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.datasets import DataSet
from benchmarks.formats import selector
from benchmarks.measure import Row, best_of, dir_bytes, rate, timed

SYSTEM = "tsdb-arrow"
SYSTEM_WARM = "tsdb-arrow (cache warm)"
ALL_SERIES = '{__name__=~".+"}'


def api() -> ModuleType | None:
    """The ``tsdb_arrow`` module when it is importable and has ``open``, else None."""
    try:
        ta = importlib.import_module("tsdb_arrow")
    except ImportError:
        return None
    return ta if hasattr(ta, "open") and hasattr(ta, "StorageConfig") else None


def run(data: DataSet, work_dir: Path, repetitions: int) -> list[Row]:
    """Measure tsdb-arrow on ``data`` (cache off, cache warm); errors are recorded in the rows."""
    row = Row(SYSTEM, data.name, data.samples)
    warm = Row(SYSTEM_WARM, data.name, data.samples)
    ta = api()
    if ta is None:
        row.note("tsdb-arrow: not yet importable (no tsdb_arrow.open)")
        return [row]
    try:
        _measure(ta, row, warm, data, work_dir, repetitions)
    except Exception as e:  # the API is young: whatever it raises belongs in the table
        row.fail(e)
        return [row]
    return [row, warm]


WARMUP_ROWS = 50_000


def load(ta: ModuleType, data_dir: Path, batches: Sequence[pa.Table]) -> tuple[float, Any]:
    """Open a fresh database in ``data_dir`` with the cache off, time writing ``batches`` and
    one flush; return (seconds, the open database)."""
    db = ta.open(str(data_dir), config=ta.StorageConfig(cache_bytes=0))
    try:

        def load() -> None:
            for batch in batches:
                db.write(batch)
            db.flush()

        seconds, _ = timed(load)
    except BaseException:
        db.close()
        raise
    return seconds, db


def warmup_sample(data: DataSet) -> pa.Table:
    """About WARMUP_ROWS rows of ``data``, strided so that every series and chunk kind is met."""
    return data.table.take(np.arange(0, data.samples, max(1, data.samples // WARMUP_ROWS)))


def warm_up(ta: ModuleType, data: DataSet, work_dir: Path) -> None:
    """Write, flush and read a strided sample of the data once, untimed.

    One-off costs (numba compiling its kernels, first imports) then do not count as load or
    select time; the stride reaches every series, so every kind of chunk is met.
    """
    with tempfile.TemporaryDirectory(prefix="ours-warmup-", dir=work_dir) as tmp:
        _, db = load(ta, Path(tmp) / "db", [warmup_sample(data)])
        with db:
            db.select(ALL_SERIES).collect()


def _selects(db: Any, one: str, repetitions: int) -> tuple[float, int, float, int]:
    """Best-of times and row counts of select-all and of the one-series select ``one``."""
    all_s, frame = best_of(repetitions, lambda: db.select(ALL_SERIES).collect())
    one_s, one_frame = best_of(repetitions, lambda: db.select(one).collect())
    return all_s, frame.height, one_s, one_frame.height


def _measure(
    ta: ModuleType, row: Row, warm: Row, data: DataSet, work_dir: Path, repetitions: int
) -> None:
    """The measurements proper, filling ``row`` (cache off) and ``warm`` in place.

    Load is the best of ``repetitions`` loads, each into a fresh directory; size and selects
    are taken on the last one, which is then reopened with the default cache for ``warm``.
    """
    one = data.one_series()
    expected_one = data.series_samples(one)
    warm_up(ta, data, work_dir)
    best_load = float("inf")
    for rep in range(repetitions):
        with tempfile.TemporaryDirectory(prefix="ours-", dir=work_dir) as tmp:
            data_dir = Path(tmp) / "db"
            load_s, db = load(ta, data_dir, [data.table])
            best_load = min(best_load, load_s)
            with db:
                if rep == repetitions - 1:
                    size = dir_bytes(data_dir)
                    stats = db.stats()
                    all_s, all_n, one_s, one_n = _selects(db, selector(one), repetitions)
            if rep == repetitions - 1:
                with ta.open(str(data_dir), config=ta.StorageConfig()) as cached:
                    cached.select(ALL_SERIES).collect()  # fills the cache
                    w_all_s, w_all_n, w_one_s, _ = _selects(cached, selector(one), repetitions)
                    hit_ratio = cached.stats()["cache"]["hit_ratio"]
    row.load_sps = rate(data.samples, best_load)
    row.bytes_per_sample = size / data.samples
    row.select_all_sps = rate(all_n, all_s)
    row.select_one_ms = one_s * 1000
    row.note(f"{stats.get('blocks', '?')} blocks, {stats.get('series', '?')} series, cache off")
    reported = stats.get("bytes_on_disk")
    if isinstance(reported, int) and abs(reported - size) > 0.01 * size:
        row.note(f"stats() says {reported} bytes on disk, directory holds {size}")
    if stats.get("samples") not in (None, data.samples):
        row.note(f"stats() counts {stats.get('samples')} samples")
    if all_n != data.samples:
        row.note(f"select-all returned {all_n} of {data.samples} samples")
    if one_n != expected_one:
        row.note(f"select one returned {one_n} of {expected_one} samples")
    warm.select_all_sps = rate(w_all_n, w_all_s)
    warm.select_one_ms = w_one_s * 1000
    warm.note(f"same directory reopened, default cache; hit ratio {hit_ratio:.2f}")
    if w_all_n != data.samples:
        warm.note(f"select-all returned {w_all_n} of {data.samples} samples")
