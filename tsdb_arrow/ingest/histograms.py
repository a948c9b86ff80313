"""Histogram samples: OpenTelemetry exponential histograms as an Arrow struct column.

A batch written with a ``histogram`` column instead of ``value`` holds one exponential histogram
per row. The column is a struct with the fields of ``model.HISTOGRAM_TYPE`` (only ``scale`` and
``count`` are required); it is validated as a whole, vectorised, before anything is stored.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tsdb_arrow.errors import InputError
from tsdb_arrow.model import HISTOGRAM_FIELDS, HISTOGRAM_MAX_SCALE, HISTOGRAM_MIN_SCALE

_DEFAULTS = {
    "zero_count": 0,
    "zero_threshold": 0.0,
    "positive_offset": 0,
    "negative_offset": 0,
    "sum": float("nan"),
    "min": float("nan"),
    "max": float("nan"),
}


def normalize_histograms(col: pa.ChunkedArray) -> pa.Table:
    """Validate a ``histogram`` struct column; return its fields as columns of HISTOGRAM_TYPE."""
    # pyarrow.compute is imported where writing needs it: opening a directory needs none of it.
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_struct(col.type):
        raise InputError(
            f"'histogram' has type {col.type}: it must be a struct with fields "
            f"{[f.name for f in HISTOGRAM_FIELDS]} (scale and count required)"
        )
    if col.null_count:
        raise InputError(f"row {_first(pc.is_null(col))}: 'histogram' is null")
    given = {col.type.field(i).name for i in range(col.type.num_fields)}
    unknown = given - {f.name for f in HISTOGRAM_FIELDS}
    if unknown:
        raise InputError(f"'histogram' has unknown fields {sorted(unknown)}")
    n = len(col)
    columns = {}
    for field in HISTOGRAM_FIELDS:
        name = field.name
        if name in given:
            values = col.field(name)
        elif name in _DEFAULTS:
            values = pa.repeat(pa.scalar(_DEFAULTS[name]), n)
        elif name.endswith("_counts"):  # no buckets on that side
            values = pa.LargeListArray.from_arrays(
                pa.array(np.zeros(n + 1, np.int64)), pa.array([], pa.uint64())
            )
        else:
            raise InputError(f"'histogram' lacks the required field {name!r}")
        if values.null_count:
            if name in _DEFAULTS:  # an absent optional field takes its default
                values = pc.fill_null(values, pa.scalar(_DEFAULTS[name]).cast(values.type))
            elif name.endswith("_counts"):
                values = pc.if_else(pc.is_null(values), pa.scalar([], values.type), values)
            else:
                row = _first(pc.is_null(values))
                raise InputError(f"row {row}: histogram field {name!r} is required, got null")
        columns[name] = _cast(name, values, field.type)
    table = pa.table(columns, schema=pa.schema(HISTOGRAM_FIELDS))
    _check(table)
    return table


def _cast(name: str, values: pa.Array, typ: pa.DataType) -> pa.Array:
    import pyarrow.compute as pc

    if name.endswith("_counts"):
        if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
            raise InputError(
                f"histogram field {name!r} must be a list of counts, got {values.type}"
            )
        flat = values.flatten()
        if flat.null_count:
            raise InputError(f"histogram field {name!r} holds a null count")
        if len(flat) and pa.types.is_signed_integer(flat.type) and pc.min(flat).as_py() < 0:
            row = _row_of_list_item(values, _first(pc.less(flat, 0)))
            raise InputError(f"row {row}: histogram field {name!r} holds a negative count")
        if len(flat) and pa.types.is_floating(flat.type):
            bad = pc.or_(pc.less(flat, 0), pc.not_equal(flat, pc.floor(flat)))
            if pc.any(bad).as_py():
                row = _row_of_list_item(values, _first(bad))
                raise InputError(
                    f"row {row}: histogram field {name!r} holds a count that is negative or "
                    "not a whole number"
                )
        offsets = values.offsets.cast(pa.int64())
        if values.offset or len(offsets) and offsets[0].as_py() != 0:
            offsets = pc.subtract(offsets, offsets[0])
        return pa.LargeListArray.from_arrays(offsets, flat.cast(pa.uint64()))
    unsigned_target = pa.types.is_unsigned_integer(typ)
    if unsigned_target and pa.types.is_signed_integer(values.type) and len(values):
        if pc.min(values).as_py() < 0:
            row = _first(pc.less(values, 0))
            raise InputError(f"row {row}: histogram field {name!r} is negative")
    try:
        return values.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"histogram field {name!r} cannot be read as {typ}: {exc}") from None


def _check(table: pa.Table) -> None:
    import pyarrow.compute as pc

    scale = table["scale"].to_numpy()
    bad = (scale < HISTOGRAM_MIN_SCALE) | (scale > HISTOGRAM_MAX_SCALE)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"row {row}: histogram scale {int(scale[row])} is outside "
            f"{HISTOGRAM_MIN_SCALE}..{HISTOGRAM_MAX_SCALE}"
        )
    zt = table["zero_threshold"].to_numpy()
    bad = ~np.isfinite(zt) | (zt < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"row {row}: zero_threshold must be finite and >= 0, got {zt[row]}")
    lo, hi = table["min"].to_numpy(), table["max"].to_numpy()
    with np.errstate(invalid="ignore"):
        bad = lo > hi
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"row {row}: histogram min {lo[row]} is greater than max {hi[row]}")
    total = table["zero_count"].to_numpy().astype(np.uint64)
    for side in ("positive_counts", "negative_counts"):
        total = total + _list_sums(table[side].combine_chunks())
    count = table["count"].to_numpy()
    bad = total != count
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"row {row}: histogram count {int(count[row])} differs from zero_count plus the "
            f"bucket counts ({int(total[row])}); send bucket arrays that add up"
        )
    for side in ("positive", "negative"):
        lengths = pc.list_value_length(table[f"{side}_counts"]).to_numpy(zero_copy_only=False)
        top = table[f"{side}_offset"].to_numpy().astype(np.int64) + lengths
        if (top > 2**31).any():
            row = int(np.flatnonzero(top > 2**31)[0])
            raise InputError(f"row {row}: {side} bucket indices exceed OTel's 32-bit range")


def _list_sums(lists: pa.LargeListArray) -> np.ndarray:
    flat = lists.flatten().to_numpy(zero_copy_only=False).astype(np.uint64)
    offsets = lists.offsets.to_numpy()
    sums = np.zeros(len(lists), dtype=np.uint64)
    nonempty = offsets[1:] > offsets[:-1]
    if nonempty.any():
        sums[nonempty] = np.add.reduceat(flat, offsets[:-1][nonempty])
    return sums


def _row_of_list_item(lists: pa.Array, item: int) -> int:
    offsets = lists.offsets.to_numpy()
    return int(np.searchsorted(offsets, item + offsets[0], side="right") - 1)


def _first(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))[0])


class HistogramHead:
    """Histogram samples not yet flushed: (refs, timestamps, fields) pieces in write order.

    Pieces are immutable Arrow tables, so a reader can hold them without pins.
    """

    def __init__(self) -> None:
        self.pieces: list[tuple[np.ndarray, np.ndarray, pa.Table]] = []
        self.rows = 0
        self.min_time = np.iinfo(np.int64).max
        self.max_time = np.iinfo(np.int64).min

    def append(self, refs: np.ndarray, timestamps: np.ndarray, fields: pa.Table) -> None:
        if len(refs) == 0:
            return
        self.pieces.append((refs, timestamps, fields))
        self.rows += len(refs)
        self.min_time = min(self.min_time, int(timestamps.min()))
        self.max_time = max(self.max_time, int(timestamps.max()))

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes + 16 * len(r) for r, _, t in self.pieces)

    def columns(self) -> tuple[np.ndarray, np.ndarray, pa.Table]:
        """All samples in write order: refs, timestamps and the histogram fields."""
        if not self.pieces:
            return (
                np.empty(0, np.uint64),
                np.empty(0, np.int64),
                pa.table({f.name: pa.array([], f.type) for f in HISTOGRAM_FIELDS}),
            )
        refs = np.concatenate([p[0] for p in self.pieces])
        ts = np.concatenate([p[1] for p in self.pieces])
        return refs, ts, pa.concat_tables([p[2] for p in self.pieces]).combine_chunks()

    def followed_by(self, newer: HistogramHead) -> HistogramHead:
        """This head with ``newer``'s pieces after its own (write order kept)."""
        self.pieces.extend(newer.pieces)
        self.rows += newer.rows
        if newer.rows:
            self.min_time = min(self.min_time, newer.min_time)
            self.max_time = max(self.max_time, newer.max_time)
        return self
