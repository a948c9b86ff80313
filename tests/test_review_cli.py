"""Review: the tsdb-arrow command on CSV time strings and bad arguments."""

from __future__ import annotations

import tsdb_arrow as ta
from tsdb_arrow.cli import main


def test_review_load_csv_with_rfc3339_timestamps(tmp_path):
    # files.py leaves non-integer CSV timestamps as text "for the caller to parse"; the loader
    # passes them to write(), which refuses strings, so such a CSV cannot be loaded.
    csv = tmp_path / "iso.csv"
    csv.write_text(
        "timestamp,value,__name__,job\n"
        "2024-01-01T00:00:00Z,1.5,m,a\n"
        "2024-01-01T00:00:01.250Z,2.5,m,a\n"
    )
    assert main(["load", str(csv), "--data", str(tmp_path / "d")]) == 0
    with ta.open(tmp_path / "d") as db:
        got = db.select("m").collect()["timestamp"].dt.epoch("ms").to_list()
    assert got == [1_704_067_200_000, 1_704_067_201_250]


def test_review_bad_batch_rows_is_a_usage_error_with_a_message(tmp_path, capsys):
    csv = tmp_path / "ok.csv"
    csv.write_text("timestamp,value,__name__\n1,1,m\n")
    # A usage error: exit status 2 as argparse gives every bad argument, and no traceback.
    assert main(["load", str(csv), "--data", str(tmp_path / "d"), "--batch-rows", "0"]) == 2
    assert "--batch-rows: expected a whole number >= 1" in capsys.readouterr().err


def test_review_query_of_a_missing_directory_does_not_create_it(tmp_path, capsys):
    # info refuses a missing directory; query (and export) silently create an empty database
    # there (LOCK, blocks/) and report 0 samples, hiding a typo in --data.
    missing = tmp_path / "typo"
    assert main(["query", "m", "--data", str(missing)]) == 1
    assert not missing.exists()
