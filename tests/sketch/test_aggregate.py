"""Polars aggregations: grouped quantiles equal per-group sketches; bucket rows merge exactly."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tsdb_arrow.sketch as sk
from tests.conftest import synthetic
from tests.sketch.strategies import accuracies, values
from tsdb_arrow.errors import ConfigError, SketchError
from tsdb_arrow.sketch import Sketch
from tsdb_arrow.sketch.frames import groups
from tsdb_arrow.sketch.frames.bucket_rows import BUCKET_SCHEMA

QS = [0.0, 0.25, 0.5, 0.9, 0.99, 1.0]
NAMES = ["q0", "q0.25", "q0.5", "q0.9", "q0.99", "q1"]
T0 = 1_700_000_000_000


def _frame(n: int, seed: int, *, shuffle: bool = True, jobs: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    value = np.where(rng.random(n) < 0.1, -1.0, 1.0) * rng.lognormal(0, 2, n)
    value[rng.random(n) < 0.05] = np.nan
    value[rng.random(n) < 0.05] = 0.0
    frame = pl.DataFrame(
        {
            "timestamp": pl.Series(T0 + np.sort(rng.integers(0, 3_600_000, n))).cast(
                pl.Datetime("ms", "UTC")
            ),
            "value": value,
            "job": rng.choice([f"job{i}" for i in range(jobs)], n),
            "instance": rng.choice(["a", "b"], n),
        }
    )
    return frame.sample(fraction=1.0, shuffle=True, seed=seed) if shuffle else frame


def _expected(
    frame: pl.DataFrame, by: list[str], every: str | None, qs: list[float], alpha: float
) -> pl.DataFrame:
    """Per-group ``Sketch.from_values(...).quantiles`` in a plain Python loop."""
    keys = list(by)
    if every is not None:
        frame = frame.with_columns(pl.col("timestamp").dt.truncate(every))
        keys.append("timestamp")
    names = [f"q{q:g}" for q in qs]
    rows = []
    groups = frame.group_by(keys) if keys else [((), frame)]
    for key, part in groups:
        got = Sketch.from_values(part.get_column("value").to_numpy(), alpha).quantiles(qs)
        rows.append({**dict(zip(keys, key)), **dict(zip(names, got.tolist()))})
    out = pl.DataFrame(
        rows, schema={**{k: frame.schema[k] for k in keys}, **{n: pl.Float64 for n in names}}
    )
    return out.fill_nan(None).sort(keys) if keys else out.fill_nan(None)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(
    ("by", "every"), [(["job"], "10m"), (["job", "instance"], None), ([], "15m"), ([], None)]
)
def test_quantiles_equal_per_group_sketches(
    by: list[str], every: str | None, shuffle: bool
) -> None:
    frame = _frame(5000, seed=7, shuffle=shuffle)
    got = sk.quantiles(frame, QS, by=by, every=every, relative_accuracy=0.02)
    expected = _expected(frame, by, every, QS, 0.02)
    assert got.columns == [*by, *(["timestamp"] if every else []), *NAMES]
    assert got.equals(expected)


@settings(max_examples=25, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from(["x", "y", "z"]),
            st.integers(0, 5),
            st.one_of(values, st.just(math.nan)),
        ),
        max_size=200,
    ),
    alpha=accuracies,
    qs=st.lists(st.floats(0, 1), min_size=1, max_size=4, unique=True),
)
def test_quantiles_equal_per_group_sketches_property(
    data: list, alpha: float, qs: list[float]
) -> None:
    names = [f"q{q:g}" for q in qs]
    assume(len(set(names)) == len(names))  # quantiles that print alike would share a column
    frame = pl.DataFrame(
        data, schema={"job": pl.String, "minute": pl.Int64, "value": pl.Float64}, orient="row"
    )
    frame = frame.with_columns(timestamp=(pl.col("minute") * 60_000).cast(pl.Datetime("ms", "UTC")))
    got = sk.quantiles(frame, qs, by="job", every="2m", relative_accuracy=alpha)
    assert got.equals(_expected(frame, ["job"], "2m", qs, alpha))


@settings(max_examples=25, deadline=None)
@given(vals=st.lists(values, min_size=1, max_size=300), alpha=accuracies, q=st.floats(0.0, 1.0))
def test_quantiles_within_relative_accuracy(vals: list[float], alpha: float, q: float) -> None:
    """Within alpha of the exact sorted value at the DDSketch rank floor(q * (count - 1))."""
    got = sk.quantiles(pl.DataFrame({"value": vals}), [q], relative_accuracy=alpha).item()
    exact = np.sort(vals)[int(math.floor(q * (len(vals) - 1)))]
    if abs(exact) <= sk.LogarithmicMapping(alpha).min_possible:
        assert got == 0.0
    else:
        assert abs(got - exact) <= alpha * abs(exact) * (1 + 1e-9)


def test_lazy_in_lazy_out() -> None:
    frame = _frame(2000, seed=3)
    lazy = sk.quantiles(frame.lazy(), [0.5, 0.99], by=["job"], every="5m")
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect_schema()["q0.99"] == pl.Float64
    assert lazy.collect().equals(sk.quantiles(frame, [0.5, 0.99], by=["job"], every="5m"))
    eager = sk.quantiles(frame, by=["job"], every=timedelta(minutes=5))
    assert eager.columns == ["job", "timestamp", "q0.5", "q0.9", "q0.99"]


def test_windows_align_like_truncate() -> None:
    frame = pl.DataFrame(
        {
            "timestamp": pl.Series([T0 + 1, T0 + 299_999, T0 + 300_001]).cast(
                pl.Datetime("ms", "UTC")
            ),
            "value": [1.0, 2.0, 3.0],
        }
    )
    got = sk.quantiles(frame, [1.0], every="5m")
    assert (
        got.get_column("timestamp").to_list()
        == frame.get_column("timestamp").dt.truncate("5m").unique(maintain_order=True).to_list()
    )
    assert got.schema["timestamp"] == pl.Datetime("ms", "UTC")


def test_nan_only_group_gives_nulls_and_empty_frames() -> None:
    frame = pl.DataFrame({"job": ["a", "a", "b"], "value": [math.nan, None, 1.0]})
    got = sk.quantiles(frame, [0.5], by=["job"])
    assert got.rows() == [("a", None), ("b", Sketch.from_values([1.0]).quantile(0.5))]
    empty = frame.clear()
    assert sk.quantiles(empty, [0.5], by=["job"]).shape == (0, 2)
    assert sk.quantiles(empty, [0.5]).rows() == [(None,)]
    assert sk.sketches(frame, by=["job"]).filter(pl.col("job") == "a").select(
        "sign", "key", "count"
    ).rows() == [(0, 0, 0.0)]


def test_wide_key_range_takes_the_sort_path() -> None:
    vals = [1e-300, 1e300, 1.0, -1e200, -1e-200, 1e300, 3.0]
    frame = pl.DataFrame({"job": ["a"] * 7, "value": vals})
    got = sk.quantiles(frame, QS, by=["job"], relative_accuracy=0.001)
    assert list(got.row(0)[1:]) == Sketch.from_values(vals, 0.001).quantiles(QS).tolist()
    buckets = sk.sketches(frame, by=["job"], relative_accuracy=0.001)
    assert buckets.filter(pl.col("key") == buckets.get_column("key").max()).row(0)[3:] == (
        2.0,
        2e300,
        1e300,
        1e300,
    )


def test_sketch_rows_layout() -> None:
    frame = pl.DataFrame({"job": ["a"] * 5 + ["b"], "value": [-2.0, 0.0, 1.0, 1.0, 3.0, 5.0]})
    rows = sk.sketches(frame, by=["job"])
    assert rows.schema == pl.Schema({"job": pl.String, **BUCKET_SCHEMA})
    k = sk.LogarithmicMapping(0.01).key
    assert rows.rows() == [
        ("a", -1, k(2.0), 1.0, -2.0, -2.0, -2.0),
        ("a", 0, 0, 1.0, 0.0, 0.0, 0.0),
        ("a", 1, k(1.0), 2.0, 2.0, 1.0, 1.0),
        ("a", 1, k(3.0), 1.0, 3.0, 3.0, 3.0),
        ("b", 1, k(5.0), 1.0, 5.0, 5.0, 5.0),
    ]


def test_merging_block_sketches_equals_sketching_the_union() -> None:
    frame = _frame(6000, seed=11)
    blocks = [frame.filter(pl.col("timestamp").dt.minute() // 20 == i) for i in range(3)]
    parts = pl.concat([sk.sketches(b, by=["job", "instance"], every="10m") for b in blocks])
    # per (job, instance) sketches merged to per-job, and 10m windows to 30m
    got = sk.quantiles_from_sketches(parts, QS, by=["job"], every="30m")
    assert got.equals(sk.quantiles(frame, QS, by=["job"], every="30m"))
    merged = sk.merge_sketches(parts, by=["job"], every="30m")
    direct = sk.sketches(frame, by=["job"], every="30m")
    assert merged.drop("sum").equals(direct.drop("sum"))
    np.testing.assert_allclose(merged.get_column("sum"), direct.get_column("sum"), rtol=1e-9)
    lazy = sk.quantiles_from_sketches(parts.lazy(), QS, by=["job"], every="30m")
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect().equals(got)


def test_sketch_column_round_trip() -> None:
    frame = _frame(3000, seed=5)
    buckets = sk.sketches(frame, by=["job"], every="20m", relative_accuracy=0.02)
    column = sk.to_sketch_column(buckets, by=["job", "timestamp"], relative_accuracy=0.02)
    assert column.schema["sketch"] == pl.Binary
    assert column.height == buckets.select("job", "timestamp").n_unique()
    first = column.row(0, named=True)
    part = frame.filter(
        (pl.col("job") == first["job"])
        & (pl.col("timestamp").dt.truncate("20m") == first["timestamp"])
    )
    one = Sketch.from_bytes(first["sketch"])
    expected = Sketch.from_values(part.get_column("value").to_numpy(), 0.02)
    assert one._arrays()[0].tolist() == expected._arrays()[0].tolist()
    assert (one.count, one.min, one.max) == (expected.count, expected.min, expected.max)
    back = sk.from_sketch_column(column, relative_accuracy=0.02)
    got = sk.quantiles_from_sketches(back, QS, by=["job", "timestamp"], relative_accuracy=0.02)
    assert got.equals(sk.quantiles(frame, QS, by=["job"], every="20m", relative_accuracy=0.02))
    stats = (
        sk.merge_sketches(back, by=["job", "timestamp"])
        .group_by("job", "timestamp")
        .agg(pl.col("min").min(), pl.col("max").max())
        .sort("job", "timestamp")
    )
    direct = (
        buckets.group_by("job", "timestamp")
        .agg(pl.col("min").min(), pl.col("max").max())
        .sort("job", "timestamp")
    )
    assert stats.equals(direct)
    with pytest.raises(SketchError, match="expected 0.01"):
        sk.from_sketch_column(column, relative_accuracy=0.01)
    with pytest.raises(SketchError, match="is null"):
        sk.from_sketch_column(pl.DataFrame({"sketch": [None]}, schema={"sketch": pl.Binary}))
    with pytest.raises(SketchError, match="magic"):
        sk.from_sketch_column(pl.DataFrame({"sketch": [b"x" * 80]}))


def test_quantiles_of_a_database_selection(db) -> None:
    db.write(synthetic(n_series=12, n_samples=200))
    selected = db.select('{__name__="temp"}')
    got = sk.quantiles(selected, [0.5, 0.9], by=["instance"], every="10m")
    assert isinstance(got, pl.LazyFrame)
    eager = selected.collect()
    assert got.collect().equals(_expected(eager, ["instance"], "10m", [0.5, 0.9], 0.01))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"qs": [0.5, 1.5]}, SketchError, "outside"),
        ({"qs": [-0.1]}, SketchError, "outside"),
        ({"qs": []}, SketchError, "non-empty"),
        ({"qs": [0.5, 0.5000000001]}, SketchError, "duplicate column"),
        ({"relative_accuracy": 0.0}, ConfigError, "relative_accuracy"),
        ({"relative_accuracy": 1.5}, ConfigError, "relative_accuracy"),
        ({"every": "five minutes"}, ConfigError, "every"),
        ({"by": ["nope"]}, ConfigError, "no column"),
        ({"by": ["job", "job"]}, ConfigError, "twice"),
        ({"by": ["timestamp"], "every": "5m"}, ConfigError, "timestamp"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        sk.quantiles(_frame(10, seed=1), **kwargs)


def test_bad_frames() -> None:
    with pytest.raises(SketchError, match=r"value\[1\] = inf"):
        sk.quantiles(pl.DataFrame({"value": [1.0, math.inf]}))
    spread = _frame(2000, seed=2).with_columns(
        value=pl.when(pl.int_range(pl.len()) == 1500).then(-math.inf).otherwise("value")
    )
    with pytest.raises(SketchError, match=r"value\[1500\] = -inf"):
        sk.quantiles(spread, by=["job"])
    with pytest.raises(ConfigError, match="no column"):
        sk.quantiles(pl.DataFrame({"v": [1.0]}))
    with pytest.raises(ConfigError, match="numeric"):
        sk.quantiles(pl.DataFrame({"value": ["1"]}))
    with pytest.raises(ConfigError, match="DataFrame or LazyFrame"):
        sk.quantiles({"value": [1.0]})  # type: ignore[type-var]
    bad_rows = pl.DataFrame(
        {"sign": [2], "key": [0], "count": [1.0], "sum": [0.0], "min": [0.0], "max": [0.0]}
    )
    with pytest.raises(SketchError, match="invalid 'sign'"):
        sk.quantiles_from_sketches(bad_rows)
    with pytest.raises(SketchError, match="invalid 'count'"):
        sk.quantiles_from_sketches(
            bad_rows.with_columns(sign=pl.lit(1, pl.Int8), count=pl.lit(-1.0))
        )


def test_groups_spread_over_runs_of_rows() -> None:
    """Blocks of 50 rows per job, jobs interleaved: several runs per group (run-wise path)."""
    frame = _frame(20_000, seed=9, shuffle=False)
    block_job = np.random.default_rng(2).choice(["j0", "j1", "j2"], 400)
    frame = frame.with_columns(job=pl.Series(np.repeat(block_job, 50)))
    got = sk.quantiles(frame, QS, by=["job"], every="20m")
    assert got.equals(_expected(frame, ["job"], "20m", QS, 0.01))


def test_hash_collision_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """If two groups shared a hash, the distinct-key count would tell: exact grouping then."""
    frame = _frame(3000, seed=4)
    expected = sk.quantiles(frame, QS, by=["job", "instance"])

    def collide(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.zeros(hashes.size, np.int64), np.zeros(1, np.int64), np.array([hashes.size])

    monkeypatch.setattr(groups, "_dense_ids", collide)
    assert sk.quantiles(frame, QS, by=["job", "instance"]).equals(expected)
