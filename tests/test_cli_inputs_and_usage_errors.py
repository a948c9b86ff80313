"""The tsdb-arrow command on CSV time strings, bad arguments and a mistyped data directory."""

from __future__ import annotations

import tsdb_arrow as ta
from tsdb_arrow.cli import main


def test_load_csv_with_rfc3339_timestamps(tmp_path):
    """load parses RFC 3339 text timestamps in a CSV (Z and fractional seconds) to ms."""
    csv = tmp_path / "iso.csv"
    csv.write_text(
        "timestamp,value,__name__,job\n"
        "2024-01-01T00:00:00Z,1.5,m,a\n"
        "2024-01-01T00:00:01.250Z,2.5,m,a\n"
    )
    assert main(["load", str(csv), "--data", str(tmp_path / "d")]) == 0
    with ta.open(tmp_path / "d") as db:
        got = db.select("m").collect()
    assert got["timestamp"].dt.epoch("ms").to_list() == [1_704_067_200_000, 1_704_067_201_250]
    assert got["value"].to_list() == [1.5, 2.5]


def test_bad_batch_rows_is_a_usage_error_with_a_message(tmp_path, capsys):
    """--batch-rows 0 exits with status 2, as argparse gives every bad argument, and a
    message instead of a traceback."""
    csv = tmp_path / "ok.csv"
    csv.write_text("timestamp,value,__name__\n1,1,m\n")
    assert main(["load", str(csv), "--data", str(tmp_path / "d"), "--batch-rows", "0"]) == 2
    err = capsys.readouterr().err
    assert "--batch-rows: expected a whole number >= 1" in err
    assert "Traceback" not in err


def test_query_of_a_missing_directory_does_not_create_it(tmp_path, capsys):
    """query of a --data directory that does not exist fails (status 1) and leaves no
    empty database behind, so a typo in --data is not hidden."""
    missing = tmp_path / "typo"
    assert main(["query", "m", "--data", str(missing)]) == 1
    assert "is not a tsdb-arrow data directory" in capsys.readouterr().err
    assert not missing.exists()
