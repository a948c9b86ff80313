"""Prometheus API JSON, built with Polars string expressions over whole results.

A query result of millions of samples becomes JSON without a Python loop per sample or per
series: numbers are formatted as Prometheus formats them (Go's shortest ``'f'`` form, ``'e'``
below 1e-6 and from 1e21, ``"NaN"``, ``"+Inf"``, ``"-Inf"``), timestamps as Unix seconds with
millisecond digits (``1700000000.5`` is written ``1700000000.500``, whole seconds without a
point), label sets as JSON objects with their labels sorted by name.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from tsdb_arrow.promql.values import InstantVector, RangeVector, Scalar, Steps, String, Value


def _strings(series: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The offsets and bytes of a String series without nulls (zero-copy where Arrow allows)."""
    arr = series.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    data = arr.buffers()[2]
    return offsets, np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(
        0, np.uint8
    )


def _bits(values: np.ndarray) -> np.ndarray:
    """The floats' uint64 view, what the kernels format (C-contiguous float64 first)."""
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)


def _string_series(offsets: np.ndarray, data: np.ndarray, name: str) -> pl.Series:
    arr = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data)
    )
    return pl.Series(name, arr)


def format_values(values: np.ndarray) -> pl.Series:
    """Sample values as the strings Prometheus writes (Go's ``strconv.FormatFloat``)."""
    from tsdb_arrow.server.float_text import float_texts

    bits = _bits(np.ravel(values))
    out_offsets = np.empty(len(bits) + 1, dtype=np.int64)
    size = float_texts(bits, out_offsets, np.empty(0, np.uint8), False)
    out = np.empty(size, dtype=np.uint8)
    float_texts(bits, out_offsets, out, True)
    return _string_series(out_offsets, out, "value")


def format_timestamps(ms: np.ndarray) -> pl.Series:
    """Millisecond timestamps as Prometheus writes them: Unix seconds, ``.ddd`` when not whole."""
    from tsdb_arrow.server.json_kernels import timestamps

    ts = np.ascontiguousarray(ms, dtype=np.int64)
    out_offsets = np.empty(len(ts) + 1, dtype=np.int64)
    size = timestamps(ts, out_offsets, np.empty(0, np.uint8), False)
    out = np.empty(size, dtype=np.uint8)
    timestamps(ts, out_offsets, out, True)
    return _string_series(out_offsets, out, "t")


def metric_objects(labels: pl.DataFrame) -> pl.Series:
    """One JSON object per row of ``labels``: its non-null, non-empty labels sorted by name."""
    names = sorted(c for c in labels.columns if labels.schema[c] == pl.String)
    if not names or labels.height == 0:
        return pl.Series("metric", ["{}"] * labels.height, dtype=pl.String)
    pairs = [
        pl.when(pl.col(c).is_not_null() & (pl.col(c) != ""))
        # a one-field struct encodes as {"name":"value"}: JSON escaping done by Polars
        .then(pl.struct(pl.col(c)).struct.json_encode().str.slice(1).str.strip_suffix("}"))
        for c in names
    ]
    body = pl.concat_str(pairs, separator=",", ignore_nulls=True).fill_null("")
    return labels.select(pl.concat_str(pl.lit("{"), body, pl.lit("}")).alias("metric")).to_series()


def sort_key(labels: pl.DataFrame) -> pl.Series:
    """A string per row that sorts label sets as Prometheus' ``labels.Compare`` does."""
    names = sorted(c for c in labels.columns if labels.schema[c] == pl.String)
    if not names:
        return pl.Series("key", [""] * labels.height, dtype=pl.String)
    pairs = [
        pl.when(pl.col(c).is_not_null() & (pl.col(c) != "")).then(
            pl.concat_str(pl.lit(c + "\x00"), pl.col(c), pl.lit("\x00"))
        )
        for c in names
    ]
    return labels.select(pl.concat_str(pairs, ignore_nulls=True).fill_null("").alias("key"))["key"]


