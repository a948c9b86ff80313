"""The exceptions tsdb-arrow raises: one base class, one subclass per kind of failure.

Every message says what went wrong, where (column, row, file, offset) and what to do about it.
"""

from __future__ import annotations


class TsdbError(Exception):
    """Base class of every error raised by tsdb-arrow."""


class ConfigError(TsdbError, ValueError):
    """A configuration value is out of range or of the wrong type."""


class InputError(TsdbError, ValueError):
    """A batch of samples handed to ``write`` or ``load`` was refused; nothing of it was stored."""


class OtlpDecodeError(InputError):
    """An OTLP request body is not a valid ``ExportMetricsServiceRequest`` (truncated, not
    protobuf, bad UTF-8); nothing of it was stored. Servers answer INVALID_ARGUMENT / 400."""


class SelectorError(TsdbError, ValueError):
    """A series selector could not be parsed or uses an unsupported construct."""


class TimeRangeError(TsdbError, ValueError):
    """A start/end time could not be understood, or start lies after end."""


class ExportError(TsdbError, ValueError):
    """An export was refused: its output format is unknown or contradicts the file name."""


class SeriesCollisionError(TsdbError):
    """Two different label sets hashed to the same 64-bit series ref; the batch was refused."""


class CodecError(TsdbError):
    """A chunk payload could not be encoded or decoded (unknown codec id, truncated bytes)."""


class CorruptBlockError(TsdbError):
    """A block directory on disk is missing files or holds data that does not parse."""


class DataDirectoryError(TsdbError):
    """The path given to ``open`` cannot be used as a data directory (a file, no permission)."""


class LockedError(TsdbError):
    """Another process (or an open ``Database``) already owns this data directory."""


class ReadOnlyError(TsdbError):
    """A database opened with ``read_only=True`` was asked to write, flush, compact or delete."""


class CorruptBlockWarning(UserWarning):
    """An unreadable block was moved to ``quarantine/`` (or skipped by a read-only open)."""


class ClosedError(TsdbError):
    """The ``Database`` was used after ``close()``."""


class BackpressureError(TsdbError):
    """The head is full and the background flush has not made room within
    ``StorageConfig.write_timeout``; nothing of the batch was stored: retry it later."""


class ServerError(TsdbError):
    """A server listener could not start (port taken, bad address) or a serve option is bad."""


class SketchError(TsdbError, ValueError):
    """A sketch or histogram is invalid: negative counts, mismatched bucket arrays, bad bounds."""


class MissingDependencyError(TsdbError, ImportError):
    """An optional dependency a function needs is not installed; the message names the extra
    to install (e.g. ``pip install 'tsdb-arrow[otel]'``)."""


class StorageError(TsdbError, OSError):
    """A block could not be written (disk full, no permission, a read-only file system); the
    message names the directory and what to do. Nothing acknowledged is lost: the samples stay
    where they were (head and write-ahead log) and the next flush retries. An ``OSError`` too,
    with the ``errno`` of the failure."""


class WalError(TsdbError):
    """The write-ahead log could not be written, fsynced or read (disk full, permissions, an
    unknown format version); the message names the segment and what to do."""


class QueryError(TsdbError, ValueError):
    """A PromQL expression cannot be evaluated: a parse error (with the position), a type error
    (e.g. ``rate`` of an instant vector), or an execution error Prometheus also gives (many-to-
    many matching, duplicate series after a function dropped the metric name)."""


class QueryLimitError(QueryError):
    """A query went over a configured limit (samples loaded, time, concurrent queries); narrow
    the time range or the selectors, or raise the limit in the server's options."""


class AuthError(TsdbError):
    """A request carried no bearer token or a wrong one; the message says nothing about the
    data (no series, no label names)."""


class ConnectionLostError(TsdbError, ConnectionError):
    """The server of ``ta.connect`` could not be reached, or the connection dropped during a
    call (the server stopped or was killed). Writes acknowledged before are stored; retry the
    rest once the server is back."""
