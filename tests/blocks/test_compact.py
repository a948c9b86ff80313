"""Compaction: merged blocks hold exactly the inputs' last writes, written durably; the planner's
groups are safe, bounded and final; obsolete inputs are recognised after a crash."""

from __future__ import annotations

import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tsdb_arrow.blocks import writer
from tsdb_arrow.blocks.cache import ChunkCache
from tsdb_arrow.blocks.compact import (
    default_levels,
    merge_blocks,
    merged_name,
    obsolete_sources,
    plan_compaction,
)
from tsdb_arrow.blocks.histograms import HISTOGRAMS_FILE, HistogramWindow, read_all_histograms
from tsdb_arrow.blocks.meta import CHUNKS_FILE, META_FILE, SERIES_FILE, BlockMeta
from tsdb_arrow.blocks.ranges import overlapping_metas
from tsdb_arrow.blocks.reader import Block
from tsdb_arrow.blocks.tombstones import Tombstones
from tsdb_arrow.errors import ConfigError, CorruptBlockError
from tsdb_arrow.ingest.cut import Window, cut, cut_rows
from tsdb_arrow.model import HISTOGRAM_FIELDS, REF, series_ref
from tsdb_arrow.query.read import T_MAX, T_MIN, Snapshot, iter_samples

STALE_NAN = 0x7FF0000000000002
SPECIAL_BITS = [STALE_NAN, 0x7FF8000000000000, 0xFFF8000000ABCDEF, 0x8000000000000000, 0]
HOUR = 3_600_000
T0 = 1_800_000_000_000
FS = pafs.LocalFileSystem()

# A pool of series: metric name, and a label some series lack (null) so that inputs' series
# tables have different columns.
SERIES = [
    {"__name__": f"m{i % 3}", "zone": ["eu", None, "us-é"][i % 3], "i": str(i)} for i in range(7)
]
SERIES_REFS = np.array([series_ref(s) for s in SERIES], dtype=np.uint64)


def series_table(refs: np.ndarray) -> pa.Table:
    """The series table a flush writes for ``refs``: sorted by ref, labels present only."""
    labels = [SERIES[int(np.flatnonzero(SERIES_REFS == r)[0])] for r in refs.tolist()]
    frame = pl.DataFrame(
        {REF: pl.Series(refs, dtype=pl.UInt64)}
        | {k: pl.Series([d[k] for d in labels], dtype=pl.String) for k in ("__name__", "i", "zone")}
    ).sort(REF)
    present = sorted(c for c in frame.columns if c != REF and frame[c].null_count() < len(frame))
    return frame.select(REF, *present).to_arrow()


def hist_fields(n: int, rng: np.random.Generator) -> pa.Table:
    """``n`` histogram rows, each distinct (``count`` numbers them), floats with NaN payloads."""
    floats = rng.normal(size=(3, n))
    floats.view(np.uint64)[0, ::3] = STALE_NAN
    counts = rng.integers(0, 1 << 40, n).astype(np.uint64)
    cols = {
        "scale": pa.array(rng.integers(-10, 21, n), pa.int8()),
        "count": pa.array(counts, pa.uint64()),
        "zero_count": pa.array(np.zeros(n, np.uint64)),
        "zero_threshold": pa.array(np.full(n, -0.0)),
        "positive_offset": pa.array(rng.integers(-5, 5, n), pa.int32()),
        "positive_counts": pa.array(
            [rng.integers(0, 9, int(k)).tolist() for k in rng.integers(0, 4, n)],
            pa.large_list(pa.uint64()),
        ),
        "negative_offset": pa.array(np.zeros(n, np.int32)),
        "negative_counts": pa.array([[]] * n, pa.large_list(pa.uint64())),
        "sum": pa.array(floats[0]),
        "min": pa.array(floats[1]),
        "max": pa.array(floats[2]),
    }
    return pa.table([cols[f.name] for f in HISTOGRAM_FIELDS], schema=pa.schema(HISTOGRAM_FIELDS))


def bits(table: pa.Table) -> dict[str, list]:
    """A table's columns as comparable lists, floats as their bit patterns (NaN payloads)."""
    out = {}
    for name in table.column_names:
        col = table[name].combine_chunks()
        if pa.types.is_floating(col.type):
            out[name] = col.to_numpy(zero_copy_only=False).view(np.uint64).tolist()
        else:
            out[name] = col.to_pylist()
    return out


