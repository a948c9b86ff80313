"""Native histograms in remote write: Prometheus' spans and deltas in, exact exponential
histograms stored; what storage cannot hold is skipped and counted, malformed ones refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tsdb_arrow.errors import InputError
from tsdb_arrow.ingest import prompb
from tsdb_arrow.ingest.remote_write import decode_write_request

T0 = 1_795_392_000_000


def spans_and_deltas(buckets: dict[int, int], gap_zeros: bool) -> tuple[list, list[int]]:
    """Prometheus' encoding of ``{index: count}``: spans of consecutive indices (a gap of one
    written as a zero bucket inside the span when ``gap_zeros``), counts as deltas."""
    spans: list[tuple[int, int]] = []
    counts: list[int] = []
    previous = None
    for i in sorted(buckets):
        if previous is not None and (i == previous + 1 or (gap_zeros and i == previous + 2)):
            if i == previous + 2:
                counts.append(0)
                spans[-1] = (spans[-1][0], spans[-1][1] + 1)
            spans[-1] = (spans[-1][0], spans[-1][1] + 1)
        else:
            spans.append((i if previous is None else i - previous - 1, 1))
        counts.append(buckets[i])
        previous = i
    deltas = [c - p for p, c in zip([0, *counts], counts)]
    return spans, deltas


def add_histogram(ts, *, t, schema, zero, zero_threshold, pos, neg, total_sum, gap_zeros,
                  count=None):  # fmt: skip
    h = ts.histograms.add()
    h.count_int = zero + sum(pos.values()) + sum(neg.values()) if count is None else count
    h.sum = total_sum
    h.schema = schema
    h.zero_threshold = zero_threshold
    h.zero_count_int = zero
    for side, buckets in (("positive", pos), ("negative", neg)):
        spans, deltas = spans_and_deltas(buckets, gap_zeros)
        for offset, length in spans:
            getattr(h, f"{side}_spans").add(offset=offset, length=length)
        getattr(h, f"{side}_deltas").extend(deltas)
    h.timestamp = t
    return h


def dense(buckets: dict[int, int]) -> tuple[int, list[int]]:
    """Our offset (Prometheus' index - 1) and dense counts."""
    if not buckets:
        return 0, []
    lo, hi = min(buckets), max(buckets)
    return lo - 1, [buckets.get(i, 0) for i in range(lo, hi + 1)]


def bits(hist: dict) -> dict:
    """The histogram with its floats as bit patterns (so NaN equals the same NaN)."""
    return {
        k: int(np.float64(v).view(np.uint64)) if isinstance(v, float) else v
        for k, v in hist.items()
    }


buckets = st.dictionaries(st.integers(-300, 300), st.integers(0, 2**40), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    hists=st.lists(
        st.tuples(
            st.integers(-4, 8), st.integers(0, 2**40), buckets, buckets,
            st.floats(allow_nan=False, width=64), st.booleans(),
        ),
        min_size=1,
        max_size=5,
    ),
    floats=st.integers(0, 3),
)  # fmt: skip
def test_native_histograms_decode_exactly(hists, floats):
    request = prompb.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="rpc_seconds")
    ts.labels.add(name="job", value="api")
    for k in range(floats):
        ts.samples.add(timestamp=T0 + k, value=float(k))
    for k, (schema, zero, pos, neg, total, gaps) in enumerate(hists):
        add_histogram(ts, t=T0 + k * 1000, schema=schema, zero=zero, zero_threshold=1e-128,
                      pos=pos, neg=neg, total_sum=total, gap_zeros=gaps)  # fmt: skip
    decoded = decode_write_request(request.SerializeToString())
    assert decoded.table.num_rows == floats
    table = decoded.histogram_table
    assert table.column_names == ["timestamp", "histogram", "__name__", "job"]
    assert table["job"].to_pylist() == ["api"] * len(hists)
    times = table["timestamp"].cast("int64").to_pylist()
    assert times == [T0 + k * 1000 for k in range(len(hists))]
    for got, (schema, zero, pos, neg, total, _) in zip(table["histogram"].to_pylist(), hists):
        p_off, p_counts = dense(pos)
        n_off, n_counts = dense(neg)
        assert got["scale"] == schema
        assert got["count"] == zero + sum(pos.values()) + sum(neg.values())
        assert got["zero_count"] == zero and got["zero_threshold"] == 1e-128
        assert (got["positive_offset"], got["positive_counts"]) == (p_off, p_counts)
        assert (got["negative_offset"], got["negative_counts"]) == (n_off, n_counts)
        assert np.float64(got["sum"]).view(np.uint64) == np.float64(total).view(np.uint64)
        assert math.isnan(got["min"]) and math.isnan(got["max"])
    assert decoded.histograms_skipped == 0


