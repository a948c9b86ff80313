"""The ExponentialHistogram bytes codec: a fixed 60-byte little-endian header, then the positive
and the negative bucket counts at 1, 2, 4 or 8 bytes each; layout in ``docs/sketches.md``."""

from __future__ import annotations

import struct
from typing import Any, Protocol

import numpy as np

from tsdb_arrow.errors import SketchError
from tsdb_arrow.sketch.counts import exact_sum

# Header of to_bytes: version, scale, count width code, reserved, zero_count, zero_threshold,
# sum, min, max, positive offset and length, negative offset and length.
_HEADER = struct.Struct("<BbBxQdddd iIiI")
_FORMAT_VERSION = 1
_WIDTHS = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<u8"))


class HistogramFields(Protocol):
    """What ``encode`` reads: the fields of an ``ExponentialHistogram``."""

    scale: int
    zero_count: int
    zero_threshold: float
    positive_offset: int
    positive_counts: np.ndarray
    negative_offset: int
    negative_counts: np.ndarray
    sum: float
    min: float
    max: float


def encode(hist: HistogramFields) -> bytes:
    """``hist`` in the compact little-endian encoding; floats bit-exact."""
    pos, neg = hist.positive_counts, hist.negative_counts
    largest = max(int(pos.max()) if pos.size else 0, int(neg.max()) if neg.size else 0)
    code = next(c for c, w in enumerate(_WIDTHS) if largest <= np.iinfo(w).max)
    header = _HEADER.pack(
        _FORMAT_VERSION,
        hist.scale,
        code,
        hist.zero_count,
        hist.zero_threshold,
        hist.sum,
        hist.min,
        hist.max,
        hist.positive_offset,
        pos.size,
        hist.negative_offset,
        neg.size,
    )
    width = _WIDTHS[code]
    return header + pos.astype(width).tobytes() + neg.astype(width).tobytes()


def decode(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The ``ExponentialHistogram`` fields encoded by ``encode`` (validated by the constructor);
    truncated, oversized or unknown-version input -> SketchError."""
    buf = memoryview(data).cast("B")
    if len(buf) < _HEADER.size:
        raise SketchError(
            f"exponential histogram bytes are truncated: {len(buf)} bytes, the header alone "
            f"is {_HEADER.size}; pass the whole value written by to_bytes()"
        )
    (
        version,
        scale,
        code,
        zero_count,
        zero_threshold,
        total_sum,
        lo,
        hi,
        pos_off,
        pos_len,
        neg_off,
        neg_len,
    ) = _HEADER.unpack_from(buf, 0)
    if version != _FORMAT_VERSION:
        raise SketchError(
            f"exponential histogram bytes have format version {version}, this build reads "
            f"version {_FORMAT_VERSION}; upgrade tsdb-arrow to read them"
        )
    if code >= len(_WIDTHS):
        raise SketchError(f"exponential histogram bytes have an unknown count width code {code}")
    width = _WIDTHS[code]
    expected = _HEADER.size + (pos_len + neg_len) * width.itemsize
    if len(buf) != expected:
        raise SketchError(
            f"exponential histogram bytes are {len(buf)} bytes long, the header announces "
            f"{expected}; the value is truncated or has trailing bytes"
        )
    counts = np.frombuffer(buf, dtype=width, offset=_HEADER.size).astype(np.uint64)
    pos, neg = counts[:pos_len], counts[pos_len:]
    return dict(
        scale=scale,
        count=zero_count + exact_sum(pos) + exact_sum(neg),
        zero_count=zero_count,
        zero_threshold=zero_threshold,
        positive_offset=pos_off,
        positive_counts=pos,
        negative_offset=neg_off,
        negative_counts=neg,
        sum=total_sum,
        min=lo,
        max=hi,
    )
