"""Quantiles of stored histogram samples, from real OpenTelemetry SDK output, by bucket merges."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import tsdb_arrow as ta
from tests.sketch.test_exponential import mixed_values, sdk_record
from tsdb_arrow.sketch import (
    ExponentialHistogram,
    exponential_from_otel,
    histogram_column,
    histogram_quantiles,
)
from tsdb_arrow.sketch.exponential.ddsketch import to_sketch

QS = [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 1.0]


@pytest.fixture
def recorded(tmp_path):
    """Three real SDK histograms at different scales, stored in two series and two blocks."""
    hists = [
        exponential_from_otel(sdk_record(mixed_values(seed), max_size=size))
        for seed, size in ((1, 160), (2, 40), (3, 20))
    ]
    assert len({h.scale for h in hists}) > 1  # merging has to downscale
    db = ta.open(tmp_path / "db")
    table = pa.table(
        {
            "timestamp": [60_000, 61_000, 125_000],
            "histogram": histogram_column(hists),
            "__name__": ["rpc_latency"] * 3,
            "service": ["api", "db", "api"],
        }
    )
    db.write(table.slice(0, 2))
    db.flush()
    db.write(table.slice(2))
    yield db, hists
    db.close()


def test_merging_over_time_and_series_equals_the_merged_histogram(recorded):
    db, hists = recorded
    got = histogram_quantiles(db.select_histograms("rpc_latency"), QS).collect()
    merged = hists[0].merge(hists[1]).merge(hists[2])
    want = to_sketch(merged).quantiles(QS)
    assert got.columns == [f"q{q:g}" for q in QS]
    np.testing.assert_array_equal(got.row(0), want)


def test_groups_and_windows(recorded):
    db, hists = recorded
    frame = db.select_histograms().collect()
    by_service = histogram_quantiles(frame, [0.5, 0.99], by="service")
    assert isinstance(by_service, pl.DataFrame)
    assert by_service["service"].to_list() == ["api", "db"]
    # Every group is read at the coarsest scale of the whole selection.
    coarse = min(h.scale for h in hists)
    api = hists[0].merge(hists[2]).downscale(coarse)
    np.testing.assert_array_equal(by_service.row(0)[1:], to_sketch(api).quantiles([0.5, 0.99]))
    per_minute = histogram_quantiles(frame, [0.5], every="1m")
    assert per_minute["timestamp"].dt.epoch("ms").to_list() == [60_000, 120_000]
    first = hists[0].merge(hists[1]).downscale(coarse)
    assert per_minute["q0.5"][0] == to_sketch(first).quantile(0.5)


def test_quantiles_stay_within_the_scales_accuracy(recorded):
    db, hists = recorded
    values = np.sort(np.concatenate([mixed_values(seed) for seed in (1, 2, 3)]))
    got = histogram_quantiles(db.select_histograms(), QS[1:-1]).collect().row(0)
    gamma = 2.0 ** (2.0 ** -min(h.scale for h in hists))
    accuracy = (gamma - 1) / (gamma + 1)
    for q, value in zip(QS[1:-1], got):
        truth = values[int(np.floor(q * (len(values) - 1)))]
        assert abs(value - truth) <= accuracy * abs(truth) + 1e-300


def test_errors():
    frame = pl.DataFrame({"timestamp": [1], "value": [1.0]})
    with pytest.raises(ta.ConfigError, match="db.select_histograms"):
        histogram_quantiles(frame)
    h = ExponentialHistogram(scale=-8, count=1, positive_counts=np.array([1], np.uint64))
    coarse = pl.DataFrame({"histogram": pa.array(histogram_column([h]))})
    with pytest.raises(ta.SketchError, match="no DDSketch counterpart"):
        histogram_quantiles(coarse)
    with pytest.raises(ta.ConfigError, match="not in the frame"):
        histogram_quantiles(coarse, by="job")
