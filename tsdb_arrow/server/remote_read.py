"""``POST /api/v1/read``: Prometheus remote read 1.0, answered with samples (snappy protobuf):
float samples, then histogram samples as Prometheus' native histograms.

Each query's matchers select series from the database over ``[start, end]``; the
``ReadResponse`` is encoded by a numba kernel straight from the selected frame (labels once per
series, samples as they come), not message object by message object. Streamed chunks are not
offered: clients that accept samples (every Prometheus) get samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from tsdb_arrow.errors import SelectorError
from tsdb_arrow.jit import njit
from tsdb_arrow.model import HISTOGRAM, TIMESTAMP, VALUE
from tsdb_arrow.server.prom_api import Answer
from tsdb_arrow.server.remote_write import _text, unsnappy

if TYPE_CHECKING:
    from tsdb_arrow.database import Database

CONTENT = (
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
)


@njit(cache=True, nogil=True, inline="always")
def _vlen(v):
    n = 1
    while v >= 128:
        v >>= 7
        n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def _put(out, o, v):
    while v >= 128:
        out[o] = (v & 127) | 128
        v >>= 7
        o += 1
    out[o] = v
    return o + 1


@njit(cache=True, nogil=True, inline="always")
def _labels_size(i, name_ranges, ranges):
    """Bytes of series ``i``'s Label messages, tags included."""
    body = 0
    for j in range(ranges.shape[1]):
        if ranges[i, j, 0] < 0:
            continue
        nl = name_ranges[j, 1] - name_ranges[j, 0]
        vl = ranges[i, j, 1] - ranges[i, j, 0]
        label = 1 + _vlen(nl) + nl + 1 + _vlen(vl) + vl
        body += 1 + _vlen(label) + label
    return body


@njit(cache=True, nogil=True, inline="always")
def _write_labels(i, names, name_ranges, data, ranges, out, o):
    for j in range(ranges.shape[1]):
        if ranges[i, j, 0] < 0:
            continue
        n0, n1 = name_ranges[j, 0], name_ranges[j, 1]
        v0, v1 = ranges[i, j, 0], ranges[i, j, 1]
        label = 1 + _vlen(n1 - n0) + (n1 - n0) + 1 + _vlen(v1 - v0) + (v1 - v0)
        out[o] = 0x0A
        o = _put(out, o + 1, label)
        out[o] = 0x0A
        o = _put(out, o + 1, n1 - n0)
        for k in range(n0, n1):
            out[o] = names[k]
            o += 1
        out[o] = 0x12
        o = _put(out, o + 1, v1 - v0)
        for k in range(v0, v1):
            out[o] = data[k]
            o += 1
    return o


@njit(cache=True, nogil=True)
def _encode(starts, names, name_ranges, data, ranges, ts, bits, out, fill):
    """Size (``fill`` False) or write the TimeSeries messages of a QueryResult's field 1.

    Series i has samples [starts[i], starts[i+1]) and label j's value data[ranges[i, j, 0]:
    ranges[i, j, 1]] (start -1: absent); label names are names[name_ranges[j]].
    """
    o = 0
    for i in range(starts.shape[0] - 1):
        body = _labels_size(i, name_ranges, ranges)
        for k in range(starts[i], starts[i + 1]):
            sample = 9 + 1 + _vlen(np.uint64(ts[k]))
            body += 1 + _vlen(sample) + sample
        if not fill:
            o += 1 + _vlen(body) + body
            continue
        out[o] = 0x0A
        o = _put(out, o + 1, body)
        o = _write_labels(i, names, name_ranges, data, ranges, out, o)
        for k in range(starts[i], starts[i + 1]):
            t = np.uint64(ts[k])
            out[o] = 0x12
            out[o + 1] = 9 + 1 + _vlen(t)
            out[o + 2] = 0x09
            b = bits[k]
            for s in range(8):
                out[o + 3 + s] = (b >> np.uint64(8 * s)) & np.uint64(255)
            out[o + 11] = 0x10
            o = _put(out, o + 12, t)
    return o


@njit(cache=True, nogil=True, inline="always")
def _zz(v):
    return np.uint64((v << 1) ^ (v >> 63))


@njit(cache=True, nogil=True, inline="always")
def _deltas_size(counts, lo, hi):
    """Bytes of the packed deltas of ``counts[lo:hi]`` (without tag and length)."""
    packed = 0
    previous = np.int64(0)
    for k in range(lo, hi):
        c = np.int64(counts[k])
        packed += _vlen(_zz(c - previous))
        previous = c
    return packed


@njit(cache=True, nogil=True, inline="always")
def _put_double(out, o, v):
    b = np.array([v]).view(np.uint64)[0]
    for s in range(8):
        out[o + s] = (b >> np.uint64(8 * s)) & np.uint64(255)
    return o + 8


