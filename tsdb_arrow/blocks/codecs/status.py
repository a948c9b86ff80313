"""Status codes the decode kernels return per chunk (numba kernels cannot raise rich errors)."""

from __future__ import annotations

from tsdb_arrow.errors import CodecError

OK = 0
TRUNCATED = 1  # the payload ends before the samples it must hold
CORRUPT = 2  # a header field is out of range, or bytes are left over after the last sample
UNKNOWN = 3  # the codec id is not one this version knows

MESSAGES = {
    TRUNCATED: "payload is truncated",
    CORRUPT: "payload is corrupt (bad header field or trailing bytes)",
    UNKNOWN: "unknown codec id",
}


def raise_for_status(kind: str, status: int, chunk: int, codec_id: int) -> None:
    """Raise the CodecError for a failed chunk (``kind`` is "timestamp" or "value")."""
    what = MESSAGES.get(status, f"decode failed with status {status}")
    raise CodecError(
        f"{kind} chunk {chunk} (codec id {codec_id}): {what}; the block file is damaged or was "
        "written by a newer tsdb-arrow, restore it from a replica or re-ingest its time range"
    )
