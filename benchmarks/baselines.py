"""Plain Parquet baselines: the same long table written as one Parquet file, no database.

They answer "what does a database buy over a file?": bytes/sample of the file, how fast it is
written (the load column) and read back whole with ``pl.read_parquet`` (select-all), and how
long ``pl.scan_parquet`` with a predicate takes to pull one series out of it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.datasets import DataSet, series_predicate
from benchmarks.measure import Row, best_of, rate

PYARROW_ZSTD = "Parquet (pyarrow zstd)"
POLARS_DEFAULT = "Parquet (Polars default)"


def _write_pyarrow(table: pa.Table, path: Path) -> None:
    """``pyarrow.parquet.write_table`` with zstd and otherwise default settings."""
    pq.write_table(table, path, compression="zstd")


def _writer_polars(frame: pl.DataFrame) -> Callable[[pa.Table, Path], None]:
    """``DataFrame.write_parquet`` with Polars' defaults (zstd, its own row-group size)."""

    def write(_table: pa.Table, path: Path) -> None:
        frame.write_parquet(path)

    return write


def _measure(
    system: str,
    data: DataSet,
    write: Callable[[pa.Table, Path], None],
    work_dir: Path,
    repetitions: int,
) -> Row:
    """Time the write, read-all and one-series reads, each the best of ``repetitions``."""
    row = Row(system, data.name, data.samples)
    one = data.one_series()
    expected_one = data.series_samples(one)
    with tempfile.TemporaryDirectory(prefix="parquet-", dir=work_dir) as tmp:
        path = Path(tmp) / "samples.parquet"
        write_s, _ = best_of(repetitions, lambda: write(data.table, path))
        row.load_sps = rate(data.samples, write_s)
        row.bytes_per_sample = path.stat().st_size / data.samples
        read_s, frame = best_of(repetitions, lambda: pl.read_parquet(path))
        row.select_all_sps = rate(frame.height, read_s)
        predicate = series_predicate(one, data.labels)
        one_s, one_frame = best_of(
            repetitions, lambda: pl.scan_parquet(path).filter(predicate).collect()
        )
        row.select_one_ms = one_s * 1000
        groups = pq.ParquetFile(path).metadata.num_row_groups
    row.note(f"load = write one file; {groups} row groups; one series = scan_parquet + filter")
    if frame.height != data.samples or one_frame.height != expected_one:
        row.note(f"read back {frame.height} / one series {one_frame.height} samples")
    return row


def run(data: DataSet, work_dir: Path, repetitions: int) -> list[Row]:
    """Both Parquet baseline rows for ``data``."""
    frame = pl.from_arrow(data.table)
    assert isinstance(frame, pl.DataFrame)
    return [
        _measure(PYARROW_ZSTD, data, _write_pyarrow, work_dir, repetitions),
        _measure(POLARS_DEFAULT, data, _writer_polars(frame), work_dir, repetitions),
    ]
