"""Streaming readers of sample files for the batch loader: Parquet, Arrow IPC and CSV.

A sample file is long-format: one row per sample with ``timestamp``, ``value``, optionally
``__name__``, and one column per label. Files are read in bounded batches, never whole, so
``tsdb-arrow load`` runs in bounded memory whatever the file size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from tsdb_arrow.errors import InputError
from tsdb_arrow.model import FILE_FORMATS

__all__ = ["EXTENSIONS", "REQUIRED_COLUMNS", "SampleFile", "open_sample_file"]

#: File name endings and the format each stands for.
EXTENSIONS = {**FILE_FORMATS, ".csv.gz": "csv"}
REQUIRED_COLUMNS = ("timestamp", "value")

_IPC_FILE_MAGIC = b"ARROW1"
_FEATHER_V1_MAGIC = b"FEA1"
# CSV: bytes parsed per block. The reader reads a few dozen blocks ahead, so its memory is
# bounded by about 40 blocks whatever the file size.
_CSV_BLOCK_BYTES = 1 << 20
_READ_ERRORS = (pa.ArrowException, OSError, EOFError)
_CSV_CONVERSION = re.compile(r"In CSV column #(\d+): (CSV conversion error.*)")


@dataclass
class SampleFile:
    """A sample file ready to be read in batches; opening it checked its format and columns.

    Attributes
    ----------
    path
        The file.
    format
        ``"parquet"``, ``"ipc"`` (Arrow IPC file or stream format, Feather v2) or ``"csv"``.
    total_rows
        Number of rows when the format says so without reading the data (Parquet, IPC file
        format), for a progress bar; ``None`` for CSV and IPC streams.
    schema
        The schema of every batch :meth:`batches` yields. For CSV every column except
        ``timestamp`` and ``value`` is a string, ``value`` is float64 and ``timestamp`` is
        int64 when the first block of the file holds integers, else a string for the caller
        to parse as a time; only an empty field is null (``NaN`` is a float NaN, an empty
        label is ``""``).
    """

    path: Path
    format: str
    total_rows: int | None
    schema: pa.Schema = field(repr=False)
    _ipc_stream: bool = field(default=False, repr=False)

    def batches(self, batch_rows: int = 1_000_000) -> Iterator[pa.RecordBatch]:
        """Yield the file's rows in order as record batches of at most ``batch_rows`` rows.

        Every batch but the last holds exactly ``batch_rows`` rows; memory use is bounded by
        a few batches whatever the file size.

        Raises
        ------
        InputError
            When the file turns out to be corrupt or, for CSV, a value does not convert
            (the message names the file).
        """
        if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
            raise ValueError(f"batch_rows must be a positive int, not {batch_rows!r}")
        return self._batches(batch_rows)

    def _batches(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        readers = {"parquet": self._parquet, "ipc": self._ipc, "csv": self._csv}
        try:
            yield from _rebatch(readers[self.format](batch_rows), batch_rows)
        except _READ_ERRORS as exc:
            raise _unreadable(self.path, self.format, exc, self.schema.names) from exc

    def _parquet(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        # pre_buffer would read every row group ahead: memory would grow with the file.
        with pq.ParquetFile(self.path, pre_buffer=False) as parquet:
            yield from parquet.iter_batches(batch_size=batch_rows)

    def _ipc(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        if self._ipc_stream:
            with pa.OSFile(str(self.path)) as source, pa_ipc.open_stream(source) as reader:
                yield from reader
            return
        # A memory map: a batch is read (and paged in) only when yielded.
        with pa.memory_map(str(self.path)) as source, pa_ipc.open_file(source) as reader:
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)

    def _csv(self, batch_rows: int) -> Iterator[pa.RecordBatch]:
        types = dict(zip(self.schema.names, self.schema.types, strict=True))
        with _csv_input(self.path) as source:
            reader = pa_csv.open_csv(
                source,
                read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                convert_options=_csv_convert_options(types),
            )
            yield from reader


def open_sample_file(path: str | os.PathLike[str]) -> SampleFile:
    """Open a sample file: find its format, schema and (when known) row count.

    Parameters
    ----------
    path
        A ``.parquet``/``.pq``, ``.arrow``/``.feather``/``.ipc`` (IPC file or stream format,
        told apart by their first bytes) or ``.csv``/``.csv.gz`` file.

    Returns
    -------
    SampleFile
        Ready for :meth:`SampleFile.batches`; no file handle is kept open.

    Raises
    ------
    InputError
        When the file is missing, its extension unknown, it cannot be read as its format,
        or it lacks a ``timestamp`` or ``value`` column. The message names the file and
        what to do.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    fmt = _format_of(path)
    if not path.is_file():
        raise InputError(f"{path}: not a regular file; give the path of a {fmt} file")
    try:
        sample_file = _OPENERS[fmt](path)
    except _READ_ERRORS as exc:
        raise _unreadable(path, fmt, exc) from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in sample_file.schema.names]
    if missing:
        raise InputError(
            f"{path}: no {' or '.join(repr(c) for c in missing)} column (columns: "
            f"{sample_file.schema.names}); a sample file needs 'timestamp', 'value', an optional "
            "'__name__' and one column per label"
        )
    return sample_file


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for ending in sorted(EXTENSIONS, key=len, reverse=True):
        if name.endswith(ending):
            return EXTENSIONS[ending]
    raise InputError(
        f"{path}: cannot tell the format from the file name; rename it to end with one of "
        f"{', '.join(EXTENSIONS)}"
    )


