"""Quantiles of stored histogram samples: exponential histograms merged, never re-sampled.

``db.select_histograms`` returns one OpenTelemetry exponential histogram per row. Here the rows
become DDSketch bucket rows (bucket ``i`` of scale ``s`` is key ``i + 1`` of the logarithmic
mapping with gamma ``2 ** 2 ** -s``, see ``docs/sketches.md``), all brought to the coarsest scale
present by OpenTelemetry's downscaling (``i >> (s - target)``), and merged per group with
``merge_sketches``; quantiles come from the merged buckets. Vectorised in Polars throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar

import polars as pl
import pyarrow as pa

from tsdb_arrow.errors import ConfigError, SketchError
from tsdb_arrow.model import HISTOGRAM, HISTOGRAM_TYPE
from tsdb_arrow.sketch.exponential.ddsketch import MIN_SKETCH_SCALE, sketch_mapping
from tsdb_arrow.sketch.exponential.histogram import ExponentialHistogram
from tsdb_arrow.sketch.frames.aggregate import (
    DEFAULT_QUANTILES,
    merge_sketches,
    quantiles_from_sketches,
)

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def histogram_buckets(
    frame: Frame,
    *,
    by: Sequence[str] | str | None = None,
    every: str | timedelta | None = None,
    column: str = HISTOGRAM,
) -> tuple[Frame, float]:
    """Bucket rows (as ``ta.sketch.sketches`` gives them) of every group's merged histograms.

    Parameters
    ----------
    frame
        A DataFrame or LazyFrame with a histogram struct column, as ``db.select_histograms``
        returns it.
    by
        Group columns (labels); none: all rows in one group.
    every
        Window length, as in ``quantiles``; windows start at ``timestamp.dt.truncate(every)``.
    column
        The histogram struct column.

    Returns
    -------
    The bucket rows (a frame of the same kind) and the relative accuracy of their mapping (that
    of the coarsest scale in ``frame``), to pass on to ``quantiles_from_sketches``.

    Raises
    ------
    ConfigError
        When a column is missing; ``SketchError`` for scales below -5 (no DDSketch counterpart).
    """
    lazy = frame.lazy()
    names = lazy.collect_schema().names()
    if column not in names:
        raise ConfigError(f"no {column!r} column: pass a frame from db.select_histograms")
    groups = [by] if isinstance(by, str) else list(by or [])
    missing = [c for c in groups if c not in names]
    if missing:
        raise ConfigError(f"group columns {missing} are not in the frame; it has {names}")
    keys = list(groups)
    h = pl.col(column)
    base = lazy.select(
        *groups,
        *([pl.col("timestamp").dt.truncate(every)] if every is not None else []),
        h.struct.field("scale").cast(pl.Int64).alias("_scale"),
        h.struct.field("zero_count").cast(pl.Float64).alias("_zero"),
        h.struct.field("positive_offset").cast(pl.Int64).alias("_pos_off"),
        h.struct.field("positive_counts").alias("_pos"),
        h.struct.field("negative_offset").cast(pl.Int64).alias("_neg_off"),
        h.struct.field("negative_counts").alias("_neg"),
        h.struct.field("sum").alias("_sum"),
        h.struct.field("min").alias("_min"),
        h.struct.field("max").alias("_max"),
    )
    if every is not None:
        keys.append("timestamp")
    target = base.select(pl.col("_scale").min()).collect().item()
    if target is None:
        target = 0
    if target < MIN_SKETCH_SCALE:
        raise SketchError(
            f"histograms of scale {target} have no DDSketch counterpart; the coarsest scale "
            f"quantiles can use is {MIN_SKETCH_SCALE}"
        )
    mapping = sketch_mapping(int(target))
    # 2 ** (scale - target): floor division by it is OpenTelemetry's ``index >> shift``.
    step = pl.lit(2, pl.Int64).pow(pl.col("_scale") - target)

    def side(counts: str, offset: str, sign: int) -> pl.LazyFrame:
        return (
            base.select(*keys, counts, offset, "_scale")
            .with_columns(pl.int_ranges(0, pl.col(counts).list.len()).alias("_i"))
            .explode(counts, "_i")
            .filter(pl.col(counts) > 0)
            .select(
                *keys,
                pl.lit(sign, pl.Int8).alias("sign"),
                # OpenTelemetry downscaling: index >> (scale - target), then key = index + 1.
                ((pl.col(offset) + pl.col("_i")) // step + 1).alias("key"),
                pl.col(counts).cast(pl.Float64).alias("count"),
                pl.lit(0.0).alias("sum"),
                pl.lit(float("inf")).alias("min"),
                pl.lit(float("-inf")).alias("max"),
            )
        )

    zero = base.select(
        *keys,
        pl.lit(0, pl.Int8).alias("sign"),
        pl.lit(0, pl.Int64).alias("key"),
        pl.col("_zero").alias("count"),
        # Each histogram's sum/min/max ride on its zero-bucket row; absent (NaN) ones are the
        # identities, so merging is a plain sum/min/max.
        pl.col("_sum").fill_nan(0.0).alias("sum"),
        pl.col("_min").fill_nan(float("inf")).alias("min"),
        pl.col("_max").fill_nan(float("-inf")).alias("max"),
    )
    rows = pl.concat(
        [zero, side("_pos", "_pos_off", 1), side("_neg", "_neg_off", -1)], how="vertical_relaxed"
    )
    merged = merge_sketches(rows, by=keys or None)
    out = merged if isinstance(frame, pl.LazyFrame) else merged.collect()
    return out, mapping.relative_accuracy  # type: ignore[return-value]


def histogram_quantiles(
    frame: Frame,
    qs: Sequence[float] = DEFAULT_QUANTILES,
    *,
    by: Sequence[str] | str | None = None,
    every: str | timedelta | None = None,
    column: str = HISTOGRAM,
) -> Frame:
    """Quantiles over time and across series of stored histogram samples, by merging buckets.

    Parameters
    ----------
    frame
        The frame ``db.select_histograms`` returns (a DataFrame or LazyFrame).
    qs
        Quantiles in [0, 1]; column ``f"q{q:g}"`` each.
    by, every, column
        As in ``histogram_buckets``.

    Returns
    -------
    A frame of the same kind: the ``by`` columns, ``timestamp`` window starts when ``every``
    is given, and one Float64 column per quantile. The histograms are merged exactly (brought
    to the coarsest scale present), so the accuracy is that of the coarsest scale.

    Examples
    --------
    >>> import polars as pl
    >>> import tsdb_arrow as ta
    >>> h = ta.sketch.ExponentialHistogram.from_values([1.0, 2.0, 3.0], scale=3)
    >>> frame = pl.DataFrame(
    ...     {"service": ["api", "api"], "histogram": pl.Series(ta.sketch.histogram_column([h, h]))}
    ... )
    >>> ta.sketch.histogram_quantiles(frame, [0.5], by="service").rows()
    [('api', 1.91...)]

    On stored samples: ``histogram_quantiles(db.select_histograms("rpc_latency"), [0.99],
    by=["service"], every="5m")``.
    """
    groups = [by] if isinstance(by, str) else list(by or [])
    buckets, accuracy = histogram_buckets(frame, by=groups, every=every, column=column)
    keys = [*groups, "timestamp"] if every is not None else groups
    return quantiles_from_sketches(buckets, qs, by=keys or None, relative_accuracy=accuracy)


def histogram_column(histograms: Sequence[ExponentialHistogram]) -> pa.StructArray:
    """A ``histogram`` column for ``db.write`` from ``ExponentialHistogram`` objects.

    Parameters
    ----------
    histograms
        The samples, one per row to write.

    Returns
    -------
    A pyarrow struct array of ``model.HISTOGRAM_TYPE``, to put in the written table beside
    ``timestamp``, ``__name__`` and the labels (in place of ``value``).

    Examples
    --------
    >>> import tsdb_arrow as ta
    >>> h = ta.sketch.ExponentialHistogram.from_values([1.0, 2.0, 3.0])
    >>> column = ta.sketch.histogram_column([h])
    >>> column.field("count").to_pylist()
    [3]
    """
    return pa.array(
        [
            {
                "scale": h.scale,
                "count": h.count,
                "zero_count": h.zero_count,
                "zero_threshold": h.zero_threshold,
                "positive_offset": h.positive_offset,
                "positive_counts": h.positive_counts,
                "negative_offset": h.negative_offset,
                "negative_counts": h.negative_counts,
                "sum": h.sum,
                "min": h.min,
                "max": h.max,
            }
            for h in histograms
        ],
        HISTOGRAM_TYPE,
    )
