"""Every public frame function of ``ta.sketch`` on frames made of several chunks, lazy and eager.

``db.select`` yields frames of several chunks (one or more per block and batch); Polars'
streaming ``rle`` panicked on them (``assertion failed: chunks.len() == 1``). Each function must
give on such a frame exactly what it gives on the same rows in one chunk.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import tsdb_arrow as ta
import tsdb_arrow.sketch as sk
from tsdb_arrow.sketch import ExponentialHistogram

QS = [0.0, 0.5, 0.9, 0.99, 1.0]
BLOCK = 2 * 3_600_000
T0 = 1_700_000_000_000 // BLOCK * BLOCK + BLOCK - 1_800_000  # half an hour before a boundary


def _values(n: int, seed: int) -> pl.DataFrame:
    """Lognormal values, 2 % negative, some zeros, 60 groups, sorted by (g, time) as a selection."""
    rng = np.random.default_rng(seed)
    value = rng.lognormal(-4, 1.5, n)
    value[rng.random(n) < 0.02] *= -1
    value[rng.random(n) < 0.01] = 0.0
    frame = pl.DataFrame(
        {
            "timestamp": pl.Series(T0 + rng.integers(0, 3_600_000, n)).cast(
                pl.Datetime("ms", "UTC")
            ),
            "value": value,
            "g": rng.choice([f"g{i:02}" for i in range(60)], n),
            "h": rng.choice(["a", "b"], n),
        }
    )
    return frame.sort("g", "h", "timestamp")


def _histograms(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    hists = [
        ExponentialHistogram.from_values(
            rng.lognormal(-4, 1, 40) * rng.choice([1, -1]), max_size=20
        )
        for _ in range(n)
    ]
    table = pa.table(
        {
            "timestamp": pa.array(T0 + np.sort(rng.integers(0, 3_600_000, n))).cast(
                pa.timestamp("ms", "UTC")
            ),
            "histogram": sk.histogram_column(hists),
            "service": rng.choice(["api", "db", "web"], n),
        }
    )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _chunked(frame: pl.DataFrame) -> pl.DataFrame:
    """The same rows in three uneven chunks, concatenated without rechunking."""
    n = frame.height
    cuts = [0, n // 2, n // 2 + min(193, n // 4), n]
    parts = [frame.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]
    out = pl.concat(parts, rechunk=False)
    assert out.n_chunks() == 3
    return out


VALUE_FUNCTIONS: dict[str, Callable] = {
    "quantiles": lambda f: sk.quantiles(f, QS, by=["g"], every="10m"),
    "quantiles_no_groups": lambda f: sk.quantiles(f, QS),
    "quantiles_shuffled": lambda f: sk.quantiles(f, QS, by=["h", "g"]),
    "sketches": lambda f: sk.sketches(f, by=["g", "h"], every="5m"),
}
BUCKET_FUNCTIONS: dict[str, Callable] = {
    "merge_sketches": lambda b: sk.merge_sketches(b, by=["g"], every="10m"),
    "quantiles_from_sketches": lambda b: sk.quantiles_from_sketches(b, QS, by=["g"]),
    "to_sketch_column": lambda b: sk.to_sketch_column(b, by=["g", "timestamp"]),
}
HISTOGRAM_FUNCTIONS: dict[str, Callable] = {
    "histogram_quantiles": lambda f: sk.histogram_quantiles(f, QS, by="service", every="10m"),
    "histogram_buckets": lambda f: sk.histogram_buckets(f, by=["service"])[0],
}


def _same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Equal frames; a bucket ``sum`` only to the last bits, as Polars adds a group's floats in
    no fixed order (a serialized sketch column is compared decoded, for the same reason)."""
    if "sketch" in want.columns:
        got, want = sk.from_sketch_column(got), sk.from_sketch_column(want)
    if "sum" in want.columns:
        np.testing.assert_allclose(got.get_column("sum"), want.get_column("sum"), rtol=1e-12)
        got, want = got.drop("sum"), want.drop("sum")
    assert got.equals(want)


def _check(function: Callable, chunked: pl.DataFrame) -> None:
    want = function(chunked.rechunk())
    assert isinstance(want, pl.DataFrame) and want.height > 0
    _same(function(chunked), want)
    lazy = function(chunked.lazy())
    assert isinstance(lazy, pl.LazyFrame)
    _same(lazy.collect(), want)


@pytest.fixture(scope="module")
def values() -> pl.DataFrame:
    return _chunked(_values(60_000, seed=1))