@st.composite
def block_specs(draw):
    """1-5 blocks: float rows and histogram rows of random series at overlapping times."""
    n_blocks = draw(st.integers(1, 5))
    seqs = draw(st.permutations(range(1, 40)))[:n_blocks]  # write order unrelated to file order
    specs = []
    for seq in seqs:
        n = draw(st.integers(0, 40))
        n_h = draw(st.integers(0 if n else 1, 5))
        specs.append(
            {
                "seq": seq,
                "series": draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)),
                "times": draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)),
                "values": draw(
                    st.lists(
                        st.one_of(
                            st.sampled_from(SPECIAL_BITS),
                            st.floats(width=64, allow_nan=False).map(
                                lambda x: int(np.float64(x).view(np.uint64))
                            ),
                        ),
                        min_size=n,
                        max_size=n,
                    )
                ),
                "h_series": draw(st.lists(st.integers(0, 6), min_size=n_h, max_size=n_h)),
                "h_times": draw(st.lists(st.integers(0, 30), min_size=n_h, max_size=n_h)),
            }
        )
    return specs


def write_spec(blocks_dir: str, spec: dict, chunk_samples: int, rng) -> dict:
    """Write one block as a flush would (rows sorted, last write of a pair kept); return the
    rows it holds."""
    refs = SERIES_REFS[np.array(spec["series"], dtype=np.int64)]
    ts = np.array(spec["times"], dtype=np.int64) + T0
    vals = np.array(spec["values"], dtype=np.uint64).view(np.float64)
    windows = cut(refs, ts, vals, 1 << 50)
    window = windows[0] if windows else None
    h_refs = SERIES_REFS[np.array(spec["h_series"], dtype=np.int64)]
    h_ts = np.array(spec["h_times"], dtype=np.int64) + T0
    fields = hist_fields(len(h_refs), rng)
    rows = cut_rows(h_refs, h_ts, 1 << 50)
    hist = None
    if rows:
        idx = rows[0][1]
        hist = HistogramWindow(0, h_refs[idx], h_ts[idx], fields.take(pa.array(idx)))
    held = np.union1d(
        window.refs if window is not None else np.empty(0, np.uint64),
        hist.refs if hist is not None else np.empty(0, np.uint64),
    )
    writer.write_block(
        FS,
        blocks_dir,
        spec["seq"],
        series_table(held),
        chunk_samples,
        window=window,
        histograms=hist,
    )
    return {"seq": spec["seq"], "window": window, "hist": hist}


def dead_rows(refs, ts, seqs, tombs) -> np.ndarray:
    """Rows a tombstone (ref, lo, hi, seq) hides: its series and range, a block up to its seq."""
    dead = np.zeros(len(refs), dtype=bool)
    for ref, lo, hi, seq in tombs:
        dead |= (refs == ref) & (ts >= lo) & (ts <= hi) & (seqs <= seq)
    return dead


def last_live(refs, ts, seqs, tombs) -> np.ndarray:
    """Independent of the code under test: the rows kept, sorted by (ref, ts): deleted rows
    dropped, then of each (ref, ts) the row of the highest seq."""
    rows = np.flatnonzero(~dead_rows(refs, ts, seqs, tombs))
    order = rows[np.lexsort((seqs[rows], ts[rows], refs[rows]))]
    if len(order) == 0:  # every row deleted
        return order
    r, t = refs[order], ts[order]
    return order[np.append((r[1:] != r[:-1]) | (t[1:] != t[:-1]), True)]


def reference_floats(written: list[dict], tombs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [w for w in written if w["window"] is not None]
    if not parts:
        return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.uint64)
    refs = np.concatenate([w["window"].refs for w in parts])
    ts = np.concatenate([w["window"].timestamps for w in parts])
    vals = np.concatenate([w["window"].values for w in parts]).view(np.uint64)
    seqs = np.concatenate([np.full(len(w["window"].refs), w["seq"]) for w in parts])
    keep = last_live(refs, ts, seqs, tombs)
    return refs[keep], ts[keep], vals[keep]


def reference_histograms(written: list[dict], tombs) -> pa.Table | None:
    parts = [w for w in written if w["hist"] is not None]
    if not parts:
        return None
    refs = np.concatenate([w["hist"].refs for w in parts])
    ts = np.concatenate([w["hist"].timestamps for w in parts])
    seqs = np.concatenate([np.full(len(w["hist"].refs), w["seq"]) for w in parts])
    fields = pa.concat_tables([w["hist"].fields for w in parts])
    keep = last_live(refs, ts, seqs, tombs)
    if len(keep) == 0:
        return None
    return pa.table(
        {REF: pa.array(refs[keep], pa.uint64()), "timestamp": pa.array(ts[keep])}
        | {f.name: fields[f.name].take(pa.array(keep)) for f in HISTOGRAM_FIELDS}
    )


