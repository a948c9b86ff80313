"""The Flight server through the client: round trips bit for bit, pushdown, errors, acks."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.flight as flight
import pytest

import tsdb_arrow as ta
from tests.conftest import canonical, synthetic
from tests.flight_helpers import ODD_BITS, flight_server, odd_frame, value_bits
from tsdb_arrow.client.writes import PARTS_SCHEMA
from tsdb_arrow.server import flight_wire as wire


@pytest.fixture
def served(tmp_path):
    with flight_server(tmp_path / "db") as (db, server, address):
        with ta.connect(address) as client:
            yield db, client


@pytest.mark.parametrize("flush", [False, True], ids=["head", "blocks"])
def test_round_trip_is_bit_for_bit(served, flush):
    db, client = served
    frame = odd_frame()
    result = client.write(frame)
    assert (result.rows, result.replaced) == (150, 0)
    if flush:
        assert len(client.flush()) == 1
    got = client.select("m").collect()
    local = db.select("m").collect()
    assert got.equals(local)
    assert got.schema == local.schema
    # Bit patterns, not float equality (NaN != NaN; -0.0 == 0.0).
    for bits in ODD_BITS:
        assert int((value_bits(got) == bits).sum()) == 3
    expected = canonical(frame.with_columns(pl.col("timestamp")))
    assert canonical(got).drop("value").equals(expected.drop("value"))
    assert np.array_equal(value_bits(canonical(got)), value_bits(expected))


def test_real_data_round_trip_equals_local(served, real_table):
    db, client = served
    assert client.write(real_table).rows == real_table.num_rows
    client.flush()
    got = client.select().collect()
    local = db.select().collect()
    assert got.height == real_table.num_rows
    assert got.equals(local)
    assert np.array_equal(value_bits(got), value_bits(local))


def test_multi_chunk_frames_and_many_stream_batches(served, monkeypatch):
    db, client = served
    monkeypatch.setattr("tsdb_arrow.server.flight.STREAM_BATCH", 1000)
    parts = [
        synthetic(n_series=6, n_samples=700, seed=s, start=1_700_000_000_000 + s * 10**9)
        for s in range(3)
    ]
    chunked = pl.concat(parts, rechunk=False)
    assert chunked.n_chunks() == 3
    assert client.write(chunked).rows == 3 * 6 * 700
    table = pa.concat_tables(
        [
            synthetic(
                n_series=2, n_samples=10, seed=9, start=1_600_000_000_000 + i * 10**6
            ).to_arrow()
            for i in range(4)
        ]
    )
    assert table.column("value").num_chunks == 4
    assert client.write(table).rows == 80
    got = client.select().collect()
    assert got.height == 3 * 6 * 700 + 80
    assert got.equals(db.select().collect())
    batches = (
        list(client.select().collect_batches()) if hasattr(pl.LazyFrame, "collect_batches") else []
    )
    assert sum(b.height for b in batches) in (0, got.height)


QUERIES = [
    lambda lf: lf.filter(pl.col("job") == "api"),
    lambda lf: lf.filter(pl.col("value") > 50).select("timestamp", "value"),
    lambda lf: lf.filter(pl.col("timestamp") >= pl.datetime(2023, 11, 14, 22, 20, time_zone="UTC")),
    lambda lf: lf.filter(
        pl.col("timestamp").is_between(
            pl.datetime(2023, 11, 14, 22, 15, time_zone="UTC"),
            pl.datetime(2023, 11, 14, 22, 30, time_zone="UTC"),
        ),
        pl.col("instance").is_in(["host-1", "host-4"]),
    ),
    lambda lf: lf.select("instance"),
    lambda lf: lf.select("value"),
    lambda lf: lf.head(7),
    lambda lf: lf.filter(pl.col("job") == "db").head(25),
    lambda lf: lf.filter(pl.col("instance").str.ends_with("3") | (pl.col("value") < 10)),
    lambda lf: lf.group_by("__name__").agg(pl.len(), pl.col("value").max()).sort("__name__"),
    lambda lf: lf.filter(pl.col("value").is_nan() | pl.col("value").is_in([7.0])).select("job"),
    lambda lf: lf.filter(pl.col("job") == "nothing"),
]


@pytest.mark.parametrize("query", QUERIES, ids=[str(i) for i in range(len(QUERIES))])
def test_lazy_filters_equal_eager_and_local(served, query):
    db, client = served
    client.write(synthetic(n_series=9, n_samples=200))
    remote = query(client.select()).collect()
    eager = query(client.select().collect().lazy()).collect()
    local = query(db.select()).collect()
    assert remote.equals(eager)
    assert remote.equals(local)


def test_selector_and_time_range_are_the_local_ones(served):
    db, client = served
    client.write(synthetic(n_series=6, n_samples=100))
    start, end = 1_700_000_300_000, 1_700_000_900_000
    got = client.select('temp{job="db"}', start=start, end=end).collect()
    assert got.height > 0
    assert got.equals(db.select('temp{job="db"}', start=start, end=end).collect())
    empty = client.select('missing{job="x"}').collect()
    assert empty.schema == db.select('missing{job="x"}').collect().schema
    assert empty.height == 0


def test_series_stats_delete_compact(served):
    db, client = served
    client.write(synthetic(n_series=6, n_samples=100))
    assert client.series().equals(db.series())
    assert client.series("up").equals(db.series("up"))
    mid = 1_700_000_300_000
    assert client.series("up", start=mid).equals(db.series("up", start=mid))
    assert client.series(start=mid + 10 * 86_400_000).height == 0
    assert client.stats()["samples"] == 600 == db.stats()["samples"]
    assert client.delete('temp{job="db"}') == db.series('temp{job="db"}').height == 1
    assert client.select("temp").collect().equals(db.select("temp").collect())
    assert client.select('temp{job="db"}').collect().height == 0
    client.flush()
    done = client.compact()
    assert set(done) == {"merged", "expired"}


def test_write_batches_are_acknowledged_one_by_one(served):
    db, client = served
    frames = [
        synthetic(n_series=2, n_samples=50, start=1_700_000_000_000 + i * 10**8) for i in range(5)
    ]
    results = []
    for result in client.write_batches(frames):
        results.append(result)
        # An acknowledged batch is in the database (its WAL) already.
        assert db.stats()["samples"] >= sum(r.rows for r in results)
    assert [r.rows for r in results] == [100] * 5
    assert db.stats()["samples"] == 500


def test_replaced_rows_are_counted_as_locally(served):
    _, client = served
    frame = synthetic(n_series=3, n_samples=10)
    client.write(frame)
    assert client.write(frame).replaced == 30


def test_bad_selector_is_a_selector_error_with_the_local_message(served):
    db, client = served
    with pytest.raises(ta.SelectorError) as remote:
        client.select('up{job="a"')
    with pytest.raises(ta.SelectorError) as local:
        db.select('up{job="a"')
    assert str(remote.value) == str(local.value)
    with pytest.raises(ta.TimeRangeError):
        client.select("up", start=10, end=5)


BAD_FRAMES = [
    pl.DataFrame({"timestamp": [1_700_000_000_000], "value": [1.0]}),
    pl.DataFrame({"timestamp": [1_700_000_000_000], "value": [1.0], "__name__": ["a b"]}),
    pl.DataFrame({"timestamp": [1_700_000_000], "value": [1.0], "__name__": ["m"]}),
    pl.DataFrame({"timestamp": [1_700_000_000_000, None], "value": [1.0, 2.0], "__name__": "m"}),
    pl.DataFrame({"timestamp": [1_700_000_000_000], "value": [1.0], "__name__": ["m"], "1x": "v"}),
    pl.DataFrame({"timestamp": [1_700_000_000_000], "value": [1.0], "__name__": ["m"], "n": [3]}),
]


@pytest.mark.parametrize("frame", BAD_FRAMES, ids=[str(i) for i in range(len(BAD_FRAMES))])
def test_bad_frame_is_the_local_input_error_and_stores_nothing(served, frame):
    db, client = served
    with pytest.raises(ta.InputError) as remote:
        client.write(frame)
    with pytest.raises(ta.InputError) as local:
        db.write(frame)
    assert type(remote.value) is type(local.value)
    assert str(remote.value) == str(local.value)
    assert db.stats()["samples"] == 0
    assert db.series().height == 0


def _raw_put(address: str, batch: pa.RecordBatch, metadata: bytes | None, mode: str = "parts"):
    """A do_put bypassing the client's checks: the server must check on its own."""
    raw = flight.connect(address)
    descriptor = flight.FlightDescriptor.for_command(wire.command("write", mode=mode))
    writer, acks = raw.do_put(descriptor, batch.schema)
    try:
        if metadata is None:
            writer.write_batch(batch)
        else:
            writer.write_with_metadata(batch, pa.py_buffer(metadata))
        writer.done_writing()
        acks.read()
        writer.close()
    finally:
        raw.close()


