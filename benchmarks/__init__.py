"""Benchmark harness: tsdb-arrow against Prometheus, VictoriaMetrics and plain Parquet.

Entry point: ``python -m benchmarks.run`` (see :mod:`benchmarks.run`). Every system is fed the
same long-format Arrow table in the same run so that the figures in one table are comparable.
"""
