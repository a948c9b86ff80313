"""DDSketch as immutable numpy arrays: build from values, merge, quantiles, interop and bytes.

``Sketch`` holds one sketch; ``SketchArrays`` holds many in flat arrays (one segment per group),
which is what the Polars aggregations and the serialized sketch column work on. Both share the
quantile search below, so a quantile is the same number however the sketch was reached.

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
from typing import Any, NamedTuple

import numba as nb
import numpy as np

from tsdb_arrow.errors import ConfigError, SketchError
from tsdb_arrow.sketch.mapping import LogarithmicMapping

DEFAULT_RELATIVE_ACCURACY = 0.01


class SketchArrays(NamedTuple):
    """Many sketches of one mapping, flat: group ``g``'s positive buckets are
    ``pos_keys[pos_offsets[g]:pos_offsets[g + 1]]`` (ascending keys), likewise the negative
    ones (keys of ``|v|``, ascending); the other fields have one entry per group."""

    count: np.ndarray
    zero_count: np.ndarray
    pos_offsets: np.ndarray
    pos_keys: np.ndarray
    pos_counts: np.ndarray
    neg_offsets: np.ndarray
    neg_keys: np.ndarray
    neg_counts: np.ndarray
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @property
    def groups(self) -> int:
        """Number of sketches."""
        return int(self.count.size)


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
        pk, pc = _merge_buckets(
            self.positive_keys, self.positive_counts, other.positive_keys, other.positive_counts
        )
        nk, nc = _merge_buckets(
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
        return SketchArrays(
            np.array([self.count]),
            np.array([self.zero_count]),
            np.array([0, self.positive_keys.size]),
            self.positive_keys,
            self.positive_counts,
            np.array([0, self.negative_keys.size]),
            self.negative_keys,
            self.negative_counts,
            np.array([self.sum]),
            np.array([self.min]),
            np.array([self.max]),
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
        """The compact serialized form (layout: ``encode_arrays``)."""
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
        from ddsketch import DDSketch
        from ddsketch.ddsketch import BaseDDSketch
        from ddsketch.mapping import LogarithmicMapping as PackageMapping
        from ddsketch.store import DenseStore

        if self.mapping.offset == 0.0:
            sketch = DDSketch(self.mapping.relative_accuracy)
        else:
            mapping = PackageMapping(self.mapping.relative_accuracy, offset=self.mapping.offset)
            sketch = BaseDDSketch(mapping, DenseStore(), DenseStore(), 0.0)
        for store, keys, counts in (
            (sketch._store, self.positive_keys, self.positive_counts),
            (sketch._negative_store, self.negative_keys, self.negative_counts),
        ):
            for key, weight in zip(keys.tolist(), counts.tolist()):
                store.add(key, weight)
        sketch._zero_count = self.zero_count
        sketch._count = self.count
        sketch._sum = 0.0 if math.isnan(self.sum) else self.sum
        sketch._min = math.inf if math.isnan(self.min) else self.min
        sketch._max = -math.inf if math.isnan(self.max) else self.max
        return sketch

    @classmethod
    def from_ddsketch(cls, sketch: Any) -> Sketch:
        """A ``ddsketch`` sketch (any ``BaseDDSketch`` with a ``LogarithmicMapping`` and dense
        stores) as a ``Sketch``; sum/min/max left at the package's empty defaults by its
        protobuf decoding are taken as unknown (NaN)."""
        from ddsketch.ddsketch import BaseDDSketch
        from ddsketch.mapping import LogarithmicMapping as PackageMapping
        from ddsketch.store import DenseStore

        if not isinstance(sketch, BaseDDSketch):
            raise SketchError(f"expected a ddsketch BaseDDSketch, got {type(sketch).__name__}")
        if type(sketch._mapping) is not PackageMapping:
            raise SketchError(
                f"only LogarithmicMapping sketches convert, got {type(sketch._mapping).__name__}"
            )
        mapping = LogarithmicMapping(sketch._mapping.relative_accuracy, sketch._mapping._offset)
        buckets = []
        for store in (sketch._store, sketch._negative_store):
            if not isinstance(store, DenseStore):
                raise SketchError(f"only dense stores convert, got {type(store).__name__}")
            counts = np.asarray(store.bins, dtype=np.float64)
            keys = np.arange(counts.size, dtype=np.int64) + store.offset
            buckets += [keys[counts != 0], counts[counts != 0]]
        stats = (sketch._sum, sketch._min, sketch._max)
        if sketch._count > 0 and sketch._min == math.inf and sketch._max == -math.inf:
            stats = (math.nan, math.nan, math.nan)
        return cls(mapping, float(sketch._zero_count), *buckets, float(sketch._count), *stats)

    def to_proto(self) -> Any:
        """The ``ddsketch`` protobuf message (``ddsketch.pb`` ``DDSketch``), with contiguous
        bins as the package writes them; sum/min/max are not part of it."""
        from ddsketch.pb.proto import pb

        stores = []
        for keys, counts in (
            (self.positive_keys, self.positive_counts),
            (self.negative_keys, self.negative_counts),
        ):
            if keys.size and (
                keys[0] < -(2**31) or keys[-1] >= 2**31 or keys[-1] - keys[0] >= 2**24
            ):
                raise SketchError(
                    "keys do not fit the protobuf's contiguous sint32 bins "
                    f"({keys[0]}..{keys[-1]}); use to_bytes for this sketch"
                )
            dense = np.zeros(int(keys[-1] - keys[0] + 1) if keys.size else 0)
            dense[keys - (keys[0] if keys.size else 0)] = counts
            stores.append(
                pb.Store(
                    contiguousBinCounts=dense.tolist(),
                    contiguousBinIndexOffset=int(keys[0]) if keys.size else 0,
                )
            )
        mapping = pb.IndexMapping(
            gamma=self.mapping.gamma,
            indexOffset=self.mapping.offset,
            interpolation=pb.IndexMapping.NONE,
        )
        return pb.DDSketch(
            mapping=mapping,
            positiveValues=stores[0],
            negativeValues=stores[1],
            zeroCount=self.zero_count,
        )

    @classmethod
    def from_proto(cls, proto: Any) -> Sketch:
        """A ``ddsketch.pb`` ``DDSketch`` message (contiguous and sparse bins both read)."""
        from ddsketch.pb.proto import pb

        if proto.mapping.interpolation != pb.IndexMapping.NONE:
            raise SketchError(
                "only the logarithmic mapping (interpolation NONE) converts, got "
                f"interpolation {proto.mapping.interpolation}"
            )
        mapping = LogarithmicMapping.from_gamma(proto.mapping.gamma, proto.mapping.indexOffset)
        buckets = []
        for store in (proto.positiveValues, proto.negativeValues):
            dense = np.asarray(store.contiguousBinCounts, dtype=np.float64)
            keys = np.concatenate(
                [
                    np.arange(dense.size, dtype=np.int64) + store.contiguousBinIndexOffset,
                    np.fromiter(store.binCounts.keys(), dtype=np.int64),
                ]
            )
            counts = np.concatenate([dense, np.fromiter(store.binCounts.values(), np.float64)])
            buckets += _merge_buckets(keys, counts, keys[:0], counts[:0])
        return cls(mapping, float(proto.zeroCount), *buckets)


def check_quantiles(qs: Sequence[float] | np.ndarray | float) -> np.ndarray:
    """``qs`` as a 1-D float64 array in [0, 1], or a ``SketchError`` naming the bad one."""
    arr = np.atleast_1d(np.asarray(qs, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise SketchError(f"qs must be a non-empty list of quantiles in [0, 1], got {qs!r}")
    bad = np.flatnonzero(~((arr >= 0.0) & (arr <= 1.0)))
    if bad.size:
        raise SketchError(
            f"quantile {float(arr[bad[0]])!r} is outside [0, 1] (use 0.99 for the 99th percentile)"
        )
    return arr


def search_quantiles(
    mapping: LogarithmicMapping, arrays: SketchArrays, qs: np.ndarray
) -> np.ndarray:
    """The (groups, len(qs)) quantile values of many sketches, NaN for empty ones.

    The DDSketch rank ``q * (count - 1)`` falls in the negative buckets (scanned from the
    smallest ``|v|`` key, as the package's ``key_at_rank(lower=False)`` does), the zero
    bucket, or the positive buckets (``key_at_rank`` with ``running > rank``). All groups and
    quantiles are searched at once with ``np.searchsorted`` over global running sums; a
    group's running sum is the global one minus the group's base. With integer counts those
    differences are exact, and the float thresholds are rounded to the integers that decide
    the same comparisons, so results match the package bit for bit.
    """
    g = arrays.groups
    out = np.full((g, qs.size), np.nan)
    if g == 0:
        return out
    c_neg = np.concatenate([[0.0], np.cumsum(arrays.neg_counts)])
    c_pos = np.concatenate([[0.0], np.cumsum(arrays.pos_counts)])
    base_neg, base_pos = c_neg[arrays.neg_offsets[:-1]], c_pos[arrays.pos_offsets[:-1]]
    n_neg = (c_neg[arrays.neg_offsets[1:]] - base_neg)[:, None]
    zero = arrays.zero_count[:, None]
    count = arrays.count[:, None]
    integral = all(np.array_equal(c, np.floor(c)) for c in (arrays.neg_counts, arrays.pos_counts))
    # A total count below 1 (fractional weights) would give a negative rank: clamp it to 0.
    rank = np.maximum(qs[None, :] * (count - 1), 0.0)
    is_neg = (rank < n_neg) & (count > 0)
    is_zero = ~is_neg & (rank < zero + n_neg) & (count > 0)
    is_pos = ~is_neg & ~is_zero & (count > 0)

    t = (n_neg - rank - 1) + 1
    if integral:
        idx = np.searchsorted(c_neg[1:], base_neg[:, None] + np.ceil(t), side="left")
    else:
        idx = np.searchsorted(c_neg[1:], base_neg[:, None] + t, side="left")
    neg_val = -_values_at(mapping, arrays.neg_keys, arrays.neg_offsets, idx, is_neg)

    r = (rank - zero) - n_neg
    if integral:
        idx = np.searchsorted(c_pos[1:], base_pos[:, None] + np.floor(r) + 1, side="left")
    else:
        idx = np.searchsorted(c_pos[1:], base_pos[:, None] + r, side="right")
    pos_val = _values_at(mapping, arrays.pos_keys, arrays.pos_offsets, idx, is_pos)

    out[is_neg] = neg_val[is_neg]
    out[is_zero] = 0.0
    out[is_pos] = pos_val[is_pos]
    return out


def _values_at(
    mapping: LogarithmicMapping,
    keys: np.ndarray,
    offsets: np.ndarray,
    idx: np.ndarray,
    wanted: np.ndarray,
) -> np.ndarray:
    """The representative values of ``keys[idx]``, clipped to each group's last bucket
    (the package's ``max_key`` fallback); only the ``wanted`` cells are computed."""
    out = np.zeros(idx.shape)
    if not wanted.any():
        return out
    last = np.broadcast_to((offsets[1:] - 1)[:, None], idx.shape)
    picked = np.minimum(idx, last)[wanted]
    out[wanted] = mapping.values(keys[picked])
    return out


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


def _merge_buckets(
    k1: np.ndarray, c1: np.ndarray, k2: np.ndarray, c2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Union of two bucket lists, counts of equal keys added; keys ascending."""
    keys, inverse = np.unique(np.concatenate([k1, k2]), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate([c1, c2]), minlength=keys.size)
    return keys.astype(np.int64), counts


# -- bytes ------------------------------------------------------------------------------------
#
# One serialized sketch, little-endian (version 1):
#
#   offset  size  field
#   0       4     magic b"DDSK"
#   4       1     version = 1
#   5       1     flags: bit 0 set = bucket counts are integers stored as uvarints
#                 (else float64); other bits 0
#   6       2     reserved = 0
#   8       8     relative_accuracy  float64 (the mapping is rebuilt from it and the offset)
#   16      8     offset             float64
#   24      8     count              float64
#   32      8     zero_count         float64
#   40      8     sum                float64 (NaN = unknown)
#   48      8     min                float64
#   56      8     max                float64
#   64      4     n_positive         uint32
#   68      4     n_negative         uint32
#   72            positive keys: zigzag varint of the first key, then uvarints of the
#                 differences to the previous key (>= 1: keys strictly increasing)
#                 positive counts: n_positive uvarints or float64s (flag bit 0)
#                 negative keys and counts, likewise
#
# Varints are LEB128 (7 bits a byte, low first, high bit = more), at most 9 bytes.
# A sketch of 300 buckets with integer counts takes ~72 + 300 * 2-3 bytes.

MAGIC = b"DDSK"
VERSION = 1
HEADER_BYTES = 72
FLAG_INTEGER_COUNTS = 1
_MAX_EXACT_INT = float(2**53)
_DECODE_ERRORS = {
    1: "is shorter than the 72-byte header",
    2: "does not start with the magic b'DDSK'",
    3: "has an unsupported version (this reader knows version 1)",
    4: "has unknown flag or reserved bits set",
    5: "has another mapping (relative_accuracy, offset) than the first sketch",
    6: "is truncated, or holds a varint longer than 9 bytes",
    7: "has bytes after its last bucket",
    8: "has keys that are not strictly increasing",
}


def encode_arrays(
    mapping: LogarithmicMapping, arrays: SketchArrays
) -> tuple[np.ndarray, np.ndarray]:
    """Serialize every sketch of ``arrays``: (int64 offsets of length groups + 1, uint8 data),
    i.e. the two buffers of an Arrow (large) binary array."""
    return _encode_kernel(
        mapping.relative_accuracy,
        mapping.offset,
        *(
            np.ascontiguousarray(a, dtype=np.float64)
            for a in (arrays.count, arrays.zero_count, arrays.sum, arrays.min, arrays.max)
        ),
        np.ascontiguousarray(arrays.pos_offsets, dtype=np.int64),
        np.ascontiguousarray(arrays.pos_keys, dtype=np.int64),
        np.ascontiguousarray(arrays.pos_counts, dtype=np.float64),
        np.ascontiguousarray(arrays.neg_offsets, dtype=np.int64),
        np.ascontiguousarray(arrays.neg_keys, dtype=np.int64),
        np.ascontiguousarray(arrays.neg_counts, dtype=np.float64),
    )


def decode_arrays(offsets: np.ndarray, data: np.ndarray) -> tuple[LogarithmicMapping, SketchArrays]:
    """Parse the sketches serialized in ``data[offsets[i]:offsets[i + 1]]`` (one mapping).

    Raises
    ------
    SketchError
        Naming the sketch and byte offset of the first invalid one.
    """
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    data = np.ascontiguousarray(data, dtype=np.uint8)
    if offsets.size < 2:
        raise SketchError("no serialized sketch to decode")
    err, where, pos, header, sizes = _decode_headers(offsets, data)
    if err == 0:
        body = _decode_body(offsets, data, sizes)
        err, where, pos = body[0], body[1], body[2]
    if err:
        raise SketchError(f"serialized sketch {where} {_DECODE_ERRORS[err]} (byte {pos})")
    try:
        mapping = LogarithmicMapping(float(header[0, 0]), float(header[0, 1]))
    except ConfigError as exc:
        raise SketchError(f"serialized sketch 0 has an invalid mapping: {exc}") from None
    arrays = SketchArrays(
        header[:, 2].copy(),
        header[:, 3].copy(),
        *body[3:9],
        header[:, 4].copy(),
        header[:, 5].copy(),
        header[:, 6].copy(),
    )
    validate_arrays(arrays)
    return mapping, arrays


def validate_arrays(arrays: SketchArrays) -> None:
    """Counts finite and >= 0, and each total equal to its buckets; ``SketchError`` if not."""
    for name in ("count", "zero_count", "pos_counts", "neg_counts"):
        values = getattr(arrays, name)
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
        if bad.size:
            raise SketchError(
                f"{name}[{bad[0]}] = {float(values[bad[0]])!r}: counts must be finite and >= 0"
            )
    total = arrays.zero_count.copy()
    for offs, counts in (
        (arrays.pos_offsets, arrays.pos_counts),
        (arrays.neg_offsets, arrays.neg_counts),
    ):
        total += np.add.reduceat(np.append(counts, 0.0), offs[:-1]) * (np.diff(offs) > 0)
    bad = np.flatnonzero(~np.isclose(arrays.count, total, rtol=1e-9, atol=1e-9))
    if bad.size:
        raise SketchError(
            f"sketch {bad[0]}: count {float(arrays.count[bad[0]])!r} does not match its "
            f"buckets ({float(total[bad[0]])!r})"
        )


@nb.njit(cache=True)
def _uvarint_size(x: int) -> int:
    n = 1
    while x >= 0x80:
        x >>= 7
        n += 1
    return n


@nb.njit(cache=True)
def _put_uvarint(buf: np.ndarray, pos: int, x: int) -> int:
    while x >= 0x80:
        buf[pos] = (x & 0x7F) | 0x80
        x >>= 7
        pos += 1
    buf[pos] = x
    return pos + 1


@nb.njit(cache=True)
def _zigzag(x: int) -> int:
    return (x << 1) ^ (x >> 63)


@nb.njit(cache=True)
def _integral(counts: np.ndarray, lo: int, hi: int) -> bool:
    for i in range(lo, hi):
        c = counts[i]
        if c != math.floor(c) or c > _MAX_EXACT_INT:
            return False
    return True


@nb.njit(cache=True)
def _side_size(keys: np.ndarray, counts: np.ndarray, lo: int, hi: int, integral: bool) -> int:
    size = 0
    for i in range(lo, hi):
        size += _uvarint_size(_zigzag(keys[i]) if i == lo else keys[i] - keys[i - 1])
        size += _uvarint_size(np.int64(counts[i])) if integral else 8
    return size


@nb.njit(cache=True)
def _put_side(buf, pos, keys, counts, lo, hi, integral, scratch, scratch_bytes) -> int:
    for i in range(lo, hi):
        pos = _put_uvarint(buf, pos, _zigzag(keys[i]) if i == lo else keys[i] - keys[i - 1])
    for i in range(lo, hi):
        if integral:
            pos = _put_uvarint(buf, pos, np.int64(counts[i]))
        else:
            scratch[0] = counts[i]
            buf[pos : pos + 8] = scratch_bytes
            pos += 8
    return pos


@nb.njit(cache=True)
def _encode_kernel(ra, offset, count, zero, sums, mins, maxs, po, pk, pc, no, nk, nc):
    groups = count.size
    flags = np.zeros(groups, np.uint8)
    sizes = np.zeros(groups + 1, np.int64)
    for g in range(groups):
        integral = _integral(pc, po[g], po[g + 1]) and _integral(nc, no[g], no[g + 1])
        flags[g] = 1 if integral else 0
        sizes[g + 1] = (
            sizes[g]
            + 72
            + _side_size(pk, pc, po[g], po[g + 1], integral)
            + _side_size(nk, nc, no[g], no[g + 1], integral)
        )
    data = np.zeros(sizes[groups], np.uint8)
    scratch = np.empty(1, np.float64)
    scratch_bytes = scratch.view(np.uint8)
    for g in range(groups):
        pos = sizes[g]
        data[pos : pos + 4] = np.array([68, 68, 83, 75], np.uint8)  # b"DDSK"
        data[pos + 4] = 1
        data[pos + 5] = flags[g]
        header = (ra, offset, count[g], zero[g], sums[g], mins[g], maxs[g])
        for j in range(7):
            scratch[0] = header[j]
            data[pos + 8 + 8 * j : pos + 16 + 8 * j] = scratch_bytes
        for j, n in ((64, po[g + 1] - po[g]), (68, no[g + 1] - no[g])):
            for b in range(4):
                data[pos + j + b] = (n >> (8 * b)) & 0xFF
        pos = _put_side(
            data, pos + 72, pk, pc, po[g], po[g + 1], flags[g] == 1, scratch, scratch_bytes
        )
        _put_side(data, pos, nk, nc, no[g], no[g + 1], flags[g] == 1, scratch, scratch_bytes)
    return sizes, data


@nb.njit(cache=True)
def _get_f64(data: np.ndarray, pos: int, scratch: np.ndarray, scratch_bytes: np.ndarray):
    scratch_bytes[:] = data[pos : pos + 8]
    return scratch[0]


@nb.njit(cache=True)
def _get_u32(data: np.ndarray, pos: int) -> int:
    return (
        np.int64(data[pos])
        | (np.int64(data[pos + 1]) << 8)
        | (np.int64(data[pos + 2]) << 16)
        | (np.int64(data[pos + 3]) << 24)
    )


@nb.njit(cache=True)
def _decode_headers(offsets, data):
    groups = offsets.size - 1
    header = np.empty((groups, 7), np.float64)
    sizes = np.zeros((groups, 2), np.int64)
    scratch = np.empty(1, np.float64)
    scratch_bytes = scratch.view(np.uint8)
    for g in range(groups):
        pos = offsets[g]
        if offsets[g + 1] - pos < 72 or offsets[g + 1] > data.size:
            return 1, g, pos, header, sizes
        if data[pos] != 68 or data[pos + 1] != 68 or data[pos + 2] != 83 or data[pos + 3] != 75:
            return 2, g, pos, header, sizes
        if data[pos + 4] != 1:
            return 3, g, pos + 4, header, sizes
        if data[pos + 5] > 1 or data[pos + 6] != 0 or data[pos + 7] != 0:
            return 4, g, pos + 5, header, sizes
        for j in range(7):
            header[g, j] = _get_f64(data, pos + 8 + 8 * j, scratch, scratch_bytes)
        if g > 0 and (header[g, 0] != header[0, 0] or header[g, 1] != header[0, 1]):
            return 5, g, pos + 8, header, sizes
        sizes[g, 0] = _get_u32(data, pos + 64)
        sizes[g, 1] = _get_u32(data, pos + 68)
    return 0, 0, 0, header, sizes


@nb.njit(cache=True)
def _get_uvarint(data: np.ndarray, pos: int, end: int):
    """(value, next position), or (-1, position) if truncated or longer than 9 bytes."""
    x = 0
    for i in range(9):
        if pos >= end:
            return -1, pos
        b = np.int64(data[pos])
        pos += 1
        x |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            return x, pos
    return -1, pos


@nb.njit(cache=True)
def _get_side(data, pos, end, keys, counts, lo, n, integral, scratch, scratch_bytes):
    """Decode one side into keys/counts[lo:lo + n]; (error code, next position)."""
    key = 0
    for i in range(n):
        x, pos = _get_uvarint(data, pos, end)
        if x < 0:
            return 6, pos
        if i == 0:
            key = (x >> 1) ^ -(x & 1)
        elif x == 0:
            return 8, pos
        else:
            key += x
        keys[lo + i] = key
    for i in range(n):
        if integral:
            x, pos = _get_uvarint(data, pos, end)
            if x < 0:
                return 6, pos
            counts[lo + i] = x
        else:
            if pos + 8 > end:
                return 6, pos
            counts[lo + i] = _get_f64(data, pos, scratch, scratch_bytes)
            pos += 8
    return 0, pos


@nb.njit(cache=True)
def _decode_body(offsets, data, sizes):
    groups = offsets.size - 1
    po = np.zeros(groups + 1, np.int64)
    no = np.zeros(groups + 1, np.int64)
    for g in range(groups):
        po[g + 1] = po[g] + sizes[g, 0]
        no[g + 1] = no[g] + sizes[g, 1]
    pk = np.empty(po[groups], np.int64)
    pc = np.empty(po[groups], np.float64)
    nk = np.empty(no[groups], np.int64)
    nc = np.empty(no[groups], np.float64)
    scratch = np.empty(1, np.float64)
    scratch_bytes = scratch.view(np.uint8)
    for g in range(groups):
        end = offsets[g + 1]
        integral = data[offsets[g] + 5] == 1
        err, pos = _get_side(
            data, offsets[g] + 72, end, pk, pc, po[g], sizes[g, 0], integral, scratch, scratch_bytes
        )
        if err == 0:
            err, pos = _get_side(
                data, pos, end, nk, nc, no[g], sizes[g, 1], integral, scratch, scratch_bytes
            )
        if err == 0 and pos != end:
            err = 7
        if err:
            return err, g, pos, po, pk, pc, no, nk, nc
    return 0, 0, 0, po, pk, pc, no, nk, nc
