"""The LazyFrame from select: filters, projections and head give exactly the eager answer,
and what is pushed down prunes blocks and row groups."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import tsdb_arrow as ta
from tsdb_arrow.query.scan import Scan

from .conftest import synthetic

T0 = 1_700_000_000_000  # Nov 2023, in ms

HOUR = 3_600_000
START = 1_700_000_000_000 - 1_700_000_000_000 % (2 * HOUR)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Six hours of 40 series at 1 min, in three blocks plus some samples in the head."""
    path = tmp_path_factory.mktemp("lazy") / "db"
    db = ta.open(path, config=ta.StorageConfig(cache_bytes=0))
    data = synthetic(40, 360, start=START, step=60_000, seed=3)
    db.write(data.filter(pl.col("timestamp") < START + 6 * HOUR - 600_000))
    db.flush()
    db.write(data.filter(pl.col("timestamp") >= START + 6 * HOUR - 600_000))
    yield db, db.select().collect()
    db.close()


def ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


FILTERS = {
    "time >": lambda: pl.col("timestamp") > ts(START + 2 * HOUR + 5),
    "time between": lambda: pl.col("timestamp").is_between(ts(START + HOUR), ts(START + 3 * HOUR)),
    "time < and label": lambda: (pl.col("timestamp") < ts(START + HOUR)) & (pl.col("job") == "api"),
    "label or value": lambda: (pl.col("job") == "db") | (pl.col("value") > 1000),
    "value": lambda: pl.col("value") > 50,
    "label in": lambda: pl.col("instance").is_in(["host-1", "host-7"]),
    "label regex": lambda: pl.col("instance").str.contains("host-1"),
    "time int literal": lambda: pl.col("timestamp") >= START + 5 * HOUR,
    "time == ": lambda: pl.col("timestamp") == ts(START + 60_000 * 30 + 2),
    "time != ": lambda: pl.col("timestamp") != ts(START),
    "negated label": lambda: (
        ~(pl.col("job") == "api") & (pl.col("timestamp") > ts(START + 4 * HOUR))
    ),
    "null label": lambda: pl.col("instance").is_null(),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_filter_matches_eager(store, name):
    db, eager = store
    expr = FILTERS[name]()
    assert db.select().filter(expr).collect().equals(eager.filter(expr))


@pytest.mark.parametrize("columns", [["value"], ["timestamp"], ["job", "value"], ["instance"]])
def test_projection_matches_eager(store, columns):
    db, eager = store
    assert db.select().select(columns).collect().equals(eager.select(columns))


@pytest.mark.parametrize("n", [0, 1, 7, 5000, 10**6])
def test_head_matches_eager(store, n):
    db, eager = store
    assert db.select().head(n).collect().equals(eager.head(n))
    assert (
        db.select()
        .filter(pl.col("value") > 10)
        .head(n)
        .collect()
        .equals(eager.filter(pl.col("value") > 10).head(n))
    )


def test_streaming_engine_and_group_by(store):
    db, eager = store
    lf = db.select('temp{job="db"}')
    got = lf.collect(engine="streaming")
    want = eager.filter((pl.col("__name__") == "temp") & (pl.col("job") == "db"))
    assert got.equals(want)
    agg = lf.group_by("instance").agg(pl.len(), pl.col("value").sum()).sort("instance").collect()
    # Sums of floats in another order differ in the last bits; counts are exact.
    assert_frame_equal(
        agg,
        want.group_by("instance").agg(pl.len(), pl.col("value").sum()).sort("instance"),
        check_exact=False,
        rel_tol=1e-12,
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lo=st.integers(-HOUR, 7 * HOUR),
    width=st.integers(0, 7 * HOUR),
    job=st.sampled_from([None, "api", "db"]),
    vmin=st.one_of(st.none(), st.floats(0, 3000)),
    cols=st.sets(
        st.sampled_from(["timestamp", "value", "__name__", "job", "instance"]), min_size=1
    ),
    n=st.one_of(st.none(), st.integers(0, 3000)),
)
def test_random_queries_match_eager(store, lo, width, job, vmin, cols, n):
    db, eager = store
    expr = pl.col("timestamp").is_between(ts(START + lo), ts(START + lo + width))
    if job:
        expr = expr & (pl.col("job") == job)
    if vmin is not None:
        expr = expr & (pl.col("value") >= vmin)
    order = [c for c in eager.columns if c in cols]
    lazy = db.select().filter(expr).select(order)
    want = eager.filter(expr).select(order)
    if n is not None:
        lazy, want = lazy.head(n), want.head(n)
    assert lazy.collect().equals(want)


def test_select_arguments_and_filters_combine(store):
    db, eager = store
    got = (
        db.select('{job="api"}', start=START + HOUR, end=START + 2 * HOUR)
        .filter(pl.col("timestamp") > ts(START + HOUR + 1_800_000))
        .collect()
    )
    want = eager.filter(
        (pl.col("job") == "api")
        & pl.col("timestamp").is_between(ts(START + HOUR + 1_800_001), ts(START + 2 * HOUR))
    )
    assert got.equals(want)


def test_time_filter_reads_only_the_blocks_it_needs(tmp_path):
    with ta.open(tmp_path / "db", config=ta.StorageConfig(cache_bytes=0)) as db:
        db.write(synthetic(10, 360, start=START, step=60_000))
        db.flush()
        assert db.stats()["blocks"] == 3
        db.select().filter(pl.col("timestamp") >= ts(START + 4 * HOUR)).collect()
        assert db.stats()["block_reads"] == 2  # one block: its timestamps and values
        db.select().filter(pl.col("timestamp") >= ts(START + 4 * HOUR)).select(
            "timestamp"
        ).collect()
        assert db.stats()["block_reads"] == 3  # projection: timestamps only, no values decoded
        db.select().filter(pl.col("job") == "nobody").collect()
        assert db.stats()["block_reads"] == 3  # label filter matched no series: nothing read


def test_results_are_sorted_by_series_then_time(store):
    """Each series is one contiguous, time-ordered run, and the runs come in series-ref order."""
    db, eager = store
    ref_change = eager.select(
        pl.struct(pl.exclude("timestamp", "value")).rle_id().alias("run"), "timestamp"
    )
    assert ref_change["run"].n_unique() == 40  # each series is one contiguous run
    assert (
        ref_change.group_by("run")
        .agg(pl.col("timestamp").is_sorted())
        .get_column("timestamp")
        .all()
    )
    labels = [c for c in eager.columns if c not in ("timestamp", "value")]
    runs = eager.select(labels).unique(maintain_order=True)
    by_ref = db.series().sort("series_ref").select(labels)
    assert runs.equals(by_ref)


def test_batches_never_exceed_the_requested_size(store):
    db, _ = store
    series = db.series('temp{instance="host-1"}')  # one series of 360 samples
    source = Scan(series, None, None, db._snapshot, db._cache, db._pool_threads)
    sizes = [frame.height for frame in source(None, None, None, 100)]
    assert sizes == [100, 100, 100, 60]
    assert [f.height for f in source(["value"], pl.col("value") > 0, 150, 100)] == [100, 50]


@pytest.mark.parametrize("batch_size", [7, 50, 333, 10_000])
def test_small_batches_split_series_yet_merge_exactly(tmp_path, batch_size):
    config = ta.StorageConfig(chunk_samples=16, cache_bytes=0)
    expected: dict[tuple[str, int], float] = {}

    def put(db, name, ts, values):
        db.write(pl.DataFrame({"timestamp": ts, "value": values, "__name__": [name] * len(ts)}))
        expected.update({(name, int(t)): float(v) for t, v in zip(ts, values)})

    with ta.open(tmp_path / "db", config=config) as db:
        put(db, "a", np.arange(1000) * 10, np.arange(1000) * 1.0)
        put(db, "b", np.arange(300) * 10, np.arange(300) * -1.0)
        db.flush()
        put(db, "a", np.arange(200, 260) * 10, np.full(60, 0.5))  # overlaps the first block
        db.flush()
        put(db, "b", np.arange(290, 310) * 10, np.full(20, 9.0))  # head rows over a block
        put(db, "c", np.arange(40) * 10, np.full(40, 3.0))  # a series only in the head
        source = Scan(db.series(), None, None, db._snapshot, db._cache, db._pool_threads)
        frames = list(source(None, None, None, batch_size))
    assert all(f.height <= batch_size for f in frames)
    got = pl.concat(frames)
    pairs = list(zip(got["__name__"].to_list(), got["timestamp"].dt.epoch("ms").to_list()))
    assert len(pairs) == len(set(pairs)) == len(expected)
    assert dict(zip(pairs, got["value"].to_list())) == expected
    for name in "abc":  # each series contiguous and in time order
        ts = got.filter(pl.col("__name__") == name)["timestamp"]
        assert ts.is_sorted()
    runs = got.select(pl.col("__name__").rle_id())["__name__"]
    assert runs.n_unique() == 3


@pytest.mark.parametrize(
    "query",
    [
        lambda lf: lf.select("job"),
        lambda lf: lf.filter(pl.col("job") == "api").select("job"),
        lambda lf: lf.filter(pl.col("instance") == "host-3").select("job", "__name__"),
        lambda lf: lf.select(pl.len()),
    ],
)
def test_label_only_projections_keep_every_row(store, query):
    # Within a batch a label can be constant; its column must still have the batch's height.
    db, eager = store
    assert query(db.select()).collect().equals(query(eager.lazy()).collect())


def test_a_label_term_that_fails_on_some_series_is_not_pushed_down(tmp_path):
    """A filter whose label term raises on a series outside the time range (a cast of "total")
    is applied to the rows read instead of to the series table: no error, exact rows."""
    frame = pl.DataFrame(
        {
            "timestamp": [T0, T0 + 1000, T0 + 10_000_000],
            "value": [1.0, 2.0, 3.0],
            "__name__": "cpu_seconds_total",
            "cpu": ["0", "0", "total"],
        }
    )
    with ta.open(tmp_path / "db") as db:
        db.write(frame)
        db.flush()
        lf = db.select("cpu_seconds_total", end=T0 + 1000)
        got = lf.filter(pl.col("cpu").cast(pl.Int64) < 1).collect()
        assert got["value"].to_list() == [1.0, 2.0]
        assert got["cpu"].to_list() == ["0", "0"]
