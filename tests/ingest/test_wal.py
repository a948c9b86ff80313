"""Tests of the write-ahead log: bit-exact round trips, segments, torn and corrupt records, fsync
modes, concurrency, and real processes killed with SIGKILL."""

from __future__ import annotations

import errno
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import crc32c
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.errors import ClosedError, ConfigError, WalError
from tsdb_arrow.ingest import wal
from tsdb_arrow.ingest.wal import (
    FSYNC_MODES,
    WalCorruptionWarning,
    WriteAheadLog,
    encode_record,
    repair,
    replay,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "wal" / "00000001.wal"
STALE = 0x7FF0000000000002
SPECIAL_BITS = [
    STALE,
    0x8000000000000000,  # -0.0
    0x7FF8000000000000,  # the usual quiet NaN
    0xFFF8000000000001,  # negative NaN with a payload
    0x7FF0000000000001,  # signalling NaN
    0x7FF0000000000000,  # +inf
    0,
]


def bits(table: pa.Table) -> pa.Table:
    """``table`` with float columns seen as unsigned ints, so that ``equals`` compares bits."""
    columns = []
    for column in table.columns:
        if pa.types.is_floating(column.type):
            as_int = pa.from_numpy_dtype(np.dtype(f"u{column.type.bit_width // 8}"))
            column = pa.chunked_array([c.view(as_int) for c in column.chunks], as_int)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def assert_same(got: pa.Table, want: pa.Table | pa.RecordBatch) -> None:
    want = want if isinstance(want, pa.Table) else pa.Table.from_batches([want])
    assert got.schema.equals(want.schema, check_metadata=True)
    assert bits(got).equals(bits(want))


def float_table(values: list[float], **labels: str) -> pa.Table:
    return pa.table({"value": pa.array(values, pa.float64())}, metadata=labels or None)


def replay_all(directory: Path) -> list[tuple[int, list[tuple[int, pa.Table]]]]:
    """Every record of ``directory``, failing the test on any corruption warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return list(replay(directory))


def replay_warned(directory: Path) -> tuple[list, list[WalCorruptionWarning]]:
    """The records of ``directory`` and every warning the replay gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(replay(directory))
    return records, [w.message for w in caught]


# -- round trips ---------------------------------------------------------------------------


@st.composite
def tables(draw: st.DrawFn) -> pa.Table | pa.RecordBatch:
    """Small tables of uint64, int64, float64 (any bit pattern) and string columns."""
    rows = draw(st.integers(0, 12))
    columns = {}
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["uint64", "int64", "float64", "string"]))
        if kind == "string":
            data = draw(st.lists(st.none() | st.text(), min_size=rows, max_size=rows))
            columns[f"c{i}"] = pa.array(data, pa.string())
            continue
        raw = draw(
            st.lists(
                st.sampled_from(SPECIAL_BITS) | st.integers(0, 2**64 - 1),
                min_size=rows,
                max_size=rows,
            )
        )
        columns[f"c{i}"] = pa.array(np.array(raw, dtype=np.uint64).view(kind))
    table = pa.table(columns, metadata=draw(st.none() | st.just({"origin": "test"})))
    if draw(st.booleans()):
        return table.to_batches()[0] if rows else pa.RecordBatch.from_pylist([], table.schema)
    if rows > 1 and draw(st.booleans()):  # several chunks
        cut = draw(st.integers(1, rows - 1))
        return pa.concat_tables([table.slice(0, cut), table.slice(cut)])
    return table


