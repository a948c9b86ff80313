"""``POST /api/v1/otlp/v1/metrics``: OTLP/HTTP on the Prometheus port, as Prometheus serves it.

The same answers as the OTLP/HTTP listener (``otlp_http.py``): 200 with an
ExportMetricsServiceResponse, 400 with a ``google.rpc.Status`` for a body that cannot be
decoded, 413 over the size limit, 415 for another content type, 503 with ``Retry-After`` when
the head is full; the receiver (and its delta state) is the one the OTLP listeners share.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from tsdb_arrow.server.otlp import OtlpReceiver
from tsdb_arrow.server.otlp_http import (
    JSON,
    PROTOBUF,
    _gunzip,
    _json_to_protobuf,
    _response_json,
    _status,
    _TooLarge,
)
from tsdb_arrow.server.prom_api import Answer


def _fail(status: int, code: int, message: str, as_json: bool, *extra: tuple[str, str]) -> Answer:
    kind = JSON if as_json else PROTOBUF
    return Answer(status, _status(code, message, as_json), (("Content-Type", kind), *extra))


def export_answer(
    receiver: OtlpReceiver, body: bytes, headers: Mapping[str, str], limit: int
) -> Answer:
    """Store one OTLP export request (protobuf or JSON, gzip or not) and answer it."""
    kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    as_json = kind == JSON
    if kind not in (PROTOBUF, JSON):
        return _fail(415, 3, f"unsupported content type {kind!r}; send {PROTOBUF} or {JSON}", False)
    try:
        if headers.get("content-encoding", "").strip().lower() == "gzip":
            body = _gunzip(body, limit)
        if as_json:
            body = _json_to_protobuf(body)
    except _TooLarge:
        return _fail(413, 8, f"the body inflates past the {limit}-byte limit", as_json)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        return _fail(400, 3, f"cannot decode the body: {exc}", as_json)
    outcome = receiver.export(body)
    if outcome.kind == "ok":
        payload = _response_json(outcome.response) if as_json else outcome.response
        return Answer(200, payload, (("Content-Type", JSON if as_json else PROTOBUF),))
    if outcome.kind == "unavailable":
        retry = ("Retry-After", str(max(1, round(outcome.retry_after))))
        return _fail(503, 14, outcome.message, as_json, retry)
    return _fail(400, 3, outcome.message, as_json)