def _starts(counts: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    return starts


def _series_list(
    metrics: pl.Series, starts: np.ndarray, ms: np.ndarray, values: np.ndarray, *, many: bool
) -> str:
    """``[{"metric":{...},"values":[[t,"v"],...]}, ...]`` (``"value":[t,"v"]`` when not
    ``many``): series i is ``metrics[i]`` with the samples ``[starts[i], starts[i+1])``."""
    from tsdb_arrow.server.json_kernels import series_list

    if metrics.len() == 0:
        return "[]"
    m_offsets, m_data = _strings(metrics)
    ts = np.ascontiguousarray(ms, dtype=np.int64)
    args = (m_offsets, m_data, starts, ts, _bits(values), many)
    out = np.empty(series_list(*args, np.empty(0, np.uint8), False), dtype=np.uint8)
    series_list(*args, out, True)
    return out.tobytes().decode()


def _sorted(labels: pl.DataFrame) -> np.ndarray:
    return sort_key(labels).arg_sort().to_numpy()


def _limited(order: np.ndarray, limit: int) -> np.ndarray:
    return order[:limit] if limit else order


def encode_instant(value: Value, time: int, *, limit: int = 0) -> str:
    """The ``data`` of an instant query's answer: vector, matrix, scalar or string."""
    if isinstance(value, Scalar):
        t, v = format_timestamps(np.array([time]))[0], format_values(value.values[:1])[0]
        return f'{{"resultType":"scalar","result":[{t},"{v}"]}}'
    if isinstance(value, String):
        t = format_timestamps(np.array([time]))[0]
        return f'{{"resultType":"string","result":[{t},{json.dumps(value.value)}]}}'
    if isinstance(value, RangeVector):
        return '{"resultType":"matrix","result":' + _range_vector(value, limit) + "}"
    if value.has_histograms:
        return '{"resultType":"vector","result":' + _instant_histograms(value, time, limit) + "}"
    present = np.asarray(value.present)[:, 0]
    rows = np.flatnonzero(present)
    rows = _limited(rows, limit)
    labels = value.labels[pl.Series(rows)] if len(rows) != value.labels.height else value.labels
    values = np.asarray(value.values)[rows, 0]
    result = _series_list(
        metric_objects(labels),
        np.arange(len(rows) + 1, dtype=np.int64),
        np.full(len(rows), time, dtype=np.int64),
        values,
        many=False,
    )
    return '{"resultType":"vector","result":' + result + "}"


def _instant_histograms(value: InstantVector, time: int, limit: int) -> str:
    """An instant vector's float and histogram samples, in the vector's order."""
    from tsdb_arrow.server.prom_json_histograms import instant_samples

    assert value.hist is not None
    hist = np.asarray(value.hist)[:, 0]
    present = np.asarray(value.present)[:, 0] & (hist < 0)
    rows = _limited(np.flatnonzero(present | (hist >= 0)), limit)
    labels = value.labels[pl.Series(rows)]
    return instant_samples(
        metric_objects(labels), np.full(len(rows), time, dtype=np.int64),
        np.asarray(value.values)[rows, 0], hist[rows], value.pool,
    )


def _window(ts: np.ndarray, offsets: np.ndarray, end: int, rng: int) -> tuple[np.ndarray, ...]:
    """Which samples lie in ``(end - rng, end]``, and how many per series."""
    inside = (ts > end - rng) & (ts <= end)
    running = np.concatenate(([0], np.cumsum(inside, dtype=np.int64)))
    return inside, running[offsets[1:]] - running[offsets[:-1]]


def _range_histograms(value: RangeVector, limit: int) -> str:
    """A range vector with histogram samples: its series sorted by labels, each with its
    float and histogram samples in the window."""
    from tsdb_arrow.server.prom_json_histograms import matrix_series

    h = value.hists
    assert h is not None
    end = int(value.window_ends[0])
    f_in, f_counts = _window(np.asarray(value.timestamps), value.offsets, end, value.range)
    h_in, h_counts = _window(h.timestamps, h.offsets, end, value.range)
    order = _sorted(value.labels)
    order = _limited(order[(f_counts + h_counts)[order] > 0], limit)
    rank = np.full(len(value), -1, np.int64)
    rank[order] = np.arange(len(order))
    f_owner = np.repeat(rank, np.diff(value.offsets))
    h_owner = np.repeat(rank, np.diff(h.offsets))
    f_keep = np.flatnonzero(f_in & (f_owner >= 0))
    h_keep = np.flatnonzero(h_in & (h_owner >= 0))
    f_keep = f_keep[np.argsort(f_owner[f_keep], kind="stable")]
    h_keep = h_keep[np.argsort(h_owner[h_keep], kind="stable")]
    return matrix_series(
        metric_objects(value.labels[pl.Series(order)]),
        f_owner[f_keep], np.asarray(value.timestamps)[f_keep], np.asarray(value.values)[f_keep],
        h_owner[h_keep], h.timestamps[h_keep], h.rows[h_keep], h.pool,
    )


def _step_histograms(value: InstantVector, times: np.ndarray, limit: int) -> str:
    """A range query's matrix when the vector holds histogram samples."""
    from tsdb_arrow.server.prom_json_histograms import matrix_series

    assert value.hist is not None
    is_h = np.asarray(value.hist) >= 0
    is_f = np.asarray(value.present) & ~is_h
    counts = (is_f | is_h).sum(axis=1)
    order = _sorted(value.labels)
    order = _limited(order[counts[order] > 0], limit)
    f_rows, f_cols = np.nonzero(is_f[order])
    h_rows, h_cols = np.nonzero(is_h[order])
    return matrix_series(
        metric_objects(value.labels[pl.Series(order)]),
        f_rows, times[f_cols], np.asarray(value.values)[order][f_rows, f_cols],
        h_rows, times[h_cols], np.asarray(value.hist)[order][h_rows, h_cols], value.pool,
    )


def _range_vector(value: RangeVector, limit: int) -> str:
    """A range vector's samples in the window of its (only) step, series sorted by labels."""
    if value.hists is not None:
        return _range_histograms(value, limit)
    end = int(value.window_ends[0])
    offsets = np.asarray(value.offsets, dtype=np.int64)
    ts = np.asarray(value.timestamps)
    inside = (ts > end - value.range) & (ts <= end)
    running = np.concatenate(([0], np.cumsum(inside, dtype=np.int64)))
    counts = running[offsets[1:]] - running[offsets[:-1]]
    return _matrix(
        value.labels, _starts(counts), ts[inside], np.asarray(value.values)[inside], limit
    )


def _matrix(
    labels: pl.DataFrame, starts: np.ndarray, ms: np.ndarray, values: np.ndarray, limit: int
) -> str:
    """Series that have samples, sorted by their label sets; series i's samples are
    ``[starts[i], starts[i+1])``, in time order."""
    counts = np.diff(starts)
    order = _sorted(labels)
    order = _limited(order[counts[order] > 0], limit)
    new_counts = counts[order]
    new_starts = _starts(new_counts)
    gather = np.repeat(starts[order] - new_starts[:-1], new_counts) + np.arange(new_starts[-1])
    return _series_list(
        metric_objects(labels[pl.Series(order)]),
        new_starts,
        ms[gather],
        values[gather],
        many=True,
    )


def encode_range(value: Value, steps: Steps, *, limit: int = 0) -> str | memoryview | Stream:
    """The ``data`` of a range query's answer: always a matrix (a scalar is one series without
    labels); a vector's matrix as a view of the kernel's buffer, copied once, by ``success``,
    or as a ``Stream`` of pieces written while the first ones are sent when it is large."""
    times = steps.times
    if isinstance(value, Scalar):
        result = _series_list(
            pl.Series(["{}"]),
            np.array([0, len(times)], dtype=np.int64),
            times,
            np.asarray(value.values),
            many=True,
        )
        return '{"resultType":"matrix","result":' + result + "}"
    assert isinstance(value, InstantVector)
    if value.has_histograms:
        return '{"resultType":"matrix","result":' + _step_histograms(value, times, limit) + "}"
    return _step_matrix(value, times, limit)


class Stream:
    """A body written while it is sent: iterating encodes and yields its pieces in order
    (each a bytes-like object the caller may keep); ``join`` gives the whole body."""

    def __init__(self, pieces: Iterable[bytes | memoryview]) -> None:
        self._pieces = iter(pieces)

    def __iter__(self) -> Iterator[bytes | memoryview]:
        return self._pieces

    def join(self) -> bytes:
        """The whole body at once (tests, and clients that cannot take it in pieces)."""
        return b"".join(self._pieces)

    def close(self) -> None:
        """Stop: the pieces not written yet never are."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


_MATRIX_HEAD = b'{"resultType":"matrix","result":['
#: Bytes around each series besides its metric object: ``{"metric":``, ``,"values":[``, ``]}``
#: and the comma before it.
_SERIES_BYTES = len(b'{"metric":,"values":[]},')
#: A range matrix whose upper bound is larger than this is written and sent in pieces of
#: about ``PIECE_BYTES``: the client reads the first series while the later ones are written.
STREAM_BYTES = 8 * 2**20
PIECE_BYTES = 4 * 2**20


def _step_prefixes(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[t,"`` of every step: a range matrix's series share the steps, so each timestamp is
    formatted once, not once per sample."""
    texts = pl.DataFrame({"t": format_timestamps(times)}).select(
        pl.concat_str(pl.lit("["), pl.col("t"), pl.lit(',"'))
    )
    return _strings(texts.to_series())


def _buffer(size: int) -> np.ndarray:
    """``size`` writable bytes on transparent huge pages where the OS offers them: a body of
    hundreds of MB faults in 2 MiB pages, not 4 KiB ones (~5 µs each on a VM)."""
    if size < 1 << 22 or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.empty(size, dtype=np.uint8)
    pages = mmap.mmap(-1, size)
    pages.madvise(mmap.MADV_HUGEPAGE)
    return np.frombuffer(pages, dtype=np.uint8)


def _step_matrix(value: InstantVector, times: np.ndarray, limit: int) -> memoryview | Stream:
    """A range query's matrix: series with values, sorted by label set, written by the
    ``step_matrix`` kernel into buffers sized by an upper bound, in one piece or several."""
    from tsdb_arrow.server.float_text import MAX_BYTES

    present = np.ascontiguousarray(value.present, dtype=np.bool_)
    bits = _bits(value.values)
    counts = present.sum(axis=1, dtype=np.int64)
    order = _sorted(value.labels)
    rows = np.ascontiguousarray(_limited(order[counts[order] > 0], limit), dtype=np.int64)
    if len(rows) == 0:
        return memoryview(_MATRIX_HEAD + b"]}")
    m_offsets, m_data = _strings(metric_objects(value.labels[pl.Series(rows)]))
    p_offsets, p_data = _step_prefixes(times)
    per_point = int(np.diff(p_offsets).max()) + MAX_BYTES + 3  # prefix, value, '"],'
    bounds = _SERIES_BYTES + np.diff(m_offsets) + counts[rows] * per_point
    ends = np.cumsum(bounds)
    args = (m_offsets, m_data, rows)
    if int(ends[-1]) <= STREAM_BYTES:
        return _matrix_piece(args, 0, len(rows), bits, present, p_offsets, p_data, int(ends[-1]))
    return Stream(_matrix_pieces(args, ends, bits, present, p_offsets, p_data))


def _matrix_pieces(
    args: tuple[np.ndarray, ...], ends: np.ndarray, bits: np.ndarray, present: np.ndarray,
    p_offsets: np.ndarray, p_data: np.ndarray,
) -> Iterator[memoryview]:  # fmt: skip
    """The matrix's pieces of about ``PIECE_BYTES`` each, a series never split."""
    first = 0
    while first < len(ends):
        done = int(ends[first - 1]) if first else 0
        last = max(first + 1, int(np.searchsorted(ends, done + PIECE_BYTES, side="right")))
        bound = int(ends[last - 1]) - done
        yield _matrix_piece(args, first, last, bits, present, p_offsets, p_data, bound)
        first = last


def _matrix_piece(
    args: tuple[np.ndarray, ...], first: int, last: int, bits: np.ndarray, present: np.ndarray,
    p_offsets: np.ndarray, p_data: np.ndarray, bound: int,
) -> memoryview:  # fmt: skip
    """Series ``rows[first:last]`` written by the kernel; the matrix's head before the first
    series, its tail after the last."""
    from tsdb_arrow.server.json_kernels import step_matrix

    rows = args[2]
    head = _MATRIX_HEAD if first == 0 else b""
    tail = b"]}" if last == len(rows) else b""
    out = _buffer(len(head) + bound + len(tail))
    out[: len(head)] = np.frombuffer(head, dtype=np.uint8)
    o = step_matrix(*args, first, last, bits, present, p_offsets, p_data, out, len(head))
    out[o : o + len(tail)] = np.frombuffer(tail, dtype=np.uint8)
    return memoryview(out[: o + len(tail)]).toreadonly()


def warm_up() -> None:
    """Encode a tiny vector and matrix: the kernels load (or compile, on a first install)
    before the first query's answer waits for them."""
    labels = pl.DataFrame({"__name__": ["warm_up"]})
    value = InstantVector(labels, np.array([[0.5, 1e-7]]), np.array([[True, True]]))
    encode_range(value, Steps(0, 1000, 1000))
    encode_instant(InstantVector(labels, np.array([[0.5]]), np.array([[True]])), 0)


def label_sets(series: pl.DataFrame) -> str:
    """``[{...}, ...]``: the label sets of ``series`` (``/api/v1/series``), sorted."""
    labels = series.select(c for c in series.columns if series.schema[c] == pl.String)
    if labels.height == 0:
        return "[]"
    objects = metric_objects(labels[pl.Series(_sorted(labels))])
    return "[" + pl.DataFrame({"m": objects}).select(pl.col("m").str.join(",")).item() + "]"


def strings(items: Sequence[str]) -> str:
    """A JSON array of strings (label names, label values)."""
    return json.dumps(list(items), ensure_ascii=False, separators=(",", ":"))


def json_object(obj: dict[str, Any]) -> str:
    """A small JSON object (build info, metadata), compact."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def success(
    data: str | bytes | memoryview | Stream, warnings: Sequence[str] = (),
    infos: Sequence[str] = (),
) -> bytes | Stream:  # fmt: skip
    """The success envelope around an encoded ``data`` (with Prometheus 3's ``infos``); a
    ``Stream`` stays one, the envelope its first and last pieces."""
    extra = ',"warnings":' + strings(warnings) if warnings else ""
    extra += ',"infos":' + strings(infos) if infos else ""
    if isinstance(data, str):
        return ('{"status":"success","data":' + data + extra + "}").encode()
    if isinstance(data, Stream):
        return Stream(_enveloped(data, (extra + "}").encode()))
    return b"".join((b'{"status":"success","data":', data, (extra + "}").encode()))


def _enveloped(data: Stream, tail: bytes) -> Iterator[bytes | memoryview]:
    yield b'{"status":"success","data":'
    yield from data
    yield tail


def error(error_type: str, message: str) -> bytes:
    """The error envelope Prometheus answers with (``errorType`` and ``error``)."""
    return json.dumps(
        {"status": "error", "errorType": error_type, "error": message},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
