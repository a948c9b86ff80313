"""Bearer-token authentication shared by every listener (Flight, OTLP HTTP, Prometheus HTTP)."""

from __future__ import annotations

import hmac
from pathlib import Path

from tsdb_arrow.errors import ServerError


def load_token(path: str | Path) -> str:
    """Read the token from ``path`` (surrounding whitespace stripped); it must not be empty."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ServerError(f"cannot read the auth token file {path}: {exc.strerror}") from exc
    if not token:
        raise ServerError(f"the auth token file {path} is empty; put the token in it")
    return token


def bearer_ok(header: str | None, token: str | None) -> bool:
    """True when no token is configured, or ``header`` is ``Bearer <token>`` (constant time)."""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
