"""Selects over Flight that send flushed chunks as stored and decode them on the client: equal
bit for bit to the local select, whatever mix of stored and merged batches a select makes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import tsdb_arrow as ta
from tests.conftest import synthetic
from tests.flight_helpers import ODD_BITS, odd_frame, value_bits
from tests.server.test_flight import QUERIES
from tsdb_arrow.client.decoded import DecodedChunks, digest
from tsdb_arrow.query.read import Payloads
from tsdb_arrow.server import flight_wire as wire

T0 = 1_700_000_000_000
HOUR = 3_600_000


def _odd(n_series: int, n: int, t0: int, step: int = 1000, seed: int = 7) -> pl.DataFrame:
    """``odd_frame`` with its timestamps ``step`` apart from ``t0`` and shuffled other bits."""
    frame = odd_frame(n_series, n, t0)
    rng = np.random.default_rng(seed)
    bits = frame["value"].to_numpy().view(np.uint64).copy()
    rng.shuffle(bits)
    return frame.with_columns(
        pl.Series("timestamp", np.tile(t0 + np.arange(n, dtype=np.int64) * step, n_series)),
        pl.Series("value", bits.view(np.float64)),
    )


@pytest.fixture
def served(tmp_path):
    """A database of small chunks (many per series and row group) served over Flight."""
    db = ta.open(tmp_path / "db", config={"chunk_samples": 120, "block_duration": HOUR})
    try:
        server = ta.serve(db, otlp_grpc="off", otlp_http="off", http="off", flight="127.0.0.1:0")
        try:
            with ta.connect(f"grpc://{server.addresses['flight']}") as client:
                yield db, client
        finally:
            server.stop()
    finally:
        db.close()


@pytest.fixture
def counted(monkeypatch):
    """How many batches the client received as stored chunks, and how many as samples."""
    seen = {"stored": 0, "samples": 0}
    read_payloads, read_runs = wire.read_payloads, wire.read_runs

    def stored(raw):
        seen["stored"] += 1
        return read_payloads(raw)

    def samples(batch):
        seen["samples"] += 1
        return read_runs(batch)

    monkeypatch.setattr(wire, "read_payloads", stored)
    monkeypatch.setattr(wire, "read_runs", samples)
    return seen


def _write_blocks(db: ta.Database) -> pl.DataFrame:
    """Three hour-blocks of 4 series (odd bit patterns and stale markers among the values),
    flushed; returns what was written."""
    parts = [_odd(4, 1500, T0 + h * HOUR, step=2000, seed=h) for h in range(3)]
    for part in parts:
        db.write(part)
    db.flush()
    return pl.concat(parts)


def _assert_same(got: pl.DataFrame, local: pl.DataFrame) -> None:
    assert got.schema == local.schema
    assert got.drop("value").equals(local.drop("value"))
    assert np.array_equal(value_bits(got), value_bits(local))


def test_flushed_blocks_arrive_as_stored_chunks_bit_for_bit(served, counted, monkeypatch):
    db, client = served
    monkeypatch.setattr("tsdb_arrow.server.flight.STREAM_BATCH", 1000)
    written = _write_blocks(db)
    lf = client.select()
    for _ in range(2):  # decoded, then found in the client's cache
        got = lf.collect()
        _assert_same(got, db.select().collect())
    assert got.height == written.height == 3 * 4 * 1500
    assert (counted["stored"], counted["samples"]) == (2 * 18, 0)  # 18,000 rows in 1,000s
    for bits in ODD_BITS:
        assert int((value_bits(got) == bits).sum()) == int((value_bits(written) == bits).sum())
    assert client._decoded.cache.stats()["hits"] == 18


def test_head_rows_overlaps_and_deletes_fall_back_to_merged_batches(served, counted, monkeypatch):
    db, client = served
    monkeypatch.setattr("tsdb_arrow.server.flight.STREAM_BATCH", 500)
    _write_blocks(db)
    # Series h0: rewritten over the first block (an overlapping block), h1: samples deleted
    # in the second, h2: unflushed samples in the head; h3 stays as stored.
    db.write(_odd(1, 300, T0 + 10_000, seed=11))
    db.flush()
    db.delete('{host="h1"}', start=T0 + HOUR + 60_000, end=T0 + HOUR + 90_000)
    head = _odd(3, 40, T0 + 3 * HOUR, seed=12).filter(pl.col("host") == "h2")
    db.write(head)
    got = client.select().collect()
    _assert_same(got, db.select().collect())
    assert counted["stored"] > 0 and counted["samples"] > 0
    only_h3 = client.select('{host="h3"}').collect()
    _assert_same(only_h3, db.select('{host="h3"}').collect())


@pytest.mark.parametrize("cache_bytes", [0, 1 << 20], ids=["no-cache", "small-cache"])
def test_client_cache_off_or_full_gives_the_same_frames(served, tmp_path, cache_bytes):
    db, client = served
    _write_blocks(db)
    with ta.connect(client.address, cache_bytes=cache_bytes) as other:
        for _ in range(2):
            _assert_same(other.select().collect(), db.select().collect())
        stats = other._decoded.cache.stats()
    assert stats["bytes"] <= cache_bytes
    assert stats["hits"] + stats["misses"] == (0 if cache_bytes == 0 else 2 * stats["misses"])


@pytest.mark.parametrize("query", QUERIES, ids=[str(i) for i in range(len(QUERIES))])
def test_pushdown_over_stored_chunks_is_exact(served, query):
    db, client = served
    db.write(synthetic(n_series=9, n_samples=200))
    db.flush()
    remote = query(client.select()).collect()
    assert remote.equals(query(db.select()).collect())
    assert remote.equals(query(client.select().collect().lazy()).collect())


def test_time_range_cutting_chunks_is_exact(served, counted):
    db, client = served
    _write_blocks(db)
    start, end = T0 + HOUR - 7_000, T0 + 2 * HOUR + 123_457
    got = client.select(start=start, end=end).collect()
    _assert_same(got, db.select(start=start, end=end).collect())
    assert counted["samples"] > 0  # the chunks cut at either end are decoded on the server


def test_stored_batches_decode_to_the_samples_of_a_local_read(tmp_path):
    """iter_samples with payloads: each Payloads batch decodes to the batch it replaces."""
    with ta.open(tmp_path / "db", config={"chunk_samples": 100, "block_duration": HOUR}) as db:
        _write_blocks(db)
        db.write(_odd(1, 30, T0 + 3 * HOUR))  # head rows: merged batches too
        scan = db._scan(db.series(), None, None)
        chosen, lo, hi = scan.prune(None)
        kinds = set()
        for values in (True, False):
            read = [
                list(scan.samples(chosen, lo, hi, values=values, batch_size=700, payloads=payloads))
                for payloads in (False, True)
            ]
            assert len(read[0]) == len(read[1])
            decoded = DecodedChunks(0)
            for plain, stored in zip(*read):
                kinds.add(type(stored))
                if isinstance(stored, Payloads):
                    ts, vals = decoded.decode(stored)
                    assert np.array_equal(np.repeat(stored.refs, stored.counts), plain.refs)
                    assert np.array_equal(ts, plain.timestamps)
                    if values:
                        assert np.array_equal(vals.view(np.uint64), plain.values.view(np.uint64))
                    else:
                        assert vals is None and stored.values is None
                else:
                    assert np.array_equal(stored.timestamps, plain.timestamps)
        assert kinds == {Payloads, type(read[0][0])}


def _payloads(n_chunks: int = 3) -> Payloads:
    from tsdb_arrow.blocks import codecs

    counts = np.array([5, 1, 7][:n_chunks], np.int64)
    ts = np.arange(int(counts.sum()), dtype=np.int64) * 1000 + T0
    offsets = np.concatenate(([0], np.cumsum(counts)))
    ts_ids, ts_pay = codecs.encode_timestamps(ts, offsets)
    values = np.resize(ODD_BITS, int(counts.sum())).view(np.float64)
    value_ids, value_pay = codecs.encode_values(values, offsets)
    refs = np.array([3, 3, 9][:n_chunks], np.uint64)
    return Payloads(ts_ids, ts_pay, value_ids, value_pay, refs, counts)


def test_stored_chunks_cross_the_wire_unchanged():
    sent = _payloads()
    got = wire.read_payloads(pa.py_buffer(wire.payloads_bytes(sent)))
    for name in ("ts_ids", "value_ids", "refs", "counts"):
        assert np.array_equal(getattr(got, name), getattr(sent, name))
    assert got.timestamps.equals(sent.timestamps) and got.values.equals(sent.values)
    assert digest(got) == digest(sent)
    no_values = Payloads(sent.ts_ids, sent.timestamps, None, None, sent.refs, sent.counts)
    got = wire.read_payloads(pa.py_buffer(wire.payloads_bytes(no_values)))
    assert got.values is None and got.value_ids is None
    assert digest(got) != digest(sent)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop_columns(["count"]), "stored chunks need the non-null columns"),
        (lambda t: t.set_column(5, "count", pa.array([1, 0, 2], pa.int64())), "at least one"),
        (
            lambda t: t.set_column(4, "series", pa.array([1, 2, 3], pa.int64())),
            "stored chunks need the non-null columns",
        ),
        (
            lambda t: t.set_column(0, "ts_codec", pa.array([1, None, 1], pa.uint8())),
            "stored chunks need the non-null columns",
        ),
    ],
)
def test_malformed_stored_chunks_are_refused(change, message):
    table = wire.bytes_table(wire.payloads_bytes(_payloads()))
    with pytest.raises(ta.InputError, match=message):
        wire.read_payloads(pa.py_buffer(wire.table_bytes(change(table))))
    with pytest.raises(ta.InputError, match="Arrow IPC stream"):
        wire.read_payloads(pa.py_buffer(b"not ipc"))


def test_digest_tells_apart_any_change_that_decoding_sees():
    base = _payloads()
    pay = base.values
    flipped = bytearray(pay.buffers()[2].to_pybytes())
    flipped[-1] ^= 1
    changed = pa.Array.from_buffers(
        pay.type, len(pay), [None, pay.buffers()[1], pa.py_buffer(bytes(flipped))]
    )
    variants = [
        replace(base, values=changed),
        replace(base, value_ids=base.value_ids[::-1].copy()),
        replace(base, counts=base.counts[::-1].copy()),
        replace(base, values=None, value_ids=None),
        Payloads(*(x[:2] for x in vars(base).values())),
    ]
    assert len({digest(v) for v in [base, *variants]}) == 1 + len(variants)
    # The series do not change what decodes: the same digest, the cache entry is shared.
    assert digest(replace(base, refs=base.refs + 1)) == digest(base)
    # Payloads sliced out of a bigger array digest as the same payloads copied out.
    sliced = replace(
        base,
        **{k: v[1:] for k, v in vars(base).items() if k not in ("timestamps", "values")},
        timestamps=base.timestamps.slice(1),
        values=base.values.slice(1),
    )
    copied = replace(
        sliced,
        timestamps=pa.array(sliced.timestamps.to_pylist(), pa.large_binary()),
        values=pa.array(sliced.values.to_pylist(), pa.large_binary()),
    )
    assert digest(sliced) == digest(copied) != digest(base)


def test_decoded_chunks_are_shared_read_only_and_bounded():
    stored = _payloads()
    decoded = DecodedChunks(1 << 20)
    ts1, v1 = decoded.decode(stored)
    ts2, v2 = decoded.decode(stored)
    assert np.shares_memory(ts1, ts2) and not ts1.flags.writeable
    assert np.array_equal(v1.view(np.uint64), np.resize(ODD_BITS, 13))
    assert decoded.cache.stats()["hits"] == 1
    tiny = DecodedChunks(8)  # smaller than one batch: decoded each time, nothing kept
    tiny.decode(stored)
    assert tiny.cache.stats()["entries"] == 0


@pytest.mark.parametrize("bad", [-1, 1.5, True, "512"])
def test_cache_bytes_must_be_a_non_negative_int(bad):
    with pytest.raises(ta.InputError, match="cache_bytes must be an int >= 0"):
        ta.connect("grpc://127.0.0.1:1", cache_bytes=bad)


def test_stored_batches_are_a_fraction_of_the_samples_on_the_wire(served):
    """A stored batch of the regular synthetic data is far smaller than 16 bytes a sample."""
    db, client = served
    db.write(synthetic(n_series=20, n_samples=2000))
    db.flush()
    sizes: list[int] = []
    original = wire.read_payloads

    def spy(raw):
        sizes.append(raw.size)
        return original(raw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(wire, "read_payloads", spy)
        assert client.select().collect().height == 40_000
    assert sizes and sum(sizes) < 40_000 * 16 / 4
