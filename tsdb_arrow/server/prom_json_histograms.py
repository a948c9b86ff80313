"""Prometheus API JSON of results that hold native histogram samples.

Written as Prometheus 2.40+ and 3.x write them (``util/jsonutil.MarshalHistogram`` and the
series codecs of ``web/api/v1``): a histogram is
``{"count":"C","sum":"S","buckets":[[rule,"lower","upper","count"],...]}`` with its non-empty
buckets (``promql/native_buckets.py``; no ``buckets`` key when there are none), an instant
vector's histogram sample ``{"metric":{...},"histogram":[t,{...}]}``, and a matrix series
``{"metric":{...},"values":[[t,"v"],...],"histograms":[[t,{...}],...]}`` (either list left
out when empty). Texts are built with Polars string expressions over all samples at once.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tsdb_arrow.jit import njit
from tsdb_arrow.promql.native import NativeHistograms
from tsdb_arrow.server.float_text import literal
from tsdb_arrow.server.json_kernels import copy_text
from tsdb_arrow.server.prom_json import _string_series, _strings, format_timestamps, format_values

# JSON pieces the kernels write
_COUNT = np.frombuffer(b'{"count":"', np.uint8)
_SUM = np.frombuffer(b'","sum":"', np.uint8)
_BUCKETS = np.frombuffer(b'","buckets":[', np.uint8)
_QUOTE_COMMA_QUOTE = np.frombuffer(b'","', np.uint8)
_CLOSE_EMPTY = np.frombuffer(b'"}', np.uint8)
_QUOTE_CLOSE = np.frombuffer(b'"]', np.uint8)
_CLOSE_OBJECT = np.frombuffer(b"]}", np.uint8)
_COMMA = np.frombuffer(b",", np.uint8)
_COMMA_QUOTE = np.frombuffer(b',"', np.uint8)
_METRIC = np.frombuffer(b'{"metric":', np.uint8)
_VALUES = np.frombuffer(b',"values":[', np.uint8)
_HISTOGRAMS = np.frombuffer(b',"histograms":[', np.uint8)
_OPEN = np.frombuffer(b"[", np.uint8)
_CLOSE = np.frombuffer(b"]", np.uint8)
_BRACE = np.frombuffer(b"}", np.uint8)


def _cat(*parts: str | pl.Expr) -> pl.Expr:
    """The concatenation of literal texts and string expressions (null if one is null)."""
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts])


@njit(cache=True, nogil=True)
def _write_objects(n, starts, rule, t_idx, t_off, t_data, out_off, out, fill):
    """Write (``fill``) or measure the JSON object of each of ``n`` histograms: numbers
    ``0..n`` are the counts, ``n..2n`` the sums, then per bucket lower, upper, count (three
    consecutive numbers), buckets of histogram k at ``starts[k]..starts[k+1]``; number j's
    text is text ``t_idx[j]``."""
    o = 0
    for k in range(n):
        if fill:
            out_off[k] = o
        o = literal(out, o, _COUNT, fill)
        o = copy_text(out, o, t_off, t_data, t_idx[k], fill)
        o = literal(out, o, _SUM, fill)
        o = copy_text(out, o, t_off, t_data, t_idx[n + k], fill)
        if starts[k + 1] == starts[k]:
            o = literal(out, o, _CLOSE_EMPTY, fill)
            continue
        o = literal(out, o, _BUCKETS, fill)
        for b in range(starts[k], starts[k + 1]):
            if b > starts[k]:
                o = literal(out, o, _COMMA, fill)
            if fill:
                out[o] = 91  # [
                out[o + 1] = 48 + rule[b]
                out[o + 2] = 44  # ,
                out[o + 3] = 34  # "
            o += 4
            base = 2 * n + 3 * b
            o = copy_text(out, o, t_off, t_data, t_idx[base], fill)
            o = literal(out, o, _QUOTE_COMMA_QUOTE, fill)
            o = copy_text(out, o, t_off, t_data, t_idx[base + 1], fill)
            o = literal(out, o, _QUOTE_COMMA_QUOTE, fill)
            o = copy_text(out, o, t_off, t_data, t_idx[base + 2], fill)
            o = literal(out, o, _QUOTE_CLOSE, fill)
        o = literal(out, o, _CLOSE_OBJECT, fill)
    if fill:
        out_off[n] = o
    return o


def histogram_objects(pool: NativeHistograms, rows: np.ndarray) -> pl.Series:
    """The JSON object of each pool row of ``rows``, in order (one numba pass over the texts
    of all their numbers)."""
    from tsdb_arrow.promql.native_buckets import bucket_list

    rows = np.ascontiguousarray(rows, dtype=np.int64)
    b = bucket_list(pool, rows)
    numbers = np.concatenate([
        pool.count[rows], pool.sum[rows],
        np.stack([b.lower, b.upper, b.count], axis=1).reshape(-1),
    ])
    # bounds repeat from histogram to histogram: each distinct number (by its bits, so that
    # -0 stays "-0") is formatted once
    distinct, t_idx = np.unique(numbers.view(np.uint64), return_inverse=True)
    t_off, t_data = _strings(format_values(distinct.view(np.float64)))
    t_idx = np.ascontiguousarray(t_idx.reshape(-1), np.int64)
    n = rows.size
    out_off = np.zeros(n + 1, np.int64)
    empty = np.zeros(0, np.uint8)
    rule = b.rule.astype(np.int64)
    size = _write_objects(n, b.starts, rule, t_idx, t_off, t_data, out_off, empty, False)
    out = np.empty(size, np.uint8)
    _write_objects(n, b.starts, rule, t_idx, t_off, t_data, out_off, out, True)
    return _string_series(out_off, out, "h")


def _points(ms: np.ndarray, texts: pl.Series, *, quoted: bool) -> pl.Series:
    """``[t,"v"]`` (``quoted``) or ``[t,{...}]`` per sample."""
    frame = pl.DataFrame({"t": format_timestamps(ms), "v": texts})
    q = '"' if quoted else ""
    return frame.select(_cat("[", pl.col("t"), "," + q, pl.col("v"), q + "]")).to_series()


def instant_samples(
    metrics: pl.Series, ms: np.ndarray, values: np.ndarray, hist: np.ndarray,
    pool: NativeHistograms | None,
) -> str:
    """``[{"metric":...,"value":[t,"v"]}, {"metric":...,"histogram":[t,{...}]}, ...]``: sample
    k is ``metrics[k]`` at ``ms[k]``, the histogram of pool row ``hist[k]`` when that is not
    -1, else the float ``values[k]``."""
    if metrics.len() == 0:
        return "[]"
    is_h = hist >= 0
    points = _points(ms, format_values(np.where(is_h, 0.0, values)), quoted=True)
    if is_h.any():
        assert pool is not None
        objects = histogram_objects(pool, hist[is_h])
        h_points = _points(ms[is_h], objects, quoted=False)
        points = points.scatter(np.flatnonzero(is_h), h_points)
    frame = pl.DataFrame({"m": metrics, "p": points, "h": is_h})
    body = frame.select(
        _cat(
            '{"metric":', pl.col("m"), ',"',
            pl.when(pl.col("h")).then(pl.lit("histogram")).otherwise(pl.lit("value")),
            '":', pl.col("p"), "}",
        ).str.join(",")
    ).item()
    return "[" + body + "]"


@njit(cache=True, nogil=True)
def _write_pairs(out, o, lo, hi, t_off, t_data, x_off, x_data, mid, end, fill):
    """Write (``fill``) or measure ``[[t<mid>x<end>,...]`` for texts ``lo..hi``: values
    (``,"`` ... ``"]``) and histogram objects (``,`` ... ``]``) alike."""
    for k in range(lo, hi):
        if k > lo:
            o = literal(out, o, _COMMA, fill)
        o = literal(out, o, _OPEN, fill)
        o = copy_text(out, o, t_off, t_data, k, fill)
        o = literal(out, o, mid, fill)
        o = copy_text(out, o, x_off, x_data, k, fill)
        o = literal(out, o, end, fill)
    return literal(out, o, _CLOSE, fill)


@njit(cache=True, nogil=True)
def _write_matrix(n, m_off, m_data, f_starts, ft_off, ft_data, fv_off, fv_data, h_starts,
                  ht_off, ht_data, ho_off, ho_data, out, fill):
    """Write (``fill``) or measure ``[{"metric":...,"values":[...],"histograms":[...]},...]``
    from the texts of the metrics, timestamps, values and histogram objects."""
    o = literal(out, 0, _OPEN, fill)
    for i in range(n):
        if i > 0:
            o = literal(out, o, _COMMA, fill)
        o = literal(out, o, _METRIC, fill)
        o = copy_text(out, o, m_off, m_data, i, fill)
        if f_starts[i + 1] > f_starts[i]:
            o = literal(out, o, _VALUES, fill)
            o = _write_pairs(out, o, f_starts[i], f_starts[i + 1], ft_off, ft_data, fv_off,
                             fv_data, _COMMA_QUOTE, _QUOTE_CLOSE, fill)  # fmt: skip
        if h_starts[i + 1] > h_starts[i]:
            o = literal(out, o, _HISTOGRAMS, fill)
            o = _write_pairs(out, o, h_starts[i], h_starts[i + 1], ht_off, ht_data, ho_off,
                             ho_data, _COMMA, _CLOSE, fill)  # fmt: skip
        o = literal(out, o, _BRACE, fill)
    return literal(out, o, _CLOSE, fill)


def matrix_series(
    metrics: pl.Series,
    f_owner: np.ndarray, f_ms: np.ndarray, f_values: np.ndarray,
    h_owner: np.ndarray, h_ms: np.ndarray, h_rows: np.ndarray, pool: NativeHistograms | None,
) -> str:
    """``[{"metric":...,"values":[...],"histograms":[...]}, ...]``: series i is
    ``metrics[i]``, its float samples those with ``f_owner == i`` and its histogram samples
    (pool rows ``h_rows``) those with ``h_owner == i``, both sorted by owner, then time; every
    series has at least one sample. Written by one numba pass."""
    n = metrics.len()
    if n == 0:
        return "[]"
    every = np.arange(n + 1)
    f_starts = np.searchsorted(np.asarray(f_owner, np.int64), every).astype(np.int64)
    h_starts = np.searchsorted(np.asarray(h_owner, np.int64), every).astype(np.int64)
    h_texts = (histogram_objects(pool, h_rows) if pool is not None and len(h_rows)
               else pl.Series([], dtype=pl.String))
    args = (
        n, *_strings(metrics), f_starts, *_strings(format_timestamps(f_ms)),
        *_strings(format_values(f_values)), h_starts, *_strings(format_timestamps(h_ms)),
        *_strings(h_texts),
    )
    out = np.empty(_write_matrix(*args, np.empty(0, np.uint8), False), np.uint8)
    _write_matrix(*args, out, True)
    return out.tobytes().decode()
