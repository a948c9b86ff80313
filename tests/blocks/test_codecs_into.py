"""Decoding chosen chunks straight into a caller's array: the same bits as a whole decode,
written only where asked, with every target range checked before a kernel runs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdb_arrow.blocks.codecs import (
    ValueCodec,
    decode_timestamps,
    decode_timestamps_into,
    decode_values,
    decode_values_into,
    encode_timestamps,
    encode_values,
)
from tsdb_arrow.blocks.codecs.values import encode_values_as
from tsdb_arrow.errors import CodecError

STALE_NAN = 0x7FF0000000000002
SENTINEL = np.int64(-0x5A5A5A5A5A5A5A5B)


def chunked(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Timestamps, values (stale markers, NaN payloads, -0.0, decimals, constants) and chunk
    offsets of 12 chunks of different shapes, so that several codecs are chosen."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 400, 12)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    n = int(offsets[-1])
    steps = rng.integers(1, 20_000, n)
    steps[offsets[5] : offsets[7]] = 15_000  # regular scrapes (RLE timestamps)
    ts = np.cumsum(steps).astype(np.int64)
    values = np.round(rng.normal(0, 100, n), 2)
    values[offsets[1] : offsets[2]] = 7.0  # a constant chunk (RLE)
    values[offsets[2] : offsets[3]] = rng.normal(0, 1, counts[2])  # full-precision (XOR)
    bits = values.view(np.uint64)
    bits[offsets[3]] = STALE_NAN
    bits[offsets[3] + counts[3] // 2] = 0x7FF8DEADBEEF0001  # another NaN payload
    values[offsets[4]] = -0.0
    return ts, values, offsets


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chosen_chunks_land_bit_exact_where_asked(seed):
    ts, values, offsets = chunked(seed)
    counts = np.diff(offsets)
    ts_ids, ts_payloads = encode_timestamps(ts, offsets)
    val_ids, val_payloads = encode_values(values, offsets)
    chunks = np.array([9, 0, 4, 3, 11], dtype=np.int64)  # out of order, gaps between
    starts = np.concatenate(([5], 5 + np.cumsum(counts[chunks][:-1]) + 3 * np.arange(1, 5)))
    size = int(starts[-1] + counts[chunks[-1]] + 2)
    out_ts = np.full(size, SENTINEL, np.int64)
    out_val = np.full(size, SENTINEL, np.int64).view(np.float64)
    decode_timestamps_into(ts_ids, ts_payloads, counts, out_ts, chunks, starts)
    decode_values_into(val_ids, val_payloads, counts, out_val, chunks, starts)
    written = np.zeros(size, np.bool_)
    for c, s in zip(chunks.tolist(), starts.tolist()):
        a, b = offsets[c], offsets[c + 1]
        np.testing.assert_array_equal(out_ts[s : s + b - a], ts[a:b])
        np.testing.assert_array_equal(
            out_val[s : s + b - a].view(np.int64), values[a:b].view(np.int64)
        )
        written[s : s + b - a] = True
    assert (out_ts[~written] == SENTINEL).all()  # nothing written outside the targets
    assert (out_val.view(np.int64)[~written] == SENTINEL).all()


def test_default_targets_equal_the_whole_decode():
    ts, values, offsets = chunked(4)
    counts = np.diff(offsets)
    ids, payloads = encode_values(values, offsets)
    out = np.empty(len(values))
    decode_values_into(ids, payloads, counts, out)
    assert np.array_equal(out.view(np.int64), decode_values(ids, payloads, counts).view(np.int64))
    assert np.array_equal(out.view(np.int64), values.view(np.int64))
    t_ids, t_payloads = encode_timestamps(ts, offsets)
    chunked_payloads = pa.chunked_array([t_payloads.slice(0, 5), t_payloads.slice(5)])
    out_ts = np.empty(len(ts), np.int64)
    decode_timestamps_into(t_ids, chunked_payloads, counts, out_ts)  # Arrow chunks combined
    assert np.array_equal(out_ts, ts)
    assert np.array_equal(decode_timestamps(t_ids, chunked_payloads, counts), ts)


def test_zstd_chunks_decode_into_place():
    rng = np.random.default_rng(5)
    values = rng.normal(0, 1, 3000)
    offsets = np.array([0, 1000, 2000, 3000], dtype=np.int64)
    counts = np.diff(offsets)
    ids, payloads = encode_values_as(values, offsets, ValueCodec.PLAIN_ZSTD)
    assert (ids == ValueCodec.PLAIN_ZSTD).all()
    out = np.zeros(1000)
    decode_values_into(ids, payloads, counts, out, np.array([2]), np.array([0]))
    assert np.array_equal(out.view(np.int64), values[2000:].view(np.int64))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    picks=st.lists(st.integers(0, 11), min_size=0, max_size=12, unique=True),
)
def test_any_subset_in_any_order_round_trips(seed, picks):
    ts, values, offsets = chunked(seed)
    counts = np.diff(offsets)
    chunks = np.array(picks, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts[chunks])[:-1])).astype(np.int64)
    starts = starts[: len(chunks)]
    ids, payloads = encode_values(values, offsets)
    t_ids, t_payloads = encode_timestamps(ts, offsets)
    total = int(counts[chunks].sum())
    out = np.empty(total)
    out_ts = np.empty(total, np.int64)
    decode_values_into(ids, payloads, counts, out, chunks, starts)
    decode_timestamps_into(t_ids, t_payloads, counts, out_ts, chunks, starts)
    want = np.concatenate([np.arange(offsets[c], offsets[c + 1]) for c in picks] or [[]])
    want = want.astype(np.int64)
    assert np.array_equal(out.view(np.int64), values[want].view(np.int64))
    assert np.array_equal(out_ts, ts[want])


def test_targets_outside_the_output_are_refused():
    ts, _, offsets = chunked(6)
    counts = np.diff(offsets)
    ids, payloads = encode_timestamps(ts, offsets)
    out = np.zeros(int(counts[3]), np.int64)
    decode_timestamps_into(ids, payloads, counts, out, np.array([3]), np.array([0]))  # fits
    with pytest.raises(CodecError, match="would not fit"):
        decode_timestamps_into(ids, payloads, counts, out, np.array([3]), np.array([1]))
    with pytest.raises(CodecError, match="would not fit"):
        decode_timestamps_into(ids, payloads, counts, out, np.array([3]), np.array([-1]))
    with pytest.raises(CodecError, match=r"chunk indices must lie in \[0, 12\)"):
        decode_timestamps_into(ids, payloads, counts, out, np.array([12]), np.array([0]))
    with pytest.raises(CodecError, match="one entry each"):
        decode_timestamps_into(ids, payloads, counts, out, np.array([3, 4]), np.array([0]))
    with pytest.raises(CodecError, match="both chunks and out_starts"):
        decode_timestamps_into(ids, payloads, counts, out, np.array([3]))
    with pytest.raises(CodecError, match="int64 array"):
        decode_timestamps_into(ids, payloads, counts, out.astype(np.float64))
    with pytest.raises(CodecError, match="float64 array"):
        decode_values_into(ids, payloads, counts, np.zeros(len(ts), np.int64))
    with pytest.raises(CodecError, match="writable contiguous"):
        decode_timestamps_into(ids, payloads, counts, np.zeros(2 * len(ts), np.int64)[::2])


def test_a_damaged_chosen_chunk_names_its_index():
    ts, _, offsets = chunked(7)
    counts = np.diff(offsets)
    ids, payloads = encode_timestamps(ts, offsets)
    bad_ids = ids.copy()
    bad_ids[5] = 200  # an id no codec has
    out = np.zeros(len(ts), np.int64)
    decode_timestamps_into(bad_ids, payloads, counts, out, np.array([4]), np.array([0]))  # skipped
    with pytest.raises(CodecError, match="timestamp chunk 5 .*unknown codec id"):
        decode_timestamps_into(bad_ids, payloads, counts, out, np.array([4, 5]), np.array([0, 400]))
