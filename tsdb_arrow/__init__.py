"""tsdb-arrow: an embedded time-series database for metrics on Apache Arrow, queried with Polars.

>>> import tsdb_arrow as ta
>>> with ta.open("./data") as db:                       # doctest: +SKIP
...     db.write(frame)
...     db.select('up{job="node"}').collect()

Importing the package loads only what opening a directory needs: ``ta.sketch`` (and numba, which
its kernels and the codecs are compiled with) is imported on first use.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from tsdb_arrow import kernel_cache
from tsdb_arrow.config import HistogramConfig, StorageConfig
from tsdb_arrow.database import Database, WriteResult, open
from tsdb_arrow.errors import (
    AuthError,
    BackpressureError,
    ClosedError,
    CodecError,
    ConfigError,
    ConnectionLostError,
    CorruptBlockError,
    CorruptBlockWarning,
    DataDirectoryError,
    ExportError,
    InputError,
    LockedError,
    MissingDependencyError,
    ReadOnlyError,
    SelectorError,
    SeriesCollisionError,
    ServerError,
    SketchError,
    StorageError,
    TimeRangeError,
    TsdbError,
    WalError,
)
from tsdb_arrow.server import Server, serve

if TYPE_CHECKING:
    from tsdb_arrow import sketch

# Before any kernel module is imported (none is above: tests/test_cold_start.py checks that
# importing tsdb_arrow imports no numba), so that a read-only install gets a writable cache.
kernel_cache.use_writable_cache(os.path.dirname(__file__))

__version__ = "0.1.0"

# Subpackages imported on first attribute access: ``ta.sketch.quantiles(...)`` works as if
# ``sketch`` were imported here, without its cost for programs that never use it.
_LAZY_SUBPACKAGES = frozenset({"sketch"})
# Functions whose module is imported on first use: ``ta.connect`` loads pyarrow.flight.
_LAZY_FUNCTIONS = {"connect": "tsdb_arrow.client"}

__all__ = [
    # opening a data directory
    "open",
    "Database",
    "WriteResult",
    "StorageConfig",
    "HistogramConfig",
    # serving a directory over the network (tsdb-arrow serve, in this process)
    "serve",
    "Server",
    # a running server's database over Arrow Flight: ta.connect("grpc://127.0.0.1:8815")
    "connect",
    # quantile sketches: ta.sketch.quantiles(...), ta.sketch.histogram_quantiles(...)
    "sketch",
    # errors
    "TsdbError",
    "ConfigError",
    "InputError",
    "SelectorError",
    "TimeRangeError",
    "SeriesCollisionError",
    "SketchError",
    "CodecError",
    "CorruptBlockError",
    "CorruptBlockWarning",
    "DataDirectoryError",
    "ExportError",
    "LockedError",
    "ClosedError",
    "ReadOnlyError",
    "BackpressureError",
    "ServerError",
    "StorageError",
    "WalError",
    "MissingDependencyError",
    "AuthError",
    "ConnectionLostError",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY_SUBPACKAGES | set(_LAZY_FUNCTIONS))