records_strategy = st.lists(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), tables()), min_size=1, max_size=4),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(records=records_strategy, segment_bytes=st.sampled_from([1, 2000, 2**20]))
def test_records_replay_bit_for_bit(records: list, segment_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        with WriteAheadLog(directory, fsync="never", segment_bytes=segment_bytes) as log:
            positions = [log.append(entries) for entries in records]
        assert positions == sorted(set(positions))
        got = replay_all(Path(directory))
        assert len(got) == len(records)
        for (_, entries), want in zip(got, records):
            assert [kind for kind, _ in entries] == [kind for kind, _ in want]
            for (_, table), (_, want_table) in zip(entries, want):
                assert_same(table, want_table)
        sizes = sum(p.stat().st_size for p in Path(directory).iterdir())
        assert positions[-1] == sizes


@settings(max_examples=60, deadline=None)
@given(records=records_strategy)
def test_streamed_records_are_the_built_records_byte_for_byte(records: list) -> None:
    """A big record goes to the segment stream by stream from the batch's buffers; every
    record streamed (the threshold at 0) gives the very bytes ``encode_record`` builds."""
    with tempfile.TemporaryDirectory() as directory:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(wal, "STREAM_RECORD_BYTES", 0)
            with WriteAheadLog(directory, fsync="never", segment_bytes=2**30) as log:
                for entries in records:
                    log.append(entries)
        written = (Path(directory) / wal.segment_name(1)).read_bytes()
    assert written == b"".join(encode_record(entries).to_pybytes() for entries in records)


def test_a_big_record_is_streamed_and_replays_bit_for_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write of millions of samples (over ``STREAM_RECORD_BYTES``) takes the streamed path,
    with its small pieces gathered: a handful of system calls, not one per Arrow piece."""
    rng = np.random.default_rng(3)
    n = 1_200_000
    values = rng.integers(0, 2**64, n, dtype=np.uint64)
    values[::7] = STALE
    table = pa.table({"ref": rng.integers(0, 2**64, n, dtype=np.uint64),
                      "value": pa.array(values.view(np.float64))})  # fmt: skip
    entries = [(1, table), (2, float_table([1.0, -0.0]))]
    want = encode_record(entries)
    assert want.size >= wal.STREAM_RECORD_BYTES
    real_write = os.write
    calls = []

    def counted(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(wal, "_encode", None)  # the streamed path builds no record
    monkeypatch.setattr(wal.os, "write", counted)
    with WriteAheadLog(tmp_path, fsync="never") as log:
        assert log.append(entries) == want.size
    monkeypatch.undo()
    assert (tmp_path / wal.segment_name(1)).read_bytes() == want.to_pybytes()
    # the header, directory and first message; each column's buffer; what follows them
    assert calls == [432, 8 * n, 8 * n, 304]
    ((_, got),) = replay_all(tmp_path)
    assert [kind for kind, _ in got] == [1, 2]
    assert_same(got[0][1], table)


def test_stale_markers_nan_payloads_and_negative_zero_keep_their_bits(tmp_path: Path) -> None:
    raw = np.array(SPECIAL_BITS, dtype=np.uint64)
    with WriteAheadLog(tmp_path) as log:
        log.append([(7, pa.table({"value": raw.view(np.float64)}))])
    [(segment, [(kind, table)])] = replay_all(tmp_path)
    assert (segment, kind) == (1, 7)
    assert table.column("value").to_numpy().view(np.uint64).tolist() == raw.tolist()


def test_an_empty_record_and_empty_tables_replay(tmp_path: Path) -> None:
    empty = pa.table({"a": pa.array([], pa.int64())})
    with WriteAheadLog(tmp_path) as log:
        log.append([])
        log.append([(1, empty), (2, pa.RecordBatch.from_pylist([], empty.schema))])
    got = replay_all(tmp_path)
    assert got[0] == (1, [])
    assert [(k, t.num_rows, t.schema) for k, t in got[1][1]] == [
        (1, 0, empty.schema),
        (2, 0, empty.schema),
    ]


def test_record_layout_matches_the_documented_header(tmp_path: Path) -> None:
    record = encode_record([(3, float_table([1.5])), (9, float_table([]))]).to_pybytes()
    magic, version, length, payload_crc, header_crc = struct.unpack_from("<4sIQII", record)
    assert (magic, version, len(record)) == (b"TWAL", 1, 24 + length)
    assert header_crc == crc32c.crc32c(record[:20])
    assert payload_crc == crc32c.crc32c(record[24:])
    count, reserved = struct.unpack_from("<II", record, 24)
    slots = [struct.unpack_from("<IIQ", record, 32 + 16 * i) for i in range(count)]
    assert (count, reserved, [(k, r) for k, r, _ in slots]) == (2, 0, [(3, 0), (9, 0)])
    start = 32 + 16 * count
    for _, _, size in slots:
        assert record[start : start + 4] == b"\xff\xff\xff\xff"  # IPC continuation marker
        start += -(-size // 8) * 8
    assert start == len(record) and length % 8 == 0


def test_record_entries_are_the_default_ipc_streams_byte_for_byte() -> None:
    """Each entry is written once, with the default IPC options: the bytes a plain
    ``pyarrow.ipc.new_stream`` writes for it, then zeros up to the 8-byte boundary."""
    table = pa.concat_tables([float_table([1.5, 2.5]), float_table([3.5])])  # two chunks
    batch = float_table([4.5]).to_batches()[0]
    expected = []
    for t in (table, batch):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as writer:
            writer.write(t)
        expected.append(sink.getvalue().to_pybytes())
    record = encode_record([(1, table), (2, batch)]).to_pybytes()
    got, start = [], 32 + 16 * 2
    for i in range(2):
        size = struct.unpack_from("<IIQ", record, 32 + 16 * i)[2]
        got.append(record[start : start + size])
        assert record[start + size : start - (-size // 8) * 8] == bytes(-size % 8)
        start += -(-size // 8) * 8
    assert got == expected and start == len(record)


def test_a_committed_segment_still_replays() -> None:
    """Format drift guard: the fixture was written by this module's first version."""
    [(segment, entries)] = replay_all(FIXTURE.parent)
    assert segment == 1
    [(kind, table)] = entries
    assert kind == 1
    assert table.column("series").to_pylist() == [1, 2**64 - 1]
    assert table.column("timestamp").to_pylist() == [1_700_000_000_000, -1]
    assert table.column("value").to_numpy().view(np.uint64).tolist() == [STALE, 1 << 63]
    assert table.column("name").to_pylist() == ["up", None]


# -- segments ------------------------------------------------------------------------------


def test_segments_roll_before_the_size_limit_and_big_records_go_alone(tmp_path: Path) -> None:
    small = [(0, float_table([1.0] * 4))]
    size = encode_record(small).size
    big = [(1, float_table([0.0] * 1000))]
    big_size = encode_record(big).size
    with WriteAheadLog(tmp_path, segment_bytes=2 * size + 1) as log:
        log.append(big)  # into the empty first segment: no empty segment before it
        for _ in range(5):
            log.append(small)
        log.append(big)
        log.append(small)
        assert log.segment == 6
    got = replay_all(tmp_path)
    assert [segment for segment, _ in got] == [1, 2, 2, 3, 3, 4, 5, 6]
    assert [k for _, entries in got for k, _ in entries] == [1, 0, 0, 0, 0, 0, 1, 0]
    sizes = [(tmp_path / wal.segment_name(n)).stat().st_size for n in range(1, 7)]
    assert sizes == [big_size, 2 * size, 2 * size, size, big_size, size]


def test_roll_and_drop_before(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path, fsync="always") as log:
        log.append([(1, float_table([1.0]))])
        assert log.roll() == 2
        log.append([(2, float_table([2.0]))])
        assert log.roll() == 3
        assert log.segments() == [1, 2, 3]
        log.drop_before(2)
        assert log.segments() == [2, 3]
        assert sorted(os.listdir(tmp_path)) == ["00000002.wal", "00000003.wal"]
        with pytest.raises(WalError, match="roll"):
            log.drop_before(4)
        log.drop_before(3)
        assert log.segments() == [3]
        log.append([(3, float_table([3.0]))])
    assert [(s, [k for k, _ in e]) for s, e in replay_all(tmp_path)] == [(3, [3])]


def test_reopening_continues_numbering_past_set_aside_segments(tmp_path: Path) -> None:
    for expected in (1, 2):
        with WriteAheadLog(tmp_path) as log:
            assert log.segment == expected
            log.append([(expected, float_table([1.0]))])
    (tmp_path / "00000007.wal.corrupt").write_bytes(b"junk")
    with WriteAheadLog(tmp_path) as log:
        assert log.segment == 8
        assert log.segments() == [1, 2, 8]
    assert [s for s, _ in replay_all(tmp_path)] == [1, 2]


# -- torn and corrupt records --------------------------------------------------------------


def three_records(directory: Path) -> tuple[Path, int, int, bytes]:
    """Write records A, B, C; return the segment, C's start and end offsets, and the bytes."""
    with WriteAheadLog(directory, fsync="never") as log:
        log.append([(1, float_table([1.0]))])
        start = log.append([(2, float_table([2.0])), (3, pa.table({"s": ["b"]}))])
        end = log.append([(4, float_table([3.0, float("nan")]))])
    path = directory / "00000001.wal"
    data = path.read_bytes()
    assert len(data) == end
    return path, start, end, data


def kinds(records: list) -> list[list[int]]:
    return [[k for k, _ in entries] for _, entries in records]


def test_a_torn_tail_at_every_offset_keeps_what_came_before(tmp_path: Path) -> None:
    path, start, end, data = three_records(tmp_path)
    assert end - start < 1000  # a small record: every cut is tried
    for cut in range(start, end):
        path.write_bytes(data[:cut])
        records, caught = replay_warned(tmp_path)
        assert kinds(records) == [[1], [2, 3]], cut
        if cut == start:
            assert caught == []  # the file ends between records: nothing is torn
            continue
        assert len(caught) == 1, cut
        [warning] = caught
        assert isinstance(warning, WalCorruptionWarning)
        assert (warning.path, warning.offset) == (path, start)
        assert f"{path} is torn or corrupt at byte offset {start}" in str(warning)
        reason = "short header" if cut - start < wal.HEADER_BYTES else "short payload"
        assert reason in str(warning)


def test_every_flipped_byte_of_a_record_is_caught(tmp_path: Path) -> None:
    path, start, end, data = three_records(tmp_path)
    for i in range(start, end):
        flipped = bytearray(data)
        flipped[i] ^= 0x01
        path.write_bytes(flipped)
        records, caught = replay_warned(tmp_path)
        assert kinds(records) == [[1], [2, 3]], i
        assert [(w.path, w.offset) for w in caught] == [(path, start)], i
        if i >= start + wal.HEADER_BYTES:
            assert "payload CRC32C mismatch" in str(caught[0])


def test_a_newer_format_version_is_refused_not_repaired(tmp_path: Path) -> None:
    path, start, end, data = three_records(tmp_path)
    record = bytearray(data[start:end])
    struct.pack_into("<I", record, 4, 2)
    struct.pack_into("<I", record, 20, crc32c.crc32c(bytes(record[:20])))
    path.write_bytes(data[:start] + bytes(record))
    with pytest.raises(WalError, match="format version 2"):
        list(replay(tmp_path))


def test_repair_truncates_a_torn_tail_so_later_appends_replay(tmp_path: Path) -> None:
    path, start, end, data = three_records(tmp_path)
    path.write_bytes(data[: end - 3])
    scan = replay(tmp_path)
    with pytest.warns(WalCorruptionWarning):
        assert kinds(list(scan)) == [[1], [2, 3]]
    assert repair(tmp_path, scan.corruption) == scan.corruption
    assert path.stat().st_size == start
    assert repair(tmp_path) is None
    with WriteAheadLog(tmp_path) as log:
        log.append([(5, float_table([5.0]))])
    assert kinds(replay_all(tmp_path)) == [[1], [2, 3], [5]]


def test_a_corrupt_middle_segment_ends_replay_and_repair_sets_later_ones_aside(
    tmp_path: Path,
) -> None:
    with WriteAheadLog(tmp_path) as log:
        log.append([(1, float_table([1.0]))])
        log.roll()
        log.append([(2, float_table([2.0]))])
        log.append([(3, float_table([3.0]))])
        log.roll()
        log.append([(4, float_table([4.0]))])
    middle = tmp_path / "00000002.wal"
    data = bytearray(middle.read_bytes())
    first = encode_record([(2, float_table([2.0]))]).size
    data[-5] ^= 0xFF  # inside the payload of the second record of segment 2
    middle.write_bytes(data)

    scan = replay(tmp_path)
    with pytest.warns(WalCorruptionWarning, match="payload CRC32C mismatch") as caught:
        assert kinds(list(scan)) == [[1], [2]]
    assert len(caught) == 1
    assert (scan.corruption.segment, scan.corruption.offset) == (2, first)

    assert repair(tmp_path).offset == first  # found by its own scan
    assert sorted(os.listdir(tmp_path)) == [
        "00000001.wal",
        "00000002.wal",
        "00000003.wal.corrupt",
    ]
    assert middle.stat().st_size == first
    assert kinds(replay_all(tmp_path)) == [[1], [2]]
    with WriteAheadLog(tmp_path) as log:
        assert log.segment == 4


# -- options, errors and fsync modes -------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"fsync": "sometimes"},
        {"fsync": "ALWAYS"},
        {"fsync_interval": 0},
        {"fsync_interval": -1.0},
        {"fsync_interval": float("nan")},
        {"fsync_interval": "1"},
        {"segment_bytes": 0},
        {"segment_bytes": 1.5},
        {"segment_bytes": True},
    ],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict) -> None:
    with pytest.raises(ConfigError):
        WriteAheadLog(tmp_path / "wal", **options)
    assert not (tmp_path / "wal").exists()


