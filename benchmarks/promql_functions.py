"""Time PromQL range functions over many series and steps.

``python -m benchmarks.promql_functions``: counters of ``--series`` series scraped every 15 s
for ``--samples`` samples, evaluated with ``[5m]`` windows at every 15 s step (the issue's
``rate(x[5m])`` over 1k series x 24 h). Each function runs once to compile, then is timed once;
prints seconds per function.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from tsdb_arrow.promql.functions import FUNCTIONS
from tsdb_arrow.promql.values import Call, RangeVector, Scalar, Steps

SCRAPE = 15_000
RANGE = 300_000
NAMES = ("rate", "irate", "increase", "sum_over_time", "avg_over_time", "max_over_time",
         "quantile_over_time", "deriv")


def range_vector(series: int, samples: int) -> tuple[RangeVector, Steps]:
    """Random counters, every window ending on a step of the scrape interval."""
    rng = np.random.default_rng(0)
    ts = np.tile(np.arange(samples, dtype=np.int64) * SCRAPE, series)
    steps_up = rng.integers(0, 10, series * samples).reshape(series, samples)
    values = np.cumsum(steps_up, axis=1).astype(np.float64).ravel()
    offsets = np.arange(series + 1, dtype=np.int64) * samples
    ends = np.arange(RANGE, samples * SCRAPE, SCRAPE, dtype=np.int64)
    labels = pl.DataFrame({"__name__": ["x_total"] * series,
                           "instance": [str(i) for i in range(series)]})
    steps = Steps(int(ends[0]), int(ends[-1]), SCRAPE)
    return RangeVector(labels, ts, values, offsets, ends, RANGE), steps


def run(series: int, samples: int) -> dict[str, float]:
    """Seconds per function (after one compiling call)."""
    rv, steps = range_vector(series, samples)
    q = Scalar(np.full(len(rv.window_ends), 0.9))
    out = {}
    for name in NAMES:
        args = [q, rv] if name == "quantile_over_time" else [rv]
        call = Call(name, args, [None] * len(args), steps)
        FUNCTIONS[name](call)
        start = time.perf_counter()
        FUNCTIONS[name](call)
        out[name] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=5760)
    args = parser.parse_args()
    n_steps = max(args.samples - RANGE // SCRAPE, 0)
    print(f"{args.series} series x {args.samples} samples, {n_steps} steps, [5m] windows")
    for name, seconds in run(args.series, args.samples).items():
        print(f"{name:<20} {seconds:8.3f} s")


if __name__ == "__main__":
    main()
