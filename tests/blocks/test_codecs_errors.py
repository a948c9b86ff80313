"""Codec error paths: unknown ids, truncated or padded payloads, bad arguments -> CodecError."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tsdb_arrow.blocks.codecs import (
    TimestampCodec,
    ValueCodec,
    decode_timestamps,
    decode_values,
    encode_timestamps,
    encode_values,
)
from tsdb_arrow.blocks.codecs.timestamps import encode_timestamps_as
from tsdb_arrow.blocks.codecs.values import encode_values_as
from tsdb_arrow.errors import CodecError

RNG = np.random.default_rng(11)
TS = (1_700_000_000_000 + np.cumsum(RNG.integers(990, 1011, 600))).astype(np.int64)
VALUES = np.round(np.cumsum(RNG.normal(0, 3, 600)), 2) + 0.0
OFFSETS = np.array([0, 200, 600], dtype=np.int64)
COUNTS = np.diff(OFFSETS)
ZSTD_CODECS = {TimestampCodec.PACKED_ZSTD, ValueCodec.DECIMAL_ZSTD, ValueCodec.PLAIN_ZSTD}


def tampered(payloads: pa.Array, chunk: int, change) -> pa.LargeBinaryArray:
    items = payloads.to_pylist()
    items[chunk] = change(items[chunk])
    return pa.array(items, pa.large_binary())


def encoded(kind: str, codec):
    if kind == "ts":
        return encode_timestamps_as(TS, OFFSETS, codec)
    return encode_values_as(VALUES, OFFSETS, codec)


def decode(kind: str, ids, payloads, counts=COUNTS):
    return (decode_timestamps if kind == "ts" else decode_values)(ids, payloads, counts)


ALL = [("ts", c) for c in TimestampCodec] + [("value", c) for c in ValueCodec]


@pytest.mark.parametrize(("kind", "codec"), ALL, ids=[f"{k}-{c.name}" for k, c in ALL])
def test_truncated_payload_names_chunk_and_codec(kind: str, codec) -> None:
    ids, payloads = encoded(kind, codec)
    for cut in (lambda b: b[:-1], lambda b: b[: len(b) // 2], lambda b: b""):
        bad = tampered(payloads, 1, cut)
        with pytest.raises(CodecError, match=f"chunk 1 \\(codec id {int(codec)}\\)"):
            decode(kind, ids, bad)


@pytest.mark.parametrize(
    ("kind", "codec"),
    [a for a in ALL if a[1] not in ZSTD_CODECS],
    ids=[f"{k}-{c.name}" for k, c in ALL if c not in ZSTD_CODECS],
)
def test_trailing_bytes_are_corruption(kind: str, codec) -> None:
    ids, payloads = encoded(kind, codec)
    bad = tampered(payloads, 0, lambda b: b + b"\x00")
    with pytest.raises(CodecError, match="chunk 0 .*corrupt"):
        decode(kind, ids, bad)


@pytest.mark.parametrize(("kind", "codec"), ALL, ids=[f"{k}-{c.name}" for k, c in ALL])
def test_count_larger_than_payload_is_an_error(kind: str, codec) -> None:
    ids, payloads = encoded(kind, codec)
    with pytest.raises(CodecError, match="chunk 1"):
        decode(kind, ids, payloads, COUNTS + np.array([0, 7]))


@pytest.mark.parametrize("kind", ["ts", "value"])
def test_unknown_codec_id(kind: str) -> None:
    ids, payloads = encoded(kind, None)
    ids = ids.copy()
    ids[1] = 200
    with pytest.raises(CodecError, match="chunk 1 \\(codec id 200\\): unknown codec id"):
        decode(kind, ids, payloads)


def test_corrupt_zstd_frame() -> None:
    ids, payloads = encode_values_as(VALUES, OFFSETS, ValueCodec.DECIMAL_ZSTD)
    bad = tampered(payloads, 0, lambda b: b[:4] + bytes(len(b) - 4))
    with pytest.raises(CodecError, match="value chunk 0 \\(codec id 4\\)"):
        decode_values(ids, bad, COUNTS)


def test_corrupt_header_fields() -> None:
    ids, payloads = encode_timestamps_as(TS, OFFSETS, TimestampCodec.PACKED)
    bad = tampered(payloads, 0, lambda b: b"\x09" + b[1:])  # mode 9 does not exist
    with pytest.raises(CodecError, match="chunk 0 .*corrupt"):
        decode_timestamps(ids, bad, COUNTS)
    ids, payloads = encode_values_as(VALUES, OFFSETS, ValueCodec.DECIMAL)
    bad = tampered(payloads, 1, lambda b: b"\x1f" + b[1:])  # exponent 31 > 18
    with pytest.raises(CodecError, match="chunk 1 .*corrupt"):
        decode_values(ids, bad, COUNTS)


def test_decode_argument_errors() -> None:
    ids, payloads = encode_timestamps(TS, OFFSETS)
    with pytest.raises(CodecError, match="one entry per chunk"):
        decode_timestamps(ids[:1], payloads, COUNTS)
    with pytest.raises(CodecError, match="chunk 1 has sample count 0"):
        decode_timestamps(ids, payloads, np.array([200, 0]))
    with pytest.raises(CodecError, match="binary or large_binary"):
        decode_timestamps(ids, pa.array(["a", "b"]), COUNTS)
    with pytest.raises(CodecError, match="null"):
        decode_timestamps(ids, pa.array([payloads[0].as_py(), None], pa.large_binary()), COUNTS)


def test_encode_argument_errors() -> None:
    with pytest.raises(CodecError, match="1-D int64"):
        encode_timestamps(TS.astype(np.float64), OFFSETS)
    with pytest.raises(CodecError, match="1-D float64"):
        encode_values(VALUES.astype(np.float32), OFFSETS)
    with pytest.raises(CodecError, match="chunk 1 is empty"):
        encode_timestamps(TS, np.array([0, 200, 200, 600]))
    with pytest.raises(CodecError, match="end at len"):
        encode_values(VALUES, np.array([0, 500]))
    with pytest.raises(CodecError, match="value chunk 0 is not exactly decimal"):
        encode_values_as(np.array([np.nan, 1.0]), np.array([0, 2]), ValueCodec.DECIMAL)
