"""``POST /api/v1/read``: Prometheus remote read 1.0, answered with samples (snappy protobuf).

Each query's matchers select series from the database over ``[start, end]``; the
``ReadResponse`` is encoded by a numba kernel straight from the selected frame (labels once per
series, samples as they come), not message object by message object. Streamed chunks are not
offered: clients that accept samples (every Prometheus) get samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba as nb
import numpy as np
import polars as pl

from tsdb_arrow.errors import SelectorError
from tsdb_arrow.model import TIMESTAMP, VALUE
from tsdb_arrow.server.prom_api import Answer
from tsdb_arrow.server.remote_write import _text, unsnappy

if TYPE_CHECKING:
    from tsdb_arrow.database import Database

CONTENT = (
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
)


@nb.njit(cache=True, nogil=True, inline="always")
def _vlen(v):
    n = 1
    while v >= 128:
        v >>= 7
        n += 1
    return n


@nb.njit(cache=True, nogil=True, inline="always")
def _put(out, o, v):
    while v >= 128:
        out[o] = (v & 127) | 128
        v >>= 7
        o += 1
    out[o] = v
    return o + 1


@nb.njit(cache=True, nogil=True)
def _encode(starts, names, name_ranges, data, ranges, ts, bits, out, fill):
    """Size (``fill`` False) or write the TimeSeries messages of a QueryResult's field 1.

    Series i has samples [starts[i], starts[i+1]) and label j's value data[ranges[i, j, 0]:
    ranges[i, j, 1]] (start -1: absent); label names are names[name_ranges[j]].
    """
    o = 0
    for i in range(starts.shape[0] - 1):
        body = 0
        for j in range(ranges.shape[1]):
            if ranges[i, j, 0] < 0:
                continue
            nl = name_ranges[j, 1] - name_ranges[j, 0]
            vl = ranges[i, j, 1] - ranges[i, j, 0]
            label = 1 + _vlen(nl) + nl + 1 + _vlen(vl) + vl
            body += 1 + _vlen(label) + label
        for k in range(starts[i], starts[i + 1]):
            sample = 9 + 1 + _vlen(np.uint64(ts[k]))
            body += 1 + _vlen(sample) + sample
        if not fill:
            o += 1 + _vlen(body) + body
            continue
        out[o] = 0x0A
        o = _put(out, o + 1, body)
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


def encode_query_result(frame: pl.DataFrame) -> bytes:
    """A ``QueryResult`` of a selected frame (rows sorted by series, then time)."""
    labels = [c for c in frame.columns if c not in (TIMESTAMP, VALUE)]
    if frame.height == 0:
        return b""
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
    ts = frame[TIMESTAMP].cast(pl.Int64).to_numpy()
    bits = np.ascontiguousarray(frame[VALUE].to_numpy()).view(np.uint64)
    name_buf = np.frombuffer(names, dtype=np.uint8) if names else np.empty(0, np.uint8)
    size = _encode(starts, name_buf, name_ranges, data, ranges, ts, bits, np.empty(0, np.uint8),
                   False)  # fmt: skip
    out = np.empty(size, dtype=np.uint8)
    _encode(starts, name_buf, name_ranges, data, ranges, ts, bits, out, True)
    return out.tobytes()


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
        try:
            frame = db.select(
                _selector(matchers), start=query.start_timestamp_ms, end=query.end_timestamp_ms
            ).collect()
        except SelectorError as exc:
            return _text(400, str(exc))
        result = encode_query_result(frame)
        results.append(b"\x0a" + _varint(len(result)) + result)
    payload = bytes(cramjam.snappy.compress_raw(b"".join(results)))
    return Answer(200, payload, CONTENT)
