"""Read-only opens: no lock, blocks flushed so far, refresh, and a clear refusal of writes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

import tsdb_arrow as ta

HOUR = 3_600_000


def frame(ts, values, name: str = "m") -> pl.DataFrame:
    return pl.DataFrame({"timestamp": ts, "value": values, "__name__": name}).with_columns(
        pl.col("timestamp").cast(pl.Int64), pl.col("value").cast(pl.Float64)
    )


def values_of(db: ta.Database) -> list[tuple[int, float]]:
    got = db.select().collect()
    return list(zip(got["timestamp"].dt.epoch("ms").to_list(), got["value"].to_list()))


def test_read_only_open_beside_the_owner_sees_flushed_blocks_and_refreshes(tmp_path):
    with ta.open(tmp_path / "db") as owner:
        owner.write(frame([1000, 2000], [1, 2]))
        owner.flush()
        owner.write(frame([3000], [3]))  # in the owner's head: not visible to other readers
        reader = ta.open(tmp_path / "db", read_only=True)
        assert values_of(reader) == [(1000, 1.0), (2000, 2.0)]
        assert reader.stats()["read_only"] is True
        owner.flush()
        assert values_of(reader) == [(1000, 1.0), (2000, 2.0)]  # until refreshed
        added = reader.refresh()
        assert len(added) == 1
        assert values_of(reader) == [(1000, 1.0), (2000, 2.0), (3000, 3.0)]
        assert reader.refresh() == []
        reader.close()
    assert not any(
        f.path.endswith("chunks.parquet") for f in __import__("psutil").Process().open_files()
    )


@pytest.mark.parametrize("call", ["write", "flush"])
def test_writes_on_a_read_only_open_are_refused(tmp_path, call):
    with ta.open(tmp_path / "db") as owner:
        owner.write(frame([1], [1]))
    with ta.open(tmp_path / "db", read_only=True) as reader:
        with pytest.raises(ta.ReadOnlyError, match="opened read-only"):
            if call == "write":
                reader.write(frame([2], [2]))
            else:
                reader.flush()
        assert values_of(reader) == [(1, 1.0)]


def test_read_only_needs_an_existing_data_directory(tmp_path):
    with pytest.raises(ta.DataDirectoryError, match="not a directory"):
        ta.open(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()  # nothing created
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(ta.DataDirectoryError, match="not a tsdb-arrow data directory"):
        ta.open(tmp_path / "other", read_only=True)


def test_read_only_ignores_a_half_written_block_and_leaves_it_to_the_owner(tmp_path):
    with ta.open(tmp_path / "db") as owner:
        owner.write(frame([1], [1]))
    half = tmp_path / "db" / "blocks" / "b0000000007.tmp"
    half.mkdir()
    (half / "chunks.parquet").write_bytes(b"half")
    with ta.open(tmp_path / "db", read_only=True) as reader:
        assert values_of(reader) == [(1, 1.0)]
        assert reader.stats()["blocks"] == 1
    assert half.exists()  # only the owner cleans up


def test_a_block_removed_by_the_owner_does_not_break_a_running_query(tmp_path):
    with ta.open(tmp_path / "db") as owner:
        for i in range(2):
            owner.write(frame(np.arange(100) + i * 3 * HOUR, np.arange(100) + i))
            owner.flush()
    with ta.open(tmp_path / "db", read_only=True, config={"cache_bytes": 0}) as reader:
        first = reader._blockset.blocks()[0]
        snapshot, release = reader._snapshot()  # a query that has started
        shutil.rmtree(first.path)  # retention or compaction in the owner
        assert np.array_equal(first.decoded(0, "timestamps", reader._cache), np.arange(100))
        release()
        # The next query finds the block gone, refreshes and reads what is left.
        got = values_of(reader)
        assert len(got) == 100 and got[0] == (3 * HOUR, 1.0)
        assert reader.stats()["blocks"] == 1


def test_read_only_beside_an_owner_process(tmp_path):
    """The owner is another process (it holds the lock); the reader needs none."""
    script = textwrap.dedent(
        f"""
        import sys, polars as pl, tsdb_arrow as ta
        db = ta.open({str(tmp_path / "db")!r})
        db.write(pl.DataFrame({{"timestamp": [1, 2], "value": [1.0, 2.0], "__name__": "m"}}))
        db.flush()
        print("flushed", flush=True)
        sys.stdin.readline()
        db.close()
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as owner:
        try:
            assert owner.stdout.readline().strip() == "flushed"
            with pytest.raises(ta.LockedError):
                ta.open(tmp_path / "db")
            with ta.open(tmp_path / "db", read_only=True) as reader:
                assert values_of(reader) == [(1, 1.0), (2, 2.0)]
        finally:
            owner.stdin.write("\n")
            owner.stdin.flush()
            assert owner.wait(timeout=60) == 0


@pytest.mark.parametrize(
    "damage",
    ["meta_json", "meta_version", "chunks_truncated", "series_truncated"],
)
def test_a_corrupt_block_is_quarantined_and_the_rest_opens(tmp_path, damage):
    with ta.open(tmp_path / "db") as db:
        db.write(frame([1], [1], name="a"))
        db.flush()
        db.write(frame([3 * HOUR], [2], name="b"))
    bad = sorted((tmp_path / "db" / "blocks").iterdir())[0]
    if damage == "meta_json":
        (bad / "meta.json").write_text("{not json")
    elif damage == "meta_version":
        meta = (bad / "meta.json").read_text().replace('"version": 1', '"version": 99')
        (bad / "meta.json").write_text(meta)
    else:
        name = "chunks.parquet" if damage == "chunks_truncated" else "series.parquet"
        data = (bad / name).read_bytes()
        (bad / name).write_bytes(data[: len(data) // 2])

    with pytest.warns(ta.CorruptBlockWarning, match=f"skipping the unreadable block .*{bad.name}"):
        reader = ta.open(tmp_path / "db", read_only=True)
    with reader:
        assert reader.refresh() == []  # skipped once: no second warning
        assert values_of(reader) == [(3 * HOUR, 2.0)]
        assert reader.stats()["quarantined"] == [bad.name]
    assert bad.is_dir()  # a reader moves nothing
    with pytest.warns(ta.CorruptBlockWarning, match=f"{bad.name}.*quarantine"):
        db = ta.open(tmp_path / "db")
    with db:
        assert values_of(db) == [(3 * HOUR, 2.0)]
        assert db.stats()["quarantined"] == [bad.name]
        assert db.series()["__name__"].to_list() == ["b"]
    assert not bad.exists() and (tmp_path / "db" / "quarantine" / bad.name).is_dir()
    with ta.open(tmp_path / "db") as db:  # opens without a warning now
        assert db.stats()["quarantined"] == [bad.name]


def test_a_flipped_bit_in_a_payload_page_is_a_checksum_error_naming_the_file(tmp_path):
    rng = np.random.default_rng(1)
    with ta.open(tmp_path / "db") as db:
        db.write(frame(1_795_000_000_000 + np.arange(50_000) * 1000, rng.normal(size=50_000)))
    chunks = next((tmp_path / "db" / "blocks").glob("*/chunks.parquet"))
    data = bytearray(chunks.read_bytes())
    data[len(data) // 3] ^= 0x10  # inside the encoded values, past the index columns
    chunks.write_bytes(bytes(data))
    with ta.open(tmp_path / "db") as db:
        with pytest.raises(ta.CorruptBlockError, match=r"chunks\.parquet.*(CRC|checksum)"):
            db.select("m").collect()