@pytest.mark.parametrize("name", VALUE_FUNCTIONS)
def test_value_functions_on_chunked_frames(values: pl.DataFrame, name: str) -> None:
    frame = values.sample(fraction=1.0, seed=2) if name.endswith("shuffled") else values
    _check(VALUE_FUNCTIONS[name], _chunked(frame) if name.endswith("shuffled") else frame)


@pytest.mark.parametrize("name", BUCKET_FUNCTIONS)
def test_bucket_functions_on_chunked_frames(values: pl.DataFrame, name: str) -> None:
    buckets = sk.sketches(values.rechunk(), by=["g", "h"], every="5m")
    _check(BUCKET_FUNCTIONS[name], _chunked(buckets))


def test_from_sketch_column_on_a_chunked_frame(values: pl.DataFrame) -> None:
    column = sk.to_sketch_column(sk.sketches(values.rechunk(), by=["g"]), by=["g"])
    chunked = _chunked(pl.concat([column] * 3).with_row_index("copy"))
    got = sk.from_sketch_column(chunked)
    _same(got, sk.from_sketch_column(chunked.rechunk()))
    assert got.height == 3 * sk.from_sketch_column(column).height


@pytest.mark.parametrize("name", HISTOGRAM_FUNCTIONS)
def test_histogram_functions_on_chunked_frames(name: str) -> None:
    _check(HISTOGRAM_FUNCTIONS[name], _chunked(_histograms(600, seed=3)))


def test_a_selection_over_two_blocks(tmp_path) -> None:
    """What ``db.select`` and ``db.select_histograms`` yield for data crossing a block boundary."""
    frame = _values(120_000, seed=4)
    histograms = _histograms(300, seed=5)
    with ta.open(tmp_path / "db") as db:
        db.write(frame.with_columns(__name__=pl.lit("rpc_latency_seconds")))
        db.write(histograms.with_columns(__name__=pl.lit("rpc_latency")))
        db.flush()
        assert db.stats()["blocks"] == 2
        lf = db.select("rpc_latency_seconds")
        selected = lf.collect()
        assert selected.height == frame.unique(["g", "h", "timestamp"]).height  # last write kept
        for function in VALUE_FUNCTIONS.values():
            want = function(selected.rechunk())
            _same(function(selected), want)
            _same(function(lf).collect(), want)
        buckets = sk.sketches(lf, by=["g", "h"], every="5m")
        for function in BUCKET_FUNCTIONS.values():
            _same(function(buckets).collect(), function(buckets.collect().rechunk()))
        hf = db.select_histograms("rpc_latency")
        for function in HISTOGRAM_FUNCTIONS.values():
            _same(function(hf).collect(), function(hf.collect().rechunk()))


def test_the_readme_quantile_example_across_a_block_boundary(real_table, tmp_path) -> None:
    """README: ``ta.sketch.quantiles(db.select(...), qs=[.5, .9, .99], by=["collector"],
    every="1m")`` on the shipped real data moved to straddle a block boundary."""
    ts = real_table.column("timestamp").to_numpy()
    shift = (int(ts.min()) // BLOCK + 1) * BLOCK - (int(ts.min()) + int(ts.max())) // 2
    table = real_table.set_column(
        real_table.schema.get_field_index("timestamp"), "timestamp", pa.array(ts + shift)
    )
    with ta.open(tmp_path / "data") as db:
        db.write(table)
        db.flush()
        assert db.stats()["blocks"] == 2
        lf = db.select("node_scrape_collector_duration_seconds")
        got = ta.sketch.quantiles(lf, qs=[0.5, 0.9, 0.99], by=["collector"], every="1m").collect()
        selected = lf.collect()
    windows = selected.with_columns(pl.col("timestamp").dt.truncate("1m"))
    expected = (
        windows.group_by("collector", "timestamp")
        .agg(pl.col("value"))
        .sort("collector", "timestamp")
        .with_columns(
            pl.col("value")
            .map_elements(
                lambda v: ta.sketch.Sketch.from_values(v.to_numpy()).quantiles([0.5, 0.9, 0.99]),
                return_dtype=pl.Array(pl.Float64, 3),
            )
            .arr.to_struct(["q0.5", "q0.9", "q0.99"])
        )
        .unnest("value")
    )
    assert got.height == 46 * 16  # every collector, in 16 one-minute windows
    assert got.equals(expected)
