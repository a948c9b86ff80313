"""The data model: sample schemas (floats, histograms), label names, the stable 64-bit series ref.

A series is its label set (metric name in ``__name__``). Its ref is FNV-1a 64 over the canonical
byte string ``name 0xFF value 0xFF`` for every label in sorted name order whose value is non-empty,
finished with the splitmix64 mixer. 0xFF never occurs in UTF-8, so the byte string is unambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

METRIC_NAME = "__name__"
TIMESTAMP = "timestamp"
VALUE = "value"
REF = "series_ref"


@dataclass(frozen=True)
class Numbered:
    """A batch's series numbered densely from 0: each row's number (``row_sets``, int64) and
    each number's ref (``set_refs``, uint64; a number may have no row). What a resolved batch
    knows, so that what counts per series looks each one up once, not each row."""

    row_sets: np.ndarray
    set_refs: np.ndarray

    @property
    def few_series(self) -> bool:
        """Whether the rows hold at most a quarter as many numbers: then a lookup per series
        saves work over one per row (with about one row a series, row by row is as cheap)."""
        return 4 * len(self.set_refs) <= len(self.row_sets)


LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
#: File name extensions of long-format sample files (read by ``load``, written by ``export``)
#: and the format each stands for.
FILE_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "ipc",
    ".feather": "ipc",
    ".ipc": "ipc",
    ".csv": "csv",
}
#: Prometheus' metric name syntax, anchored.
METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
SEPARATOR = 0xFF

# Histogram samples: one OpenTelemetry exponential histogram per row, in a struct column named
# HISTOGRAM (docs/sketches.md). Scales run from -10 (base 2**1024) to 20, as in OpenTelemetry.
HISTOGRAM = "histogram"
HISTOGRAM_MIN_SCALE = -10
HISTOGRAM_MAX_SCALE = 20
HISTOGRAM_FIELDS = [
    pa.field("scale", pa.int8(), nullable=False),
    pa.field("count", pa.uint64(), nullable=False),
    pa.field("zero_count", pa.uint64(), nullable=False),
    pa.field("zero_threshold", pa.float64(), nullable=False),
    pa.field("positive_offset", pa.int32(), nullable=False),
    pa.field("positive_counts", pa.large_list(pa.uint64()), nullable=False),
    pa.field("negative_offset", pa.int32(), nullable=False),
    pa.field("negative_counts", pa.large_list(pa.uint64()), nullable=False),
    pa.field("sum", pa.float64(), nullable=False),
    pa.field("min", pa.float64(), nullable=False),
    pa.field("max", pa.float64(), nullable=False),
]
HISTOGRAM_TYPE = pa.struct(HISTOGRAM_FIELDS)
# Histogram samples as blocks store them and the read path hands them around: one row each.
HISTOGRAM_SCHEMA = pa.schema(
    [pa.field(REF, pa.uint64(), nullable=False), pa.field(TIMESTAMP, pa.int64(), nullable=False)]
    + HISTOGRAM_FIELDS
)


def metric_name_error(name: str) -> str:
    """Why ``name`` is refused as a metric name (the caller checked METRIC_NAME_PATTERN)."""
    return (
        f"metric name {name!r} is invalid: metric names must match [a-zA-Z_:][a-zA-Z0-9_:]* "
        "(letters, digits, '_' and ':', not starting with a digit); replace the other "
        "characters, e.g. with '_'"
    )


def is_label_name(name: str) -> bool:
    """Whether ``name`` is a valid label name (``[a-zA-Z_][a-zA-Z0-9_]*``)."""
    return LABEL_NAME_RE.match(name) is not None


def _mix64(h: int) -> int:
    mask = (1 << 64) - 1
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & mask
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & mask
    return h ^ (h >> 31)


def series_ref(labels: Mapping[str, str | None]) -> int:
    """The series ref of one label set, computed in plain Python (the reference definition)."""
    mask = (1 << 64) - 1
    h = int(FNV_OFFSET)
    for name in sorted(labels):
        value = labels[name]
        if not value:
            continue
        for part in (name.encode(), value.encode()):
            for byte in part + bytes([SEPARATOR]):
                h = ((h ^ byte) * int(FNV_PRIME)) & mask
    return _mix64(h)


def is_member(sorted_refs: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Vectorised membership of ``refs`` in the sorted array ``sorted_refs``."""
    if len(sorted_refs) == 0:
        return np.zeros(len(refs), dtype=bool)
    pos = np.searchsorted(sorted_refs, refs)
    pos[pos == len(sorted_refs)] = 0
    return sorted_refs[pos] == refs


def present_labels(series: pl.DataFrame) -> list[str]:
    """The label columns of a series table (``REF`` + labels, null = absent) that at least one
    series has, sorted: the label columns a selection of those series returns."""
    return sorted(c for c in series.columns if c != REF and series[c].null_count() < series.height)


def numpy_of(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of a null-free fixed-width Arrow column as numpy (zero-copy for one chunk).

    Not ``to_numpy``: pyarrow imports pandas for it when pandas is installed, half a second
    of a cold start.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    dtype = np.dtype(column.type.to_pandas_dtype())
    buffer = column.buffers()[1]
    if buffer is None:
        return np.empty(0, dtype)
    return np.frombuffer(buffer, dtype=dtype)[column.offset : column.offset + len(column)]
