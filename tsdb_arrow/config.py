"""Validated configuration for a ``Database``; bad values are refused when constructed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta

from tsdb_arrow.errors import ConfigError

HOUR_MS = 3_600_000
FSYNC_MODES = ("always", "interval", "never")  # the write-ahead log's (ingest/wal.py)


@dataclass(frozen=True)
class StorageConfig:
    """How a data directory stores samples.

    Parameters
    ----------
    block_duration
        Time span of one block: milliseconds or a ``datetime.timedelta`` (kept as milliseconds).
        Block boundaries are aligned to multiples of it since the Unix epoch.
        The head is flushed by itself once it spans more than this: its complete windows
        that no write reached for two seconds (``ingest/recent.py``).
        Every window that holds a sample becomes its own block directory (about 3 KB of
        files even for one sample), so for sparse data choose a window that holds many
        samples per series: daily samples want ``timedelta(days=365)`` rather than the 2 h
        default, which would make one directory per sample.
    head_max_bytes
        The head is flushed by itself once its buffers hold more than this many bytes.
    cache_bytes
        Bound of the LRU cache of decoded chunks, in bytes; 0 turns the cache off.
    chunk_samples
        Most samples one chunk (one row of the chunk table) holds.
    buffer_rows
        Rows of one pooled head buffer.
    write_timeout
        Seconds a ``write`` waits for room when the head is full (``head_max_bytes``) because
        the background flush cannot keep up; then it raises ``BackpressureError`` and stores
        nothing of the batch (retry it later).
    wal
        Log every accepted batch to ``<data>/wal/`` before ``write`` returns, so that a crash
        loses nothing acknowledged. ``False`` is for bulk loads that ``flush()`` at the end:
        a crash before that flush loses every sample not yet in a block.
    wal_fsync
        What a power loss (or an OS crash) can take; a killed process loses nothing in any
        mode, because every record is handed to the OS before ``write`` returns.
        ``"always"``: fsynced before ``write`` returns: nothing acknowledged is lost.
        ``"interval"`` (default): fsynced every ``wal_fsync_interval`` seconds (group
        commit): at most the last interval's writes. ``"never"``: left to the OS's
        write-back (typically up to 30 s on Linux).
    wal_fsync_interval
        Seconds between fsyncs in ``"interval"`` mode.
    wal_segment_bytes
        Size at which a WAL segment file is closed and the next begun.
    compaction_levels
        Range lengths (ms or ``timedelta``) blocks are merged into, each a multiple of the one
        before; by default ``block_duration`` x (1, 6, 24): 2 h, 12 h, 48 h. Overlapping blocks
        (out-of-order or late writes) are merged whatever their range.
    compaction_interval
        Seconds between the background thread's compactions (``db.compact()`` runs one now).
    retention
        Age (ms or ``timedelta``) past which whole blocks are deleted, measured back from the
        newest sample stored; None keeps everything.
    retention_bytes
        Bytes the blocks may take; the oldest whole blocks go beyond it. None: no limit.
    """

    block_duration: int = 2 * HOUR_MS
    head_max_bytes: int = 256 * 2**20
    cache_bytes: int = 512 * 2**20
    chunk_samples: int = 8192
    buffer_rows: int = 65_536
    write_timeout: float = 60.0
    wal: bool = True
    wal_fsync: str = "interval"
    wal_fsync_interval: float = 1.0
    wal_segment_bytes: int = 64 * 2**20
    compaction_levels: tuple[int, ...] | None = None
    compaction_interval: float = 60.0
    retention: int | None = None
    retention_bytes: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.block_duration, timedelta):
            object.__setattr__(
                self, "block_duration", self.block_duration // timedelta(milliseconds=1)
            )
        _positive_int("block_duration", self.block_duration, minimum=1000)
        _positive_int("head_max_bytes", self.head_max_bytes, minimum=2**16)
        _positive_int("cache_bytes", self.cache_bytes, minimum=0)
        _positive_int("chunk_samples", self.chunk_samples, minimum=16, maximum=1 << 20)
        _positive_int("buffer_rows", self.buffer_rows, minimum=1024, maximum=1 << 24)
        _seconds("write_timeout", self.write_timeout)
        if not isinstance(self.wal, bool):
            raise ConfigError(f"StorageConfig.wal must be True or False, got {self.wal!r}")
        if self.wal_fsync not in FSYNC_MODES:
            raise ConfigError(
                f"StorageConfig.wal_fsync must be one of {', '.join(map(repr, FSYNC_MODES))}, "
                f"got {self.wal_fsync!r}"
            )
        _seconds("wal_fsync_interval", self.wal_fsync_interval)
        _positive_int("wal_segment_bytes", self.wal_segment_bytes, minimum=2**16)
        if self.compaction_levels is None:
            levels = tuple(self.block_duration * f for f in (1, 6, 24))
        else:
            levels = tuple(_ms(x) for x in self.compaction_levels)
        _check_levels(levels, self.block_duration)
        object.__setattr__(self, "compaction_levels", levels)
        _seconds("compaction_interval", self.compaction_interval)
        if self.retention is not None:
            object.__setattr__(self, "retention", _ms(self.retention))
            _positive_int("retention", self.retention, minimum=1)
        if self.retention_bytes is not None:
            _positive_int("retention_bytes", self.retention_bytes, minimum=1)


def storage_config(value: StorageConfig | Mapping[str, object] | None) -> StorageConfig:
    """``value`` as a ``StorageConfig``: as is, built from a dict of its fields, or the default.

    Raises
    ------
    ConfigError
        When a dict names a field ``StorageConfig`` does not have, or ``value`` is of another
        type.
    """
    if value is None:
        return StorageConfig()
    if isinstance(value, StorageConfig):
        return value
    if isinstance(value, Mapping):
        known = [f.name for f in fields(StorageConfig)]
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise ConfigError(f"unknown StorageConfig field(s) {unknown}; the fields are {known}")
        return StorageConfig(**value)  # type: ignore[arg-type]
    raise ConfigError(
        "config must be a ta.StorageConfig or a dict of its fields (e.g. "
        f"{{'cache_bytes': 0}}), got {type(value).__name__}"
    )


def _positive_int(name: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"StorageConfig.{name} must be an int, got {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(f"StorageConfig.{name} must be {bound}, got {value}")


def _ms(value: object) -> object:
    """A ``timedelta`` as whole milliseconds; anything else as given (checked by the caller)."""
    return value // timedelta(milliseconds=1) if isinstance(value, timedelta) else value


def _check_levels(levels: tuple[object, ...], block_duration: int) -> None:
    """Compaction ranges must nest: increasing, each a multiple of the one before, and of the
    block duration (a block lies inside one range of every level)."""
    if not levels:
        raise ConfigError("StorageConfig.compaction_levels must name at least one range (ms)")
    previous = block_duration
    for i, level in enumerate(levels):
        if isinstance(level, bool) or not isinstance(level, int) or level <= 0:
            raise ConfigError(
                f"StorageConfig.compaction_levels holds {level!r}: each must be a positive "
                "number of ms (or a timedelta)"
            )
        if level < previous or level % previous or (i and level == previous):
            raise ConfigError(
                f"StorageConfig.compaction_levels {list(levels)} must increase, each a multiple "
                f"of the one before and the first of block_duration ({block_duration} ms)"
            )
        previous = level


def _seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"StorageConfig.{name} must be seconds (a float), got {value!r}")
    if not 0 < float(value) < float("inf"):
        raise ConfigError(f"StorageConfig.{name} must be a positive number of seconds, got {value}")


@dataclass(frozen=True)
class HistogramConfig:
    """How quantile sketches are built.

    Parameters
    ----------
    relative_accuracy
        DDSketch's guarantee: every quantile returned is within this relative error of the
        exact value at the requested rank. Strictly between 0 and 1.
    """

    relative_accuracy: float = 0.01

    def __post_init__(self) -> None:
        check_relative_accuracy(self.relative_accuracy)


def check_relative_accuracy(value: object) -> float:
    """``value`` as a float in (0, 1), or a ``ConfigError`` saying what is accepted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"relative_accuracy must be a float in (0, 1), got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ConfigError(
            f"relative_accuracy must lie strictly between 0 and 1 (0.01 means 1 %), got {value!r}"
        )
    return float(value)
