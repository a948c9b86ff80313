"""The codec ids a block stores per chunk (uint8). An id never changes meaning and is never reused;
a new layout gets a new id."""

from __future__ import annotations

from enum import IntEnum


class TimestampCodec(IntEnum):
    """How one chunk's int64 timestamps are laid out in its payload (docs/format.md)."""

    PLAIN = 0  #: n x int64 little-endian
    DOD = 1  #: Gorilla delta-of-delta bit stream (Prometheus buckets)
    RLE = 2  #: first timestamp, then runs of equal deltas
    PACKED = 3  #: integer packer: FOR / delta / delta-of-delta / linear, gcd, bit-packed
    PACKED_ZSTD = 4  #: zstd frame of the integer packer with byte-plane fields


class ValueCodec(IntEnum):
    """How one chunk's float64 values are laid out in its payload (docs/format.md)."""

    PLAIN = 0  #: n x float64 bit patterns little-endian
    XOR = 1  #: Gorilla XOR bit stream (Prometheus chunkenc)
    RLE = 2  #: runs of equal bit patterns
    DECIMAL = 3  #: decimal exponent + integer packer on the exact decimal integers
    DECIMAL_ZSTD = 4  #: zstd frame of DECIMAL with byte-plane fields
    PLAIN_ZSTD = 5  #: zstd frame of the byte-transposed float64 bit patterns


#: Bumped when a layout of an existing id would change (it must not: add an id instead).
CODEC_FORMAT_VERSION = 1


def codec_info() -> dict[str, object]:
    """What a block's meta.json records about the codecs its payloads use."""
    return {
        "version": CODEC_FORMAT_VERSION,
        "timestamp": {c.name.lower(): int(c) for c in TimestampCodec},
        "value": {c.name.lower(): int(c) for c in ValueCodec},
    }
