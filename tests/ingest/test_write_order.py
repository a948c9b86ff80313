"""Row order does not matter: series-sorted, time-sorted and shuffled writes store the same data.

The resolver groups label sets and the flush sorts samples whatever order rows arrive in; these
tests write the same samples in several orders, batchings and frame libraries and demand
bit-identical selections, exports, blocks' sample counts and series.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tsdb_arrow.ingest.cut import cut, window_starts
from tsdb_arrow.ingest.series import resolve_series
from tsdb_arrow.model import series_ref

ALL = '{__name__=~".+"}'


def _stored(path: Path, batches: list) -> tuple[pl.DataFrame, dict, pl.DataFrame, bytes]:
    """Write ``batches`` into a fresh database; return select-all, stats, series and export."""
    with ta.open(path / "db") as db:
        for batch in batches:
            db.write(batch)
        db.flush()
        frame = db.select(ALL).collect()
        stats = db.stats()
        series = db.series().sort("series_ref")
        db.export(ALL, path / "export.parquet")
    return frame, stats, series, (path / "export.parquet").read_bytes()


def _orders(table: pa.Table, seed: int = 7) -> dict[str, pa.Table]:
    ts = table.column("timestamp").to_numpy()
    rng = np.random.default_rng(seed)
    return {
        "series": table,
        "time": table.take(pa.array(np.argsort(ts, kind="stable"))),
        "shuffled": table.take(pa.array(rng.permutation(table.num_rows))),
    }


def _batches(table: pa.Table, n: int) -> list[pa.Table]:
    bounds = np.linspace(0, table.num_rows, n + 1).astype(int)
    return [table.slice(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _bits(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with values as their IEEE bits, so that NaN payloads compare exactly."""
    return frame.with_columns(pl.col("value").reinterpret(dtype=pl.UInt64))


@pytest.mark.slow
def test_real_data_in_every_order_and_batching_is_stored_identically(real_table, tmp_path):
    want_frame, want_stats, want_series, want_export = _stored(tmp_path / "ref", [real_table])
    assert want_stats["samples"] == real_table.num_rows == want_frame.height
    assert want_stats["series"] == 512
    orders = _orders(real_table)
    for name, n in (("time", 1), ("time", 5), ("shuffled", 7), ("series", 3)):
        frame, stats, series, export = _stored(tmp_path / f"{name}-{n}", _batches(orders[name], n))
        assert frame.equals(want_frame), (name, n)
        assert _bits(frame)["value"].equals(_bits(want_frame)["value"])
        assert series.equals(want_series), (name, n)
        assert export == want_export, (name, n)
        assert (stats["samples"], stats["series"]) == (want_stats["samples"], 512)


def _frame(n_series: int, n_steps: int) -> pa.Table:
    """Small long frame with absent labels (null and ""), NaN payloads and a stale marker."""
    sid = np.repeat(np.arange(n_series), n_steps)
    values = np.arange(sid.size, dtype=np.float64) / 7
    values[::11] = np.nan
    bits = values.view(np.uint64)
    bits[5::13] = 0x7FF0000000000002  # Prometheus' stale marker
    return pa.table(
        {
            "timestamp": 1_700_000_000_000 + np.tile(np.arange(n_steps) * 1000, n_series),
            "value": bits.view(np.float64),
            "__name__": [f"metric_{i // 2}_with_a_rather_long_name" for i in sid],
            "job": [("api", None, "")[i % 3] for i in sid],
            "path": [f"/a/path/longer/than/twelve/{i}" if i % 2 else None for i in sid],
        }
    )


FRAME = _frame(9, 12)


@settings(max_examples=25, deadline=None)
@given(perm=st.permutations(range(FRAME.num_rows)))
def test_any_row_permutation_gives_the_same_refs_and_sorted_windows(perm):
    table = FRAME.take(pa.array(perm))
    labels = {n: table.column(n).cast(pa.large_string()) for n in ("__name__", "job", "path")}
    got = resolve_series(labels, table.num_rows)
    rows = table.select(["__name__", "job", "path"]).to_pylist()
    assert got.row_refs.tolist() == [series_ref(r) for r in rows]
    windows = cut(
        got.row_refs,
        table.column("timestamp").to_numpy(),
        table.column("value").to_numpy(),
        3_600_000,
    )
    base = resolve_series(
        {n: FRAME.column(n).cast(pa.large_string()) for n in ("__name__", "job", "path")},
        FRAME.num_rows,
    )
    want = cut(
        base.row_refs,
        FRAME.column("timestamp").to_numpy(),
        FRAME.column("value").to_numpy(),
        3_600_000,
    )
    assert len(windows) == len(want)
    for w, v in zip(windows, want):
        assert w.start == v.start
        assert np.array_equal(w.refs, v.refs)
        assert np.array_equal(w.timestamps, v.timestamps)
        assert np.array_equal(w.values.view(np.uint64), v.values.view(np.uint64))
    assert got.series.sort_by("series_ref").equals(base.series.sort_by("series_ref"))


