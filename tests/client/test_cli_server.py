"""``tsdb-arrow load/query/info/export --server``: the same commands against a running server."""

from __future__ import annotations

import polars as pl
import pytest

from tests.conftest import canonical
from tests.flight_helpers import flight_server
from tsdb_arrow.cli import main


@pytest.fixture
def served(tmp_path):
    with flight_server(tmp_path / "db", auth_token="tok") as (db, _, address):
        (tmp_path / "token").write_text("tok\n")
        yield db, address, ["--server", address, "--token-file", str(tmp_path / "token")]


def test_load_query_info_export_through_the_server(served, tmp_path, capsys, real_table):
    db, _, flags = served
    path = tmp_path / "real.parquet"
    pl.from_arrow(real_table).write_parquet(path)
    assert main(["load", str(path), *flags, "--batch-rows", "100000"]) == 0
    out = capsys.readouterr().out
    assert f"loaded {real_table.num_rows:,} samples from 1 file(s)" in out
    assert db.stats()["samples"] == real_table.num_rows
    assert db.stats()["wal"]["replayed_samples"] == 0
    assert db.stats()["blocks"] >= 1  # load flushes at the end, as locally

    assert main(["info", *flags]) == 0
    assert f"{real_table.num_rows:,}" in capsys.readouterr().out

    assert main(["query", "node_load1", *flags, "--limit", "3"]) == 0
    assert "900 samples of selector node_load1" in capsys.readouterr().out

    out_file = tmp_path / "cpu.parquet"
    selector = 'node_cpu_seconds_total{mode="user"}'
    assert main(["export", selector, str(out_file), *flags]) == 0
    assert canonical(pl.read_parquet(out_file)).equals(canonical(db.select(selector).collect()))


def test_a_refused_batch_names_its_rows_and_what_was_stored(served, tmp_path, capsys):
    db, _, flags = served
    rows = [f"{1_700_000_000_000 + i * 1000},{i}.5,m" for i in range(10)]
    rows[7] = "1700000007000,7.5,bad name"
    (tmp_path / "in.csv").write_text("timestamp,value,__name__\n" + "\n".join(rows) + "\n")
    assert main(["load", str(tmp_path / "in.csv"), *flags, "--batch-rows", "5"]) == 1
    err = capsys.readouterr().err
    assert "in.csv, rows 5..9: row 2: " in err
    assert "(5 samples before this batch were stored)" in err
    assert db.stats()["samples"] == 5


def test_without_the_token_the_cli_says_so(served, capsys):
    _, address, _ = served
    assert main(["info", "--server", address]) == 1
    assert "needs a bearer token" in capsys.readouterr().err


def test_data_and_server_are_exclusive(served, tmp_path, capsys):
    _, address, _ = served
    assert main(["info", "--server", address, "--data", str(tmp_path)]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