def test_bad_entries_are_refused_and_write_nothing(tmp_path: Path) -> None:
    with WriteAheadLog(tmp_path) as log:
        with pytest.raises(WalError, match="kind"):
            log.append([(2**32, float_table([1.0]))])
        with pytest.raises(WalError, match="kind"):
            log.append([(-1, float_table([1.0]))])
        with pytest.raises(WalError, match="Table or RecordBatch"):
            log.append([(1, [1.0])])
    assert (tmp_path / "00000001.wal").stat().st_size == 0


def test_use_after_close_raises_and_close_is_idempotent(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path)
    log.close()
    log.close()
    with pytest.raises(ClosedError, match="closed"):
        log.append([(1, float_table([1.0]))])
    with pytest.raises(ClosedError):
        log.roll()


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every file and directory fsync the WAL does."""
    calls: list[str] = []
    real_file, real_dir = wal._fsync_file, wal._fsync_dir

    def fsync_file(fd: int) -> None:
        calls.append("file")
        real_file(fd)

    def fsync_dir(path: Path) -> None:
        calls.append("dir")
        real_dir(path)

    monkeypatch.setattr(wal, "_fsync_file", fsync_file)
    monkeypatch.setattr(wal, "_fsync_dir", fsync_dir)
    return calls


def test_never_hands_records_to_the_os_but_never_fsyncs(tmp_path: Path, fsyncs: list) -> None:
    log = WriteAheadLog(tmp_path / "wal", fsync="never")
    position = log.append([(1, float_table([1.0]))])
    assert kinds(replay_all(tmp_path / "wal")) == [[1]]  # readable while still open
    log.sync_to(position)
    log.roll()
    log.close()
    assert fsyncs == []
    assert log.durable_position == 0


def test_always_fsyncs_before_append_returns(tmp_path: Path, fsyncs: list) -> None:
    with WriteAheadLog(tmp_path, fsync="always") as log:
        for i in range(3):
            position = log.append([(i, float_table([1.0]))])
            assert log.durable_position == position
        assert fsyncs == ["file", "dir", "file", "file"]  # the new segment's name once


def test_interval_syncs_in_the_background_and_sync_to_on_demand(
    tmp_path: Path, fsyncs: list
) -> None:
    with WriteAheadLog(tmp_path, fsync="interval", fsync_interval=3600) as log:
        position = log.append([(1, float_table([1.0]))])
        assert (log.durable_position, fsyncs) == (0, [])
        log.sync_to(position)
        assert (log.durable_position, fsyncs) == (position, ["file", "dir"])
        log.sync_to(position)  # already durable: no second fsync
        assert len(fsyncs) == 2
    with WriteAheadLog(tmp_path, fsync="interval", fsync_interval=0.01) as log:
        position = log.append([(1, float_table([1.0]))])
        deadline = time.monotonic() + 5
        while log.durable_position < position and time.monotonic() < deadline:
            time.sleep(0.005)
        assert log.durable_position == position


def test_close_fsyncs_unless_never(tmp_path: Path, fsyncs: list) -> None:
    log = WriteAheadLog(tmp_path, fsync="interval", fsync_interval=3600)
    position = log.append([(1, float_table([1.0]))])
    log.close()
    assert log.durable_position == position
    assert "file" in fsyncs


def test_a_failed_write_leaves_no_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write

    def half_then_full_disk(fd: int, data: memoryview) -> int:
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    with WriteAheadLog(tmp_path, fsync="never") as log:
        log.append([(1, float_table([1.0]))])
        monkeypatch.setattr(wal.os, "write", half_then_full_disk)
        with pytest.raises(WalError, match="No space left on device.*not stored"):
            log.append([(2, float_table([2.0] * 100))])
        monkeypatch.setattr(wal.os, "write", real_write)
        log.append([(3, float_table([3.0]))])
    assert kinds(replay_all(tmp_path)) == [[1], [3]]


def test_a_failed_streamed_write_leaves_no_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills in the middle of a streamed record (after its header and a column went
    out): the append raises, the segment is cut back, and the next record replays after the
    first."""
    real_write = os.write
    written = []

    def full_after_two(fd: int, data: memoryview) -> int:
        if len(written) == 2:
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(wal, "STREAM_RECORD_BYTES", 1024)
    big = [(2, float_table([2.0] * 10_000))]
    with WriteAheadLog(tmp_path, fsync="never") as log:
        log.append([(1, float_table([1.0]))])
        monkeypatch.setattr(wal.os, "write", full_after_two)
        with pytest.raises(WalError, match="No space left on device.*not stored"):
            log.append(big)
        assert written and len(written) == 2
        monkeypatch.setattr(wal.os, "write", real_write)
        log.append([(3, float_table([3.0]))])
        log.append(big)
    assert kinds(replay_all(tmp_path)) == [[1], [3], [2]]


