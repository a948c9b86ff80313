"""Flight servers for tests: a database served on a free loopback port, stopped afterwards."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl

import tsdb_arrow as ta

STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
#: Values whose bits must survive: the stale marker, other NaN payloads, -0.0, infinities.
ODD_BITS = np.array(
    [
        0x7FF0000000000002,  # Prometheus stale marker
        0x7FF8000000000000,  # the usual quiet NaN
        0x7FF8000000000001,  # a NaN payload
        0xFFF8000000000123,  # a negative NaN with a payload
        0x7FF4000000000000,  # a signalling NaN
        0x8000000000000000,  # -0.0
        0x7FF0000000000000,  # +inf
        0xFFF0000000000000,  # -inf
        0x0000000000000001,  # the smallest subnormal
    ],
    dtype=np.uint64,
)


@contextmanager
def flight_server(path: Path, **options) -> Iterator[tuple[ta.Database, ta.Server, str]]:
    """A database at ``path`` served over Flight only; yields (db, server, grpc address)."""
    db = ta.open(path)
    try:
        server = ta.serve(
            db, otlp_grpc="off", otlp_http="off", http="off", flight="127.0.0.1:0", **options
        )
        try:
            yield db, server, f"grpc://{server.addresses['flight']}"
        finally:
            server.stop()
    finally:
        db.close()


def odd_frame(n_series: int = 3, n: int = 50, t0: int = 1_700_000_000_000) -> pl.DataFrame:
    """Samples of ``n_series`` series whose values include every bit pattern of ODD_BITS."""
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**63, size=n_series * n, dtype=np.int64).view(np.uint64)
    for s in range(n_series):  # every series holds every odd pattern
        bits[s * n : s * n + len(ODD_BITS)] = ODD_BITS
    values = bits.view(np.float64)
    return pl.DataFrame(
        {
            "timestamp": np.tile(t0 + np.arange(n, dtype=np.int64) * 1000, n_series),
            "value": values,
            "__name__": ["m"] * (n_series * n),
            "host": np.repeat([f"h{i}" for i in range(n_series)], n),
            "zone": np.repeat([None if i % 2 else f"z{i}" for i in range(n_series)], n),
        }
    )


def value_bits(frame: pl.DataFrame) -> np.ndarray:
    return frame["value"].to_numpy().view(np.uint64)
