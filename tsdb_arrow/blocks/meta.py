"""Block metadata (``meta.json``): format version, time range, counts, codec ids."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.fs as pafs

from tsdb_arrow.errors import CorruptBlockError

FORMAT_NAME = "tsdb-arrow-block"
FORMAT_VERSION = 1
META_FILE = "meta.json"
SERIES_FILE = "series.parquet"
CHUNKS_FILE = "chunks.parquet"
TMP_SUFFIX = ".tmp"  # a block directory being written; renamed without it when complete


@dataclass(frozen=True)
class BlockMeta:
    """What ``meta.json`` records about one block directory."""

    id: str
    seq: int  # write order; among overlapping blocks the higher seq wins
    min_time: int
    max_time: int
    num_samples: int
    num_series: int
    num_chunks: int
    chunk_samples: int
    codecs: dict[str, Any] = field(default_factory=dict)
    num_histograms: int = 0  # histogram samples in histograms.parquet (absent when 0)
    # Compaction: 1 for a flushed block, 1 + the highest input level for a merged one; and the
    # ids of the blocks a merged block replaces (any of them still present is obsolete).
    level: int = 1
    sources: tuple[str, ...] = ()
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))  # a list in meta.json

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, fs: pafs.FileSystem, block_dir: str) -> BlockMeta:
        path = f"{block_dir}/{META_FILE}"
        try:
            with fs.open_input_stream(path) as f:
                raw = json.loads(f.read().decode())
        except (OSError, ValueError) as exc:
            raise CorruptBlockError(f"cannot read {path}: {exc}") from exc
        if raw.get("format") != FORMAT_NAME:
            raise CorruptBlockError(
                f"{path} is not a tsdb-arrow block (format={raw.get('format')!r})"
            )
        if raw.get("version") != FORMAT_VERSION:
            raise CorruptBlockError(
                f"{path} has block format version {raw.get('version')}; this tsdb-arrow reads "
                f"version {FORMAT_VERSION}: upgrade tsdb-arrow"
            )
        try:
            return cls(**raw)
        except TypeError as exc:
            raise CorruptBlockError(f"{path} has unexpected fields: {exc}") from exc