@njit(cache=True, nogil=True)
def _histogram_size(h, scale, count, zero, p_off, p_at, p_counts, n_off, n_at, n_counts, ts):
    """Bytes of histogram sample ``h``'s Histogram message (without its own tag and length)."""
    size = 1 + _vlen(np.uint64(count[h])) + 9 + 1 + _vlen(_zz(np.int64(scale[h]))) + 9
    size += 1 + _vlen(np.uint64(zero[h])) + 1 + _vlen(np.uint64(ts[h]))
    for side in range(2):
        off = p_off[h] if side == 0 else n_off[h]
        at = p_at if side == 0 else n_at
        counts = p_counts if side == 0 else n_counts
        lo, hi = at[h], at[h + 1]
        if hi == lo:
            continue
        span = 1 + _vlen(_zz(np.int64(off) + 1)) + 1 + _vlen(np.uint64(hi - lo))
        packed = _deltas_size(counts, lo, hi)
        size += 1 + _vlen(np.uint64(span)) + span + 1 + _vlen(np.uint64(packed)) + packed
    return size


@njit(cache=True, nogil=True)
def _encode_histograms(starts, names, name_ranges, data, ranges, ts, scale, count, zero, zt,
                       sums, p_off, p_at, p_counts, n_off, n_at, n_counts, out, fill):  # fmt: skip
    """As ``_encode``, with each series' histogram samples as Prometheus ``Histogram``
    messages (field 4): integer counts, one span per side over its dense buckets (our bucket
    i is Prometheus' i + 1), the counts as packed deltas."""
    o = 0
    for i in range(starts.shape[0] - 1):
        body = _labels_size(i, name_ranges, ranges)
        for h in range(starts[i], starts[i + 1]):
            m = _histogram_size(h, scale, count, zero, p_off, p_at, p_counts, n_off, n_at, n_counts,
                                ts)  # fmt: skip
            body += 1 + _vlen(np.uint64(m)) + m
        if not fill:
            o += 1 + _vlen(body) + body
            continue
        out[o] = 0x0A
        o = _put(out, o + 1, body)
        o = _write_labels(i, names, name_ranges, data, ranges, out, o)
        for h in range(starts[i], starts[i + 1]):
            m = _histogram_size(h, scale, count, zero, p_off, p_at, p_counts, n_off, n_at, n_counts,
                                ts)  # fmt: skip
            out[o] = 0x22
            o = _put(out, o + 1, np.uint64(m))
            out[o] = 0x08
            o = _put(out, o + 1, np.uint64(count[h]))
            out[o] = 0x19
            o = _put_double(out, o + 1, sums[h])
            out[o] = 0x20
            o = _put(out, o + 1, _zz(np.int64(scale[h])))
            out[o] = 0x29
            o = _put_double(out, o + 1, zt[h])
            out[o] = 0x30
            o = _put(out, o + 1, np.uint64(zero[h]))
            for side in range(2):  # negative (fields 8, 9) before positive (11, 12)
                neg = side == 0
                off = n_off[h] if neg else p_off[h]
                at = n_at if neg else p_at
                counts = n_counts if neg else p_counts
                lo, hi = at[h], at[h + 1]
                if hi == lo:
                    continue
                span = 1 + _vlen(_zz(np.int64(off) + 1)) + 1 + _vlen(np.uint64(hi - lo))
                out[o] = 0x42 if neg else 0x5A
                o = _put(out, o + 1, np.uint64(span))
                out[o] = 0x08
                o = _put(out, o + 1, _zz(np.int64(off) + 1))
                out[o] = 0x10
                o = _put(out, o + 1, np.uint64(hi - lo))
                packed = _deltas_size(counts, lo, hi)
                out[o] = 0x4A if neg else 0x62
                o = _put(out, o + 1, np.uint64(packed))
                previous = np.int64(0)
                for k in range(lo, hi):
                    c = np.int64(counts[k])
                    o = _put(out, o, _zz(c - previous))
                    previous = c
            out[o] = 0x78
            o = _put(out, o + 1, np.uint64(ts[h]))
    return o


