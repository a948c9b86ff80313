"""Conversions between ``Sketch`` and the ``ddsketch`` package: its sketch objects and its
protobuf message (``ddsketch.pb``).

``Sketch.to_ddsketch`` / ``from_ddsketch`` / ``to_proto`` / ``from_proto`` call these; the package
is imported only when one is used.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from tsdb_arrow.errors import SketchError
from tsdb_arrow.sketch.mapping import LogarithmicMapping
from tsdb_arrow.sketch.sketch_arrays import merge_buckets

if TYPE_CHECKING:
    from tsdb_arrow.sketch.ddsketch import Sketch

S = TypeVar("S", bound="Sketch")


def to_ddsketch(sketch: Sketch) -> Any:
    """``sketch`` as a ``ddsketch.DDSketch`` (``BaseDDSketch`` when the offset is not 0).

    Unknown (NaN) sum/min/max become the package's defaults (0, +inf, -inf), as its own
    protobuf decoding leaves them.
    """
    from ddsketch import DDSketch
    from ddsketch.ddsketch import BaseDDSketch
    from ddsketch.mapping import LogarithmicMapping as PackageMapping
    from ddsketch.store import DenseStore

    if sketch.mapping.offset == 0.0:
        out = DDSketch(sketch.mapping.relative_accuracy)
    else:
        mapping = PackageMapping(sketch.mapping.relative_accuracy, offset=sketch.mapping.offset)
        out = BaseDDSketch(mapping, DenseStore(), DenseStore(), 0.0)
    for store, keys, counts in (
        (out._store, sketch.positive_keys, sketch.positive_counts),
        (out._negative_store, sketch.negative_keys, sketch.negative_counts),
    ):
        for key, weight in zip(keys.tolist(), counts.tolist()):
            store.add(key, weight)
    out._zero_count = sketch.zero_count
    out._count = sketch.count
    out._sum = 0.0 if math.isnan(sketch.sum) else sketch.sum
    out._min = math.inf if math.isnan(sketch.min) else sketch.min
    out._max = -math.inf if math.isnan(sketch.max) else sketch.max
    return out


def from_ddsketch(cls: type[S], sketch: Any) -> S:
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


def to_proto(sketch: Sketch) -> Any:
    """The ``ddsketch`` protobuf message (``ddsketch.pb`` ``DDSketch``), with contiguous
    bins as the package writes them; sum/min/max are not part of it."""
    from ddsketch.pb.proto import pb

    stores = []
    for keys, counts in (
        (sketch.positive_keys, sketch.positive_counts),
        (sketch.negative_keys, sketch.negative_counts),
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
    mapping = pb.IndexMapping(
        gamma=sketch.mapping.gamma,
        indexOffset=sketch.mapping.offset,
        interpolation=pb.IndexMapping.NONE,
    )
    return pb.DDSketch(
        mapping=mapping,
        positiveValues=stores[0],
        negativeValues=stores[1],
        zeroCount=sketch.zero_count,
    )


def from_proto(cls: type[S], proto: Any) -> S:
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
        buckets += merge_buckets(keys, counts, keys[:0], counts[:0])
    return cls(mapping, float(proto.zeroCount), *buckets)
