"""Smoke test of the benchmark harness at tiny size: no peer binaries needed, a few seconds.

Checks the synthetic generator's shape and determinism, the Parquet baseline rows, and that the
OpenMetrics text and VictoriaMetrics JSON lines carry every sample back exactly (parsed here by
an independent reader), and that missing peers give "not installed" rows, not exceptions.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from benchmarks import baselines, ours, prometheus, table, victoriametrics
from benchmarks.datasets import DataSet, load_synthetic, make_synthetic
from benchmarks.formats import vm_import_lines, write_openmetrics
from benchmarks.measure import Row
from benchmarks.run import load_data_set

LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+) (-?\d+\.\d{3})$")
PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_openmetrics(text: str) -> list[tuple[dict[str, str], float, int]]:
    """Independent OpenMetrics sample reader: (labels incl. __name__, value, ms) per line."""
    lines = text.split("\n")
    assert lines[-2:] == ["# EOF", ""], "must end with '# EOF' and a newline"
    samples = []
    for line in lines[:-2]:
        m = LINE.match(line)
        assert m, f"not an OpenMetrics sample line: {line!r}"
        name, inner, value, ts = m.groups()
        labels = {"__name__": name}
        pos = 0
        while inner and pos < len(inner):
            p = PAIR.match(inner, pos)
            assert p, f"bad label pair at {pos} in {inner!r}"
            labels[p.group(1)] = re.sub(r"\\[\\\"n]", lambda e: UNESCAPE[e.group(0)], p.group(2))
            pos = p.end()
        special = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}
        parsed = special[value] if value in special else float(value)
        samples.append((labels, parsed, int(Decimal(ts) * 1000)))
    return samples


@pytest.fixture(scope="module")
def tricky() -> pa.Table:
    """A tiny long table with escapes, absent labels, non-finite values and odd timestamps."""
    n = [None, 'a"b\\c\nd', "x,y=z", None, "plain", "plain"]
    return pa.table(
        {
            "__name__": pa.array(["m_total", "m_total", "g", "g", "up", "up"], pa.large_string()),
            "job": pa.array(["j", "j", None, None, "j", "j"], pa.large_string()),
            "note": pa.array(n, pa.large_string()),
            "timestamp": pa.array([5, 1_795_543_910_397, -1, 0, 1000, 2001], pa.int64()),
            "value": pa.array([1 / 3, math.nan, math.inf, -math.inf, 1e-300, -0.0], pa.float64()),
        }
    )


def test_synthetic_shape_and_determinism(tmp_path: Path) -> None:
    t = make_synthetic(250, 40, seed=7)
    assert t.num_rows == 250 * 40
    assert t.column_names == ["__name__", "instance", "job", "region", "timestamp", "value"]
    assert t.equals(make_synthetic(250, 40, seed=7))
    df = pl.from_arrow(t)
    assert isinstance(df, pl.DataFrame)
    per_series = df.group_by(["__name__", "instance"]).agg(
        pl.len(), (pl.col("timestamp").diff().drop_nulls() > 0).all().alias("increasing")
    )
    assert per_series.height == 250
    assert (per_series["len"] == 40).all() and per_series["increasing"].all()
    gaps = df["timestamp"].diff().drop_nulls()
    assert ((gaps > 14_000) & (gaps < 16_000)).sum() > 0.9 * gaps.len()
    v = df["value"].to_numpy()
    assert np.array_equal(np.round(v, 2), v)  # counters, 2-decimal gauges, constants
    assert not np.signbit(v[v == 0]).any()  # no -0.0: peers may not keep its sign
    cached = load_synthetic(tmp_path, 250, 40, seed=7)
    assert cached.table.equals(t) and "generated" in cached.source
    again = load_synthetic(tmp_path, 250, 40, seed=7)
    assert again.table.equals(t) and "cached" in again.source


def test_parquet_baselines(tmp_path: Path) -> None:
    data = DataSet("tiny", make_synthetic(120, 30, seed=1), "test")
    rows = baselines.run(data, tmp_path, repetitions=1)
    assert [r.system for r in rows] == [baselines.PYARROW_ZSTD, baselines.POLARS_DEFAULT]
    for row in rows:
        assert row.samples == 3600 and not row.failed
        assert row.bytes_per_sample and row.load_sps and row.select_all_sps and row.select_one_ms
        assert not any("read back" in n for n in row.notes), row.notes
    assert data.series_samples(data.one_series()) == 30


def test_openmetrics_round_trip(tmp_path: Path, tricky: pa.Table) -> None:
    path = tmp_path / "x.om"
    assert write_openmetrics(tricky, path) == tricky.num_rows
    back = parse_openmetrics(path.read_text(encoding="utf-8"))
    assert len(back) == tricky.num_rows
    got = sorted((tuple(sorted(lb.items())), ts, repr(v)) for lb, v, ts in back)
    want = sorted(
        (
            tuple(sorted((k, v) for k, v in row.items() if k not in ("timestamp", "value") and v)),
            row["timestamp"],
            repr(row["value"]),
        )
        for row in tricky.to_pylist()
    )
    assert got == want


def test_openmetrics_synthetic_count(tmp_path: Path) -> None:
    t = make_synthetic(150, 20, seed=3)
    path = tmp_path / "s.om"
    assert write_openmetrics(t, path) == 3000
    back = parse_openmetrics(path.read_text(encoding="utf-8"))
    assert len(back) == 3000
    assert sorted(v for _, v, _ in back) == sorted(t.column("value").to_pylist())


def test_vm_import_lines(tricky: pa.Table) -> None:
    lines, dropped = vm_import_lines(tricky)
    assert dropped == 3  # NaN, +Inf, -Inf
    objs = [json.loads(line) for line in lines]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert sum(len(o["values"]) for o in objs) == tricky.num_rows - dropped
    assert all(len(o["values"]) == len(o["timestamps"]) for o in objs)
    first = next(o for o in objs if o["metric"] == {"__name__": "m_total", "job": "j"})
    assert first["values"] == [1 / 3] and first["timestamps"] == [5]


def test_missing_peers_are_rows_not_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus, "promtool_path", lambda: None)
    monkeypatch.setattr(victoriametrics, "binary_path", lambda: None)
    data = DataSet("tiny", make_synthetic(10, 5), "test")
    rows = [prometheus.run(data, tmp_path), victoriametrics.run(data, tmp_path, 1)]
    assert all("not installed" in r.notes[0] and not r.failed for r in rows)
    rows.append(Row("tsdb-arrow", "tiny", 50, load_sps=1e6, bytes_per_sample=1.0))
    text = table.fixed_width(rows)
    assert "not installed" in text and text.count("\n") == len(rows) + 1
    assert table.markdown(rows).count("\n") == len(rows) + 1
    ratios = table.ratios(rows)
    assert ratios and all("n/a" in line for line in ratios)


def test_ours_rows_cache_off_then_warm_with_ratios(tmp_path: Path) -> None:
    data = DataSet("tiny", make_synthetic(40, 30, seed=2), "test")
    rows = ours.run(data, tmp_path, repetitions=1)
    assert [r.system for r in rows] == [ours.SYSTEM, ours.SYSTEM_WARM]
    off, warm = rows
    assert not off.failed and off.load_sps and off.bytes_per_sample and off.select_all_sps
    assert warm.select_all_sps and warm.select_one_ms and warm.load_sps is None
    assert not any("returned" in n for n in off.notes + warm.notes), off.notes + warm.notes
    assert "hit ratio" in warm.notes[0]
    parquet = Row(baselines.POLARS_DEFAULT, "tiny", 1200, select_all_sps=off.select_all_sps)
    lines = [line for line in table.ratios([*rows, parquet]) if "select-all" in line]
    assert len(lines) == 2
    assert "cache off" in lines[0] and lines[0].endswith("1.00x (higher is better; target >= 1)")
    assert "cache warm" in lines[1] and "n/a" not in lines[1]


def test_two_million_sample_set_has_the_same_shape_at_every_size(tmp_path: Path) -> None:
    data = load_data_set("synthetic-2m", tmp_path, quick=True)
    assert data.name == "synthetic-2m" and data.samples == 2_000_000
    assert data.labels == ["__name__", "instance", "job", "region"]
    assert data.series.height == 2_000


@pytest.mark.slow
def test_write_order_rows_load_every_order_warm_and_cold(tmp_path):
    from benchmarks import write_order

    data = DataSet("tiny", make_synthetic(30, 40), "test")
    rows = write_order.run(data, tmp_path, repetitions=1)
    assert [r.system for r in rows] == [
        write_order.system_name(order, cold, batches)
        for order, batches in write_order.CASES
        for cold in (False, True)
    ]
    assert [r.system for r in rows][4:7:2] == [
        "tsdb-arrow shuffled, 41 batches (warm)",
        "tsdb-arrow shuffled, 1 batch (warm)",
    ]
    assert not any(r.failed for r in rows), [r.notes for r in rows]
    assert all(r.load_sps and r.load_sps > 0 for r in rows)
    vm = Row(victoriametrics.SYSTEM, "tiny", data.samples, load_sps=1e6)
    lines = write_order.ratio_lines(rows, vm)
    assert len(lines) == 8
    assert sum("x series-sorted" in line for line in lines) == 6
    assert all("VictoriaMetrics' import" in line for line in lines)
    # Every order holds the same rows: the orders are permutations of the data set.
    want = pl.from_arrow(data.table)
    for order in write_order.ORDERS:
        got = pl.from_arrow(write_order.ordered(data.table, order))
        assert got.sort(got.columns).equals(want.sort(want.columns))
    assert not pl.from_arrow(write_order.ordered(data.table, "shuffled")).equals(want)


def test_durability_benchmark_replays_every_sample_and_reports_the_pool(tmp_path):
    from benchmarks import durability

    seconds, replayed, wal_bytes = durability.replay_time(20_000, tmp_path)
    assert replayed == 20_000 and seconds > 0 and wal_bytes > 20_000 * 24
    pool = durability.pool_reuse(tmp_path, batches=30)
    assert pool["allocated"] >= 1 and 0.0 <= pool["reuse_ratio"] < 1.0
    assert pool["reused"] + pool["allocated"] >= 30 * 10_000 // 16_384


def test_compaction_rows_end_both_ways_of_writing_at_the_same_blocks(tmp_path, real_table):
    from benchmarks import compaction

    table = real_table.slice(0, 40_000)
    rows = compaction.measure(table, "tiny", tmp_path)
    one, many, verdict = rows
    assert [one[1], many[1]] == ["one call", "41 shuffled batches"]
    assert int(many[2]) > int(one[2]) and one[4] == many[4] == "1"
    assert float(one[5]) < float(one[3])  # rewritten with more effort: smaller
    assert verdict[1] == "chunk and series files of both ways: identical"


def test_otlp_benchmark_stores_every_acknowledged_point(tmp_path):
    pytest.importorskip("opentelemetry.proto")
    from benchmarks import otlp

    result = otlp.run("grpc", clients=1, requests=3, work=tmp_path)
    assert result["acknowledged"] == 3 * otlp.PER_REQUEST == result["stored"]
    assert result["p99_ms"] >= result["p50_ms"] > 0
    assert result["cpu_us_per_point"] > 0


def test_otlp_benchmark_with_queries_stores_every_point_and_counts_the_queries(tmp_path):
    pytest.importorskip("opentelemetry.proto")
    from benchmarks import otlp

    result = otlp.run("grpc", clients=1, requests=3, work=tmp_path, queries=True)
    assert result["acknowledged"] == 3 * otlp.PER_REQUEST == result["stored"]
    queries = result["queries"]
    assert queries["queries"] >= 1 and queries["p99_ms"] >= queries["p50_ms"] > 0


def test_remote_write_benchmark_stores_every_acknowledged_sample(tmp_path):
    from benchmarks import remote_write

    result = remote_write.run(clients=2, count=3, per_request=500, work=tmp_path)
    assert result["acknowledged"] == 2 * 3 * 500 == result["stored"]
    assert result["p99_ms"] >= result["p50_ms"] > 0 and result["convert_per_s"] > 0
