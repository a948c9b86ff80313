"""Chunk codecs: each chunk's timestamps and values are stored as two binary payloads, each
encoded by whichever codec is smallest for that chunk; the codec id (uint8) is kept per chunk.

The byte layout of every codec is written up in docs/format.md ("Chunk payload codecs").
"""

from __future__ import annotations

from tsdb_arrow.blocks.codecs.ids import (
    CODEC_FORMAT_VERSION,
    TimestampCodec,
    ValueCodec,
    codec_info,
)
from tsdb_arrow.blocks.codecs.timestamps import (
    decode_timestamps,
    decode_timestamps_into,
    encode_timestamps,
)
from tsdb_arrow.blocks.codecs.values import decode_values, decode_values_into, encode_values

__all__ = [
    # encode / decode many chunks at once
    "encode_timestamps",
    "decode_timestamps",
    "encode_values",
    "decode_values",
    # decode chosen chunks straight into a caller's array
    "decode_timestamps_into",
    "decode_values_into",
    # ids stored per chunk and recorded in meta.json
    "TimestampCodec",
    "ValueCodec",
    "CODEC_FORMAT_VERSION",
    "codec_info",
]