def dir_names(path) -> list[str]:
    return sorted(os.listdir(path))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(  # the only sample, a histogram, deleted: the merged block is empty
    specs=[{"seq": 1, "series": [], "times": [], "values": [], "h_series": [0], "h_times": [0]}],
    tomb_specs=[(0, 0, 0, 1)],
    chunk_samples=1,
    merged_chunk_samples=2,
    row_group_samples=4,
    seed=0,
)
@given(
    specs=block_specs(),
    tomb_specs=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 30), st.integers(0, 12), st.integers(0, 40)),
        max_size=3,
    ),
    chunk_samples=st.sampled_from([1, 3, 16, 8192]),
    merged_chunk_samples=st.sampled_from([2, 5, 8192]),
    row_group_samples=st.sampled_from([4, 1 << 18]),
    seed=st.integers(0, 2**32 - 1),
)
def test_merged_block_holds_exactly_the_last_writes_of_its_inputs(
    tmp_path_factory,
    specs,
    tomb_specs,
    chunk_samples,
    merged_chunk_samples,
    row_group_samples,
    seed,
):
    blocks_dir = str(tmp_path_factory.mktemp("blocks"))
    rng = np.random.default_rng(seed)
    with mock.patch.object(writer, "ROW_GROUP_SAMPLES", row_group_samples):
        written = [write_spec(blocks_dir, s, chunk_samples, rng) for s in specs]
    inputs = [Block.open(FS, f"{blocks_dir}/{writer.block_name(s['seq'])}") for s in specs]
    random.Random(seed).shuffle(inputs)  # the order given does not matter, seq does
    # deletes of a series over [T0 + lo, T0 + lo + length] hiding blocks up to a seq
    tombs = [(SERIES_REFS[i], T0 + lo, T0 + lo + n, seq) for i, lo, n, seq in tomb_specs]
    tombstones = Tombstones.empty()
    for ref, lo, hi, seq in tombs:
        tombstones = tombstones.added(np.array([ref], np.uint64), lo, hi, seq)
    before = dir_names(blocks_dir)
    with ThreadPoolExecutor(2) as pool:
        with mock.patch.object(writer, "ROW_GROUP_SAMPLES", row_group_samples):
            meta = merge_blocks(
                FS,
                blocks_dir,
                inputs,
                chunk_samples=merged_chunk_samples,
                pool=pool,
                tombstones=tombstones,
            )
        # What a query of the inputs returns (the read path's merge, in small batches)
        snapshot = Snapshot(
            tuple(sorted(inputs, key=lambda b: b.meta.seq)), (), tombstones=tombstones
        )
        read = list(
            iter_samples(
                snapshot,
                SERIES_REFS,
                T_MIN,
                T_MAX,
                values=True,
                batch_size=7,
                cache=ChunkCache(0),
                pool=pool,
            )
        )
    want_refs, want_ts, want_vals = reference_floats(written, tombs)
    want_h = reference_histograms(written, tombs)
    if read:
        assert np.concatenate([b.refs for b in read]).tolist() == want_refs.tolist()
        assert np.concatenate([b.timestamps for b in read]).tolist() == want_ts.tolist()
        got = np.concatenate([b.values for b in read]).view(np.uint64)
        assert got.tolist() == want_vals.tolist()
    else:
        assert len(want_refs) == 0
    if meta is None:  # every sample was deleted: nothing written
        assert len(want_refs) == 0 and want_h is None and tombs
        assert dir_names(blocks_dir) == before
        return
    assert dir_names(blocks_dir) == sorted([*before, meta.id])  # inputs kept, no .tmp left
    merged = Block.open(FS, f"{blocks_dir}/{meta.id}")
    refs, ts, vals = merged.samples()
    assert refs.tolist() == want_refs.tolist()
    assert ts.tolist() == want_ts.tolist()
    assert vals.view(np.uint64).tolist() == want_vals.tolist()

    if want_h is None:
        assert meta.num_histograms == 0
        assert not os.path.exists(f"{blocks_dir}/{meta.id}/{HISTOGRAMS_FILE}")
    else:
        got_h = read_all_histograms(FS, f"{blocks_dir}/{meta.id}/{HISTOGRAMS_FILE}")
        assert bits(got_h) == bits(want_h)
        assert meta.num_histograms == want_h.num_rows

    h_refs = want_h[REF].to_numpy() if want_h is not None else np.empty(0, np.uint64)
    held = np.union1d(want_refs, h_refs)
    assert merged.series().equals(series_table(held))
    top = max(specs, key=lambda s: s["seq"])["seq"]
    times = [*want_ts.tolist(), *(want_h["timestamp"].to_pylist() if want_h is not None else [])]
    assert (meta.seq, meta.level, meta.id) == (top, 2, merged_name(top, 2))
    assert meta.sources == tuple(writer.block_name(s) for s in sorted(s["seq"] for s in specs))
    assert (meta.min_time, meta.max_time) == (min(times), max(times))
    assert (meta.num_samples, meta.num_series) == (len(want_refs), len(held))
    assert BlockMeta.read(FS, f"{blocks_dir}/{meta.id}") == meta
    assert merged.index.counts.max(initial=0) <= merged_chunk_samples