@pytest.mark.parametrize("kind", ["arrow", "polars", "pandas"])
def test_frame_libraries_and_orders_store_the_same(kind, tmp_path):
    pytest.importorskip("pandas") if kind == "pandas" else None
    tables = _orders(FRAME)
    results = []
    for name, table in tables.items():
        batches = _batches(table, 3)
        if kind == "polars":
            batches = [pl.from_arrow(b) for b in batches]
        elif kind == "pandas":
            batches = [b.to_pandas() for b in batches]
        results.append(_stored(tmp_path / name, batches))
    first = results[0]
    assert first[1]["samples"] == FRAME.num_rows
    assert first[1]["series"] == 9
    for other in results[1:]:
        assert other[0].equals(first[0])
        assert _bits(other[0])["value"].equals(_bits(first[0])["value"])
        assert other[2].equals(first[2])
        assert other[3] == first[3]


def test_label_columns_that_differ_between_batches(tmp_path):
    # Batch 1 has no "zone"; batch 2 adds it for some rows and drops "job": the label sets are
    # the same whether the rows come in one time-ordered frame or split by column set.
    a = pa.table(
        {
            "timestamp": [1, 1, 2, 2],
            "value": [1.0, 2.0, 3.0, 4.0],
            "__name__": ["m", "m", "m", "m"],
            "job": ["x", None, "x", ""],
        }
    )
    b = pa.table(
        {
            "timestamp": [3, 3, 4, 4],
            "value": [5.0, 6.0, 7.0, 8.0],
            "__name__": ["m", "m", "m", "m"],
            "zone": [None, "eu", "", "eu"],
        }
    )
    split = _stored(tmp_path / "split", [a, b])
    merged = pa.concat_tables([a, b], promote_options="default")
    ordered = merged.take(pa.array(np.argsort(merged.column("value").to_numpy())[::-1]))
    one = _stored(tmp_path / "one", [ordered])
    assert split[0].equals(one[0])
    assert split[2].equals(one[2])
    assert split[1]["series"] == one[1]["series"] == 3  # {m, job=x}, {m}, {m, zone=eu}
    assert split[1]["samples"] == one[1]["samples"] == 8


def test_duplicates_keep_the_last_write_in_any_order(tmp_path):
    # Two writes of the same (series, timestamp) in one batch: the later row wins, even when
    # the series' rows are interleaved with others' and arrive out of time order.
    table = pa.table(
        {
            "timestamp": [5, 1, 5, 3, 1, 5],
            "value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "__name__": ["a", "b", "b", "a", "a", "a"],
        }
    )
    frame, stats, _, _ = _stored(tmp_path, [table])
    got = {
        (r["__name__"], r["timestamp"]): r["value"]
        for r in frame.with_columns(pl.col("timestamp").dt.epoch("ms")).to_dicts()
    }
    assert got == {("a", 1): 5.0, ("a", 3): 4.0, ("a", 5): 6.0, ("b", 1): 2.0, ("b", 5): 3.0}
    assert frame.height == 5


def test_one_shuffled_batch_counts_its_repeats_and_keeps_each_last_write(tmp_path):
    """A whole frame out of order in one write, a few pairs written two or three times: the
    write counts every row but one of each pair as replacing, and the last one is stored."""
    rng = np.random.default_rng(21)
    n = 60_000
    series = rng.integers(0, 40, n)
    ts = 1_795_392_000_000 + 1000 * rng.integers(0, 3_000, n)
    table = pa.table({
        "timestamp": ts,
        "value": np.arange(n, dtype=np.float64),
        "__name__": pa.array([f"m{s % 4}" for s in series]),
        "host": pa.array([f"h{s}" for s in series]),
    })  # fmt: skip
    key = series * 10**13 + ts
    distinct, last = np.unique(key[::-1], return_index=True)
    with ta.open(tmp_path / "db") as db:
        result = db.write(table)
        assert (result.rows, result.replaced) == (n, n - len(distinct))
        db.flush()
        got = db.select('{__name__=~"m.*"}').collect()
    assert got.height == len(distinct)
    assert sorted(got["value"].to_list()) == sorted((n - 1 - last).astype(float).tolist())


def test_many_distinct_label_sets_grow_the_tables():
    # More label sets than the first table holds, in time order: the arrays grow mid-column.
    n = 50_000
    labels = {
        "__name__": pa.chunked_array([pa.array(["m"] * n, pa.large_string())]),
        "id": pa.chunked_array(
            [pa.array([f"series-{i:06d}-{'x' * (i % 40)}" for i in range(n)], pa.string_view())]
        ),
    }
    got = resolve_series(labels, n)
    assert len(got.series) == n
    assert got.row_refs[:3].tolist() == [
        series_ref({"__name__": "m", "id": f"series-{i:06d}-{'x' * (i % 40)}"}) for i in range(3)
    ]
    assert len(np.unique(got.row_refs)) == n


