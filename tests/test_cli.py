"""The tsdb-arrow command: load files (streamed, with a summary), info, query, export."""

from __future__ import annotations

import gzip
import os
import platform
import re
import subprocess
import sys

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

import tsdb_arrow as ta
from tsdb_arrow import memory as ta_memory
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


# -- first use (issue 7.8) -------------------------------------------------------------------


def _loaded(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["load", str(REAL_SLICE), "--data", str(data)]) == 0
    capsys.readouterr()
    return data


def test_export_refuses_a_lone_selector_and_names_the_fix(tmp_path, capsys):
    data = _loaded(tmp_path, capsys)
    assert main(["export", "node_cpu_seconds_total", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert (
        "export was given one argument, 'node_cpu_seconds_total', and takes it as the output file"
        in err
    )
    assert "tsdb-arrow export node_cpu_seconds_total out.parquet --data DIR" in err
    assert main(["export", 'up{job="node"}', "--data", str(data)]) == 1
    assert "tsdb-arrow export 'up{job=\"node\"}' out.parquet" in capsys.readouterr().err
    assert not (tmp_path / "node_cpu_seconds_total").exists()
    # --format says the format when OUT has no extension: then one argument is OUT
    out = tmp_path / "dump"
    assert main(["export", str(out), "--format", "parquet", "--data", str(data)]) == 0
    assert pq.read_table(out).num_rows == 460_800


def test_export_format_follows_the_extension(tmp_path, capsys):
    data = _loaded(tmp_path, capsys)
    want = None
    for name, read in (
        ("x.parquet", pl.read_parquet),
        ("x.arrow", pl.read_ipc),
        ("x.feather", pl.read_ipc),
        ("x.csv", pl.read_csv),
    ):
        out = tmp_path / name
        assert main(["export", "node_load1", str(out), "--data", str(data)]) == 0
        assert f"exported 900 samples to {out}" in capsys.readouterr().out
        got = read(out)
        if name.endswith(".csv"):
            assert got["timestamp"][0] == "2026-11-24T18:11:50.397Z"  # RFC 3339, UTC
            got = got.with_columns(
                pl.col("timestamp").str.to_datetime(time_unit="ms", time_zone="UTC")
            )
        want = got if want is None else want
        assert canonical(got).equals(canonical(want))
    assert pq.ParquetFile(tmp_path / "x.parquet").metadata.num_rows == 900
    # CSV goes back in through load.
    assert main(["load", str(tmp_path / "x.csv"), "--data", str(tmp_path / "again")]) == 0
    with ta.open(tmp_path / "again") as db:
        assert canonical(db.select("node_load1").collect()).equals(canonical(want))


def test_export_unknown_extension_and_explicit_format(tmp_path, capsys):
    data = _loaded(tmp_path, capsys)
    assert main(["export", "up", str(tmp_path / "up.out"), "--data", str(data)]) == 1
    assert "cannot tell which format to write" in capsys.readouterr().err
    assert not (tmp_path / "up.out").exists()
    out = tmp_path / "up.out"
    assert main(["export", "up", str(out), "--data", str(data), "--format", "parquet"]) == 0
    assert pq.ParquetFile(out).metadata.num_rows == 900
    assert (
        main(["export", "up", str(tmp_path / "u.csv"), "--data", str(data), "--format", "ipc"]) == 1
    )
    assert (
        "ends in '.csv', which is csv, but the format asked for is ipc" in capsys.readouterr().err
    )
    assert main(["export", "a", "b.parquet", "c.parquet", "--data", str(data)]) == 2
    assert "unrecognized arguments: c.parquet" in capsys.readouterr().err


def test_export_api_refuses_an_unknown_extension(db):
    with pytest.raises(ta.ExportError, match="name it with one of the extensions .parquet"):
        db.export(None, "samples.txt")


def test_relative_start_with_a_leading_dash(tmp_path, capsys):
    data = _loaded(tmp_path, capsys)
    # The shipped data lies in the past: relative to now, nothing is that recent.
    assert main(["query", "node_load1", "--data", str(data), "--start", "-1h"]) == 0
    assert "0 samples of selector node_load1" in capsys.readouterr().out
    assert main(["query", "node_load1", "--data", str(data), "--start", "-100y"]) == 0
    assert "900 samples of selector node_load1" in capsys.readouterr().out
    assert main(["query", "node_load1", "--data", str(data), "--end", "-1x"]) == 1
    assert "--end='-1x' is not a time" in capsys.readouterr().err


def test_version_and_examples(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"tsdb-arrow {ta.__version__}\n"
    for command, example in (
        ("load", "tsdb-arrow load samples.parquet --data ./data"),
        ("info", "tsdb-arrow info --data ./data"),
        ("query", "tsdb-arrow query up --data ./data --start -15m"),
        ("export", "tsdb-arrow export node_load1 load.parquet --data ./data"),
    ):
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "examples:\n" in out and example in out
    assert main(["export", "--help"]) == 0
    assert "[SELECTOR] OUT\n" in capsys.readouterr().out


def test_loading_a_file_twice_counts_its_samples_once(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    pl.DataFrame(
        {
            "timestamp": 1_795_543_910_000 + pl.int_range(100, eager=True),
            "value": 1.0,
            "__name__": "m",
        }
    ).write_csv(csv)
    data = tmp_path / "d"
    assert main(["load", str(csv), "--data", str(data)]) == 0
    assert "replaced" not in capsys.readouterr().out
    assert main(["load", str(csv), "--data", str(data)]) == 0
    assert "100 of them replaced samples with the same series and timestamp" in (
        capsys.readouterr().out
    )
    assert main(["info", "--data", str(data)]) == 0
    assert re.search(r"│ samples +│ +100 │", capsys.readouterr().out)
    with ta.open(data) as db:
        assert db.stats()["samples"] == 100 == db.select(None).collect().height


def test_reading_commands_refuse_a_foreign_directory(tmp_path, capsys):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("x")
    assert main(["info", "--data", str(tmp_path / "p")]) == 1
    assert (
        "is not a tsdb-arrow data directory (no tsdb-arrow.json in it)" in capsys.readouterr().err
    )
    assert main(["load", str(REAL_SLICE), "--data", str(tmp_path / "p")]) == 1
    assert "is not empty (notes.txt)" in capsys.readouterr().err


_POOL_SCRIPT = """
import ctypes, resource, sys
import pyarrow as pa
from tsdb_arrow import cli
from tsdb_arrow.memory import numpy_huge_pages
sys.argv = ["tsdb-arrow", "--version"]
status = cli.console()


def faults_of_24_mib():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ctypes.create_string_buffer(24 * 2**20)  # malloc'd, zeroed (touched), freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


faults_of_24_mib()
freed = "kept" if faults_of_24_mib() < 1000 else "returned"  # 6,144 pages faulted in again
print(pa.default_memory_pool().backend_name, numpy_huge_pages(), freed)
sys.exit(status)
"""


_SMALL = ta_memory.small_pool().backend_name
_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.parametrize(
    ("chosen", "expected"),
    [
        ({}, [_SMALL, "False", "kept"]),
        ({"ARROW_DEFAULT_MEMORY_POOL": "system"}, ["system", "False", "kept"]),
        ({"NUMPY_MADVISE_HUGEPAGE": "1"}, [_SMALL, "True", "kept"]),
        ({"MALLOC_MMAP_THRESHOLD_": "131072"}, [_SMALL, "False", "returned"]),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}, [_SMALL, "False", "returned"]),
    ],
)
def test_the_command_allocates_in_small_pages_unless_the_user_chose(chosen, expected):
    """The console script makes the small-pages pool its process's default Arrow pool, turns
    numpy's huge pages off (fresh processes' big loads ran 1.4x and 2x faster) and keeps the
    memory it frees (a 24 MiB array allocated again faults nothing in); the user's
    ARROW_DEFAULT_MEMORY_POOL, NUMPY_MADVISE_HUGEPAGE and glibc malloc settings still win."""
    names = ("ARROW_DEFAULT_MEMORY_POOL", "NUMPY_MADVISE_HUGEPAGE", "GLIBC_TUNABLES",
             "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(chosen)
    done = subprocess.run(
        [sys.executable, "-c", _POOL_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # Freed memory is kept through glibc's mallopt; another C library keeps what it keeps.
    got = done.stdout.split()[-3:]
    assert got == expected if _GLIBC else got[:2] == expected[:2]
    assert ta_memory.small_pool().backend_name != "mimalloc"
