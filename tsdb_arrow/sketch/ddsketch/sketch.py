"""DDSketch as immutable numpy arrays: ``Sketch`` built from values, merged, queried, converted.

``Sketch`` holds one sketch; ``SketchArrays`` (``arrays``) holds many in flat arrays (one
segment per group), which is what the Polars aggregations and the serialized sketch column work
on. Both share the quantile search (``search``), so a quantile is the same number however the
sketch was reached. The bytes codec is ``codec`` and the conversions to the ``ddsketch`` package
``interop``; both work on ``SketchArrays``, so neither needs this module.

Differences from ``ddsketch.DDSketch`` (the reference), all deliberate:

- NaN is ignored (the package counts it in the zero bucket and turns ``sum`` into NaN);
- +-inf is refused with ``SketchError`` (the package fails with ``OverflowError`` in ``key``);
- buckets are unbounded, as in the package's ``DDSketch`` (no collapsing);
- ``quantile`` of an empty sketch is NaN (the package returns ``None``), and a ``q`` outside
  [0, 1] raises ``SketchError`` (the package returns ``None``);
- a total count below 1 (fractional weights) gives a negative rank ``q * (count - 1)``; it is
  clamped to 0 (the package then reads a key from an empty store);
- keys above ``mapping.max_possible`` have a representative value that overflows: the
  quantile is +-inf there, where the package raises ``OverflowError``.

Otherwise quantiles equal ``get_quantile_value`` bit for bit: always for integer bucket counts
(every sketch built from values, and every merge of such sketches), and for one ``Sketch``
with fractional counts too. Many groups searched at once (``SketchArrays``) with fractional
counts can differ in the last rank comparison, as a group's running sums are then differences
of running sums over all groups.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tsdb_arrow.config import HistogramConfig
from tsdb_arrow.errors import SketchError
from tsdb_arrow.sketch.ddsketch import interop
from tsdb_arrow.sketch.ddsketch.arrays import SketchArrays, merge_buckets, one_sketch
from tsdb_arrow.sketch.ddsketch.codec import decode_arrays, encode_arrays
from tsdb_arrow.sketch.ddsketch.mapping import LogarithmicMapping
from tsdb_arrow.sketch.ddsketch.search import check_quantiles, search_quantiles

DEFAULT_RELATIVE_ACCURACY = HistogramConfig().relative_accuracy  # 0.01


@dataclass(frozen=True, eq=False)
class Sketch:
    """One DDSketch: a logarithmic mapping and bucket counts, immutable.

    Parameters
    ----------
    mapping
        The value-to-key mapping (relative accuracy and key offset).
    zero_count
        Count of values with ``|v| <= mapping.min_possible``.
    positive_keys, positive_counts
        Keys of the positive values, strictly increasing, and their counts (>= 0, finite).
    negative_keys, negative_counts
        Keys of ``|v|`` for the negative values, strictly increasing, and their counts.
    count
        Total count; ``None`` computes it from the buckets. Must match them otherwise.
    sum, min, max
        Of the values; NaN when unknown (e.g. after a protobuf round trip, which drops them).
        An empty sketch has sum 0, min +inf and max -inf, the identities of a merge.

    Buckets with a zero count are dropped; the arrays are read-only copies.
    """

    mapping: LogarithmicMapping
    zero_count: float
    positive_keys: np.ndarray
    positive_counts: np.ndarray
    negative_keys: np.ndarray
    negative_counts: np.ndarray
    count: float | None = None
    sum: float = math.nan
    min: float = math.nan
    max: float = math.nan

    def __post_init__(self) -> None:
        if not isinstance(self.mapping, LogarithmicMapping):
            raise SketchError(
                f"mapping must be a LogarithmicMapping, got {type(self.mapping).__name__}"
            )
        zero = _check_count("zero_count", self.zero_count)
        pk, pc = _check_buckets("positive", self.positive_keys, self.positive_counts)
        nk, nc = _check_buckets("negative", self.negative_keys, self.negative_counts)
        total = zero + float(pc.sum()) + float(nc.sum())
        count = total if self.count is None else _check_count("count", self.count)
        if not math.isclose(count, total, rel_tol=1e-9, abs_tol=1e-9):
            raise SketchError(
                f"count {count!r} does not match the buckets (zero_count + positive_counts + "
                f"negative_counts = {total!r})"
            )
        stats = [float(self.sum), float(self.min), float(self.max)]
        if count == 0:
            stats = [0.0, math.inf, -math.inf]
        for name, value in (("zero_count", zero), ("count", count)):
            object.__setattr__(self, name, value)
        for name, value in zip(("sum", "min", "max"), stats):
            object.__setattr__(self, name, value)
        for name, array in zip(
            ("positive_keys", "positive_counts", "negative_keys", "negative_counts"),
            (pk, pc, nk, nc),
        ):
            object.__setattr__(self, name, array)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def empty(cls, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> Sketch:
        """A sketch of no values."""
        no_keys, no_counts = np.empty(0, np.int64), np.empty(0, np.float64)
        return cls(
            LogarithmicMapping(relative_accuracy), 0.0, no_keys, no_counts, no_keys, no_counts
        )

    @classmethod
    def from_values(
        cls,
        values: Iterable[float] | np.ndarray,
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
        *,
        mapping: LogarithmicMapping | None = None,
    ) -> Sketch:
        """The sketch of ``values`` (NaN ignored), vectorised.

        Raises
        ------
        SketchError
            If a value is +-inf.
        """
        mapping = LogarithmicMapping(relative_accuracy) if mapping is None else mapping
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[~np.isnan(v)]
        if np.isinf(v).any():
            index = int(np.flatnonzero(np.isinf(v))[0])
            raise SketchError(
                f"value {v[index]!r} cannot be sketched: DDSketch has no bucket for +-inf "
                "(drop or clip infinite values first)"
            )
        mp = mapping.min_possible
        pk, pc = np.unique(mapping.keys(v[v > mp]), return_counts=True)
        nk, nc = np.unique(mapping.keys(-v[v < -mp]), return_counts=True)
        zero = float(v.size - pc.sum() - nc.sum())
        if v.size == 0:
            return cls(mapping, 0.0, pk, pc.astype(np.float64), nk, nc.astype(np.float64))
        return cls(
            mapping,
            zero,
            pk,
            pc.astype(np.float64),
            nk,
            nc.astype(np.float64),
            float(v.size),
            float(v.sum()),
            float(v.min()),
            float(v.max()),
        )

    # -- queries ----------------------------------------------------------------------------

    @property
    def relative_accuracy(self) -> float:
        """The mapping's relative accuracy."""
        return self.mapping.relative_accuracy

    def quantile(self, q: float) -> float:
        """The value at quantile ``q`` (DDSketch rank ``q * (count - 1)``); NaN if empty."""
        return float(self.quantiles([q])[0])

    def quantiles(self, qs: Sequence[float] | np.ndarray) -> np.ndarray:
        """The values at the quantiles ``qs``, as ``quantile`` gives them one by one."""
        return search_quantiles(self.mapping, self.to_arrays(), check_quantiles(qs))[0]

    def merge(self, other: Sketch) -> Sketch:
        """The sketch of the values of both ``self`` and ``other`` (exact, same mapping)."""
        if not isinstance(other, Sketch):
            raise SketchError(f"can only merge a Sketch, got {type(other).__name__}")
        _check_same_mapping(self.mapping, other.mapping)
        pk, pc = merge_buckets(
            self.positive_keys, self.positive_counts, other.positive_keys, other.positive_counts
        )
        nk, nc = merge_buckets(
            self.negative_keys, self.negative_counts, other.negative_keys, other.negative_counts
        )
        return Sketch(
            self.mapping,
            self.zero_count + other.zero_count,
            pk,
            pc,
            nk,
            nc,
            self.count + other.count,
            self.sum + other.sum,
            float(np.minimum(self.min, other.min)),
            float(np.maximum(self.max, other.max)),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sketch):
            return NotImplemented
        return (
            self.mapping == other.mapping
            and self.zero_count == other.zero_count
            and self.count == other.count
            and all(np.array_equal(a, b) for a, b in zip(self._arrays(), other._arrays()))
            and all(
                a == b or (math.isnan(a) and math.isnan(b))
                for a, b in zip((self.sum, self.min, self.max), (other.sum, other.min, other.max))
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Sketch(relative_accuracy={self.mapping.relative_accuracy!r}, "
            f"count={self.count!r}, zero_count={self.zero_count!r}, "
            f"positive_buckets={self.positive_keys.size}, "
            f"negative_buckets={self.negative_keys.size}, sum={self.sum!r}, "
            f"min={self.min!r}, max={self.max!r})"
        )

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (self.positive_keys, self.positive_counts, self.negative_keys, self.negative_counts)

    # -- conversions ------------------------------------------------------------------------

    def to_arrays(self) -> SketchArrays:
        """This sketch as a one-group ``SketchArrays``."""
        return one_sketch(
            self.count,
            self.zero_count,
            self.positive_keys,
            self.positive_counts,
            self.negative_keys,
            self.negative_counts,
            self.sum,
            self.min,
            self.max,
        )

    @classmethod
    def from_arrays(cls, mapping: LogarithmicMapping, arrays: SketchArrays, group: int) -> Sketch:
        """Group ``group`` of ``arrays`` as a ``Sketch`` (validated)."""
        ps = slice(arrays.pos_offsets[group], arrays.pos_offsets[group + 1])
        ns = slice(arrays.neg_offsets[group], arrays.neg_offsets[group + 1])
        return cls(
            mapping,
            float(arrays.zero_count[group]),
            arrays.pos_keys[ps],
            arrays.pos_counts[ps],
            arrays.neg_keys[ns],
            arrays.neg_counts[ns],
            float(arrays.count[group]),
            float(arrays.sum[group]),
            float(arrays.min[group]),
            float(arrays.max[group]),
        )

    def to_bytes(self) -> bytes:
        """The compact serialized form (layout in ``docs/sketches.md``, "DDSketch bytes")."""
        offsets, data = encode_arrays(self.mapping, self.to_arrays())
        return data[offsets[0] : offsets[1]].tobytes()

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Sketch:
        """The sketch serialized by ``to_bytes``; ``SketchError`` if the bytes are invalid."""
        buffer = np.frombuffer(bytes(data), dtype=np.uint8)
        mapping, arrays = decode_arrays(np.array([0, buffer.size], dtype=np.int64), buffer)
        return cls.from_arrays(mapping, arrays, 0)

    def to_ddsketch(self) -> Any:
        """This sketch as a ``ddsketch.DDSketch`` (``BaseDDSketch`` when the offset is not 0).

        Unknown (NaN) sum/min/max become the package's defaults (0, +inf, -inf), as its own
        protobuf decoding leaves them.
        """
        return interop.to_ddsketch(self.mapping, self.to_arrays())

    @classmethod
    def from_ddsketch(cls, sketch: Any) -> Sketch:
        """A ``ddsketch`` sketch (any ``BaseDDSketch`` with a ``LogarithmicMapping`` and dense
        stores) as a ``Sketch``; sum/min/max left at the package's empty defaults by its
        protobuf decoding are taken as unknown (NaN)."""
        return cls.from_arrays(*interop.from_ddsketch(sketch), 0)

    def to_proto(self) -> Any:
        """The ``ddsketch`` protobuf message (``ddsketch.pb`` ``DDSketch``), with contiguous
        bins as the package writes them; sum/min/max are not part of it."""
        return interop.to_proto(self.mapping, self.to_arrays())

    @classmethod
    def from_proto(cls, proto: Any) -> Sketch:
        """A ``ddsketch.pb`` ``DDSketch`` message (contiguous and sparse bins both read)."""
        return cls.from_arrays(*interop.from_proto(proto), 0)


def _check_count(name: str, value: object) -> float:
    value = float(value)  # type: ignore[arg-type]
    if not (math.isfinite(value) and value >= 0):
        raise SketchError(f"{name} must be a finite count >= 0, got {value!r}")
    return value


def _check_buckets(side: str, keys: object, counts: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated, read-only int64 keys and float64 counts of one side, zero counts dropped."""
    k = np.asarray(keys)
    c = np.asarray(counts)
    for name, arr in ((f"{side}_keys", k), (f"{side}_counts", c)):
        if arr.ndim != 1:
            raise SketchError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if k.size and not np.issubdtype(k.dtype, np.integer):
        raise SketchError(f"{side}_keys must be integers, got dtype {k.dtype}")
    if k.size != c.size:
        raise SketchError(f"{side}_keys and {side}_counts differ in length ({k.size} != {c.size})")
    if k.dtype == np.uint64 and k.size and k.max() > np.iinfo(np.int64).max:
        raise SketchError(f"{side}_keys do not fit in int64")
    k = k.astype(np.int64)
    c = c.astype(np.float64)
    # Real mappings give keys of a few thousand at most; the bytes codec zigzags keys and
    # would wrap beyond +-2**62, so such keys are refused rather than silently corrupted.
    huge = np.flatnonzero(np.abs(k.astype(np.float64)) >= 2.0**62)
    if huge.size:
        raise SketchError(
            f"{side}_keys[{huge[0]}] = {k[huge[0]]} is out of range: keys must lie within +-2**62"
        )
    bad = np.flatnonzero(~(np.isfinite(c) & (c >= 0)))
    if bad.size:
        raise SketchError(
            f"{side}_counts[{bad[0]}] = {float(c[bad[0]])!r}: counts must be finite and >= 0"
        )
    unsorted = np.flatnonzero(np.diff(k) <= 0)
    if unsorted.size:
        i = int(unsorted[0])
        raise SketchError(
            f"{side}_keys must be strictly increasing (sorted, unique): "
            f"{side}_keys[{i}] = {k[i]} >= {side}_keys[{i + 1}] = {k[i + 1]}"
        )
    keep = c != 0
    k, c = k[keep], c[keep]
    k.flags.writeable = False
    c.flags.writeable = False
    return k, c


def _check_same_mapping(a: LogarithmicMapping, b: LogarithmicMapping) -> None:
    if a != b:
        raise SketchError(
            "cannot merge sketches with different mappings: "
            f"relative_accuracy {a.relative_accuracy!r} offset {a.offset!r} vs "
            f"relative_accuracy {b.relative_accuracy!r} offset {b.offset!r}"
        )