def test_a_collision_between_two_label_sets_is_refused(monkeypatch):
    from tsdb_arrow.ingest import series as series_mod

    monkeypatch.setattr(series_mod, "_mix64", lambda h: np.zeros(len(h), dtype=np.uint64))
    labels = {"__name__": pa.chunked_array([pa.array(["a", "b", "a"], pa.large_string())])}
    with pytest.raises(ta.SeriesCollisionError, match="same series ref"):
        resolve_series(labels, 3)
    # The same label set three times is no collision.
    same = {"__name__": pa.chunked_array([pa.array(["a", "a", "a"], pa.large_string())])}
    assert len(resolve_series(same, 3).series) == 1


@pytest.mark.parametrize("span", [0, 4095, 7_200_000, 2**40, 2**50, 2**63 - 1])
def test_large_groups_sort_stably_whatever_their_time_span(span):
    """Groups long enough for the radix sort (and spans too wide for it): the cut equals a
    stable sort by (window, ref, timestamp) with the last write of a duplicate kept."""
    rng = np.random.default_rng(span % 1000)
    n = 6000
    refs = rng.choice(np.array([3, 9, 2**63 + 1], dtype=np.uint64), n)
    lo = np.iinfo(np.int64).min if span == 2**63 - 1 else -(span // 3)
    offsets = rng.integers(0, span, n, dtype=np.uint64, endpoint=True)
    ts = (np.array([lo], dtype=np.int64).view(np.uint64) + offsets).view(np.int64)
    ts[rng.random(n) < 0.3] = ts[0]  # many duplicates, in write order
    values = np.arange(n, dtype=np.float64)
    duration = 2**62
    got = cut(refs, ts, values, duration)
    windows = window_starts(ts, duration)
    order = np.lexsort((ts, refs, windows))  # stable: equal keys stay in write order
    r, t, v, w = refs[order], ts[order], values[order], windows[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = (r[1:] != r[:-1]) | (t[1:] != t[:-1]) | (w[1:] != w[:-1])
    assert np.array_equal(np.concatenate([x.refs for x in got]), r[last])
    assert np.array_equal(np.concatenate([x.timestamps for x in got]), t[last])
    assert np.array_equal(np.concatenate([x.values for x in got]), v[last])


@pytest.mark.parametrize("kind", [pa.large_string(), pa.string_view()])
def test_a_first_label_column_in_no_order_numbers_its_values_across_chunks(kind):
    """Rows in no order (every row's set differs from the row before's): equal values get one
    id, different values different ids, absent values (null, "") stay in the empty set (0),
    across chunks and a sliced chunk; the arena keeps each value once."""
    from tsdb_arrow.ingest.labelsets import _Arena

    rng = np.random.default_rng(3)
    pool = np.array(["", "a", "node_cpu_seconds_total", "b" * 40, "é"], dtype=object)
    picks = pool[rng.integers(0, len(pool), 3000)]
    picks[rng.random(3000) < 0.2] = None
    values = pa.array(list(picks), type=kind)
    chunks = [values.slice(0, 1000), values.slice(1000, 1500), values.slice(2500)]
    ids = np.zeros(3000, dtype=np.int64)
    arena = _Arena(capacity=8)
    lo = 0
    for chunk in chunks:
        arena.refine(0, chunk, ids[lo : lo + len(chunk)])
        lo += len(chunk)
    absent = np.array([p in (None, "") for p in picks])
    assert set(ids[absent].tolist()) == {0}
    by_value = {}
    for value, id_ in zip(picks[~absent], ids[~absent]):
        assert by_value.setdefault(value, id_) == id_
    assert len(set(by_value.values())) == len(by_value) == 4
    assert 0 not in by_value.values()
    assert sorted(arena.values().to_pylist()[1:]) == sorted(by_value)


@pytest.mark.parametrize(
    ("duration", "near_min"), [(7_200_000, False), (2**36, False), (7_200_000, True)]
)
def test_shuffled_rows_of_several_windows_cut_as_a_stable_sort(duration, near_min):
    """Every group out of time order (shuffled rows over three windows, one of them possibly
    clamped at INT64_MIN): the cut equals a stable sort by (window, ref, timestamp) with the
    last write of a duplicate kept."""
    rng = np.random.default_rng(duration % 997 + near_min)
    n = 20_000
    refs = rng.choice(np.arange(1, 40, dtype=np.uint64), n)
    base = np.iinfo(np.int64).min + 10 if near_min else 1_700_000_000_000
    ts = base + rng.integers(0, 3 * min(duration, 2**30), n)
    ts[rng.random(n) < 0.2] = ts[0]  # duplicates, kept in write order
    values = np.arange(n, dtype=np.float64)
    got = cut(refs, ts, values, duration)
    windows = window_starts(ts, duration)
    order = np.lexsort((ts, refs, windows))
    r, t, v, w = refs[order], ts[order], values[order], windows[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = (r[1:] != r[:-1]) | (t[1:] != t[:-1]) | (w[1:] != w[:-1])
    assert [x.start for x in got] == np.unique(w).tolist()
    assert np.array_equal(np.concatenate([x.refs for x in got]), r[last])
    assert np.array_equal(np.concatenate([x.timestamps for x in got]), t[last])
    assert np.array_equal(np.concatenate([x.values for x in got]), v[last])
