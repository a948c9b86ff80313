"""Reading a block's payloads: both columns of a row group in one read, codec ids as numpy
without Polars or pandas, and damaged codec ids refused with the block named."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import tsdb_arrow as ta
from tests.conftest import synthetic
from tsdb_arrow.errors import CorruptBlockError


@pytest.fixture
def block(tmp_path):
    with ta.open(tmp_path / "db", config=ta.StorageConfig(cache_bytes=0)) as db:
        db.write(synthetic(n_series=30, n_samples=500))
        db.flush()
        blocks, release = db._blockset.acquire()  # files open while held
        try:
            yield blocks[0]
        finally:
            release()


def test_one_read_gives_both_columns_as_two_reads_do(block):
    before = block.reads
    both = block.read_payloads(0, ("timestamps", "values"))
    assert block.reads == before + 2  # counted per column, as separate reads are
    for column in ("timestamps", "values"):
        ids, payloads = block.payloads(0, column)
        assert ids.dtype == np.uint8 and np.array_equal(both[column][0], ids)
        assert both[column][1].equals(payloads)
    assert block.reads == before + 4
    lo, hi = block.chunk_range(0)
    assert len(both["values"][0]) == hi - lo


def test_codec_ids_of_several_chunks_are_concatenated(block):
    ids = pa.chunked_array([pa.array([1, 2], pa.uint8()), pa.array([3], pa.uint8()).slice(0)])
    assert block._codec_ids(0, ids).tolist() == [1, 2, 3]
    sliced = pa.chunked_array([pa.array([9, 4, 5], pa.uint8()).slice(1)])
    assert block._codec_ids(0, sliced).tolist() == [4, 5]


@pytest.mark.parametrize(
    "ids", [pa.array([1, None], pa.uint8()), pa.array([1, 2], pa.int32())], ids=["null", "int32"]
)
def test_damaged_codec_ids_are_refused(block, ids):
    with pytest.raises(CorruptBlockError, match="row group 3: codec ids must be non-null uint8"):
        block._codec_ids(3, pa.chunked_array([ids]))
