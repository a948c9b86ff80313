"""Writing a selection to a file: the format follows the file name's extension, or is given.

Parquet (zstd), Arrow IPC (Feather v2) and CSV, all long format: ``timestamp``, ``value`` and
one column per label, as ``tsdb-arrow load`` and ``db.write`` read them back. Parquet and
Arrow IPC keep every value bit for bit; CSV writes every NaN (stale markers included) as NaN,
so a CSV read back has the standard NaN where a stale marker was.
"""

from __future__ import annotations

import os

import polars as pl

from tsdb_arrow.errors import ExportError
from tsdb_arrow.model import FILE_FORMATS

__all__ = ["EXPORT_FORMATS", "export_format", "sink"]

#: File name extensions and the format each stands for.
EXPORT_FORMATS = FILE_FORMATS
_KNOWN = ", ".join(EXPORT_FORMATS)
# CSV times in RFC 3339 with a 'Z': every exported timestamp is UTC.
_CSV_TIME = "%Y-%m-%dT%H:%M:%S%.3fZ"


def export_format(path: str | os.PathLike[str], format: str | None = None) -> str:  # noqa: A002
    """The format to write ``path`` in: ``format`` if given, else the one its extension names.

    Raises
    ------
    ExportError
        When ``format`` is not ``parquet``, ``ipc`` or ``csv``, when it contradicts the
        extension, or when neither says which format to write.
    """
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    by_name = EXPORT_FORMATS.get(suffix)
    if format is None:
        if by_name is None:
            raise ExportError(
                f"cannot tell which format to write {os.fspath(path)!r} in: name it with one "
                f"of the extensions {_KNOWN}, or give the format (parquet, ipc or csv)"
            )
        return by_name
    if format not in set(EXPORT_FORMATS.values()):
        raise ExportError(f"unknown export format {format!r}: use parquet, ipc or csv")
    if by_name is not None and by_name != format:
        raise ExportError(
            f"{os.fspath(path)!r} ends in {suffix!r}, which is {by_name}, but the format asked "
            f"for is {format}: rename the file or drop the format"
        )
    return format


def sink(lf: pl.LazyFrame, path: str | os.PathLike[str], format: str) -> None:  # noqa: A002
    """Stream ``lf`` into ``path`` in ``format`` (as returned by :func:`export_format`)."""
    target = os.fspath(path)
    if format == "parquet":
        lf.sink_parquet(target, compression="zstd")
    elif format == "ipc":
        lf.sink_ipc(target, compression="zstd")
    else:
        lf.sink_csv(target, datetime_format=_CSV_TIME)