def flushed_block(blocks_dir, seq, refs, ts, values, chunk_samples=16, **kwargs) -> BlockMeta:
    refs = np.asarray(refs, np.uint64)
    window = Window(0, refs, np.asarray(ts, np.int64), np.asarray(values, np.float64))
    return writer.write_block(
        FS, blocks_dir, seq, series_table(np.unique(refs)), chunk_samples, window=window, **kwargs
    )


def two_blocks(tmp_path) -> tuple[str, list[Block]]:
    blocks_dir = str(tmp_path)
    r = SERIES_REFS[:2]
    flushed_block(blocks_dir, 1, np.repeat(r, 100), np.tile(np.arange(100), 2), np.arange(200.0))
    flushed_block(blocks_dir, 2, r, [5, 5], [-1.0, -2.0])
    return blocks_dir, [Block.open(FS, f"{blocks_dir}/{writer.block_name(s)}") for s in (1, 2)]


def test_merging_a_merged_block_again_raises_its_level_and_keeps_names_unique(tmp_path):
    blocks_dir, blocks = two_blocks(tmp_path)
    first = merge_blocks(FS, blocks_dir, blocks, chunk_samples=64)
    assert (first.id, first.level) == ("b0000000002-c2", 2)
    assert first.sources == tuple(b.meta.id for b in blocks)
    late = flushed_block(blocks_dir, 3, SERIES_REFS[:1], [5], [9.0])
    again = merge_blocks(
        FS,
        blocks_dir,
        [Block.open(FS, f"{blocks_dir}/{first.id}"), Block.open(FS, f"{blocks_dir}/{late.id}")],
        chunk_samples=64,
    )
    assert (again.id, again.seq, again.level) == ("b0000000003-c3", 3, 3)
    refs, ts, values = Block.open(FS, f"{blocks_dir}/{again.id}").samples()
    at5 = dict(zip(refs[ts == 5].tolist(), values[ts == 5].tolist()))
    assert at5 == {int(SERIES_REFS[0]): 9.0, int(SERIES_REFS[1]): -2.0}  # the latest writes


def test_a_taken_name_gets_a_suffix_instead_of_being_reused(tmp_path):
    blocks_dir, blocks = two_blocks(tmp_path)
    os.mkdir(f"{blocks_dir}/b0000000002-c2")
    os.mkdir(f"{blocks_dir}/b0000000002-c2-2.tmp")
    meta = merge_blocks(FS, blocks_dir, blocks, chunk_samples=64)
    assert meta.id == "b0000000002-c2-3"
    assert os.listdir(f"{blocks_dir}/b0000000002-c2") == []


def test_merge_of_no_blocks_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least one block"):
        merge_blocks(FS, str(tmp_path), [], chunk_samples=64)


def test_merged_blocks_are_encoded_with_more_effort_yet_decode_alike(tmp_path):
    blocks_dir = str(tmp_path)
    rng = np.random.default_rng(3)
    values = np.round(np.cumsum(rng.normal(0, 1, 4000)), 2)  # decimal: DECIMAL_ZSTD chunks
    flushed_block(blocks_dir, 1, np.repeat(SERIES_REFS[:1], 4000), np.arange(4000), values, 4096)
    block = Block.open(FS, f"{blocks_dir}/b0000000001")
    meta = merge_blocks(FS, blocks_dir, [block], chunk_samples=4096)
    merged = Block.open(FS, f"{blocks_dir}/{meta.id}")
    assert merged.samples()[2].tolist() == values.tolist()
    size = os.path.getsize
    assert size(f"{merged.path}/{CHUNKS_FILE}") < size(f"{block.path}/{CHUNKS_FILE}")


# -- failures: corrupt inputs, failed writes ------------------------------------------------


