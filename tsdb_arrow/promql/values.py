"""The values a PromQL expression evaluates to, over every step of a query at once.

An instant query is a range query with one step. Each kind holds all steps so that functions,
operators and aggregations are array operations over ``[series, step]``, never a Python loop
per series or per step. Absent samples are marked in ``present`` (NaN is a value in PromQL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tsdb_arrow.promql.native import HistogramRange, NativeHistograms

METRIC_NAME = "__name__"


@dataclass(frozen=True)
class Steps:
    """Evaluation times of a query: ``start``, ``start + step``, ... ``<= end`` (ms since epoch)."""

    start: int
    end: int
    step: int

    @property
    def times(self) -> np.ndarray:
        """The evaluation times as int64 ms, one per step."""
        step = max(self.step, 1)
        return np.arange(self.start, self.end + 1, step, dtype=np.int64)

    def __len__(self) -> int:
        return (self.end - self.start) // max(self.step, 1) + 1


@dataclass
class Scalar:
    """A number per step (``values.shape == (n_steps,)``)."""

    values: np.ndarray


@dataclass
class String:
    """A string literal (only as a function argument or a whole query's result)."""

    value: str


@dataclass
class InstantVector:
    """Series with at most one sample per step.

    ``labels``: one row per series, one ``pl.String`` column per label name (null where a series
    lacks the label; ``__name__`` among them unless dropped), no two rows equal.
    ``values`` float64 and ``present`` bool, both ``[n_series, n_steps]``: the sample of series
    i at step j is ``values[i, j]`` when ``present[i, j]``. ``timestamps`` (int64 ms,
    ``[n_series, n_steps]``, only from a selector, else None) are the times of the samples a
    selector picked, for ``timestamp()``.
    Native histogram samples, when there are any: ``hist`` (int64 ``[n_series, n_steps]``) is
    the row of ``pool`` holding the histogram sample of series i at step j, -1 where there is
    none; a cell holds a float sample (``present``) or a histogram sample, never both.
    """

    labels: pl.DataFrame
    values: np.ndarray
    present: np.ndarray
    timestamps: np.ndarray | None = None
    hist: np.ndarray | None = None
    pool: NativeHistograms | None = None

    @property
    def has_histograms(self) -> bool:
        """Whether any cell holds a native histogram sample."""
        return self.hist is not None and bool((self.hist >= 0).any())

    def __len__(self) -> int:
        return self.labels.height


@dataclass
class RangeVector:
    """Series with the raw samples of a window ``(t - range, t]`` ending at every step.

    Samples of series i are ``timestamps[offsets[i]:offsets[i+1]]`` / ``values[...]``, sorted by
    time, covering every window. ``window_ends`` (int64 ms, one per step) are the window ends
    after ``offset`` and ``@`` were applied; ``range`` is the window length in ms.
    ``hists``, when the series hold native histogram samples, has them, series by series in
    the order of ``labels`` (a series may hold both kinds).
    """

    labels: pl.DataFrame
    timestamps: np.ndarray
    values: np.ndarray
    offsets: np.ndarray
    window_ends: np.ndarray
    range: int
    hists: HistogramRange | None = None

    def __len__(self) -> int:
        return self.labels.height


Value = Scalar | String | InstantVector | RangeVector


@dataclass
class Call:
    """A function call as the evaluator hands it to ``promql/functions.py``.

    ``args`` are the evaluated arguments; ``arg_exprs`` the parser's AST nodes of the same
    arguments (``absent`` and ``absent_over_time`` build their labels from the selector's
    equality matchers); ``steps`` the query's evaluation times.
    """

    name: str
    args: list[Value]
    arg_exprs: list[object]
    steps: Steps
