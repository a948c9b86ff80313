"""Select-all decodes row groups straight into batch outputs and builds labels from string
views: exact results whatever the batch size, row groups spanning batches read once, and label
columns (long, short, non-ASCII, null, constant or varying within a batch) exactly as stored."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import tsdb_arrow as ta
from tsdb_arrow.blocks import writer
from tsdb_arrow.query.read import T_MAX, T_MIN, iter_samples
from tsdb_arrow.query.scan import Scan

STALE_NAN = 0x7FF0000000000002
N_SERIES = 30
N_SAMPLES = 200
START = 1_800_000_000_000


def frame() -> pl.DataFrame:
    """30 series whose labels differ in length, script and presence; values include stale
    markers, other NaN payloads and -0.0."""
    sid = np.repeat(np.arange(N_SERIES), N_SAMPLES)
    rng = np.random.default_rng(11)
    values = np.round(rng.normal(0, 50, sid.size), 3)
    bits = values.view(np.uint64)
    bits[::97] = STALE_NAN
    bits[5::211] = 0x7FF8000000ABCDEF
    values[7::301] = -0.0
    names = np.array(["up", "a_rather_long_metric_name_total", "temperature_celsius"])
    return pl.DataFrame(
        {
            "__name__": names[sid % 3],
            # null for a third of the series: varies within most batches
            "zone": pl.Series(
                np.array(["eu", "a-zone-name-longer-than-twelve-°C-ü", ""])[sid % 3]
            ).replace("", None),
            "instance": [f"host-{i:03d}.example.org:9100" for i in sid],  # > 12 bytes
            "tiny": [f"{i}" for i in sid],  # inline views
            "timestamp": START + np.tile(np.arange(N_SAMPLES) * 15_000, N_SERIES) + sid,
            "value": values,
        }
    )


def expected(data: pl.DataFrame, db: ta.Database) -> pl.DataFrame:
    """The frame sorted by series ref, then time, as select returns it."""
    refs = db.series().select("series_ref", "__name__", "instance")
    return (
        data.join(refs, on=["__name__", "instance"])
        .sort("series_ref", "timestamp")
        .select(
            pl.col("timestamp").cast(pl.Datetime("ms", "UTC")),
            "value",
            "__name__",
            "instance",
            "tiny",
            "zone",
        )
    )


def same_bits(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert_frame_equal(got.drop("value"), want.drop("value"))
    assert np.array_equal(
        got["value"].to_numpy().view(np.int64), want["value"].to_numpy().view(np.int64)
    )


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    """Chunks of 64 samples in row groups of about 500 samples: 14 row groups, in 2 blocks."""
    path = tmp_path_factory.mktemp("rg") / "db"
    data = frame()
    patch = pytest.MonkeyPatch()
    patch.setattr(writer, "ROW_GROUP_SAMPLES", 500)
    try:
        with ta.open(path, config=ta.StorageConfig(chunk_samples=64)) as db:
            db.write(data.filter(pl.col("timestamp") < START + 100 * 15_000))
            db.flush()
            db.write(data.filter(pl.col("timestamp") >= START + 100 * 15_000))
    finally:
        patch.undo()
    return path, data


@pytest.fixture
def many_row_groups(directory):
    path, data = directory
    with ta.open(path, config=ta.StorageConfig(cache_bytes=0)) as db:
        yield db, data


@pytest.mark.parametrize("batch_size", [1, 7, 64, 333, 1000, 100_000])
def test_row_groups_spanning_batches_read_once_and_exact(many_row_groups, batch_size):
    db, data = many_row_groups
    blocks = db._blockset.blocks()
    row_groups = sum(b.num_row_groups for b in blocks)
    assert len(blocks) == 2 and row_groups >= 12
    refs = db.series()["series_ref"].to_numpy()
    snapshot, release = db._snapshot()
    before = sum(b.reads for b in blocks)
    try:
        batches = list(
            iter_samples(
                snapshot,
                refs,
                T_MIN,
                T_MAX,
                values=True,
                batch_size=batch_size,
                cache=db._cache,
                pool=db._pool_threads,
            )
        )
    finally:
        release()
    assert sum(b.reads for b in blocks) - before == 2 * row_groups  # each (rg, column) once
    assert all(len(b) < batch_size + 64 for b in batches)  # cut at the chunk after the size
    ts = np.concatenate([b.timestamps for b in batches])
    refs_out = np.concatenate([b.refs for b in batches])
    values = np.concatenate([b.values for b in batches])
    want = expected(data, db)
    assert np.array_equal(ts, want["timestamp"].dt.epoch("ms").to_numpy())
    assert np.array_equal(values.view(np.int64), want["value"].to_numpy().view(np.int64))
    assert np.all(np.diff(refs_out.astype(np.float64)) >= 0)
    for b in batches:  # runs describe the rows
        assert b.run_lengths.sum() == len(b) and (b.run_lengths > 0).all()
        assert np.all(b.run_refs[1:] != b.run_refs[:-1])


@pytest.mark.parametrize("batch_size", [5, 150, 4096])
def test_frames_of_every_batch_size_equal_the_stored_samples(many_row_groups, batch_size):
    db, data = many_row_groups
    source = Scan(db.series(), None, None, db._snapshot, db._cache, db._pool_threads)
    frames = list(source(None, None, None, batch_size))
    assert all(f.height <= batch_size for f in frames)
    same_bits(pl.concat(frames).select(expected(data, db).columns), expected(data, db))


def test_labels_with_nulls_long_and_non_ascii_values(many_row_groups):
    db, data = many_row_groups
    got = db.select().collect()
    want = expected(data, db)
    same_bits(got.select(want.columns), want)
    assert got["zone"].null_count() == N_SERIES // 3 * N_SAMPLES
    assert got.schema["zone"] == pl.String and got.schema["tiny"] == pl.String


@pytest.mark.parametrize(
    "query",
    [
        lambda lf: lf.select("zone"),
        lambda lf: lf.select("value", "tiny"),
        lambda lf: lf.select("instance", "timestamp"),
        lambda lf: lf.filter(pl.col("zone").is_null()).select("__name__", "value"),
        lambda lf: lf.filter(pl.col("tiny") == "17").select("zone", "instance"),
        lambda lf: lf.filter(pl.col("value").is_nan()).select("tiny", "value"),
        lambda lf: lf.head(1234).select("zone", "tiny"),
        # a time range that cuts chunks: rows dropped inside runs, some runs emptied
        lambda lf: lf.filter(
            pl.col("timestamp").dt.epoch("ms").is_between(START + 950_000, START + 1_600_000)
        ),
        lambda lf: lf.filter(pl.col("timestamp").dt.epoch("ms") < START + 20_000).select("zone"),
        lambda lf: lf.select(pl.len()),
    ],
)
def test_projections_and_filters_match_the_eager_frame(many_row_groups, query):
    db, data = many_row_groups
    want = query(expected(data, db).lazy()).collect()
    got = query(db.select()).collect()
    if "value" in want.columns:
        same_bits(got, want)
    else:
        assert_frame_equal(got, want)


def test_a_batch_where_every_label_is_constant(many_row_groups):
    # One series per batch: every label column is a literal broadcast to the batch's height.
    db, data = many_row_groups
    one = db.series('{tiny="4"}')
    source = Scan(one, None, None, db._snapshot, db._cache, db._pool_threads)
    frames = list(source(["zone", "tiny"], None, None, 50))
    assert [f.height for f in frames] == [50, 50, 50, 50]
    got = pl.concat(frames)
    assert got.columns == ["zone", "tiny"]
    assert got["tiny"].to_list() == ["4"] * N_SAMPLES
    assert got["zone"].to_list() == ["a-zone-name-longer-than-twelve-°C-ü"] * N_SAMPLES


def test_cache_on_gives_the_same_frames(directory):
    path, data = directory
    with ta.open(path, config=ta.StorageConfig(cache_bytes=64 * 2**20)) as db:
        want = expected(data, db)
        for _ in range(2):  # filling the cache, then from it
            source = Scan(db.series(), None, None, db._snapshot, db._cache, db._pool_threads)
            got = pl.concat(list(source(None, None, None, 333)))
            same_bits(got.select(want.columns), want)
        assert db.stats()["cache"]["hits"] > 0


@pytest.mark.parametrize("batch_size", [3, 100, 100_000])
def test_time_ranges_cut_inside_chunks_and_runs(many_row_groups, batch_size):
    db, data = many_row_groups
    lo, hi = START + 950_000, START + 1_600_010  # inside chunks of every series
    source = Scan(db.series(), lo, hi, db._snapshot, db._cache, db._pool_threads)
    got = pl.concat(list(source(None, None, None, batch_size)))
    want = expected(data, db).filter(pl.col("timestamp").dt.epoch("ms").is_between(lo, hi))
    assert want.height == N_SERIES * 43
    same_bits(got.select(want.columns), want)


def test_decode_batches_grow_for_few_label_columns_and_stay_small_for_limits():
    from tsdb_arrow.query.scan import (
        DECODE_BATCH_BYTES,
        MAX_DECODE_BATCH,
        MIN_DECODE_BATCH,
        decode_batch,
    )

    four_labels = ["timestamp", "value", "__name__", "instance", "job", "region"]
    assert decode_batch(four_labels, None) == DECODE_BATCH_BYTES // 80
    assert MIN_DECODE_BATCH < decode_batch(four_labels, None) < MAX_DECODE_BATCH
    assert decode_batch(["timestamp", "value", "__name__"], None) == MAX_DECODE_BATCH
    assert decode_batch(["timestamp", *[f"l{i}" for i in range(38)]], None) == MIN_DECODE_BATCH
    assert decode_batch(four_labels, 10) == MIN_DECODE_BATCH  # head(): little decoded ahead
    assert decode_batch([], None) == MAX_DECODE_BATCH