def _unreadable(
    path: Path, fmt: str, exc: BaseException, columns: list[str] | None = None
) -> InputError:
    what = {"parquet": "a Parquet file", "ipc": "an Arrow IPC file", "csv": "CSV"}[fmt]
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if fmt == "csv" and columns and (match := _CSV_CONVERSION.search(detail)):
        column = columns[int(match[1])] if int(match[1]) < len(columns) else match[1]
        return InputError(
            f"{path}: cannot be read as CSV: column {column!r}: {match[2]}; 'value' must be a "
            "number (empty when missing) and 'timestamp' integer milliseconds or time strings "
            "throughout the file"
        )
    return InputError(
        f"{path}: cannot be read as {what} ({detail}); check that it was written completely "
        "and that its extension matches its content"
    )


def _open_parquet(path: Path) -> SampleFile:
    with pq.ParquetFile(path) as parquet:
        return SampleFile(path, "parquet", parquet.metadata.num_rows, parquet.schema_arrow)


def _open_ipc(path: Path) -> SampleFile:
    with open(path, "rb") as handle:
        head = handle.read(len(_IPC_FILE_MAGIC))
    if head.startswith(_FEATHER_V1_MAGIC):
        raise InputError(
            f"{path}: a Feather version 1 file, which is not supported; re-save it as "
            "Feather v2 / Arrow IPC (pyarrow.feather.write_feather(table, path))"
        )
    if head == _IPC_FILE_MAGIC:
        with pa.memory_map(str(path)) as source, pa_ipc.open_file(source) as reader:
            return SampleFile(path, "ipc", reader.count_rows(), reader.schema)
    with pa.OSFile(str(path)) as source, pa_ipc.open_stream(source) as reader:
        return SampleFile(path, "ipc", None, reader.schema, _ipc_stream=True)


def _open_csv(path: Path) -> SampleFile:
    # Read the header and the first block to learn the columns and the timestamp's type.
    with _csv_input(path) as source:
        reader = pa_csv.open_csv(
            source,
            read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=pa_csv.ConvertOptions(null_values=[""]),
        )
        inferred = reader.schema
    types = {name: pa.string() for name in inferred.names}
    if "value" in types:
        types["value"] = pa.float64()
    if "timestamp" in types and pa.types.is_integer(inferred.field("timestamp").type):
        types["timestamp"] = pa.int64()
    schema = pa.schema(list(types.items()))
    return SampleFile(path, "csv", None, schema)


def _csv_input(path: Path) -> pa.NativeFile:
    compression = "gzip" if path.name.lower().endswith(".gz") else None
    return pa.input_stream(str(path), compression=compression)


def _csv_convert_options(types: dict[str, pa.DataType]) -> pa_csv.ConvertOptions:
    # Only an empty field is a null (missing) value: "NaN" stays a float NaN, and an empty
    # label stays "" (an absent label) rather than null.
    return pa_csv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=False)


_OPENERS = {"parquet": _open_parquet, "ipc": _open_ipc, "csv": _open_csv}


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of batches into batches of exactly ``rows`` rows (the last may be short)."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        offset = 0
        if pending_rows + batch.num_rows >= rows and pending:
            take = rows - pending_rows
            pending.append(batch.slice(0, take))
            yield pa.concat_batches(pending)
            pending, pending_rows, offset = [], 0, take
        while batch.num_rows - offset >= rows:
            yield batch.slice(offset, rows)
            offset += rows
        if offset < batch.num_rows:
            pending.append(batch.slice(offset))
            pending_rows += batch.num_rows - offset
    if pending:
        yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
