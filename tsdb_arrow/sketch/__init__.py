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
from tsdb_arrow.sketch.exponential import ExponentialHistogram
from tsdb_arrow.sketch.histogram import FixedBucketHistogram
from tsdb_arrow.sketch.mapping import LogarithmicMapping
from tsdb_arrow.sketch.otlp import explicit_to_fixed, exponential_from_otel, exponential_to_proto
from tsdb_arrow.sketch.stored import histogram_buckets, histogram_column, histogram_quantiles

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
