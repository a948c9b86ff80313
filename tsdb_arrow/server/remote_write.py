"""``POST /api/v1/write``: Prometheus remote write 1.0 into the database.

Answers as Prometheus' write handler, so that a sender retries only when a retry can help:
204 once the samples are in the write-ahead log; 400 (never retried) for a body that is not a
snappy-compressed ``WriteRequest`` or samples the database refuses; 413 over the size limit;
415 for remote write 2.0; 503 with ``Retry-After`` when the head is full or the database is
closing (retried).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from tsdb_arrow.errors import BackpressureError, ClosedError, InputError, SeriesCollisionError
from tsdb_arrow.server.prom_api import Answer

log = logging.getLogger("tsdb_arrow.server")

if TYPE_CHECKING:
    from tsdb_arrow.database import Database
    from tsdb_arrow.server.group_write import GroupWriter

TEXT = (("Content-Type", "text/plain; charset=utf-8"),)
RETRY_AFTER = "1"


def _text(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return Answer(status, (message + "\n").encode(), TEXT + headers)


def snappy_length(body: bytes) -> int:
    """The uncompressed length a raw snappy block declares (its leading varint); -1 if none."""
    result = shift = 0
    for i in range(min(len(body), 10)):
        result |= (body[i] & 0x7F) << shift
        if body[i] < 0x80:
            return result
        shift += 7
    return -1


def unsnappy(body: bytes, limit: int) -> bytes | Answer:
    """The raw-snappy ``body`` uncompressed, or the 400/413 answer when it cannot be."""
    import cramjam

    declared = snappy_length(body)
    if declared < 0:
        return _text(400, "the body is not snappy-compressed (raw block format)")
    if declared > limit:
        return _text(413, f"the body uncompresses to {declared} bytes, over the {limit}-byte limit")
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        return _text(400, f"cannot snappy-decompress the body: {exc}")


def receive_write(
    db: Database | GroupWriter,
    body: bytes,
    headers: Mapping[str, str],
    *,
    max_bytes: int,
    on_metadata: Callable[[dict[str, dict[str, str]]], None] | None = None,
) -> Answer:
    """Store one remote-write request through ``db`` (a database, or a group writer over one);
    the answer says whether the sender should retry."""
    from tsdb_arrow.ingest.remote_write import decode_write_request

    kind = headers.get("content-type", "application/x-protobuf")
    if "io.prometheus.write.v2" in kind:
        return _text(415, "remote write 2.0 is not supported; send remote write 1.0")
    encoding = headers.get("content-encoding", "snappy").strip().lower()
    if encoding != "snappy":
        return _text(415, f"unsupported Content-Encoding {encoding!r}; send snappy")
    raw = unsnappy(body, max_bytes)
    if isinstance(raw, Answer):
        return raw
    try:
        decoded = decode_write_request(raw)
    except InputError as exc:
        return _text(400, str(exc))
    if decoded.metadata and on_metadata is not None:
        on_metadata(metadata_entries(decoded.metadata))
    if decoded.histograms_skipped:
        log.warning(
            "remote write: %d native histograms not stored (float counts, custom buckets, or "
            "observations in no bucket)",
            decoded.histograms_skipped,
        )
    try:
        if decoded.table.num_rows:
            db.write(decoded.table)
        if decoded.histogram_table is not None and decoded.histogram_table.num_rows:
            db.write(decoded.histogram_table)
    except (BackpressureError, ClosedError) as exc:
        return _text(503, str(exc), (("Retry-After", RETRY_AFTER),))
    except (InputError, SeriesCollisionError) as exc:
        return _text(400, str(exc))
    return Answer(204, b"")


def metadata_entries(messages: list[bytes]) -> dict[str, dict[str, str]]:
    """``MetricMetadata`` messages as the metadata endpoint shows them (one per metric)."""
    from google.protobuf.message import DecodeError

    from tsdb_arrow.ingest import prompb

    entries: dict[str, dict[str, str]] = {}
    for raw in messages:  # one per metric family, not per sample
        try:
            m = prompb.MetricMetadata.FromString(raw)
        except DecodeError:
            continue
        if not m.metric_family_name:
            continue
        kind = prompb.METRIC_TYPES[m.type] if 0 <= m.type < len(prompb.METRIC_TYPES) else "unknown"
        entries[m.metric_family_name] = {"type": kind, "help": m.help, "unit": m.unit}
    return entries