def test_unpacked_deltas_read_as_packed_ones():
    request = prompb.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="h")
    hist = prompb.Histogram(count_int=2, schema=0, timestamp=T0)
    hist.positive_spans.add(offset=2, length=2)
    raw = hist.SerializeToString()
    raw += bytes([0x60, 0x02, 0x60, 0x01])  # field 12 varint: deltas +1, -1 (zigzag 2, 1)
    raw += bytes([0x30, 0x01])  # zero_count_int 1
    series = ts.SerializeToString() + bytes([0x22, len(raw)]) + raw
    body = bytes([0x0A, len(series)]) + series
    (got,) = decode_write_request(body).histogram_table["histogram"].to_pylist()
    assert (got["positive_offset"], got["positive_counts"], got["zero_count"]) == (1, [1, 0], 1)
    assert got["count"] == 2


def test_what_storage_cannot_hold_is_skipped_and_counted():
    request = prompb.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="h")
    ts.samples.add(timestamp=T0, value=1.0)
    common = {"zero": 0, "zero_threshold": 0.0, "neg": {}, "total_sum": 1.0, "gap_zeros": False}
    add_histogram(ts, t=T0, schema=0, pos={1: 2}, **common)  # stored
    add_histogram(ts, t=T0 + 1, schema=9, pos={1: 2}, **common)  # no such exponential schema
    add_histogram(ts, t=T0 + 2, schema=-53, pos={1: 2}, **common)  # custom buckets (3.x)
    add_histogram(ts, t=T0 + 3, schema=0, pos={1: 2}, count=3, **common)  # a NaN observation
    floaty = ts.histograms.add(count_float=2.0, schema=0, timestamp=T0 + 4)
    floaty.positive_spans.add(offset=1, length=1)
    floaty.positive_counts.append(2.0)
    decoded = decode_write_request(request.SerializeToString())
    assert decoded.table.num_rows == 1
    assert decoded.histogram_table["timestamp"].cast("int64").to_pylist() == [T0]
    assert decoded.histograms_skipped == 4


@pytest.mark.parametrize(
    "spans, deltas",
    [
        ([(0, 2)], [1]),  # fewer deltas than buckets
        ([(0, 1)], [1, 1]),  # more
        ([(0, 2)], [2, -3]),  # a count below zero
        ([(0, 1), (-2, 1)], [1, 0]),  # a later span going down
    ],
)
def test_a_malformed_histogram_refuses_the_request(spans, deltas):
    request = prompb.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="h")
    ts.samples.add(timestamp=T0, value=1.0)
    h = ts.histograms.add(count_int=1, schema=0, timestamp=T0)
    for offset, length in spans:
        h.positive_spans.add(offset=offset, length=length)
    h.positive_deltas.extend(deltas)
    with pytest.raises(InputError, match="native histogram 0 of the WriteRequest is malformed"):
        decode_write_request(request.SerializeToString())


def test_remote_written_histograms_are_stored_and_queried(tmp_path):
    import cramjam

    from tsdb_arrow.server.remote_write import receive_write

    request = prompb.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="rpc_seconds")
    ts.labels.add(name="job", value="api")
    for k in range(3):
        add_histogram(ts, t=T0 + k * 15_000, schema=3, zero=k, zero_threshold=0.0,
                      pos={0: 1 + k, 5: 2 * k}, neg={-1: k}, total_sum=1.5 * k,
                      gap_zeros=False)  # fmt: skip
    body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
    with ta.open(tmp_path / "db") as db:
        answer = receive_write(db, body, {}, max_bytes=1 << 20)
        assert answer.status == 204
        got = db.select_histograms("rpc_seconds").collect()
        assert got["job"].to_list() == ["api"] * 3
        hists = got["histogram"].to_list()
        assert [h["count"] for h in hists] == [1, 2 + 2 + 1 + 1, 3 + 4 + 2 + 2]
        assert [h["positive_offset"] for h in hists] == [-1, -1, -1]
        assert hists[2]["positive_counts"] == [3, 0, 0, 0, 0, 4]
        assert hists[2]["negative_offset"] == -2 and hists[2]["negative_counts"] == [2]
        count = db.query("histogram_count(rpc_seconds)", T0 + 30_000)
        assert count["value"].to_list() == [11.0]


