"""Conversions between one DDSketch held as (mapping, one-group ``SketchArrays``) and the
``ddsketch`` package: its sketch objects and its protobuf message (``ddsketch.pb``).

``Sketch.to_ddsketch`` / ``from_ddsketch`` / ``to_proto`` / ``from_proto`` call these with
``Sketch.to_arrays`` and build their result with ``Sketch.from_arrays``, so this module needs no
``Sketch``; the package is imported only when a conversion is used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tsdb_arrow.errors import SketchError
from tsdb_arrow.sketch.ddsketch.arrays import SketchArrays, merge_buckets, one_sketch
from tsdb_arrow.sketch.ddsketch.mapping import LogarithmicMapping


def to_ddsketch(mapping: LogarithmicMapping, arrays: SketchArrays) -> Any:
    """The one sketch of ``arrays`` as a ``ddsketch.DDSketch`` (``BaseDDSketch`` when the
    offset is not 0).

    Unknown (NaN) sum/min/max become the package's defaults (0, +inf, -inf), as its own
    protobuf decoding leaves them.
    """
    from ddsketch import DDSketch
    from ddsketch.ddsketch import BaseDDSketch
    from ddsketch.mapping import LogarithmicMapping as PackageMapping
    from ddsketch.store import DenseStore

    _check_one(arrays)
    if mapping.offset == 0.0:
        out = DDSketch(mapping.relative_accuracy)
    else:
        package_mapping = PackageMapping(mapping.relative_accuracy, offset=mapping.offset)
        out = BaseDDSketch(package_mapping, DenseStore(), DenseStore(), 0.0)
    for store, keys, counts in (
        (out._store, arrays.pos_keys, arrays.pos_counts),
        (out._negative_store, arrays.neg_keys, arrays.neg_counts),
    ):
        for key, weight in zip(keys.tolist(), counts.tolist()):
            store.add(key, weight)
    total_sum, lo, hi = float(arrays.sum[0]), float(arrays.min[0]), float(arrays.max[0])
    out._zero_count = float(arrays.zero_count[0])
    out._count = float(arrays.count[0])
    out._sum = 0.0 if math.isnan(total_sum) else total_sum
    out._min = math.inf if math.isnan(lo) else lo
    out._max = -math.inf if math.isnan(hi) else hi
    return out


def from_ddsketch(sketch: Any) -> tuple[LogarithmicMapping, SketchArrays]:
    """A ``ddsketch`` sketch (any ``BaseDDSketch`` with a ``LogarithmicMapping`` and dense
    stores) as a mapping and one-group arrays; sum/min/max left at the package's empty
    defaults by its protobuf decoding are taken as unknown (NaN)."""
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
    arrays = one_sketch(
        float(sketch._count), float(sketch._zero_count), *buckets, *(float(s) for s in stats)
    )
    return mapping, arrays


def to_proto(mapping: LogarithmicMapping, arrays: SketchArrays) -> Any:
    """The one sketch of ``arrays`` as the ``ddsketch`` protobuf message (``ddsketch.pb``
    ``DDSketch``), with contiguous bins as the package writes them; sum/min/max are not part
    of it."""
    from ddsketch.pb.proto import pb

    _check_one(arrays)
    stores = []
    for keys, counts in (
        (arrays.pos_keys, arrays.pos_counts),
        (arrays.neg_keys, arrays.neg_counts),
    ):
        if keys.size and (keys[0] < -(2**31) or keys[-1] >= 2**31 or keys[-1] - keys[0] >= 2**24):
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
    index_mapping = pb.IndexMapping(
        gamma=mapping.gamma,
        indexOffset=mapping.offset,
        interpolation=pb.IndexMapping.NONE,
    )
    return pb.DDSketch(
        mapping=index_mapping,
        positiveValues=stores[0],
        negativeValues=stores[1],
        zeroCount=float(arrays.zero_count[0]),
    )


def from_proto(proto: Any) -> tuple[LogarithmicMapping, SketchArrays]:
    """A ``ddsketch.pb`` ``DDSketch`` message (contiguous and sparse bins both read) as a
    mapping and one-group arrays; its sum/min/max are unknown (NaN)."""
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
        buckets += merge_buckets(keys, counts, keys[:0], counts[:0])
    zero = float(proto.zeroCount)
    count = zero + float(buckets[1].sum()) + float(buckets[3].sum())
    return mapping, one_sketch(count, zero, *buckets, math.nan, math.nan, math.nan)


def _check_one(arrays: SketchArrays) -> None:
    if arrays.groups != 1:
        raise SketchError(f"expected the arrays of one sketch, got {arrays.groups}")
