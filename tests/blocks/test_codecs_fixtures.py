"""Committed reference encodings (input, codec id, bytes) so that the bytes on disk never drift.

Each file ``tests/fixtures/codecs/{kind}_{codec}.json`` holds named cases: the input samples
(int64 timestamps, or float64 values as their int64 bit patterns), the chunk offsets, and the
codec ids and payloads the encoder made. Encoding the committed input must still give exactly the
committed bytes, and decoding the committed bytes must give back the committed input; nothing is
generated at test time, so a numpy or RNG upgrade cannot move the reference.

A change of layout needs a new codec id, never new fixture bytes. To write the fixtures of a NEW
codec id (the inputs are copied from ``{kind}_chooser.json``):
``TSDB_WRITE_CODEC_FIXTURES=1 .venv/bin/python -m pytest tests/blocks/test_codecs_fixtures.py``
(it never overwrites an existing file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tsdb_arrow.blocks.codecs import TimestampCodec, ValueCodec, decode_timestamps, decode_values
from tsdb_arrow.blocks.codecs.timestamps import encode_timestamps_as
from tsdb_arrow.blocks.codecs.values import encode_values_as
from tsdb_arrow.errors import CodecError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "codecs"
KINDS = {"timestamp": TimestampCodec, "value": ValueCodec}


def _codec(kind: str, name: str) -> TimestampCodec | ValueCodec | None:
    """The codec a fixture file is named after; None for the chooser (smallest per chunk)."""
    return None if name == "chooser" else KINDS[kind][name.upper()]


def _encode(
    kind: str, codec: TimestampCodec | ValueCodec | None, samples: list[int], offsets: list[int]
) -> tuple[list[int], list[str]]:
    """Codec ids and hex payloads of the committed input, chunked at ``offsets``."""
    raw = np.array(samples, dtype=np.int64)
    bounds = np.array(offsets, dtype=np.int64)
    if kind == "timestamp":
        ids, payloads = encode_timestamps_as(raw, bounds, codec)
    else:
        ids, payloads = encode_values_as(raw.view(np.float64), bounds, codec)
    return [int(i) for i in ids], [p.as_py().hex() for p in payloads]


def _decode(kind: str, case: dict) -> list[int]:
    """The committed payloads decoded, as int64 (values as their bit patterns)."""
    stored = pa.array([bytes.fromhex(h) for h in case["payloads"]], pa.binary())
    counts = np.diff(np.array(case["offsets"], dtype=np.int64))
    ids = np.array(case["codec_ids"], dtype=np.uint8)
    if kind == "timestamp":
        back = decode_timestamps(ids, stored, counts)
    else:
        back = decode_values(ids, stored, counts).view(np.int64)
    return [int(v) for v in back]


def _load(kind: str, name: str) -> dict[str, dict]:
    return json.loads((FIXTURES / f"{kind}_{name}.json").read_text())


def _committed() -> list[tuple[str, str, str]]:
    """(kind, codec name, case name) of every committed reference encoding."""
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        kind, name = path.stem.split("_", 1)
        out.extend((kind, name, case) for case in sorted(json.loads(path.read_text())))
    return out


def _names(kind: str) -> list[str]:
    return ["chooser", *(c.name.lower() for c in KINDS[kind])]


def _write_new_codec_fixture(kind: str, name: str) -> None:
    """The cases of the chooser file, encoded with the new codec (refused cases left out)."""
    stored = {}
    for case, ref in _load(kind, "chooser").items():
        try:
            ids, payloads = _encode(kind, _codec(kind, name), ref["samples"], ref["offsets"])
        except CodecError:
            continue
        stored[case] = {
            "samples": ref["samples"],
            "offsets": ref["offsets"],
            "codec_ids": ids,
            "payloads": payloads,
        }
    path = FIXTURES / f"{kind}_{name}.json"
    path.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_codec_has_reference_encodings_of_every_input(kind: str) -> None:
    """Each codec id and the chooser have a fixture file; each file holds every input of the
    chooser file, except those the codec refuses, and the same input under the same name."""
    present = {p.stem.split("_", 1)[1] for p in FIXTURES.glob(f"{kind}_*.json")}
    missing = [n for n in _names(kind) if n not in present]
    if missing and os.environ.get("TSDB_WRITE_CODEC_FIXTURES") == "1":
        for name in missing:
            _write_new_codec_fixture(kind, name)
        missing = []
    assert not missing, (
        f"no reference encodings for {kind} codecs {missing}; write them with "
        "TSDB_WRITE_CODEC_FIXTURES=1 (only for a new codec id)"
    )
    unknown = present - set(_names(kind))
    assert not unknown, f"fixtures of codecs that do not exist: {sorted(unknown)}"
    inputs = _load(kind, "chooser")
    assert len(inputs) >= 2
    for name in _names(kind):
        stored = _load(kind, name)
        for case, ref in inputs.items():
            if case in stored:
                assert stored[case]["samples"] == ref["samples"], f"{name}:{case}"
                assert stored[case]["offsets"] == ref["offsets"], f"{name}:{case}"
            else:
                with pytest.raises(CodecError):
                    _encode(kind, _codec(kind, name), ref["samples"], ref["offsets"])


@pytest.mark.parametrize(
    ("kind", "name", "case"), _committed(), ids=[f"{k}-{n}-{c}" for k, n, c in _committed()]
)
def test_reference_encoding(kind: str, name: str, case: str) -> None:
    """The committed input encodes to the committed ids and bytes, which decode back to it."""
    ref = _load(kind, name)[case]
    codec = _codec(kind, name)
    ids, payloads = _encode(kind, codec, ref["samples"], ref["offsets"])
    assert ids == ref["codec_ids"]
    assert payloads == ref["payloads"]
    if codec is not None:
        assert set(ids) == {int(codec)}
    assert _decode(kind, ref) == ref["samples"]
