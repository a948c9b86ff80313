"""Remote write 1.0, remote read and OTLP on the Prometheus port: bytes in, exact samples out."""

from __future__ import annotations

import struct
import urllib.error
import urllib.request

import cramjam
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

import tsdb_arrow as ta
from tsdb_arrow.errors import BackpressureError, InputError
from tsdb_arrow.ingest import prompb
from tsdb_arrow.ingest.remote_write import decode_write_request
from tsdb_arrow.server.prom_http import PromHttpServer
from tsdb_arrow.server.remote_read import encode_query_result
from tsdb_arrow.server.remote_write import snappy_length

T0 = 1_700_000_000_000
STALE = 0x7FF0000000000002


def f64(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def write_request(series: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> bytes:
    request = prompb.WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name in sorted(labels):
            ts.labels.add(name=name, value=labels[name])
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    return request.SerializeToString()


def post(server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(
        f"http://{server.address}{path}", data=body, method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


RW_HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


@pytest.fixture
def served(tmp_path):
    db = ta.open(tmp_path / "db")
    from tsdb_arrow.server.otlp import OtlpReceiver

    server = PromHttpServer(db, "127.0.0.1:0", receiver=OtlpReceiver(db))
    yield server, db
    server.stop()
    db.close()


# -- decoding, without a socket ------------------------------------------------------------


def test_decode_keeps_every_sample_bit_for_bit():
    body = write_request(
        [
            ({"__name__": "up", "job": "a"}, [(T0, 1.0), (T0 + 15_000, f64(STALE)), (-5, 0.5)]),
            ({"__name__": "up", "job": "b", "empty": ""}, [(T0, f64(0x7FF8000000000123))]),
            ({"__name__": "x", "zone": "é"}, []),
        ]
    )
    table = decode_write_request(body).table
    assert table.column_names == ["timestamp", "value", "__name__", "job"]
    assert table["timestamp"].cast("int64").to_pylist() == [T0, T0 + 15_000, -5, T0]
    bits = table["value"].to_numpy().view(np.uint64).tolist()
    assert bits == [0x3FF0000000000000, STALE, 0x3FE0000000000000, 0x7FF8000000000123]
    assert table["job"].to_pylist() == ["a", "a", "a", "b"]
    assert table["__name__"].to_pylist() == ["up"] * 4


def test_decode_skips_and_counts_exemplars_histograms_and_reads_metadata():
    request = prompb.WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="up")
    ts.samples.add(timestamp=T0, value=2.0)
    ts.exemplars.add(value=1.0, timestamp=T0)
    request.metadata.add(type=1, metric_family_name="up", help="1 if up", unit="")
    raw = request.SerializeToString()
    # a series holding a native histogram of count 1 with no bucket: not stored, counted
    raw += b"\x0a\x04\x22\x02\x08\x01"
    decoded = decode_write_request(raw)
    assert decoded.table.num_rows == 1 and decoded.exemplars == 1
    assert decoded.histograms_skipped == 1 and decoded.histogram_table.num_rows == 0
    from tsdb_arrow.server.remote_write import metadata_entries

    assert metadata_entries(decoded.metadata) == {
        "up": {"type": "counter", "help": "1 if up", "unit": ""}
    }


@pytest.mark.parametrize(
    "body",
    [
        b"\x0a\x10\x0a",  # a length past the end
        b"\x0a\x02\x12\x05",  # a sample's length past its series
        b"\x0b",  # a group
        b"\x0a\x03\x12\x01\x0a",  # a sample whose value has the wrong wire type
        b"\x00\x01",  # field 0
    ],
)
def test_decode_refuses_corrupt_bodies(body):
    with pytest.raises(InputError, match="not a remote-write WriteRequest"):
        decode_write_request(body)


def test_decode_refuses_a_repeated_label():
    body = write_request([({"__name__": "up"}, [(T0, 1.0)])])
    request = prompb.WriteRequest.FromString(body)
    request.timeseries[0].labels.add(name="__name__", value="again")
    with pytest.raises(InputError, match="series 0 of the WriteRequest has a label name twice"):
        decode_write_request(request.SerializeToString())


label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,6}", fullmatch=True)
series_st = st.tuples(
    st.dictionaries(label_names, st.text(max_size=5), max_size=4),
    st.lists(st.tuples(st.integers(-(2**62), 2**62), st.integers(0, 2**64 - 1)), max_size=5),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(series_st, max_size=6))
def test_decode_matches_the_protobuf_library(series):
    body = write_request(
        [(labels, [(t, f64(b)) for t, b in samples]) for labels, samples in series]
    )
    table = decode_write_request(body).table
    expected = [
        (t, b, {k: v for k, v in labels.items() if v != ""})
        for labels, samples in series
        for t, b in samples
    ]
    assert table.num_rows == len(expected)
    got_ts = table["timestamp"].cast("int64").to_pylist()
    got_bits = table["value"].to_numpy().view(np.uint64).tolist()
    names = [c for c in table.column_names if c not in ("timestamp", "value")]
    rows = table.select(names).to_pylist()
    got = [
        (t, b, {k: v for k, v in row.items() if v is not None})
        for t, b, row in zip(got_ts, got_bits, rows)
    ]
    assert got == expected


# -- over HTTP -----------------------------------------------------------------------------


def test_remote_write_stores_exact_samples(served):
    server, db = served
    body = write_request(
        [
            ({"__name__": "up", "job": "a"}, [(T0, 1.0), (T0 + 15_000, f64(STALE))]),
            ({"__name__": "temp", "room": "b"}, [(T0, -2.5), (T0 + 1, 1e300)]),
        ]
    )
    status, _, answer = post(server, "/api/v1/write", cramjam.snappy.compress_raw(body).read(),
                             RW_HEADERS)  # fmt: skip
    assert (status, answer) == (204, b"")
    up = db.select("up").collect()
    assert up["timestamp"].dt.epoch("ms").to_list() == [T0, T0 + 15_000]
    assert up["value"].to_numpy().view(np.uint64).tolist() == [0x3FF0000000000000, STALE]
    temp = db.select("temp").collect()
    assert temp.select(pl.col("timestamp").dt.epoch("ms"), "value", "room").rows() == [
        (T0, -2.5, "b"),
        (T0 + 1, 1e300, "b"),
    ]


def test_remote_write_metadata_reaches_the_metadata_endpoint(served):
    server, _ = served
    request = prompb.WriteRequest()
    request.metadata.add(type=2, metric_family_name="temp", help="Room temperature.", unit="")
    body = cramjam.snappy.compress_raw(request.SerializeToString()).read()
    assert post(server, "/api/v1/write", body, RW_HEADERS)[0] == 204
    with urllib.request.urlopen(f"http://{server.address}/api/v1/metadata", timeout=30) as r:
        assert r.read() == (
            b'{"status":"success","data":{"temp":[{"type":"gauge","help":"Room temperature.",'
            b'"unit":""}]}}'
        )


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", {}, 400, b"not snappy-compressed"),
        (b"\x10garbage", {}, 400, b"cannot snappy-decompress"),
        (cramjam.snappy.compress_raw(b"\x0a\x10\x0a").read(), {}, 400,
         b"not a remote-write WriteRequest"),
        (b"\x80\x80\x80\x80\x04", {}, 413, b"over the"),
        (b"", {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
         415, b"remote write 2.0"),
        (b"", {"Content-Encoding": "gzip"}, 415, b"send snappy"),
        (cramjam.snappy.compress_raw(write_request([({"__name__": "0bad"}, [(T0, 1.0)])])).read(),
         {}, 400, b"metric name '0bad' is invalid"),
    ],
)  # fmt: skip
def test_remote_write_refuses_bad_requests_without_retry(served, body, headers, status, message):
    server, db = served
    got, answer_headers, answer = post(server, "/api/v1/write", body, {**RW_HEADERS, **headers})
    assert got == status and message in answer
    assert "Retry-After" not in answer_headers
    assert db.series(None).height == 0


def test_remote_write_asks_for_a_retry_when_the_head_is_full(served, monkeypatch):
    server, db = served

    def full(*args, **kwargs):
        raise BackpressureError("the head is full; retry later")

    monkeypatch.setattr(db, "write", full)
    body = cramjam.snappy.compress_raw(write_request([({"__name__": "up"}, [(T0, 1.0)])])).read()
    status, headers, answer = post(server, "/api/v1/write", body, RW_HEADERS)
    assert (status, headers["Retry-After"]) == (503, "1")
    assert b"the head is full" in answer


def test_snappy_length():
    assert snappy_length(cramjam.snappy.compress_raw(b"x" * 300).read()) == 300
    assert snappy_length(b"") == -1


def test_remote_read_answers_the_samples(served):
    server, db = served
    db.write(
        pl.DataFrame(
            {
                "timestamp": [T0, T0 + 1000, T0 + 2000, T0, -1000],
                "value": [1.0, f64(STALE), 3.0, 7.0, 0.5],
                "__name__": ["up", "up", "up", "up", "down"],
                "job": ["a", "a", "a", "b", "a"],
            }
        )
    )
    request = prompb.ReadRequest()
    query = request.queries.add(start_timestamp_ms=T0, end_timestamp_ms=T0 + 1000)
    query.matchers.add(type=0, name="__name__", value="up")
    query.matchers.add(type=2, name="job", value="a|b")
    other = request.queries.add(start_timestamp_ms=-2000, end_timestamp_ms=0)
    other.matchers.add(type=0, name="job", value="a")
    body = cramjam.snappy.compress_raw(request.SerializeToString()).read()
    status, headers, answer = post(server, "/api/v1/read", body, RW_HEADERS)
    assert status == 200 and headers["Content-Encoding"] == "snappy"
    response = prompb.ReadResponse.FromString(bytes(cramjam.snappy.decompress_raw(answer)))
    got = [
        [
            (
                [(label.name, label.value) for label in ts.labels],
                [(s.timestamp, struct.unpack("<Q", struct.pack("<d", s.value))[0])
                 for s in ts.samples],
            )
            for ts in result.timeseries
        ]
        for result in response.results
    ]  # fmt: skip
    assert got == [
        [
            ([("__name__", "up"), ("job", "a")], [(T0, 0x3FF0000000000000), (T0 + 1000, STALE)]),
            ([("__name__", "up"), ("job", "b")], [(T0, 0x401C000000000000)]),
        ],
        [([("__name__", "down"), ("job", "a")], [(-1000, 0x3FE0000000000000)])],
    ]


def test_remote_read_encoding_matches_the_protobuf_library():
    frame = pl.DataFrame(
        {
            "timestamp": pl.Series([T0, T0 + 1, -7], dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")),
            "value": [1.5, -0.0, float("inf")],
            "__name__": ["a", "a", "b"],
            "x": [None, None, "é" * 100],
        }
    )
    expected = prompb.QueryResult()
    first = expected.timeseries.add()
    first.labels.add(name="__name__", value="a")
    first.samples.add(timestamp=T0, value=1.5)
    first.samples.add(timestamp=T0 + 1, value=-0.0)
    second = expected.timeseries.add()
    second.labels.add(name="__name__", value="b")
    second.labels.add(name="x", value="é" * 100)
    second.samples.add(timestamp=-7, value=float("inf"))
    assert encode_query_result(frame) == expected.SerializeToString()


def test_otlp_on_the_prometheus_port(served):
    server, db = served
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "load"
    point = metric.gauge.data_points.add()
    point.time_unix_nano = T0 * 1_000_000
    point.as_double = 0.75
    status, headers, answer = post(
        server,
        "/api/v1/otlp/v1/metrics",
        request.SerializeToString(),
        {"Content-Type": "application/x-protobuf"},
    )
    assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
    assert not ExportMetricsServiceResponse.FromString(answer).HasField("partial_success")
    assert db.select("load").collect()["value"].to_list() == [0.75]
    status, _, _ = post(server, "/api/v1/otlp/v1/metrics", b"{}", {"Content-Type": "text/plain"})
    assert status == 415


def test_an_unexpected_failure_is_a_500_not_a_dropped_connection(served, monkeypatch, caplog):
    server, db = served

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(db, "write", broken)
    body = cramjam.snappy.compress_raw(write_request([({"__name__": "up"}, [(T0, 1.0)])])).read()
    status, _, answer = post(server, "/api/v1/write", body, RW_HEADERS)
    assert (status, answer) == (500, b"internal error: RuntimeError\n")
    assert "request POST /api/v1/write failed" in caplog.text
