"""Smoke test of ``benchmarks.promql`` on tiny data, so that the benchmark cannot rot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks import promql

HAVE_PROMETHEUS = bool(shutil.which("prometheus") and shutil.which("promtool"))


def test_data_is_deterministic_with_resets_and_monotonic_buckets() -> None:
    counters, buckets = promql.make_data(25, 1)
    again = promql.make_data(25, 1)
    assert counters.equals(again[0]) and buckets.equals(again[1])
    assert counters.height == 25 * 240 and buckets.height == 1 * 10 * 240
    values = counters["value"].to_numpy().reshape(25, 240)
    assert (np.diff(values, axis=1) < 0).any()  # at least one counter reset
    per_le = buckets["value"].to_numpy().reshape(10, 240)
    assert (np.diff(per_le, axis=0) >= 0).all()  # le buckets are cumulative
    on_grid = (counters["timestamp"].to_numpy() - promql.FIRST_QUERY) % promql.SCRAPE == 0
    assert not on_grid.any()


def _matrix(*values: float) -> bytes:
    points = [[1.0 + i, str(v)] for i, v in enumerate(values)]
    return json.dumps(
        {
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {"a": "1"}, "values": points}]},
        }
    ).encode()


def test_compare_finds_a_value_off_by_more_than_the_tolerance() -> None:
    assert promql.compare(
        _matrix(1.0, 2.0, float("nan")), _matrix(1.0, 2.0, float("nan"))
    ).startswith("same (1 series, 3 points")
    assert promql.compare(_matrix(1.0, 2.0 + 1e-12), _matrix(1.0, 2.0)).startswith("same")
    assert promql.compare(_matrix(1.0, 2.0 + 1e-6), _matrix(1.0, 2.0)).startswith("values differ")
    assert promql.compare(_matrix(1.0), _matrix(1.0, 2.0)).startswith("steps differ")


def test_benchmark_runs_and_agrees_with_prometheus(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.proto")
    rows, ingest, notes = promql.run(
        20, 1, 1, tmp_path, with_prometheus=HAVE_PROMETHEUS, ingest_requests=3,
        ingest_rounds=2,
    )
    assert [r.query for r in rows] == list(promql.QUERIES)
    assert notes[0].startswith("30 series (20 counters, 10 buckets), 7,200 samples, 218 steps")
    for row in rows:
        assert row.ours_s and row.ours_s > 0 and row.in_process_s and row.in_process_s > 0
        if HAVE_PROMETHEUS:
            assert row.agree.startswith("same"), (row.query, row.agree)
            assert row.prometheus_s and row.prometheus_s > 0
        else:
            assert row.agree == "-" and row.prometheus_s is None
    assert ingest.idle > 0 and ingest.busy > 0 and ingest.queries >= 2
    assert len(ingest.rounds) == 2
    assert (ingest.idle, ingest.busy) == tuple(max(r) for r in zip(*ingest.rounds))
    text = promql.table(rows, ingest)
    assert text.count("\n") == len(rows) + 1 and "target >= 0.8x" in text