def _series_labels(
    frame: pl.DataFrame, labels: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Series runs of a frame sorted by series, and their labels as byte ranges: (starts,
    names, name ranges, data, ranges) as ``_encode`` reads them."""
    run = frame.select(pl.struct(labels).rle_id().alias("r"))["r"].to_numpy() if labels else None
    if run is None:
        starts = np.array([0, frame.height], dtype=np.int64)
    else:
        starts = np.concatenate(([0], np.flatnonzero(np.diff(run)) + 1, [frame.height]))
    firsts = frame[pl.Series(starts[:-1])]
    names = b"".join(c.encode() for c in labels)
    lengths = np.array([len(c.encode()) for c in labels], dtype=np.int64)
    name_ranges = np.stack([np.cumsum(lengths) - lengths, np.cumsum(lengths)], axis=1)
    ranges = np.full((firsts.height, len(labels), 2), -1, dtype=np.int64)
    chunks, base = [], 0
    for j, c in enumerate(labels):  # one pass per label column, not per series
        col = firsts[c].cast(pl.String).to_arrow().cast("large_string")
        valid = col.is_valid().to_numpy(zero_copy_only=False)
        offsets = np.frombuffer(col.buffers()[1], dtype=np.int64)[
            col.offset : col.offset + len(col) + 1
        ]
        raw = np.frombuffer(col.buffers()[2] or b"", dtype=np.uint8)
        lo, hi = offsets[:-1], offsets[1:]
        keep = valid & (hi > lo)
        ranges[keep, j, 0] = lo[keep] + base
        ranges[keep, j, 1] = hi[keep] + base
        chunks.append(raw)
        base += len(raw)
    data = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.uint8)
    name_buf = np.frombuffer(names, dtype=np.uint8) if names else np.empty(0, np.uint8)
    return starts, name_buf, name_ranges, data, ranges


def encode_query_result(frame: pl.DataFrame, histograms: pl.DataFrame | None = None) -> bytes:
    """A ``QueryResult`` of a selected frame (rows sorted by series, then time), and of the
    histogram samples ``select_histograms`` gave for the same query."""
    out = b""
    if frame.height:
        labels = [c for c in frame.columns if c not in (TIMESTAMP, VALUE)]
        series = _series_labels(frame, labels)
        ts = frame[TIMESTAMP].cast(pl.Int64).to_numpy()
        bits = np.ascontiguousarray(frame[VALUE].to_numpy()).view(np.uint64)
        size = _encode(*series, ts, bits, np.empty(0, np.uint8), False)
        buf = np.empty(size, dtype=np.uint8)
        _encode(*series, ts, bits, buf, True)
        out = buf.tobytes()
    if histograms is not None and histograms.height:
        out += _encode_histogram_frame(histograms)
    return out


def _encode_histogram_frame(frame: pl.DataFrame) -> bytes:
    labels = [c for c in frame.columns if c not in (TIMESTAMP, HISTOGRAM)]
    series = _series_labels(frame, labels)
    h = frame[HISTOGRAM].struct
    ints = {n: h.field(n).to_numpy() for n in ("scale", "count", "zero_count")}
    floats = {n: h.field(n).to_numpy() for n in ("zero_threshold", "sum")}
    sides = []
    for side in ("positive", "negative"):
        counts = h.field(f"{side}_counts")
        lengths = counts.list.len().fill_null(0).to_numpy().astype(np.int64)
        at = np.concatenate(([0], np.cumsum(lengths)))
        flat = counts.explode().drop_nulls().to_numpy().astype(np.uint64)
        sides += [h.field(f"{side}_offset").to_numpy().astype(np.int64), at, flat]
    ts = frame[TIMESTAMP].cast(pl.Int64).to_numpy()
    args = (
        *series, ts, ints["scale"].astype(np.int64), ints["count"].astype(np.uint64),
        ints["zero_count"].astype(np.uint64), floats["zero_threshold"], floats["sum"],
        sides[0], sides[1], sides[2], sides[3], sides[4], sides[5],
    )  # fmt: skip
    size = _encode_histograms(*args, np.empty(0, np.uint8), False)
    buf = np.empty(size, dtype=np.uint8)
    _encode_histograms(*args, buf, True)
    return buf.tobytes()


def _selector(matchers: list[tuple[int, str, str]]) -> str:
    from tsdb_arrow.ingest.prompb import MATCH_OPS
    from tsdb_arrow.query.selector import Matcher

    parts = [str(Matcher(name, MATCH_OPS[op], value)) for op, name, value in matchers]
    return "{" + ",".join(parts) + "}"


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 128:
        out.append((v & 127) | 128)
        v >>= 7
    out.append(v)
    return bytes(out)


def receive_read(db: Database, body: bytes, *, max_bytes: int) -> Answer:
    """Answer one remote-read request with the samples of each query."""
    import cramjam
    from google.protobuf.message import DecodeError

    from tsdb_arrow.ingest import prompb

    raw = unsnappy(body, max_bytes)
    if isinstance(raw, Answer):
        return raw
    try:
        request = prompb.ReadRequest.FromString(raw)
    except DecodeError as exc:
        return _text(400, f"the body is not a remote-read ReadRequest: {exc}")
    results = []
    for query in request.queries:  # one per query of the request
        matchers = [(m.type, m.name, m.value) for m in query.matchers]
        if any(not 0 <= op < 4 for op, _, _ in matchers):
            return _text(400, "unknown label matcher type; use EQ, NEQ, RE or NRE")
        selector = _selector(matchers)
        span = {"start": query.start_timestamp_ms, "end": query.end_timestamp_ms}
        try:
            frame = db.select(selector, **span).collect()
            histograms = db.select_histograms(selector, **span).collect()
        except SelectorError as exc:
            return _text(400, str(exc))
        result = encode_query_result(frame, histograms)
        results.append(b"\x0a" + _varint(len(result)) + result)
    payload = bytes(cramjam.snappy.compress_raw(b"".join(results)))
    return Answer(200, payload, CONTENT)
