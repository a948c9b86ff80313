"""PromQL over native histograms: range queries through the Prometheus API, in process.

``python -m benchmarks.native_histograms [--series N] [--hours H]``: N growing exponential
histograms (scale 3, 24 buckets, every 15 s, seeded) written and flushed, then each query over
the whole range at a 60 s step through ``PromApi.query_range`` (evaluation and JSON), best of
3, with the answer's size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pyarrow as pa

QUERIES = (
    "h",
    "rate(h[5m])",
    "sum(rate(h[5m]))",
    "sum by (job) (rate(h[5m]))",
    "histogram_quantile(0.99, sum(rate(h[5m])))",
    "h * 2 - h",
)


def _table(n_series: int, hours: float, seed: int = 1) -> pa.Table:
    """Cumulative histograms: each scrape adds Poisson counts to 24 buckets."""
    from tsdb_arrow.model import HISTOGRAM_TYPE

    rng = np.random.default_rng(seed)
    n_t = int(hours * 240)
    n_b = 24
    adds = rng.poisson(rng.uniform(0.1, 5.0, (n_series, 1, n_b)), (n_series, n_t, n_b))
    counts = np.cumsum(adds, axis=1).astype(np.uint64)  # [series, t, bucket]
    total = counts.sum(axis=2).reshape(-1)
    n = n_series * n_t
    flat = counts.reshape(n, n_b)
    lists = pa.LargeListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int64) * n_b),
                                          pa.array(flat.reshape(-1)))
    empty = pa.LargeListArray.from_arrays(pa.array(np.zeros(n + 1, np.int64)),
                                          pa.array(np.zeros(0, np.uint64)))
    struct = pa.StructArray.from_arrays(
        [pa.array(np.full(n, 3, np.int8)), pa.array(total), pa.array(np.zeros(n, np.uint64)),
         pa.array(np.zeros(n)), pa.array(np.full(n, -8, np.int32)), lists,
         pa.array(np.zeros(n, np.int32)), empty, pa.array(total * 0.5),
         pa.array(np.zeros(n)), pa.array(np.full(n, 100.0))],
        fields=list(HISTOGRAM_TYPE),
    )
    series = np.repeat(np.arange(n_series), n_t)
    return pa.table({
        "timestamp": pa.array(np.tile(np.arange(n_t, dtype=np.int64) * 15_000, n_series)),
        "histogram": struct,
        "__name__": pa.array(["h"] * n),
        "job": pa.array([f"job{s % 5}" for s in series.tolist()]),
        "instance": pa.array([f"i{s}" for s in series.tolist()]),
    })


def main() -> None:
    """Write the data, run each query three times, print the best."""
    import tsdb_arrow as ta
    from tsdb_arrow.server.prom_api import PromApi

    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--hours", type=float, default=6.0)
    args = parser.parse_args()
    table = _table(args.series, args.hours)
    with tempfile.TemporaryDirectory(prefix="bench-native-") as tmp:
        db = ta.open(tmp)
        db.write(table)
        db.flush()
        api = PromApi(db)
        end = str(int(args.hours * 3600) - 15)
        print(f"{args.series} series x {args.hours} h every 15 s = {table.num_rows:,} "
              f"histogram samples; load {os.getloadavg()[0]:.1f}")
        for q in QUERIES:
            form = {"query": [q], "start": ["0"], "end": [end], "step": ["60"]}
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                answer = api.respond(api.query_range, form)
                best = min(best, time.perf_counter() - t0)
            assert answer.status == 200, answer.body[:300]
            print(f"| `{q}` | {best * 1000:,.0f} ms | {len(answer.body) / 1e6:,.1f} MB |")
        db.close()


if __name__ == "__main__":
    main()