@settings(max_examples=40, deadline=None)
@given(
    hists=st.lists(
        st.tuples(st.integers(-4, 8), st.integers(0, 2**40), buckets, buckets,
                  st.floats(allow_nan=False, width=64), st.booleans()),
        min_size=1,
        max_size=4,
    )
)  # fmt: skip
def test_remote_read_sends_back_what_remote_write_stored(tmp_path_factory, hists):
    """write -> store -> read -> decode as a write again: the same histograms, bit for bit,
    and the read encoding is what the protobuf library makes of the same messages."""
    import cramjam
    import polars as pl

    from tsdb_arrow.server.remote_read import receive_read
    from tsdb_arrow.server.remote_write import receive_write

    request = prompb.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="rpc_seconds")
    ts.labels.add(name="job", value="api")
    for k, (schema, zero, pos, neg, total, gaps) in enumerate(hists):
        add_histogram(ts, t=T0 + k * 1000, schema=schema, zero=zero, zero_threshold=0.25,
                      pos=pos, neg=neg, total_sum=total, gap_zeros=gaps)  # fmt: skip
    floats = request.timeseries.add()
    floats.labels.add(name="__name__", value="up")
    floats.samples.add(timestamp=T0, value=1.0)
    body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
    with ta.open(tmp_path_factory.mktemp("rr") / "db") as db:
        assert receive_write(db, body, {}, max_bytes=1 << 24).status == 204
        stored = db.select_histograms("rpc_seconds").collect()
        read = prompb.ReadRequest()
        query = read.queries.add(start_timestamp_ms=T0, end_timestamp_ms=T0 + 10_000)
        query.matchers.add(type=2, name="__name__", value="rpc_seconds|up")
        answer = receive_read(
            db, bytes(cramjam.snappy.compress_raw(read.SerializeToString())), max_bytes=1 << 24
        )
        assert answer.status == 200
    response = prompb.ReadResponse.FromString(bytes(cramjam.snappy.decompress_raw(answer.body)))
    (result,) = response.results
    assert [len(t.samples) for t in result.timeseries] == [1, 0]
    again = prompb.WriteRequest()
    again.timeseries.extend(result.timeseries)
    decoded = decode_write_request(again.SerializeToString())
    assert decoded.histograms_skipped == 0
    back = pl.from_arrow(decoded.histogram_table)
    assert [bits(h) for h in back["histogram"].to_list()] == [
        bits(h) for h in stored["histogram"].to_list()
    ]
    assert back["job"].to_list() == stored["job"].to_list()



def test_remote_read_writes_one_span_per_side_over_the_dense_buckets():
    import polars as pl

    from tsdb_arrow.server.remote_read import encode_query_result

    hist = {
        "scale": 3, "count": 12, "zero_count": 2, "zero_threshold": 0.5, "positive_offset": -3,
        "positive_counts": [4, 0, 1], "negative_offset": 7, "negative_counts": [5],
        "sum": -1.25, "min": float("nan"), "max": float("nan"),
    }  # fmt: skip
    frame = pl.DataFrame(
        {
            "timestamp": pl.Series([T0], dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")),
            "histogram": [hist],
            "__name__": ["h"],
        }
    )
    expected = prompb.QueryResult()
    series = expected.timeseries.add()
    series.labels.add(name="__name__", value="h")
    h = series.histograms.add(count_int=12, sum=-1.25, schema=3, zero_threshold=0.5,
                              zero_count_int=2, timestamp=T0)  # fmt: skip
    h.negative_spans.add(offset=8, length=1)
    h.negative_deltas.extend([5])
    h.positive_spans.add(offset=-2, length=3)
    h.positive_deltas.extend([4, -4, 1])
    assert prompb.QueryResult.FromString(encode_query_result(pl.DataFrame(), frame)) == expected
