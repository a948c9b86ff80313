"""Chunk codecs: each chunk's timestamps and values are stored as two binary payloads, each
encoded by whichever codec is smallest for that chunk; the codec id (uint8) is kept per chunk.

The byte layout of every codec is written up in docs/format.md ("Chunk payload codecs").

The encode/decode functions are numba kernels: their modules (and numba) are imported on first
use, so that opening a data directory or reading its index costs no compilation or kernel load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tsdb_arrow.blocks.codecs.ids import (
    CODEC_FORMAT_VERSION,
    TimestampCodec,
    ValueCodec,
    codec_info,
)

if TYPE_CHECKING:
    from tsdb_arrow.blocks.codecs.timestamps import (
        decode_timestamps,
        decode_timestamps_into,
        encode_timestamps,
    )
    from tsdb_arrow.blocks.codecs.values import decode_values, decode_values_into, encode_values

# public name -> the module defining it, imported on first access
_KERNELS = {
    "encode_timestamps": "timestamps",
    "decode_timestamps": "timestamps",
    "encode_values": "values",
    "decode_values": "values",
    "decode_timestamps_into": "timestamps",
    "decode_values_into": "values",
}

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


def __getattr__(name: str) -> Any:
    module = _KERNELS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _KERNELS.keys())
