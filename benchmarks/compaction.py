"""``python -m benchmarks.compaction [FILE ...]``: bytes/sample before and after compaction.

Each file (default: the real data set as ``benchmarks.run`` finds it, and the shipped 15-minute
excerpt) is written into a fresh directory with the default configuration (cache off) in two
ways: in one ``write`` call, and shuffled in ``write_order.SHUFFLED_BATCHES`` batches with a
small ``head_max_bytes`` so that every batch flushes (many overlapping blocks). After the
flush, the directory is closed and its blocks merged as ``blocks.compact`` plans a full
compaction (``newest_time=None``: every range complete, one block per 12 h/48 h range), the
inputs deleted. Bytes are every file under the data directory, as in ``benchmarks.ours``.
The target (issue 8): after compaction, at or below 0.85 x VictoriaMetrics' 0.376 B/sample on
the real data, and both ways of writing end at the same size with the same content.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq

import tsdb_arrow as ta
from benchmarks import ours, write_order
from benchmarks.datasets import REAL_FALLBACK, DataSet, load_real, repo_root
from benchmarks.measure import dir_bytes
from tsdb_arrow.blocks.compact import default_levels, merge_blocks, plan_compaction
from tsdb_arrow.blocks.meta import CHUNKS_FILE, SERIES_FILE
from tsdb_arrow.blocks.reader import Block

VICTORIAMETRICS_REAL = 0.376  # docs/benchmarks.md, the same real data set
TARGET = 0.85 * VICTORIAMETRICS_REAL
SMALL_HEAD = 2**16


def compact_directory(data_dir: Path) -> tuple[int, float]:
    """Merge the blocks of a closed data directory fully; return (merges, seconds)."""
    config = ta.StorageConfig()
    fs = pafs.LocalFileSystem()
    blocks_dir = str(data_dir / "blocks")
    blocks = {
        info.base_name: Block.open(fs, info.path)
        for info in fs.get_file_info(pafs.FileSelector(blocks_dir))
        if info.type == pafs.FileType.Directory
    }
    groups = plan_compaction(
        [b.meta for b in blocks.values()],
        default_levels(config.block_duration),
        block_duration=config.block_duration,
        newest_time=None,
    )
    start = time.perf_counter()
    for group in groups:
        merge_blocks(fs, blocks_dir, [blocks[i] for i in group], chunk_samples=config.chunk_samples)
        for block_id in group:
            blocks[block_id].close()
            fs.delete_dir(f"{blocks_dir}/{block_id}")
    return len(groups), time.perf_counter() - start


def fingerprint(data_dir: Path) -> str:
    """A digest of every block's chunk and series files (not meta.json, which names sources)."""
    digest = hashlib.sha256()
    for block in sorted((data_dir / "blocks").iterdir()):
        for name in (CHUNKS_FILE, SERIES_FILE):
            digest.update((block / name).read_bytes())
    return digest.hexdigest()[:12]


def measure(table, name: str, work: Path) -> list[tuple[str, ...]]:
    """Rows (data set, written as, blocks/bytes per sample before and after, merge time)."""
    rows = []
    prints = []
    ways = (
        ("one call", [table], {}),
        (
            f"{write_order.SHUFFLED_BATCHES} shuffled batches",
            write_order.batches_of(
                write_order.ordered(table, "shuffled"), write_order.SHUFFLED_BATCHES
            ),
            {"head_max_bytes": SMALL_HEAD},
        ),
    )
    for how, batches, extra in ways:
        data_dir = work / f"{name}-{len(batches)}"
        with ta.open(str(data_dir), config=ta.StorageConfig(cache_bytes=0, **extra)) as db:
            for batch in batches:
                db.write(batch)
            db.flush()
            before_blocks = db.stats()["blocks"]
        before = dir_bytes(data_dir)
        merges, seconds = compact_directory(data_dir)
        after = dir_bytes(data_dir)
        with ta.open(str(data_dir)) as db:
            stats = db.stats()
            assert stats["samples"] == table.num_rows, (stats["samples"], table.num_rows)
            after_blocks = stats["blocks"]
        prints.append(fingerprint(data_dir))
        rows.append(
            (
                name,
                how,
                f"{before_blocks}",
                f"{before / table.num_rows:.4f}",
                f"{after_blocks}",
                f"{after / table.num_rows:.4f}",
                f"{after:,}",
                f"{merges} in {seconds:.1f} s",
            )
        )
    same = "identical" if prints[0] == prints[1] else "DIFFERENT"
    rows.append((name, f"chunk and series files of both ways: {same}", *[""] * 6))
    return rows


def main() -> None:
    """Print the table (markdown) for the given files or the default data sets."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.compaction")
    p.add_argument("files", nargs="*", type=Path)
    args = p.parse_args()
    root = repo_root()
    if args.files:
        sets = [(f.stem, pq.read_table(f)) for f in args.files]
    else:
        real = load_real(root)
        sets = [("real", real.table)]
        if "fallback" not in real.source:
            sets.append(("real 15 min", pq.read_table(root / REAL_FALLBACK)))
    with tempfile.TemporaryDirectory(prefix="compaction-") as tmp:
        # numba compiles (or loads) its kernels before anything is timed
        measure(ours.warmup_sample(DataSet("warm-up", sets[0][1], "")), "warm-up", Path(tmp))
        rows = [r for name, table in sets for r in measure(table, name, Path(tmp))]
    header = (
        "data set",
        "written as",
        "blocks before",
        "B/sample before",
        "blocks after",
        "B/sample after",
        "bytes after",
        "merges",
    )
    print(f"target after compaction on the real data: <= {TARGET:.4f} B/sample (0.85 x VM)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
