"""The PromQL query benchmark at tiny size: every query runs and answers."""

from __future__ import annotations

from pathlib import Path

from benchmarks import promql_queries


def test_promql_query_benchmark_runs(tmp_path: Path) -> None:
    times = promql_queries.run(tmp_path / "db", series=32, hours=0.5, repeat=1)
    assert list(times) == list(promql_queries.QUERIES)
    assert all(seconds >= 0 for seconds in times.values())
