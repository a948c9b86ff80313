"""Quantile sketches: DDSketch (compatible with the ``ddsketch`` package), fixed-bucket
histograms with Prometheus semantics, and quantiles of Polars frames."""

from tsdb_arrow.sketch.aggregate import (
    from_sketch_column,
    merge_sketches,
    quantiles,
    quantiles_from_sketches,
    sketches,
    to_sketch_column,
)
from tsdb_arrow.sketch.ddsketch import Sketch, SketchArrays
from tsdb_arrow.sketch.histogram import FixedBucketHistogram
from tsdb_arrow.sketch.mapping import LogarithmicMapping

__all__ = [
    # Polars aggregations
    "quantiles",
    "sketches",
    "merge_sketches",
    "quantiles_from_sketches",
    "to_sketch_column",
    "from_sketch_column",
    # sketch types
    "Sketch",
    "SketchArrays",
    "FixedBucketHistogram",
    "LogarithmicMapping",
]
