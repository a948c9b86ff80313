"""The tsdb-arrow command: load files (streamed, with a summary), info, query, export."""

from __future__ import annotations

import gzip

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

import tsdb_arrow as ta
from tsdb_arrow.cli import main

from .conftest import REAL_SLICE, canonical, synthetic


def test_load_info_query_export(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["load", str(REAL_SLICE), "--data", str(data), "--batch-rows", "100000"]) == 0
    out = capsys.readouterr().out
    assert "loaded 460,800 samples from 1 file(s)" in out
    assert "M samples/s" in out and "bytes/sample" in out

    assert main(["info", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "460,800" in out and "512" in out

    assert main(["query", 'node_load1{job="node"}', "--data", str(data), "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "900 samples of selector" in out

    out_file = tmp_path / "load.parquet"
    assert (
        main(
            [
                "export",
                "node_load1",
                str(out_file),
                "--data",
                str(data),
                "--start",
                "2026-11-24T18:20:00Z",
            ]
        )
        == 0
    )
    assert "exported" in capsys.readouterr().out
    exported = pd.read_parquet(out_file)  # plain Parquet: pandas needs nothing of ours
    assert len(exported) == 410
    assert set(exported.columns) == {"timestamp", "value", "__name__", "instance", "job"}

    everything = tmp_path / "all.parquet"
    assert main(["export", str(everything), "--data", str(data)]) == 0
    assert pq.ParquetFile(everything).metadata.num_rows == 460_800


def test_export_equals_select(tmp_path, real_table):
    with ta.open(tmp_path / "db") as db:
        db.write(real_table)
        rows = db.export('{__name__=~"node_network.*"}', tmp_path / "net.parquet")
        want = db.select('{__name__=~"node_network.*"}').collect()
    assert rows == want.height > 0
    assert pl.read_parquet(tmp_path / "net.parquet").equals(want)


def test_load_several_formats_and_csv_gz(tmp_path, capsys):
    frame = synthetic(4, 30)
    frame.write_parquet(tmp_path / "a.parquet")
    feather.write_feather(
        synthetic(4, 30, seed=1).with_columns(job=pl.lit("ipc")).to_arrow(), tmp_path / "b.arrow"
    )
    csv = synthetic(4, 30, seed=2).with_columns(job=pl.lit("csv")).write_csv()
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress(csv.encode()))
    files = [str(tmp_path / n) for n in ("a.parquet", "b.arrow", "c.csv.gz")]
    assert main(["load", *files, "--data", str(tmp_path / "d"), "--batch-rows", "50"]) == 0
    assert "loaded 360 samples from 3 file(s)" in capsys.readouterr().out
    with ta.open(tmp_path / "d") as db:
        assert db.stats()["series"] == 12
        got = canonical(db.select('{job="api"}').collect())
    assert got.equals(canonical(frame.filter(pl.col("job") == "api")))


def test_load_reports_the_bad_batch_and_keeps_what_came_before(tmp_path, capsys):
    good = pa.table({"timestamp": list(range(100)), "value": [1.0] * 100, "__name__": ["m"] * 100})
    bad = pa.table({"timestamp": [100, 101], "value": [1.0, 2.0], "__name__": ["m", None]})
    pq.write_table(pa.concat_tables([good, bad]), tmp_path / "x.parquet")
    assert (
        main(
            [
                "load",
                str(tmp_path / "x.parquet"),
                "--data",
                str(tmp_path / "d"),
                "--batch-rows",
                "100",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "x.parquet, rows 100..101" in err and "'__name__' is empty" in err
    assert "100 samples before this batch were stored" in err
    with ta.open(tmp_path / "d") as db:
        assert db.stats()["samples"] == 100


def test_cli_errors_exit_1_with_a_message(tmp_path, capsys):
    assert main(["load", str(tmp_path / "missing.parquet"), "--data", str(tmp_path / "d")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["info", "--data", str(tmp_path / "nothing")]) == 1
    assert "not a tsdb-arrow data directory" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()
    ta.open(tmp_path / "d").close()
    assert main(["query", "up{", "--data", str(tmp_path / "d")]) == 1
    assert "expected a label name" in capsys.readouterr().err
    assert main(["query", "up", "--data", str(tmp_path / "d"), "--start", "yesterday"]) == 1
    assert "--start" in capsys.readouterr().err
