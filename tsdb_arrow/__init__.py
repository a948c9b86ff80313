"""tsdb-arrow: an embedded time-series database for metrics on Apache Arrow, queried with Polars.

>>> import tsdb_arrow as ta
>>> with ta.open("./data") as db:                       # doctest: +SKIP
...     db.write(frame)
...     db.select('up{job="node"}').collect()
"""

from tsdb_arrow import sketch
from tsdb_arrow.config import HistogramConfig, StorageConfig
from tsdb_arrow.database import Database, WriteResult, open
from tsdb_arrow.errors import (
    ClosedError,
    CodecError,
    ConfigError,
    CorruptBlockError,
    DataDirectoryError,
    ExportError,
    FlushError,
    InputError,
    LockedError,
    MissingDependencyError,
    SelectorError,
    SeriesCollisionError,
    SketchError,
    TimeRangeError,
    TsdbError,
)

__version__ = "0.1.0"

__all__ = [
    # opening a data directory
    "open",
    "Database",
    "WriteResult",
    "StorageConfig",
    "HistogramConfig",
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
    "DataDirectoryError",
    "ExportError",
    "LockedError",
    "ClosedError",
    "FlushError",
    "MissingDependencyError",
]
