"""A stand-in PromQL engine for the HTTP API tests: plain selectors with lookback, and a few
fixed expressions that produce each value kind and each error."""

from __future__ import annotations

import threading
import time

import numpy as np
import polars as pl

from tsdb_arrow.errors import QueryError, QueryLimitError
from tsdb_arrow.promql.values import InstantVector, RangeVector, Scalar, Steps, String


class StubEngine:
    """``evaluate(db, expr, steps, *, lookback, limits)`` as the HTTP API calls it."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, db, expr: str, steps: Steps, *, lookback: int, limits) -> object:
        self.calls.append({"expr": expr, "steps": steps, "lookback": lookback, "limits": limits})
        times = steps.times
        if expr == "42":
            return Scalar(np.full(len(times), 42.0))
        if expr == '"hello"':
            return String("hello")
        if expr == "execution_error":
            raise QueryError("found duplicate series for the match group")
        if expr == "too_many_samples":
            raise QueryLimitError("query processing would load too many samples into memory")
        if expr == "slow":
            time.sleep(limits[1] + 0.05)
            raise QueryLimitError("query timed out in expression evaluation")
        if expr == "blocked":
            self.entered.set()
            self.release.wait(30)
            return Scalar(np.full(len(times), 1.0))
        if expr.endswith("]"):
            return self._range(db, expr, steps)
        return self._instant(db, expr, times, lookback)

    def _frame(self, db, selector: str, lo: int, hi: int) -> tuple[pl.DataFrame, list[str]]:
        frame = db.select(selector, start=lo, end=hi).collect()
        labels = [c for c in frame.columns if c not in ("timestamp", "value")]
        frame = frame.with_columns(pl.col("timestamp").dt.epoch("ms").alias("ms"))
        return frame, labels

    def _instant(self, db, selector: str, times: np.ndarray, lookback: int) -> InstantVector:
        frame, labels = self._frame(db, selector, int(times[0]) - lookback, int(times[-1]))
        series = frame.select(labels).unique(maintain_order=True)
        values = np.zeros((series.height, len(times)))
        present = np.zeros((series.height, len(times)), dtype=bool)
        for i, row in enumerate(series.iter_rows(named=True)):  # test code: clarity over speed
            mine = frame.filter(*(pl.col(k).eq_missing(v) for k, v in row.items()))
            ts, vs = mine["ms"].to_numpy(), mine["value"].to_numpy()
            for j, t in enumerate(times):
                k = np.searchsorted(ts, t, side="right") - 1
                if k >= 0 and ts[k] > t - lookback:
                    values[i, j], present[i, j] = vs[k], True
        return InstantVector(series, values, present)

    def _range(self, db, expr: str, steps: Steps) -> RangeVector:
        selector, _, rest = expr.partition("[")
        seconds = {"s": 1, "m": 60, "h": 3600}[rest[-2]] * int(rest[:-2])
        end = steps.start
        frame, labels = self._frame(db, selector, end - seconds * 1000, end)
        series = frame.select(labels).unique(maintain_order=True)
        counts = [
            frame.filter(*(pl.col(k).eq_missing(v) for k, v in row.items())).height
            for row in series.iter_rows(named=True)
        ]
        return RangeVector(
            series,
            frame["ms"].to_numpy(),
            frame["value"].to_numpy(),
            np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
            np.array([end], dtype=np.int64),
            seconds * 1000,
        )


def limits_tuple(max_samples: int, timeout: float) -> tuple[int, float]:
    """What the stub receives as ``limits``: the two numbers, to assert on."""
    return (max_samples, timeout)
