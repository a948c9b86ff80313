"""Time the issue's PromQL range queries end to end through ``db.query_range``.

``python -m benchmarks.promql_queries``: ``--series`` counters (a quarter each of four ``le``
buckets, four jobs) scraped every 15 s for ``--hours`` hours, written to a temporary database
and flushed to blocks; each query runs once to compile and warm the cache, then is timed
``--repeat`` times over the whole range at a 15 s step. Prints the best seconds per query.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

import tsdb_arrow as ta

SCRAPE = 15_000
T0 = 1_700_000_000_000
QUERIES = (
    "rate(http_requests_total[5m])",
    "sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (le) (rate(http_requests_total[5m])))",
    "topk(5, rate(http_requests_total[5m]))",
    "http_requests_total / on(instance, job, le) group_left http_requests_total",
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
)


def load(db: ta.Database, series: int, hours: float) -> int:
    """Write the counters; returns the number of samples."""
    n = int(hours * 3_600_000 // SCRAPE)
    for first in range(0, series, 100):
        ids = np.arange(first, min(first + 100, series))
        sid = np.repeat(ids, n)
        rng = np.random.default_rng(first)
        db.write(
            pl.DataFrame(
                {
                    "__name__": "http_requests_total",
                    "job": np.array(["api", "db", "web", "queue"])[sid % 4],
                    "le": np.array(["0.1", "0.5", "1", "+Inf"])[(sid // 4) % 4],
                    "instance": [f"host-{i // 16}" for i in sid],
                    "timestamp": T0 + np.tile(np.arange(n, dtype=np.int64) * SCRAPE, ids.size),
                    "value": np.cumsum(rng.integers(0, 10, sid.size)).astype(np.float64),
                }
            )
        )
    db.flush()
    return series * n


def run(path: Path, series: int, hours: float, repeat: int) -> dict[str, float]:
    """Best seconds of each query over the loaded range."""
    with ta.open(path) as db:
        load(db, series, hours)
        end = T0 + int(hours * 3_600_000)
        out = {}
        for query in QUERIES:
            db.query_range(query, T0, end, SCRAPE)
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                db.query_range(query, T0, end, SCRAPE)
                best = min(best, time.perf_counter() - start)
            out[query] = best
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="promql-bench-") as tmp:
        times = run(Path(tmp) / "db", args.series, args.hours, args.repeat)
    steps = int(args.hours * 3_600_000 // SCRAPE) + 1
    print(f"{args.series} series x {steps} steps (15 s), best of {args.repeat}")
    for query, seconds in times.items():
        print(f"{seconds:8.3f} s  {query}")


if __name__ == "__main__":
    main()
