"""Committed reference encodings (input, codec id, bytes) so that the bytes on disk never drift.

Every codec must still produce exactly the committed payloads from the committed inputs, and
decode them back. A change of layout needs a new codec id, never new fixture bytes. To write the
fixtures of a NEW codec id: ``TSDB_WRITE_CODEC_FIXTURES=1 .venv/bin/python -m pytest
tests/blocks/test_codecs_fixtures.py`` (it refuses to overwrite an existing file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tsdb_arrow.blocks.codecs import TimestampCodec, ValueCodec, decode_timestamps, decode_values
from tsdb_arrow.blocks.codecs.timestamps import encode_timestamps_as
from tsdb_arrow.blocks.codecs.values import encode_values_as

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "codecs"
I64 = np.iinfo(np.int64)


def _ts_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(2024)
    jitter = rng.integers(-3, 4, 64) * (rng.random(64) < 0.2)
    regular = 1_795_543_910_397 + 1000 * np.arange(64) + jitter
    extremes = np.array([I64.min, I64.max, 0, -1, I64.max, I64.min + 1, 17, 17, 17, -(2**40)])
    return {
        "regular": (regular.astype(np.int64), np.array([0, 1, 40, 64])),
        "extremes": (extremes.astype(np.int64), np.array([0, 4, 10])),
    }


def _value_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(2025)
    counter = np.cumsum(rng.integers(0, 300, 48)).astype(np.float64) + 1e6
    gauge = np.round(np.cumsum(rng.normal(0, 2, 48)) + 20.0, 2)
    specials = np.array(
        [
            0,
            0x8000000000000000,
            0x7FF0000000000002,
            0x7FF8000000000000,
            0xFFF8000000000001,
            0x7FF0000000000000,
            0xFFF0000000000000,
            1,
            0x000FFFFFFFFFFFFF,
            0x3FF0000000000000,
            0x3FF0000000000000,
            0x3FF0000000000000,
        ],
        dtype=np.uint64,
    ).view(np.float64)
    m = np.cumsum(rng.integers(0, 4000, 24))
    return {
        "decimal": (
            np.concatenate([counter, gauge, np.full(20, 3.25)]),
            np.array([0, 48, 96, 116]),
        ),
        "specials": (specials, np.array([0, 9, 12])),
        "scales": (np.concatenate([m * 0.001, m / 1000 / 1000]), np.array([0, 24, 48])),
    }


def _cases() -> list[tuple[str, str, object, str]]:
    """(kind, codec name or "chooser", codec, case name) of every committed reference."""
    out: list[tuple[str, str, object, str]] = []
    for codec in [None, *TimestampCodec]:
        for case in _ts_cases():
            out.append(
                ("timestamp", codec.name.lower() if codec is not None else "chooser", codec, case)
            )
    for codec in [None, *ValueCodec]:
        for case in _value_cases():
            decimal_only = codec in (ValueCodec.DECIMAL, ValueCodec.DECIMAL_ZSTD)
            if decimal_only and case == "specials":
                continue
            out.append(
                ("value", codec.name.lower() if codec is not None else "chooser", codec, case)
            )
    return out


def _encode(kind: str, codec, case: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[bytes]]:
    if kind == "timestamp":
        samples, offsets = _ts_cases()[case]
        ids, payloads = encode_timestamps_as(samples, offsets, codec)
        raw = samples
    else:
        samples, offsets = _value_cases()[case]
        ids, payloads = encode_values_as(samples, offsets, codec)
        raw = samples.view(np.int64)
    return raw, offsets, ids, [p.as_py() for p in payloads]


def _path(kind: str, name: str) -> Path:
    return FIXTURES / f"{kind}_{name}.json"


@pytest.mark.parametrize(
    ("kind", "name", "codec", "case"), _cases(), ids=[f"{k}-{n}-{c}" for k, n, _, c in _cases()]
)
def test_reference_encoding(kind: str, name: str, codec, case: str) -> None:
    path = _path(kind, name)
    raw, offsets, ids, payloads = _encode(kind, codec, case)
    if not path.is_file() or case not in json.loads(path.read_text()):
        if os.environ.get("TSDB_WRITE_CODEC_FIXTURES") != "1":
            pytest.fail(
                f"no reference encoding {path.name}:{case}; write it with "
                "TSDB_WRITE_CODEC_FIXTURES=1 (only for a new codec id)"
            )
        stored = json.loads(path.read_text()) if path.is_file() else {}
        stored[case] = {
            "samples": [int(v) for v in raw],
            "offsets": [int(o) for o in offsets],
            "codec_ids": [int(i) for i in ids],
            "payloads": [p.hex() for p in payloads],
        }
        FIXTURES.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    ref = json.loads(path.read_text())[case]
    # the committed input is still what the case generator makes
    assert ref["samples"] == [int(v) for v in raw] and ref["offsets"] == [int(o) for o in offsets]
    # encoding it gives the committed ids and bytes
    assert ref["codec_ids"] == [int(i) for i in ids]
    assert ref["payloads"] == [p.hex() for p in payloads]
    # and the committed bytes decode to the committed input
    import pyarrow as pa

    stored = pa.array([bytes.fromhex(h) for h in ref["payloads"]], pa.binary())
    counts = np.diff(np.array(ref["offsets"], dtype=np.int64))
    ref_ids = np.array(ref["codec_ids"], dtype=np.uint8)
    if kind == "timestamp":
        back = decode_timestamps(ref_ids, stored, counts)
    else:
        back = decode_values(ref_ids, stored, counts).view(np.int64)
    assert [int(v) for v in back] == ref["samples"]
