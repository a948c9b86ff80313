"""Prometheus API JSON, built with Polars string expressions over whole results.

A query result of millions of samples becomes JSON without a Python loop per sample or per
series: numbers are formatted as Prometheus formats them (Go's shortest ``'f'`` form, ``'e'``
below 1e-6 and from 1e21, ``"NaN"``, ``"+Inf"``, ``"-Inf"``), timestamps as Unix seconds with
millisecond digits (``1700000000.5`` is written ``1700000000.500``, whole seconds without a
point), label sets as JSON objects with their labels sorted by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from tsdb_arrow.promql.values import InstantVector, RangeVector, Scalar, Steps, String, Value

_NUMBER = r"^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$"


def format_values(values: np.ndarray) -> pl.Series:
    """Sample values as the strings Prometheus writes (Go's ``strconv.FormatFloat``)."""
    v = pl.col("v")
    text = v.cast(pl.String)
    parts = text.str.extract_groups(_NUMBER)
    sign = parts.struct.field("1")
    whole = parts.struct.field("2")
    raw = pl.concat_str(whole, parts.struct.field("3").fill_null(""))
    exponent = parts.struct.field("4").cast(pl.Int64).fill_null(0)
    stripped = raw.str.strip_chars_start("0")
    digits = stripped.str.strip_chars_end("0")
    n = digits.str.len_chars().cast(pl.Int64)
    # the decimal point sits after ``point`` digits of ``digits`` (negative: zeros before them)
    point = whole.str.len_chars().cast(pl.Int64) + exponent
    point = point - (raw.str.len_chars() - stripped.str.len_chars()).cast(pl.Int64)
    positional = (
        pl.when(point <= 0)
        .then(pl.concat_str(pl.lit("0."), digits.str.zfill(n - point)))
        .when(point >= n)
        .then(digits.str.pad_end(point, "0"))
        .otherwise(pl.concat_str(digits.str.slice(0, point), pl.lit("."), digits.str.slice(point)))
    )
    e = point - 1
    scientific = pl.concat_str(
        digits.str.slice(0, 1),
        pl.when(n > 1).then(pl.concat_str(pl.lit("."), digits.str.slice(1))).otherwise(pl.lit("")),
        pl.when(e < 0).then(pl.lit("e-")).otherwise(pl.lit("e+")),
        e.abs().cast(pl.String).str.zfill(2),
    )
    magnitude = v.abs()
    formatted = (
        pl.when(v.is_nan())
        .then(pl.lit("NaN"))
        .when(v == float("inf"))
        .then(pl.lit("+Inf"))
        .when(v == float("-inf"))
        .then(pl.lit("-Inf"))
        .when(n == 0)
        .then(pl.concat_str(sign, pl.lit("0")))
        .when((magnitude < 1e-6) | (magnitude >= 1e21))
        .then(pl.concat_str(sign, scientific))
        .otherwise(pl.concat_str(sign, positional))
    )
    frame = pl.DataFrame({"v": np.asarray(values, dtype=np.float64)})
    return frame.select(formatted.alias("value")).to_series()


def format_timestamps(ms: np.ndarray) -> pl.Series:
    """Millisecond timestamps as Prometheus writes them: Unix seconds, ``.ddd`` when not whole."""
    t = pl.col("t")
    magnitude = t.abs()
    fraction = magnitude % 1000
    text = pl.concat_str(
        pl.when(t < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (magnitude // 1000).cast(pl.String),
        pl.when(fraction != 0)
        .then(pl.concat_str(pl.lit("."), fraction.cast(pl.String).str.zfill(3)))
        .otherwise(pl.lit("")),
    )
    frame = pl.DataFrame({"t": np.asarray(ms, dtype=np.int64)})
    return frame.select(text.alias("t")).to_series()


def metric_objects(labels: pl.DataFrame) -> pl.Series:
    """One JSON object per row of ``labels``: its non-null, non-empty labels sorted by name."""
    names = sorted(c for c in labels.columns if labels.schema[c] == pl.String)
    if not names or labels.height == 0:
        return pl.Series("metric", ["{}"] * labels.height, dtype=pl.String)
    pairs = [
        pl.when(pl.col(c).is_not_null() & (pl.col(c) != ""))
        # a one-field struct encodes as {"name":"value"}: JSON escaping done by Polars
        .then(pl.struct(pl.col(c)).struct.json_encode().str.slice(1).str.strip_suffix("}"))
        for c in names
    ]
    body = pl.concat_str(pairs, separator=",", ignore_nulls=True).fill_null("")
    return labels.select(pl.concat_str(pl.lit("{"), body, pl.lit("}")).alias("metric")).to_series()


def sort_key(labels: pl.DataFrame) -> pl.Series:
    """A string per row that sorts label sets as Prometheus' ``labels.Compare`` does."""
    names = sorted(c for c in labels.columns if labels.schema[c] == pl.String)
    if not names:
        return pl.Series("key", [""] * labels.height, dtype=pl.String)
    pairs = [
        pl.when(pl.col(c).is_not_null() & (pl.col(c) != "")).then(
            pl.concat_str(pl.lit(c + "\x00"), pl.col(c), pl.lit("\x00"))
        )
        for c in names
    ]
    return labels.select(pl.concat_str(pairs, ignore_nulls=True).fill_null("").alias("key"))["key"]


def _series_list(
    metrics: pl.Series, series: np.ndarray, ms: np.ndarray, values: np.ndarray, *, many: bool
) -> str:
    """``[{"metric":{...},"values":[[t,"v"],...]}, ...]`` (``"value":[t,"v"]`` when not
    ``many``) for samples given by their series index, in the order of ``metrics``."""
    if metrics.len() == 0:
        return "[]"
    samples = pl.DataFrame(
        {
            "s": np.asarray(series, dtype=np.int64),
            "t": format_timestamps(ms),
            "v": format_values(values),
        }
    ).select(
        "s",
        pl.concat_str(pl.lit("["), "t", pl.lit(',"'), "v", pl.lit('"]')).alias("sample"),
    )
    grouped = samples.group_by("s", maintain_order=True).agg(pl.col("sample").str.join(","))
    frame = pl.DataFrame({"s": np.arange(metrics.len(), dtype=np.int64), "metric": metrics})
    frame = frame.join(grouped, on="s", how="inner", maintain_order="left")
    if many:
        item = pl.concat_str(
            pl.lit('{"metric":'), pl.col("metric"), pl.lit(',"values":['), pl.col("sample"),
            pl.lit("]}"),
        )  # fmt: skip
    else:
        item = pl.concat_str(
            pl.lit('{"metric":'), pl.col("metric"), pl.lit(',"value":'), pl.col("sample"),
            pl.lit("}"),
        )  # fmt: skip
    return "[" + frame.select(item.str.join(",")).item() + "]"


def _sorted(labels: pl.DataFrame) -> np.ndarray:
    return sort_key(labels).arg_sort().to_numpy()


def _limited(order: np.ndarray, limit: int) -> np.ndarray:
    return order[:limit] if limit else order


def encode_instant(value: Value, time: int, *, limit: int = 0) -> str:
    """The ``data`` of an instant query's answer: vector, matrix, scalar or string."""
    if isinstance(value, Scalar):
        t, v = format_timestamps(np.array([time]))[0], format_values(value.values[:1])[0]
        return f'{{"resultType":"scalar","result":[{t},"{v}"]}}'
    if isinstance(value, String):
        t = format_timestamps(np.array([time]))[0]
        return f'{{"resultType":"string","result":[{t},{json.dumps(value.value)}]}}'
    if isinstance(value, RangeVector):
        return '{"resultType":"matrix","result":' + _range_vector(value, limit) + "}"
    present = np.asarray(value.present)[:, 0]
    rows = np.flatnonzero(present)
    rows = _limited(rows, limit)
    labels = value.labels[pl.Series(rows)] if len(rows) != value.labels.height else value.labels
    values = np.asarray(value.values)[rows, 0]
    result = _series_list(
        metric_objects(labels),
        np.arange(len(rows)),
        np.full(len(rows), time, dtype=np.int64),
        values,
        many=False,
    )
    return '{"resultType":"vector","result":' + result + "}"


def _range_vector(value: RangeVector, limit: int) -> str:
    """A range vector's samples in the window of its (only) step, series sorted by labels."""
    end = int(value.window_ends[0])
    counts = np.diff(np.asarray(value.offsets))
    series = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    ts = np.asarray(value.timestamps)
    inside = (ts > end - value.range) & (ts <= end)
    return _matrix(
        value.labels, series[inside], ts[inside], np.asarray(value.values)[inside], limit
    )


def _matrix(
    labels: pl.DataFrame, series: np.ndarray, ms: np.ndarray, values: np.ndarray, limit: int
) -> str:
    """Series that have samples, sorted by their label sets; samples in time order."""
    has = np.zeros(labels.height, dtype=bool)
    has[series] = True
    order = _sorted(labels)
    order = _limited(order[has[order]], limit)
    rank = np.full(labels.height, -1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    new_series = rank[series]
    keep = new_series >= 0
    by = np.lexsort((ms[keep], new_series[keep]))
    return _series_list(
        metric_objects(labels[pl.Series(order)]),
        new_series[keep][by],
        ms[keep][by],
        values[keep][by],
        many=True,
    )


def encode_range(value: Value, steps: Steps, *, limit: int = 0) -> str:
    """The ``data`` of a range query's answer: always a matrix (a scalar is one series without
    labels)."""
    times = steps.times
    if isinstance(value, Scalar):
        result = _series_list(
            pl.Series(["{}"]),
            np.zeros(len(times), dtype=np.int64),
            times,
            np.asarray(value.values),
            many=True,
        )
        return '{"resultType":"matrix","result":' + result + "}"
    assert isinstance(value, InstantVector)
    present = np.asarray(value.present)
    series, step = np.nonzero(present)
    return (
        '{"resultType":"matrix","result":'
        + _matrix(value.labels, series, times[step], np.asarray(value.values)[series, step], limit)
        + "}"
    )


def label_sets(series: pl.DataFrame) -> str:
    """``[{...}, ...]``: the label sets of ``series`` (``/api/v1/series``), sorted."""
    labels = series.select(c for c in series.columns if series.schema[c] == pl.String)
    if labels.height == 0:
        return "[]"
    objects = metric_objects(labels[pl.Series(_sorted(labels))])
    return "[" + pl.DataFrame({"m": objects}).select(pl.col("m").str.join(",")).item() + "]"


def strings(items: Sequence[str]) -> str:
    """A JSON array of strings (label names, label values)."""
    return json.dumps(list(items), ensure_ascii=False, separators=(",", ":"))


def json_object(obj: dict[str, Any]) -> str:
    """A small JSON object (build info, metadata), compact."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def success(data: str, warnings: Sequence[str] = (), infos: Sequence[str] = ()) -> bytes:
    """The success envelope around an encoded ``data`` (with Prometheus 3's ``infos``)."""
    extra = ',"warnings":' + strings(warnings) if warnings else ""
    extra += ',"infos":' + strings(infos) if infos else ""
    return ('{"status":"success","data":' + data + extra + "}").encode()


def error(error_type: str, message: str) -> bytes:
    """The error envelope Prometheus answers with (``errorType`` and ``error``)."""
    return json.dumps(
        {"status": "error", "errorType": error_type, "error": message},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
