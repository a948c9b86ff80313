"""Stored chunks that a select received, decoded on the client and kept by their content.

The server sends a select's flushed chunks as they are stored (``flight_wire``); decoding them is
most of what a select costs the client. Like a local database's cache of decoded row groups,
this LRU (bounded in bytes) keeps what was decoded, so that a select run again decodes nothing:
its batches arrive with the same payloads and are found by a digest of them. A digest covers
everything decoding depends on (codec ids, sample counts, payload bytes), so a hit is the
decoded form of exactly these payloads, whatever the server did since.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.blocks.codecs.arrow_io import binary_buffers

if TYPE_CHECKING:
    from tsdb_arrow.query.read import Payloads


class DecodedChunks:
    """Decodes batches of stored chunks, keeping up to ``capacity_bytes`` of them (0: none)."""

    def __init__(self, capacity_bytes: int) -> None:
        self.cache = ChunkCache(capacity_bytes)

    def decode(self, stored: Payloads) -> tuple[np.ndarray, np.ndarray | None]:
        """The batch's timestamps and values (None when it carries none), exact bit patterns;
        read-only arrays, shared with later selects when cached."""
        n = len(stored)
        if self.cache.capacity_bytes == 0:
            return _decode(stored, n)
        both = self.cache.get_or_load(digest(stored), lambda: _decode_joined(stored, n))
        values = both[n:].view(np.float64) if stored.values is not None else None
        return both[:n], values


def digest(stored: Payloads) -> bytes:
    """A 128-bit digest of what decoding ``stored`` depends on."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.int64(len(stored.counts)).tobytes())
    h.update(np.ascontiguousarray(stored.counts, np.int64))
    for ids, payloads in ((stored.ts_ids, stored.timestamps), (stored.value_ids, stored.values)):
        if payloads is None:
            h.update(b"-")
            continue
        h.update(np.ascontiguousarray(ids, np.uint8))
        offsets, data = binary_buffers(payloads)
        h.update(np.ascontiguousarray(offsets - offsets[0]))
        h.update(data[offsets[0] : offsets[-1]])
    return h.digest()


def _decode(stored: Payloads, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    from tsdb_arrow.blocks import codecs
    from tsdb_arrow.query.buffers import pool_empty

    timestamps = pool_empty(n, np.int64)
    codecs.decode_timestamps_into(stored.ts_ids, stored.timestamps, stored.counts, timestamps)
    values = None
    if stored.values is not None:
        values = pool_empty(n, np.float64)
        codecs.decode_values_into(stored.value_ids, stored.values, stored.counts, values)
    return timestamps, values


def _decode_joined(stored: Payloads, n: int) -> np.ndarray:
    """Timestamps, then the values' bit patterns (when sent), in one read-only array."""
    from tsdb_arrow.blocks import codecs
    from tsdb_arrow.query.buffers import pool_empty

    both = pool_empty(2 * n if stored.values is not None else n, np.int64)
    codecs.decode_timestamps_into(stored.ts_ids, stored.timestamps, stored.counts, both[:n])
    if stored.values is not None:
        values = both[n:].view(np.float64)
        codecs.decode_values_into(stored.value_ids, stored.values, stored.counts, values)
    both.setflags(write=False)
    return both
