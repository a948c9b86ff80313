"""Round trips of every chunk codec and of the chooser: hypothesis plus targeted edge cases."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsdb_arrow.blocks.codecs import (
    TimestampCodec,
    ValueCodec,
    codec_info,
    decode_timestamps,
    decode_values,
    encode_timestamps,
    encode_values,
)
from tsdb_arrow.blocks.codecs.timestamps import encode_timestamps_as
from tsdb_arrow.blocks.codecs.values import encode_values_as
from tsdb_arrow.errors import CodecError

I64 = np.iinfo(np.int64)
STALE_NAN = 0x7FF0000000000002
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bits_of(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).view(np.int64)


def floats_from_bits(bits: list[int]) -> np.ndarray:
    return np.array(bits, dtype=np.uint64).view(np.float64)


def one_chunk(n: int) -> np.ndarray:
    return np.array([0, n], dtype=np.int64)


def roundtrip_ts(
    ts: np.ndarray, offsets: np.ndarray, codec: TimestampCodec | None = None
) -> np.ndarray:
    ids, payloads = encode_timestamps_as(ts, offsets, codec)
    assert isinstance(payloads, pa.LargeBinaryArray) and len(payloads) == len(offsets) - 1
    if codec is not None:
        assert (ids == codec).all()
    back = decode_timestamps(ids, payloads, np.diff(offsets))
    np.testing.assert_array_equal(back, ts)
    return ids


def roundtrip_values(
    values: np.ndarray, offsets: np.ndarray, codec: ValueCodec | None = None
) -> np.ndarray:
    ids, payloads = encode_values_as(values, offsets, codec)
    assert len(payloads) == len(offsets) - 1
    if codec is not None:
        assert (ids == codec).all()
    back = decode_values(ids, payloads, np.diff(offsets))
    np.testing.assert_array_equal(bits_of(back), bits_of(values))
    return ids


# --- strategies ----------------------------------------------------------------------------------

any_int64 = st.integers(int(I64.min), int(I64.max))


@st.composite
def chunked(
    draw: st.DrawFn, elements: st.SearchStrategy[list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """A sample list cut into non-empty chunks of random sizes."""
    samples = draw(elements)
    n = len(samples)
    cuts = draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=6, unique=True)) if n > 1 else []
    offsets = np.array(sorted({0, n, *cuts}), dtype=np.int64)
    return np.array(samples, dtype=np.int64), offsets


@st.composite
def scrape_times(draw: st.DrawFn) -> list[int]:
    """Realistic timestamps: a start, a regular step and sparse or dense jitter."""
    n = draw(st.integers(1, 300))
    start = draw(st.integers(-(2**50), 2**50))
    step = draw(st.sampled_from([1, 1000, 15_000, 60_000]))
    jitter = draw(st.integers(0, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    j = rng.integers(-jitter, jitter + 1, n) * (rng.random(n) < draw(st.floats(0, 1)))
    return (start + step * np.arange(n) + j).tolist()


timestamp_lists = st.one_of(
    st.lists(any_int64, min_size=1, max_size=80),
    scrape_times(),
    st.lists(st.sampled_from([int(I64.min), int(I64.max), 0, -1, 1]), min_size=1, max_size=40),
)


@st.composite
def decimal_values(draw: st.DrawFn) -> list[int]:
    """Bit patterns of floats m / 10**e: counters, gauges, constants."""
    n = draw(st.integers(1, 300))
    e = draw(st.integers(0, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["counter", "gauge", "const", "wide"]))
    if kind == "counter":
        m = np.cumsum(rng.integers(0, 1000, n)) + rng.integers(0, 10**9)
    elif kind == "gauge":
        m = np.cumsum(rng.integers(-50, 51, n))
    elif kind == "const":
        m = np.full(n, rng.integers(-(10**6), 10**6))
    else:
        m = rng.integers(-(2**49), 2**49, n)  # x * 10**e then rounds back to m exactly
    return ((m / 10.0**e) + 0.0).view(np.int64).tolist()


value_bit_lists = st.one_of(
    st.lists(any_int64, min_size=1, max_size=80),
    decimal_values(),
    st.lists(
        st.sampled_from(
            [
                0,
                STALE_NAN,
                0x7FF8000000000000,
                -1,
                1,
                int(I64.min),
                0x7FF0000000000000,
                0xFFF0000000000000 - 2**64,
                0x3FF0000000000000,
            ]
        ),
        min_size=1,
        max_size=60,
    ),
)


# --- hypothesis round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("codec", [None, *TimestampCodec])
@SETTINGS
@given(data=chunked(timestamp_lists))
def test_timestamps_roundtrip(
    codec: TimestampCodec | None, data: tuple[np.ndarray, np.ndarray]
) -> None:
    ts, offsets = data
    roundtrip_ts(ts, offsets, codec)


@pytest.mark.parametrize("codec", [None, *ValueCodec])
@SETTINGS
@given(data=chunked(value_bit_lists))
def test_values_roundtrip(codec: ValueCodec | None, data: tuple[np.ndarray, np.ndarray]) -> None:
    bits, offsets = data
    values = bits.view(np.float64)
    try:
        roundtrip_values(values, offsets, codec)
    except CodecError as err:
        # only DECIMAL may refuse a chunk, and only one that is not exactly decimal
        assert codec in (ValueCodec.DECIMAL, ValueCodec.DECIMAL_ZSTD)
        assert "not exactly decimal" in str(err)


@SETTINGS
@given(data=chunked(decimal_values()))
def test_decimal_values_use_decimal_codec_and_roundtrip(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    bits, offsets = data
    values = bits.view(np.float64)
    roundtrip_values(values, offsets, ValueCodec.DECIMAL)
    roundtrip_values(values, offsets, ValueCodec.DECIMAL_ZSTD)


@SETTINGS
@given(data=chunked(timestamp_lists))
def test_chooser_picks_the_smallest_plain_kernel_codec(data: tuple[np.ndarray, np.ndarray]) -> None:
    ts, offsets = data
    ids, payloads = encode_timestamps(ts, offsets)
    chosen = pc.binary_length(payloads).to_numpy()
    for codec in (
        TimestampCodec.PLAIN,
        TimestampCodec.RLE,
        TimestampCodec.DOD,
        TimestampCodec.PACKED,
    ):
        _, forced = encode_timestamps_as(ts, offsets, codec)
        assert (chosen <= pc.binary_length(forced).to_numpy()).all()
    np.testing.assert_array_equal(decode_timestamps(ids, payloads, np.diff(offsets)), ts)


# --- targeted edge cases -------------------------------------------------------------------------

SPECIAL_BITS = [
    0x0000000000000000,
    0x8000000000000000,
    STALE_NAN,
    0x7FF8000000000000,
    0xFFF8000000000001,
    0x7FF0000000000001,
    0x7FFFFFFFFFFFFFFF,
    0x7FF0000000000000,
    0xFFF0000000000000,
    0x0000000000000001,
    0x000FFFFFFFFFFFFF,
    0x8000000000000001,
    0x3FF0000000000000,
    0x3FB999999999999A,
    0x7FEFFFFFFFFFFFFF,
]


@pytest.mark.parametrize("codec", [None, *ValueCodec])
def test_special_float_bit_patterns_roundtrip(codec: ValueCodec | None) -> None:
    values = floats_from_bits(SPECIAL_BITS * 5)
    if codec in (ValueCodec.DECIMAL, ValueCodec.DECIMAL_ZSTD):
        with pytest.raises(CodecError, match="chunk 0 is not exactly decimal"):
            encode_values_as(values, one_chunk(len(values)), codec)
        return
    roundtrip_values(values, one_chunk(len(values)), codec)


def test_stale_marker_in_a_counter_falls_back_and_survives() -> None:
    values = np.arange(100, dtype=np.float64)
    values[50] = floats_from_bits([STALE_NAN])[0]
    ids = roundtrip_values(values, one_chunk(100))
    assert ids[0] != ValueCodec.DECIMAL


def test_negative_zero_is_not_turned_into_zero() -> None:
    values = np.array([0.0, -0.0, 0.0, 1.5])
    roundtrip_values(values, one_chunk(4))
    roundtrip_values(np.full(10, -0.0), one_chunk(10))


@pytest.mark.parametrize("codec", [None, *TimestampCodec])
def test_timestamp_extremes_wrap_correctly(codec: TimestampCodec | None) -> None:
    ts = np.array([I64.min, I64.max, I64.min, 0, I64.max, -1, I64.min + 1, 5, 5, 5], dtype=np.int64)
    roundtrip_ts(ts, np.array([0, 3, 10]), codec)
    roundtrip_ts(np.array([7], dtype=np.int64), one_chunk(1), codec)
    roundtrip_ts(np.array([I64.max, I64.min], dtype=np.int64), one_chunk(2), codec)


def test_regular_scrapes_collapse_to_a_few_bytes() -> None:
    ts = 1_700_000_000_000 + 15_000 * np.arange(4096, dtype=np.int64)
    ids, payloads = encode_timestamps(ts, one_chunk(len(ts)))
    assert len(payloads[0].as_py()) <= 12
    assert ids[0] in (TimestampCodec.RLE, TimestampCodec.PACKED)


def test_constant_values_collapse_to_a_few_bytes() -> None:
    values = np.full(5000, 42.5)
    ids, payloads = encode_values(values, np.array([0, 2000, 5000]))
    assert all(len(p.as_py()) <= 12 for p in payloads)
    np.testing.assert_array_equal(decode_values(ids, payloads, [2000, 3000]), values)


def test_decimal_scales_of_exporters_roundtrip() -> None:
    """Floats made as m * 0.001 and m / 1000 / 1000 (node-exporter) stay decimal."""
    m = np.cumsum(np.random.default_rng(3).integers(0, 5000, 500))
    for values in (m * 0.001, m / 1000 / 1000, m / 100):
        ids = roundtrip_values(values, one_chunk(len(values)))
        _, payloads = encode_values_as(values, one_chunk(len(values)), ValueCodec.DECIMAL)
        assert len(payloads[0].as_py()) < 2 * len(values)
        assert ids[0] in (ValueCodec.DECIMAL, ValueCodec.DECIMAL_ZSTD)


def test_decode_accepts_binary_chunked_and_sliced_payloads() -> None:
    rng = np.random.default_rng(7)
    ts = np.cumsum(rng.integers(900, 1100, 3000)).astype(np.int64)
    values = np.round(rng.normal(0, 10, 3000), 2)
    offsets = np.array([0, 100, 1000, 1001, 2500, 3000], dtype=np.int64)
    counts = np.diff(offsets)
    t_ids, t_pay = encode_timestamps(ts, offsets)
    v_ids, v_pay = encode_values(values, offsets)
    for t_p, v_p in [
        (t_pay.cast(pa.binary()), v_pay.cast(pa.binary())),
        (pa.chunked_array([t_pay[:2], t_pay[2:]]), pa.chunked_array([v_pay[:3], v_pay[3:]])),
        (pa.chunked_array([t_pay[:2].cast(pa.binary()), t_pay[2:].cast(pa.binary())]), v_pay),
    ]:
        np.testing.assert_array_equal(decode_timestamps(t_ids, t_p, counts), ts)
        np.testing.assert_array_equal(bits_of(decode_values(v_ids, v_p, counts)), bits_of(values))
    # sliced arrays (non-zero offset), as a filtered chunk table gives
    sl = slice(2, 5)
    np.testing.assert_array_equal(
        decode_timestamps(t_ids[sl], t_pay[sl], counts[sl]), ts[offsets[2] : offsets[5]]
    )
    np.testing.assert_array_equal(
        decode_values(v_ids[sl], v_pay.cast(pa.binary())[sl], counts[sl]),
        values[offsets[2] : offsets[5]],
    )


def test_zero_chunks() -> None:
    ids, payloads = encode_timestamps(np.zeros(0, np.int64), np.zeros(1, np.int64))
    assert len(ids) == 0 and len(payloads) == 0
    assert len(decode_timestamps(ids, payloads, np.zeros(0, np.int64))) == 0
    ids, payloads = encode_values(np.zeros(0), np.zeros(1, np.int64))
    assert len(decode_values(ids, payloads, np.zeros(0, np.int64))) == 0


def test_codec_info_lists_every_id_once() -> None:
    info = codec_info()
    assert info["timestamp"] == {c.name.lower(): int(c) for c in TimestampCodec}
    assert info["value"] == {c.name.lower(): int(c) for c in ValueCodec}
    assert len(set(info["value"].values())) == len(ValueCodec)