def corrupt_values_page(path: Path) -> None:
    """Overwrite the middle of the ``values`` column's pages with garbage (footer intact)."""
    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(0).column(meta.schema.names.index("values"))
    start = col.data_page_offset
    with open(path, "r+b") as f:
        f.seek(start + 4)
        f.write(b"\xff" * min(64, col.total_compressed_size - 8))


def truncate_first_payload(path: Path) -> None:
    table = pq.read_table(path)
    payloads = table["values"].to_pylist()
    payloads[0] = payloads[0][:3]
    table = table.set_column(
        table.schema.get_field_index("values"), "values", pa.array(payloads, pa.large_binary())
    )
    pq.write_table(table, path)


def wrong_count(path: Path) -> None:
    meta = json.loads(path.read_text())
    meta["num_samples"] += 1
    path.write_text(json.dumps(meta))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize(
    ("damage", "file", "message"),
    [
        (corrupt_values_page, CHUNKS_FILE, "cannot read row group 0"),
        (truncate_first_payload, CHUNKS_FILE, "row group 0"),
        (wrong_count, META_FILE, "meta.json says 2001"),
        (truncate, HISTOGRAMS_FILE, "cannot read"),
        (truncate, SERIES_FILE, "cannot read"),
    ],
)
def test_a_damaged_input_raises_corrupt_block_and_writes_nothing(tmp_path, damage, file, message):
    blocks_dir = str(tmp_path)
    rng = np.random.default_rng(5)
    n = 2000
    flushed_block(
        blocks_dir,
        1,
        np.repeat(SERIES_REFS[:2], n // 2),
        np.tile(np.arange(n // 2), 2),
        rng.normal(size=n),
    )
    h = HistogramWindow(0, SERIES_REFS[:1], np.array([7], np.int64), hist_fields(1, rng))
    flushed_block(blocks_dir, 2, SERIES_REFS[:2], [5, 5], [1.0, 2.0], histograms=h)
    victim = Path(blocks_dir) / ("b0000000002" if file == HISTOGRAMS_FILE else "b0000000001")
    if file == META_FILE:  # a count that disagrees with the chunks
        damage(victim / file)
    blocks = [Block.open(FS, f"{blocks_dir}/{writer.block_name(s)}") for s in (1, 2)]
    if file != META_FILE:
        damage(victim / file)
    before = dir_names(blocks_dir)
    with pytest.raises(CorruptBlockError, match=message) as info:
        merge_blocks(FS, blocks_dir, blocks, chunk_samples=64)
    assert str(victim) in str(info.value)
    assert dir_names(blocks_dir) == before


def test_a_write_that_fails_midway_leaves_no_directory(tmp_path, monkeypatch):
    blocks_dir, blocks = two_blocks(tmp_path)
    before = dir_names(blocks_dir)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_write_series", disk_full)
    with pytest.raises(OSError, match="No space left"):
        merge_blocks(FS, blocks_dir, blocks, chunk_samples=64)
    assert dir_names(blocks_dir) == before


def test_a_stale_tmp_directory_of_the_same_name_is_replaced(tmp_path):
    blocks_dir = str(tmp_path)
    os.makedirs(f"{blocks_dir}/b0000000001.tmp")
    Path(f"{blocks_dir}/b0000000001.tmp/{HISTOGRAMS_FILE}").write_bytes(b"left by a crash")
    meta = flushed_block(blocks_dir, 1, SERIES_REFS[:1], [1], [1.0])
    assert dir_names(blocks_dir) == ["b0000000001"]
    assert sorted(os.listdir(f"{blocks_dir}/b0000000001")) == sorted(
        [CHUNKS_FILE, SERIES_FILE, META_FILE]
    )
    assert meta.num_histograms == 0


# -- durability -------------------------------------------------------------------------------


def test_block_files_the_tmp_directory_and_the_rename_are_fsynced(tmp_path, monkeypatch):
    blocks_dir = str(tmp_path)
    final = f"{blocks_dir}/b0000000001"
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), os.path.isdir(final)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    h = HistogramWindow(
        0, SERIES_REFS[:1], np.array([7], np.int64), hist_fields(1, np.random.default_rng(0))
    )
    flushed_block(blocks_dir, 1, SERIES_REFS[:1], [1], [1.0], histograms=h)
    tmp = f"{final}.tmp"
    files = {f"{tmp}/{name}" for name in (CHUNKS_FILE, SERIES_FILE, META_FILE, HISTOGRAMS_FILE)}
    # every file and the tmp directory before the rename, then the blocks directory after it
    assert {p for p, renamed in synced[:-2] if not renamed} == files
    assert synced[-2:] == [(tmp, False), (blocks_dir, True)]


def test_filesystems_without_local_paths_skip_the_fsyncs(tmp_path, monkeypatch):
    def no_fsync(fd: int) -> None:
        raise AssertionError("fsync on a non-local filesystem")

    monkeypatch.setattr(os, "fsync", no_fsync)
    fs = pafs.SubTreeFileSystem(str(tmp_path), FS)
    window = Window(0, SERIES_REFS[:1], np.array([1], np.int64), np.array([1.0]))
    meta = writer.write_block(fs, "blocks", 1, series_table(SERIES_REFS[:1]), 16, window=window)
    assert Block.open(fs, f"blocks/{meta.id}").samples()[2].tolist() == [1.0]


# -- obsolete sources -------------------------------------------------------------------------


def fake_meta(id_, seq, lo, hi, *, level=1, sources=()) -> BlockMeta:
    return BlockMeta(
        id=id_,
        seq=seq,
        min_time=lo,
        max_time=hi,
        num_samples=1,
        num_series=1,
        num_chunks=1,
        chunk_samples=16,
        level=level,
        sources=tuple(sources),
    )


def test_obsolete_sources_are_inputs_still_present_beside_their_merged_block():
    metas = [
        fake_meta("b0000000001", 1, 0, 9),
        fake_meta("b0000000002", 2, 5, 19),
        fake_meta("b0000000002-c2", 2, 0, 19, level=2, sources=["b0000000001", "b0000000002"]),
        fake_meta("b0000000004", 4, 30, 39),
        fake_meta("b0000000005-c2", 5, 40, 49, level=2, sources=["b0000000003", "b0000000005"]),
    ]
    assert obsolete_sources(metas) == {"b0000000001", "b0000000002"}
    assert obsolete_sources(metas[3:]) == set()
    assert obsolete_sources([]) == set()


def test_a_crash_between_rename_and_deletion_reads_the_same_after_cleanup(tmp_path):
    path = tmp_path / "db"
    with ta.open(path) as db:
        for batch in range(3):  # three overlapping blocks, later writes replacing earlier
            db.write(
                pl.DataFrame(
                    {
                        "timestamp": np.arange(0, 100, 1 + batch) * 1000,
                        "value": np.full(len(range(0, 100, 1 + batch)), float(batch)),
                        "__name__": "m",
                    }
                )
            )
            db.flush()
        want = db.select().collect()
    blocks_dir = str(path / "blocks")
    blocks = [Block.open(FS, f"{blocks_dir}/{n}") for n in sorted(os.listdir(blocks_dir))]
    merged = merge_blocks(FS, blocks_dir, blocks, chunk_samples=64)
    for b in blocks:
        b.close()
    metas = [BlockMeta.read(FS, f"{blocks_dir}/{n}") for n in os.listdir(blocks_dir)]
    assert obsolete_sources(metas) == set(merged.sources) == {b.meta.id for b in blocks}
    with ta.open(path, read_only=True) as db:  # inputs and merged block side by side
        assert db.select().collect().equals(want)
    with ta.open(path) as db:  # the owner deletes the obsolete inputs on open
        assert os.listdir(blocks_dir) == [merged.id]
        assert db.stats()["blocks"] == 1
        assert db.select().collect().equals(want)


# -- the real data, end to end ------------------------------------------------------------------


def compact_fully(data_dir: Path, config: ta.StorageConfig) -> list[list[str]]:
    blocks_dir = str(data_dir / "blocks")
    blocks = {n: Block.open(FS, f"{blocks_dir}/{n}") for n in os.listdir(blocks_dir)}
    plan = plan_compaction(
        [b.meta for b in blocks.values()],
        default_levels(config.block_duration),
        block_duration=config.block_duration,
        newest_time=None,
    )
    for group in plan:
        merge_blocks(FS, blocks_dir, [blocks[i] for i in group], chunk_samples=config.chunk_samples)
        for i in group:
            blocks[i].close()
            FS.delete_dir(f"{blocks_dir}/{i}")
    return plan


@pytest.mark.slow
def test_real_data_in_shuffled_batches_compacts_to_what_one_write_stores(tmp_path, real_table):
    n = real_table.num_rows
    shuffled = real_table.take(pa.array(np.random.default_rng(1).permutation(n)))
    config = ta.StorageConfig(head_max_bytes=2**16, block_duration=HOUR // 4)
    batches = [shuffled.slice(lo, 23_000) for lo in range(0, n, 23_000)]
    with ta.open(tmp_path / "many", config=config) as db:
        for batch in batches:
            db.write(batch)
        want = db.select().collect()
        assert db.stats()["blocks"] >= len(batches)
    with ta.open(tmp_path / "one", config=config) as db:
        db.write(real_table)
    plan_many = compact_fully(tmp_path / "many", config)
    plan_one = compact_fully(tmp_path / "one", config)
    assert len(plan_many) == len(plan_one) == 1  # 15 min inside one 6 h range
    for d in ("many", "one"):
        with ta.open(tmp_path / d, config=config) as db:
            got = db.select().collect()
            assert db.stats()["blocks"] == 1
            assert db.stats()["samples"] == n
        assert got.drop("value").equals(want.drop("value"))
        assert got["value"].to_numpy().view(np.uint64).tolist() == (
            want["value"].to_numpy().view(np.uint64).tolist()
        )
    many, one = (next((tmp_path / d / "blocks").iterdir()) for d in ("many", "one"))
    for name in (CHUNKS_FILE, SERIES_FILE):  # the same bytes, however the data was written
        assert (many / name).read_bytes() == (one / name).read_bytes()


# -- planning -------------------------------------------------------------------------------

D = 10  # block duration of the planner tests
LEVELS = [10, 60, 240]


@st.composite
def metas_strategy(draw):
    """Blocks as flushes (inside one D window), merges (inside one aligned level range) and
    odd ones (any span, e.g. written with another block duration), in random seq order."""
    n = draw(st.integers(0, 25))
    seqs = draw(st.permutations(range(1, 100)))[:n]
    metas = []
    for i, seq in enumerate(seqs):
        kind = draw(st.sampled_from(["flush", "flush", "flush", "merged", "odd"]))
        if kind == "odd":
            lo = draw(st.integers(-300, 900))
            hi = lo + draw(st.integers(0, 500))
            level = draw(st.integers(1, 3))
        else:
            length = D if kind == "flush" else draw(st.sampled_from(LEVELS[1:]))
            start = draw(st.integers(-30, 90)) * D // length * length
            lo = start + draw(st.integers(0, length - 1))
            hi = draw(st.integers(lo, start + length - 1))
            level = 1 if kind == "flush" else draw(st.integers(2, 4))
        metas.append(fake_meta(f"x{i:02d}", seq, lo, hi, level=level))
    return metas


def spans_overlap(a_lo, a_hi, b_lo, b_hi) -> bool:
    return a_lo <= b_hi and b_lo <= a_hi


def apply_plan(metas: list[BlockMeta], plan: list[list[str]]) -> list[BlockMeta]:
    by_id = {m.id: m for m in metas}
    done = {i for g in plan for i in g}
    out = [m for m in metas if m.id not in done]
    for k, group in enumerate(plan):
        ms = [by_id[i] for i in group]
        out.append(
            fake_meta(
                f"merged{k}-{group[-1]}",
                max(m.seq for m in ms),
                min(m.min_time for m in ms),
                max(m.max_time for m in ms),
                level=1 + max(m.level for m in ms),
                sources=group,
            )
        )
    return out


def complete(start: int, length: int, newest) -> bool:
    return newest is None or start + length <= newest - D


@settings(max_examples=400, deadline=None)
@given(
    metas=metas_strategy(),
    newest=st.one_of(st.none(), st.integers(-300, 1500)),
    rewrite_mask=st.lists(st.booleans(), min_size=25, max_size=25),
)
def test_plans_are_safe_bounded_final_and_deterministic(metas, newest, rewrite_mask):
    rewrite = {m.id for m, r in zip(metas, rewrite_mask) if r}
    plan = plan_compaction(metas, LEVELS, block_duration=D, newest_time=newest, rewrite=rewrite)
    by_id = {m.id: m for m in metas}
    grouped = [i for g in plan for i in g]
    assert len(grouped) == len(set(grouped)) and set(grouped) <= set(by_id)
    for group in plan:
        ms = [by_id[i] for i in group]
        if len(ms) == 1 and ms[0].id in rewrite:
            continue  # rewritten alone on request: same seq, same or smaller span
        lo, hi = min(m.min_time for m in ms), max(m.max_time for m in ms)
        assert hi - lo + 1 <= LEVELS[-1]  # never longer than the largest level
        assert len(ms) > 1 or ms[0].level == 1  # a group of one: a flushed block rewritten
        assert group == [m.id for m in sorted(ms, key=lambda m: (m.seq, m.id))]
        # safe: no block left out overlaps the group's span, so the merged block (with the
        # group's highest seq) hides no write it should not
        for m in metas:
            if m.id not in group:
                assert not spans_overlap(lo, hi, m.min_time, m.max_time)
        # a group of one, or of several not overlapping each other, lies in a complete range
        if len(ms) == 1 or not _chained(ms):
            assert any(
                hi < lo - lo % length + length and complete(lo - lo % length, length, newest)
                for length in LEVELS[1:]
            )
    assert rewrite <= set(grouped)  # every block asked for is rewritten
    # every overlapping group of blocks that fits in the largest level is merged whole
    for unit in overlapping_metas(metas):
        lo, hi = min(m.min_time for m in unit), max(m.max_time for m in unit)
        if len(unit) > 1 and hi - lo < LEVELS[-1]:
            assert any({m.id for m in unit} <= set(g) for g in plan)
    # the plan is deterministic and final: carried out, it leaves nothing to do, and every
    # complete range of a level above the first holds at most one block
    again = plan_compaction(
        metas[::-1], LEVELS, block_duration=D, newest_time=newest, rewrite=rewrite
    )
    assert again == plan
    after = apply_plan(metas, plan)
    assert plan_compaction(after, LEVELS, block_duration=D, newest_time=newest) == []
    too_long = {  # overlapping groups longer than the largest level stay as they are
        m.id
        for unit in overlapping_metas(after)
        if max(m.max_time for m in unit) - min(m.min_time for m in unit) >= LEVELS[-1]
        for m in unit
    }
    for length in LEVELS[1:]:
        inside: dict[int, int] = {}
        for m in after:
            if m.id in too_long:
                continue
            start = m.min_time - m.min_time % length
            if m.max_time < start + length and complete(start, length, newest):
                inside[start] = inside.get(start, 0) + 1
        assert all(count == 1 for count in inside.values())


def _chained(ms: list[BlockMeta]) -> bool:
    """Whether the blocks form one overlapping group."""
    return len(overlapping_metas(ms)) == 1


H2 = 2 * HOUR


def test_two_hour_blocks_merge_once_their_twelve_hours_are_complete():
    levels = default_levels(H2)
    assert levels == [H2, 6 * H2, 24 * H2]
    day = 48 * HOUR * 1000  # a 48 h aligned start
    flushed = [fake_meta(f"b{k:010d}", k, day + k * H2, day + k * H2 + H2 - 1) for k in range(8)]
    # newest sample in the 8th block: the first 12 h (blocks 0-5) are complete, 6-7 are not
    newest = day + 7 * H2 + 10
    plan = plan_compaction(flushed, levels, block_duration=H2, newest_time=newest)
    assert plan == [[m.id for m in flushed[:6]]]
    # two days on, the whole 48 h range is complete: one merge, straight to 48 h
    plan = plan_compaction(flushed, levels, block_duration=H2, newest_time=day + 50 * HOUR)
    assert plan == [[m.id for m in flushed]]
    # a single flushed block in a complete range is rewritten alone; a merged one is left
    lone = [flushed[0]]
    assert plan_compaction(lone, levels, block_duration=H2, newest_time=None) == [[lone[0].id]]
    merged = [fake_meta("b0000000005-c2", 5, day, day + 10, level=2)]
    assert plan_compaction(merged, levels, block_duration=H2, newest_time=None) == []


def test_overlapping_blocks_of_the_current_window_merge_by_themselves():
    now = 1_800_000_000_000
    start = now - now % H2
    blocks = [
        fake_meta("b0000000001", 1, start, start + 100),
        fake_meta("b0000000002", 2, start + 50, start + 150),  # out of order: overlaps 1
        fake_meta("b0000000003", 3, start + 200, start + 300),  # after them, no overlap
    ]
    plan = plan_compaction(blocks, default_levels(H2), block_duration=H2, newest_time=now)
    assert plan == [["b0000000001", "b0000000002"]]


def test_an_overlapping_group_longer_than_the_largest_level_is_left_to_the_readers():
    blocks = [fake_meta("b0000000001", 1, 0, 300), fake_meta("b0000000002", 2, 200, 500)]
    assert plan_compaction(blocks, LEVELS, block_duration=D, newest_time=None) == []


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ([], "at least one"),
        ([10, 0], "positive"),
        ([10, 25], "multiple of the one before"),
        ([60, 10], "must increase"),
        ([10.0], "positive int"),
    ],
)
def test_levels_that_do_not_nest_are_refused(levels, message):
    with pytest.raises(ConfigError, match=message):
        plan_compaction([], levels, block_duration=D, newest_time=None)
