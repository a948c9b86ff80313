"""The text formats the peers ingest, built from the long Arrow table with vectorised Polars.

* OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``;
* JSON lines for VictoriaMetrics' ``/api/v1/import`` (one line per series).

Both are produced with Polars string expressions over whole columns, never a Python loop per
sample: only the per-series label objects of the JSON lines are built in Python (one
``json.dumps`` per series, a few thousand calls at most). The long table has ``__name__``, any
number of nullable string label columns (null = label absent), ``timestamp`` (int64 ms) and
``value`` (float64).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import polars as pl
import pyarrow as pa

NAME = "__name__"
TIMESTAMP = "timestamp"
VALUE = "value"


def label_columns(columns: list[str]) -> list[str]:
    """Label columns of a long table, ``__name__`` first, others in table order."""
    rest = [c for c in columns if c not in (NAME, TIMESTAMP, VALUE)]
    return [NAME, *rest] if NAME in columns else rest


def escape_label_value(value: str) -> str:
    """Escape a label value for OpenMetrics text and PromQL selectors (backslash, quote, LF)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(labels: Mapping[str, str]) -> str:
    """PromQL selector matching the label set exactly by equality, e.g. ``up{job="a"}``."""
    inner = ",".join(
        f'{k}="{escape_label_value(v)}"' for k, v in sorted(labels.items()) if k != NAME
    )
    return f"{labels[NAME]}{{{inner}}}"


def _escaped(col: str) -> pl.Expr:
    """Polars expression escaping a string column like :func:`escape_label_value`."""
    return (
        pl.col(col)
        .str.replace_all("\\", "\\\\", literal=True)
        .str.replace_all('"', '\\"', literal=True)
        .str.replace_all("\n", "\\n", literal=True)
    )


def _series_prefix(labels: list[str]) -> pl.Expr:
    """``name{k="v",...}`` per row; null labels are left out, an empty set gives ``name``."""
    pairs = [
        pl.when(pl.col(c).is_not_null()).then(pl.lit(f'{c}="') + _escaped(c) + pl.lit('"'))
        for c in labels
        if c != NAME
    ]
    if not pairs:
        return pl.col(NAME)
    inner = pl.concat_str(pairs, separator=",", ignore_nulls=True)
    return pl.col(NAME) + pl.when(inner != "").then(pl.lit("{") + inner + pl.lit("}")).otherwise(
        pl.lit("")
    )


def _openmetrics_value(col: str) -> pl.Expr:
    """Shortest round-trip decimal of a float64, with OpenMetrics' ``+Inf``/``-Inf``/``NaN``."""
    v = pl.col(col)
    return (
        pl.when(v.is_nan())
        .then(pl.lit("NaN"))
        .when(v == float("inf"))
        .then(pl.lit("+Inf"))
        .when(v == float("-inf"))
        .then(pl.lit("-Inf"))
        .otherwise(v.cast(pl.String))
    )


def _seconds_with_ms(col: str) -> pl.Expr:
    """Int64 milliseconds as decimal seconds with a 3-digit fraction, e.g. ``1795543910.397``."""
    ms = pl.col(col)
    a = ms.abs()
    sign = pl.when(ms < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return (
        sign + (a // 1000).cast(pl.String) + pl.lit(".") + (a % 1000).cast(pl.String).str.zfill(3)
    )


def openmetrics_lines(table: pa.Table) -> pl.DataFrame:
    """One-column frame ``line`` of OpenMetrics sample lines, sorted by (series, timestamp).

    Sorting keeps each series' samples in time order (which promtool's appender requires) and
    each metric family contiguous (which OpenMetrics requires). No ``# TYPE`` lines: every
    family is of unknown type, which Prometheus stores exactly like a gauge.
    """
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    labels = label_columns(df.columns)
    return (
        df.lazy()
        .select(
            _series_prefix(labels).alias("prefix"),
            pl.col(TIMESTAMP),
            pl.col(VALUE),
        )
        .sort(["prefix", TIMESTAMP])
        .select(
            pl.concat_str(
                [
                    pl.col("prefix"),
                    _openmetrics_value(VALUE),
                    _seconds_with_ms(TIMESTAMP),
                ],
                separator=" ",
            ).alias("line")
        )
        .collect()
    )


def write_openmetrics(table: pa.Table, path: Path) -> int:
    """Write ``table`` as an OpenMetrics text file ending with ``# EOF``; return its samples."""
    lines = openmetrics_lines(table)
    lines.write_csv(path, include_header=False, quote_style="never")
    with path.open("a", encoding="utf-8") as f:
        f.write("# EOF\n")
    return lines.height


def _json_number(col: str) -> pl.Expr:
    """Float64 as a JSON number token (shortest round-trip decimal; always finite here)."""
    return pl.col(col).cast(pl.String)


def vm_import_lines(table: pa.Table) -> tuple[list[bytes], int]:
    """VictoriaMetrics ``/api/v1/import`` JSON lines, one per series; also the samples dropped.

    JSON has no NaN or infinity, so non-finite samples are left out (and counted); the value and
    timestamp arrays of each series are joined by Polars in one group-by.
    """
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    labels = label_columns(df.columns)
    finite = df.lazy().filter(pl.col(VALUE).is_finite())
    grouped = (
        finite.group_by(labels, maintain_order=True)
        .agg(
            _json_number(VALUE).str.join(",").alias("values"),
            pl.col(TIMESTAMP).cast(pl.String).str.join(",").alias("timestamps"),
            pl.len().alias("n"),
        )
        .collect()
    )
    dropped = df.height - int(grouped["n"].sum())
    metrics = grouped.select(labels).to_dicts()
    lines = [
        b'{"metric":'
        + json.dumps({k: v for k, v in m.items() if v is not None}, separators=(",", ":")).encode()
        + b',"values":['
        + values.encode()
        + b'],"timestamps":['
        + stamps.encode()
        + b"]}\n"
        for m, values, stamps in zip(metrics, grouped["values"], grouped["timestamps"], strict=True)
    ]
    return lines, dropped


def batches(lines: list[bytes], max_bytes: int) -> Iterator[bytes]:
    """Concatenate ``lines`` into request bodies of at most about ``max_bytes`` each."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        if batch and size + len(line) > max_bytes:
            yield b"".join(batch)
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        yield b"".join(batch)
