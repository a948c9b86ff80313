"""``python -m benchmarks.prom_json_encode``: ``prom_json.encode_range`` of a range matrix.

``--series`` series x ``--steps`` steps of ``rate``-like floats (every value present, as
``rate(x[5m])`` over a day at a 15 s step answers), best of ``--repeat``; the JSON body's
size and its SHA-256 (so two versions can be checked for the same bytes). A body written in
pieces (``prom_json.Stream``) is timed until its last piece is joined.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np
import polars as pl

from tsdb_arrow.promql.values import InstantVector, Steps
from tsdb_arrow.server import prom_json


def matrix(series: int, steps: int, seed: int = 1) -> tuple[InstantVector, Steps]:
    """Rates with a few special values; half-second-offset steps (``.500`` timestamps)."""
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 0.7, (series, steps)) * rng.choice([1e-3, 1, 1e3], (series, 1))
    values[:, ::97] = 0.0
    values[::50, ::13] = np.nan
    labels = pl.DataFrame(
        {
            "__name__": ["http_requests_total"] * series,
            "job": [f"job{i % 5}" for i in range(series)],
            "instance": [f"host-{i}:9100" for i in range(series)],
        }
    )
    start = 1_794_960_307_500
    value = InstantVector(labels, values, np.ones((series, steps), dtype=bool))
    return value, Steps(start, start + (steps - 1) * 15_000, 15_000)


def main() -> None:
    """Print the best time of ``encode_range`` and the body's size and digest."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=5761)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    value, steps = matrix(args.series, args.steps)
    prom_json.warm_up()
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        body = prom_json.success(prom_json.encode_range(value, steps))
        if isinstance(body, prom_json.Stream):  # a large matrix comes in pieces
            body = body.join()
        best = min(best, time.perf_counter() - t0)
        digest = hashlib.sha256(body).hexdigest()[:16]
        size = len(body)
        del body
    shape = f"{args.series}x{args.steps}"
    print(f"encode_range+success {shape}: {best:.3f} s best of {args.repeat}; {size:,} bytes, "
          f"sha256 {digest}")  # fmt: skip


if __name__ == "__main__":
    main()
