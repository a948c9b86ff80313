"""Tests of the streaming sample-file readers used by the batch loader."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.feather as feather
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.errors import InputError
from tsdb_arrow.ingest import files
from tsdb_arrow.ingest.files import SampleFile, open_sample_file


def samples(rows: int) -> pa.Table:
    """A long-format table: timestamp, value, __name__ and two labels."""
    ts = np.arange(rows, dtype=np.int64) * 1000 + 1_795_608_000_000
    return pa.table(
        {
            "timestamp": ts,
            "value": np.arange(rows, dtype=np.float64) / 4,
            "__name__": pa.array(["up"] * rows),
            "job": pa.array([f"job{i % 7}" for i in range(rows)]),
            "instance": pa.array([f"10.0.0.{i % 3}:9100" for i in range(rows)]),
        }
    )


def read_all(sample_file: SampleFile, batch_rows: int) -> tuple[pa.Table, list[int]]:
    batches = list(sample_file.batches(batch_rows))
    sizes = [b.num_rows for b in batches]
    table = pa.Table.from_batches(batches, schema=sample_file.schema)
    return table, sizes


def assert_sizes(sizes: list[int], total: int, batch_rows: int) -> None:
    assert sum(sizes) == total
    assert all(size == batch_rows for size in sizes[:-1])
    assert len(sizes) == math.ceil(total / batch_rows)


# -- Parquet -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".pq", ".PARQUET"])
def test_parquet(tmp_path: Path, suffix: str) -> None:
    table = samples(1000)
    path = tmp_path / f"samples{suffix}"
    pq.write_table(table, path, row_group_size=128)
    sample_file = open_sample_file(path)
    assert sample_file.format == "parquet"
    assert sample_file.total_rows == 1000
    assert sample_file.path == path
    assert sample_file.schema == table.schema
    got, sizes = read_all(sample_file, 300)
    assert_sizes(sizes, 1000, 300)
    assert got.equals(table)


def test_parquet_can_be_read_twice_and_takes_str_paths(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    pq.write_table(samples(10), path)
    sample_file = open_sample_file(str(path))
    assert read_all(sample_file, 4)[1] == [4, 4, 2]
    assert read_all(sample_file, 4)[1] == [4, 4, 2]


def test_parquet_memory_is_bounded(tmp_path: Path) -> None:
    table = samples(200_000)
    path = tmp_path / "big.parquet"
    pq.write_table(table, path, row_group_size=10_000)
    full = table.nbytes
    del table
    base = pa.total_allocated_bytes()
    peak = rows = 0
    for batch in open_sample_file(path).batches(5_000):
        peak = max(peak, pa.total_allocated_bytes() - base)
        rows += batch.num_rows
    assert rows == 200_000
    assert peak < full / 4, (peak, full)


# -- Arrow IPC ---------------------------------------------------------------------------------


def write_ipc(path: Path, table: pa.Table, *, stream: bool, chunk: int) -> None:
    new = pa_ipc.new_stream if stream else pa_ipc.new_file
    with new(path, table.schema) as writer:
        writer.write_table(table, max_chunksize=chunk)


@pytest.mark.parametrize("suffix", [".arrow", ".ipc", ".feather"])
@pytest.mark.parametrize("stream", [False, True])
def test_ipc_file_and_stream(tmp_path: Path, suffix: str, stream: bool) -> None:
    table = samples(1000)
    path = tmp_path / f"samples{suffix}"
    write_ipc(path, table, stream=stream, chunk=333)
    sample_file = open_sample_file(path)
    assert sample_file.format == "ipc"
    assert sample_file.total_rows == (None if stream else 1000)
    assert sample_file.schema == table.schema
    for batch_rows in (100, 250, 1000, 5000):
        got, sizes = read_all(sample_file, batch_rows)
        assert_sizes(sizes, 1000, batch_rows)
        assert got.equals(table)


def test_feather_v2_compressed(tmp_path: Path) -> None:
    table = samples(500)
    path = tmp_path / "samples.feather"
    feather.write_feather(table, path, compression="zstd", chunksize=64)
    sample_file = open_sample_file(path)
    assert sample_file.total_rows == 500
    got, sizes = read_all(sample_file, 200)
    assert sizes == [200, 200, 100]
    assert got.equals(table)


def test_empty_ipc_stream_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.arrow"
    write_ipc(path, samples(0), stream=True, chunk=10)
    sample_file = open_sample_file(path)
    assert list(sample_file.batches()) == []


# -- CSV ---------------------------------------------------------------------------------------

CSV_TEXT = (
    "timestamp,value,__name__,job,zip,env\n"
    "1000,1.5,up,api,007,\n"
    "2000,NaN,up,web,10,NA\n"
    "3000,,up,,,prod\n"
    '4000,-inf,up,"a,b",1e3,null\n'
)


def check_csv_content(sample_file: SampleFile) -> None:
    assert sample_file.format == "csv"
    assert sample_file.total_rows is None
    assert sample_file.schema == pa.schema(
        [
            ("timestamp", pa.int64()),
            ("value", pa.float64()),
            ("__name__", pa.string()),
            ("job", pa.string()),
            ("zip", pa.string()),
            ("env", pa.string()),
        ]
    )
    table, sizes = read_all(sample_file, 3)
    assert sizes == [3, 1]
    data = table.to_pydict()
    assert data["timestamp"] == [1000, 2000, 3000, 4000]
    value = data["value"]
    assert value[0] == 1.5 and math.isnan(value[1]) and value[2] is None and value[3] == -math.inf
    assert data["job"] == ["api", "web", "", "a,b"]  # an empty label is "", not null
    assert data["zip"] == ["007", "10", "", "1e3"]  # labels stay text, however numeric
    assert data["env"] == ["", "NA", "prod", "null"]


def test_csv(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    path.write_text(CSV_TEXT)
    check_csv_content(open_sample_file(path))


@pytest.mark.parametrize("name", ["samples.csv.gz", "SAMPLES.CSV.GZ"])
def test_gzipped_csv(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(CSV_TEXT.encode()))
    check_csv_content(open_sample_file(path))


def test_csv_timestamp_strings_are_left_as_text(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    path.write_text("value,timestamp,job\n1,2026-11-25T12:00:00Z,a\n2,2026-11-25T12:00:01Z,b\n")
    sample_file = open_sample_file(path)
    assert sample_file.schema.field("timestamp").type == pa.string()
    assert sample_file.schema.field("value").type == pa.float64()
    table, _ = read_all(sample_file, 10)
    assert table["timestamp"].to_pylist() == ["2026-11-25T12:00:00Z", "2026-11-25T12:00:01Z"]


def test_csv_header_only(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    path.write_text("timestamp,value,job\n")
    sample_file = open_sample_file(path)
    assert sample_file.schema.field("job").type == pa.string()
    assert list(sample_file.batches()) == []


def test_csv_many_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_CSV_BLOCK_BYTES", 1024)  # many small blocks
    table = samples(5000)
    path = tmp_path / "samples.csv.gz"
    with pa.CompressedOutputStream(str(path), "gzip") as out:
        pa_csv.write_csv(table, out)
    got, sizes = read_all(open_sample_file(path), 1200)
    assert_sizes(sizes, 5000, 1200)
    assert got.equals(table)


def test_csv_bad_value_in_a_later_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_CSV_BLOCK_BYTES", 256)
    lines = ["timestamp,value,job"] + [f"{i},{i}.5,a" for i in range(200)]
    lines[150] = "149,not-a-number,a"
    path = tmp_path / "samples.csv"
    path.write_text("\n".join(lines) + "\n")
    sample_file = open_sample_file(path)
    with pytest.raises(InputError, match=r"samples\.csv: cannot be read as CSV") as info:
        list(sample_file.batches(10))
    assert "column 'value'" in str(info.value) and "'not-a-number'" in str(info.value)


def test_csv_non_integer_timestamp_in_a_later_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "_CSV_BLOCK_BYTES", 256)
    lines = ["timestamp,value"] + [f"{i},1" for i in range(200)] + ["2026-11-25T12:00:00Z,1"]
    path = tmp_path / "samples.csv"
    path.write_text("\n".join(lines) + "\n")
    sample_file = open_sample_file(path)
    assert sample_file.schema.field("timestamp").type == pa.int64()
    with pytest.raises(InputError, match="samples.csv") as info:
        list(sample_file.batches())
    assert "column 'timestamp'" in str(info.value)


# -- errors ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file; check the path") as info:
        open_sample_file(tmp_path / "nope.parquet")
    with pytest.raises(InputError, match="no such file"):
        open_sample_file(tmp_path / "nope.txt")
    assert "nope.parquet" in str(info.value)


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.parquet").mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        open_sample_file(tmp_path / "dir.parquet")


@pytest.mark.parametrize(
    "name", ["samples.txt", "samples.json", "samples.csv.bz2", "samples", "gz"]
)
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("timestamp,value\n1,1\n")
    with pytest.raises(InputError, match="cannot tell the format") as info:
        open_sample_file(path)
    message = str(info.value)
    assert name in message and ".parquet" in message and ".csv.gz" in message


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.parquet", b"this is not parquet at all", "cannot be read as a Parquet file"),
        ("empty.parquet", b"", "cannot be read as a Parquet file"),
        ("bad.arrow", b"this is not arrow at all", "cannot be read as an Arrow IPC file"),
        ("empty.ipc", b"", "cannot be read as an Arrow IPC file"),
        ("bad.feather", b"ARROW1\x00\x00garbage", "cannot be read as an Arrow IPC file"),
        ("old.feather", b"FEA1" + b"\x00" * 64, "Feather version 1"),
        ("empty.csv", b"", "cannot be read as CSV"),
        ("bad.csv.gz", b"timestamp,value\n1,1\n", "cannot be read as CSV"),
        ("binary.csv", b"\xff\xfe\x00\x01" * 64, "cannot be read as CSV"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes, fragment: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        sample_file = open_sample_file(path)
        list(sample_file.batches())
    message = str(info.value)
    assert str(path) in message and fragment in message


def test_truncated_parquet(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    pq.write_table(samples(1000), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InputError, match="cut.parquet: cannot be read as a Parquet file"):
        open_sample_file(path)


@pytest.mark.parametrize("stream", [False, True])
def test_truncated_ipc(tmp_path: Path, stream: bool) -> None:
    path = tmp_path / "cut.arrow"
    write_ipc(path, samples(1000), stream=stream, chunk=100)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="cut.arrow: cannot be read as an Arrow IPC file"):
        list(open_sample_file(path).batches(100))


def test_file_removed_after_open(tmp_path: Path) -> None:
    path = tmp_path / "gone.csv"
    path.write_text(CSV_TEXT)
    sample_file = open_sample_file(path)
    path.unlink()
    with pytest.raises(InputError, match="gone.csv"):
        list(sample_file.batches())


@pytest.mark.parametrize("drop", [["timestamp"], ["value"], ["timestamp", "value"]])
def test_required_columns(tmp_path: Path, drop: list[str]) -> None:
    path = tmp_path / "samples.parquet"
    pq.write_table(samples(3).drop_columns(drop), path)
    with pytest.raises(InputError, match="no 'timestamp'|no 'value'") as info:
        open_sample_file(path)
    assert all(repr(column) in str(info.value) for column in drop)


@pytest.mark.parametrize("batch_rows", [0, -1, 1.5, True])
def test_batch_rows_must_be_positive(tmp_path: Path, batch_rows: int) -> None:
    path = tmp_path / "samples.parquet"
    pq.write_table(samples(3), path)
    with pytest.raises(ValueError, match="batch_rows"):
        open_sample_file(path).batches(batch_rows)


# -- re-batching -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=40), max_size=12),
    st.integers(min_value=1, max_value=50),
)
def test_rebatch_cuts_exact_batches(chunks: list[int], batch_rows: int) -> None:
    total = sum(chunks)
    column = pa.array(np.arange(total, dtype=np.int64))
    bounds = np.cumsum([0, *chunks])
    batches = [
        pa.record_batch([column.slice(lo, hi - lo)], names=["x"])
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    out = list(files._rebatch(iter(batches), batch_rows))
    if total:
        assert_sizes([b.num_rows for b in out], total, batch_rows)
    else:
        assert out == []
    joined = [v for b in out for v in b.column(0).to_pylist()]
    assert joined == list(range(total))