def _part(labels: dict, codes=(0, 0), ts=(1_700_000_000_000, 1_700_000_001_000)):
    batch = wire.samples_batch(
        PARTS_SCHEMA,
        np.array(ts, np.int64),
        np.array([1.0, 2.0]),
        np.array(codes, np.uint32),
        np.array([2] if len(set(codes)) == 1 else [1, 1]),
    )
    if len(set(codes)) == 1:
        batch = wire.samples_batch(
            PARTS_SCHEMA,
            np.array(ts, np.int64),
            np.array([1.0, 2.0]),
            np.array(codes[:1], np.uint32),
            np.array([2]),
        )
    return batch, wire.part_metadata(wire.table_bytes(pa.table(labels)), 2, True)


@pytest.mark.parametrize(
    "labels, codes, ts, message",
    [
        ({"__name__": ["m"], "bad-name": ["v"]}, (0, 0), None, "bad-name"),
        ({"__name__": ["m"]}, (0, 1), None, "does not carry"),
        ({"__name__": ["m"]}, (0, 0), (1_700_000_000, 1_700_000_001), "row 0"),
        ({"job": ["x"]}, (0, 0), None, "__name__"),
    ],
)
def test_server_checks_what_a_client_sends(served, labels, codes, ts, message):
    db, client = served
    batch, metadata = _part(labels, codes, ts or (1_700_000_000_000, 1_700_000_001_000))
    with pytest.raises(flight.FlightServerError) as caught:
        _raw_put(client.address, batch, metadata)
    error = wire.from_error_info(caught.value.extra_info)
    assert isinstance(error, ta.InputError)
    assert message in str(error)
    assert db.stats()["samples"] == 0
    assert db.series().height == 0