def test_a_failed_fsync_stops_further_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    log = WriteAheadLog(tmp_path, fsync="always")
    monkeypatch.setattr(wal, "_fsync_file", broken)
    with pytest.raises(WalError, match="fsync .*Input/output error.*open it again"):
        log.append([(1, float_table([1.0]))])
    with pytest.raises(WalError, match="fsync"):
        log.append([(2, float_table([2.0]))])
    log.close()


def test_drop_before_names_the_directory_when_it_cannot_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    with WriteAheadLog(tmp_path) as log:
        log.roll()
        monkeypatch.setattr(Path, "unlink", refuse)
        with pytest.raises(WalError, match=f"{re.escape(str(tmp_path))}.*Permission denied"):
            log.drop_before(2)


# -- concurrency and crashes ---------------------------------------------------------------


@pytest.mark.parametrize("mode", FSYNC_MODES)
def test_concurrent_appenders_produce_intact_records(tmp_path: Path, mode: str) -> None:
    threads, per_thread = 4, 60
    positions: list[int] = []

    def appender(t: int) -> None:
        for i in range(per_thread):
            table = pa.table({"t": [t] * (1 + i % 7), "i": [i] * (1 + i % 7)})
            positions.append(log.append([(t, table), (i, table.slice(0, 1))]))

    with WriteAheadLog(tmp_path, fsync=mode, fsync_interval=0.001, segment_bytes=8192) as log:
        workers = [threading.Thread(target=appender, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert len(set(positions)) == threads * per_thread
    seen: dict[int, list[int]] = {t: [] for t in range(threads)}
    for _, [(t, table), (i, first)] in replay_all(tmp_path):
        assert table.column("t").to_pylist() == [t] * (1 + i % 7)
        assert table.column("i").to_pylist() == [i] * (1 + i % 7)
        assert first.to_pylist() == [{"t": t, "i": i}]
        seen[t].append(i)
    assert seen == {t: list(range(per_thread)) for t in range(threads)}
    assert len(os.listdir(tmp_path)) > 2  # the appends rolled segments as they went


CHILD = """
import sys
import numpy as np, pyarrow as pa
from tsdb_arrow.ingest.wal import WriteAheadLog
directory, mode, run = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(run)
log = WriteAheadLog(directory, fsync=mode, fsync_interval=0.005, segment_bytes=1 << 20)
i = 0
while True:
    rows = int(rng.integers(1, 30_000))
    table = pa.table({"run": np.full(rows, run), "i": np.full(rows, i),
                      "value": rng.random(rows)})
    position = log.append([(run, table)])
    print(i, position, flush=True)
    i += 1
"""


@pytest.mark.parametrize("mode", FSYNC_MODES)
def test_sigkill_loses_no_acknowledged_record(tmp_path: Path, mode: str) -> None:
    acked: dict[int, int] = {}  # run -> highest acknowledged i
    rng = random.Random(8)
    for run in range(2):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), mode, str(run)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wanted, last = rng.randint(3, 40), -1
            while last < wanted:
                line = child.stdout.readline()
                assert line, child.stderr.read()
                last = int(line.split()[0])
            time.sleep(rng.random() * 0.01)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            unread = child.stdout.read()
            child.stdout.close()
            child.stderr.close()
        # Lines the child printed before it died are acknowledgements too.
        for line in unread.splitlines(keepends=True):
            if line.endswith("\n"):
                last = int(line.split()[0])
        acked[run] = last
        records, caught = replay_warned(tmp_path)
        assert len(caught) <= 1  # only a record the kill cut short, never an acknowledged one
        repair(tmp_path)
        found: dict[int, list[int]] = {r: [] for r in acked}
        for _, [(r, table)] in records:
            i = table.column("i")[0].as_py()
            assert table.column("i").to_pylist() == [i] * table.num_rows
            found[r].append(i)
        for r, highest in acked.items():
            assert found[r][: highest + 1] == list(range(highest + 1))
            assert len(found[r]) - 1 - highest <= 1  # at most the record in flight
