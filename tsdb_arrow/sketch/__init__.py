"""Quantile sketches: DDSketch (compatible with the ``ddsketch`` package), fixed-bucket
histograms with Prometheus semantics, and quantiles of Polars frames."""

from tsdb_arrow.sketch.ddsketch.arrays import SketchArrays
from tsdb_arrow.sketch.ddsketch.mapping import LogarithmicMapping
from tsdb_arrow.sketch.ddsketch.sketch import Sketch
from tsdb_arrow.sketch.exponential.histogram import ExponentialHistogram
from tsdb_arrow.sketch.fixed.histogram import FixedBucketHistogram
from tsdb_arrow.sketch.frames.aggregate import (
    from_sketch_column,
    merge_sketches,
    quantiles,
    quantiles_from_sketches,
    sketches,
    to_sketch_column,
)
from tsdb_arrow.sketch.frames.stored import histogram_buckets, histogram_column, histogram_quantiles
from tsdb_arrow.sketch.otlp import explicit_to_fixed, exponential_from_otel, exponential_to_proto

__all__ = [
    # Polars aggregations
    "quantiles",
    "sketches",
    "merge_sketches",
    "quantiles_from_sketches",
    "to_sketch_column",
    "from_sketch_column",
    # stored histogram samples (db.select_histograms)
    "histogram_quantiles",
    "histogram_buckets",
    "histogram_column",
    # OpenTelemetry
    "exponential_from_otel",
    "exponential_to_proto",
    "explicit_to_fixed",
    # sketch types
    "Sketch",
    "SketchArrays",
    "FixedBucketHistogram",
    "ExponentialHistogram",
    "LogarithmicMapping",
]