def test_server_refuses_a_part_without_label_sets(served):
    db, client = served
    batch, _ = _part({"__name__": ["m"]})
    with pytest.raises(flight.FlightServerError, match="label sets"):
        _raw_put(client.address, batch, None)
    assert db.stats()["samples"] == 0


def test_list_flights_and_flight_info_describe_the_metrics(served):
    _, client = served
    client.write(synthetic(n_series=6, n_samples=10))
    raw = flight.connect(client.address)
    try:
        infos = list(raw.list_flights())
        names = [json.loads(i.descriptor.command)["selector"] for i in infos]
        assert names == ['{__name__="requests_total"}', '{__name__="temp"}', '{__name__="up"}']
        assert [i.schema.metadata[b"series"] for i in infos] == [b"2", b"2", b"2"]
        info = raw.get_flight_info(
            flight.FlightDescriptor.for_command(wire.command("select", selector="up"))
        )
        assert info.schema.names[:2] == ["timestamp", "value"]
        # The endpoint's ticket reads the select whole, labels once per series.
        reader = raw.do_get(info.endpoints[0].ticket)
        table = reader.read_all()
        assert table.num_rows == 20
        assert table.schema.field("series").type == pa.run_end_encoded(pa.int32(), pa.uint64())
        series = wire.bytes_table(reader.schema.metadata[wire.SERIES_METADATA])
        assert series.num_rows == 2
        actions = [a.type for a in raw.list_actions()]
        assert actions == ["series", "select", "stats", "flush", "compact", "delete"]
        with pytest.raises(flight.FlightServerError, match="unknown action"):
            list(raw.do_action(flight.Action("drop_everything", b"{}")))
    finally:
        raw.close()


def test_labels_cross_once_per_series_not_per_row(served, real_table):
    """The stream of a select-all carries 16 bytes a row plus the runs, not 38 label strings."""
    _, client = served
    client.write(real_table)
    lf = client.select()
    raw = flight.connect(client.address)
    try:
        refs = client.series()["series_ref"].to_numpy()
        ticket = wire.SelectTicket(refs.tobytes(), None, None, list(lf.collect_schema()), True)
        table = raw.do_get(flight.Ticket(ticket.encode())).read_all()
    finally:
        raw.close()
    per_row = (table.nbytes - table.column("series").nbytes) / table.num_rows
    assert per_row == 16
    assert table.column("series").nbytes < table.num_rows  # runs, not rows


def test_connect_to_nothing_is_a_clear_error_soon():
    with pytest.raises(ta.ConnectionLostError, match="is `tsdb-arrow serve` running"):
        ta.connect("grpc://127.0.0.1:1")
    with pytest.raises(ta.InputError, match="grpc://HOST:PORT"):
        ta.connect("http://127.0.0.1:1")


def test_serve_refuses_flight_beyond_loopback_without_a_token(tmp_path):
    with ta.open(tmp_path / "db") as db:
        with pytest.raises(ta.ServerError, match="auth-token-file"):
            ta.serve(db, otlp_grpc="off", otlp_http="off", http="off", flight="0.0.0.0:0")
        with pytest.raises(ta.ServerError, match="both a certificate and its key"):
            ta.serve(
                db,
                otlp_grpc="off",
                otlp_http="off",
                http="off",
                flight="127.0.0.1:0",
                tls_cert=b"x",
            )
