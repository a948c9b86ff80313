"""A frame written over Flight in parts: stored as a local write stores it, whole or not at all."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tests.flight_helpers import ODD_BITS, flight_server, odd_frame, value_bits
from tsdb_arrow.client.writes import PARTS_SCHEMA
from tsdb_arrow.server import flight_wire as wire

T0 = 1_700_000_000_000


@pytest.fixture
def served(tmp_path):
    with flight_server(tmp_path / "db") as (db, server, address):
        with ta.connect(address) as client:
            yield db, client


@pytest.fixture
def local(tmp_path):
    with ta.open(tmp_path / "local") as db:
        yield db


def _same_as_local(client: ta.Client, local: ta.Database, selector: str | None = None) -> None:
    got = client.select(selector).collect()
    want = local.select(selector).collect()
    assert got.equals(want)
    assert np.array_equal(value_bits(got), value_bits(want))


@pytest.mark.parametrize("part_rows", [1, 7, 50, 149, 150, 1 << 19])
def test_a_frame_in_parts_is_stored_as_a_local_write_stores_it(served, local, monkeypatch,
                                                               part_rows):  # fmt: skip
    db, client = served
    monkeypatch.setattr("tsdb_arrow.client.writes.PART_ROWS", part_rows)
    frame = odd_frame()
    # Rows of every series in every part, and a row repeated across parts (a replaced sample).
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    twice = pl.concat([shuffled, shuffled.head(1)])
    remote, here = client.write(twice), local.write(twice)
    assert (remote.rows, remote.replaced) == (here.rows, here.replaced) == (151, 1)
    _same_as_local(client, local)
    for bits in ODD_BITS:
        assert int((value_bits(client.select("m").collect()) == bits).sum()) == 3
    assert db.series().equals(local.series())


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    part_rows=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    n_series=st.integers(1, 6),
    n=st.integers(1, 30),
)
def test_any_cut_into_parts_equals_a_local_write(served, local, part_rows, seed, n_series, n):
    _, client = served
    rng = np.random.default_rng(seed)
    metric = f"m{seed}_{part_rows}_{n_series}_{n}"
    frame = odd_frame(n_series=n_series, n=max(n, len(ODD_BITS)), t0=T0 + seed * 10**7)
    frame = frame.with_columns(pl.lit(metric).alias("__name__"))
    frame = frame[rng.permutation(frame.height)]
    import tsdb_arrow.client.writes as writes

    before = writes.PART_ROWS
    writes.PART_ROWS = part_rows
    try:
        remote = client.write(frame)
    finally:
        writes.PART_ROWS = before
    here = local.write(frame)
    assert (remote.rows, remote.replaced) == (here.rows, here.replaced)
    _same_as_local(client, local, metric)


def test_write_batches_of_many_parts_are_acknowledged_per_frame(served, monkeypatch):
    db, client = served
    monkeypatch.setattr("tsdb_arrow.client.writes.PART_ROWS", 9)
    frames = [odd_frame(t0=T0 + i * 10**8) for i in range(4)]
    results = []
    for result in client.write_batches(frames):
        results.append(result)
        assert db.stats()["samples"] >= sum(r.rows for r in results)
    assert [r.rows for r in results] == [150] * 4
    assert db.stats()["samples"] == 600


def test_a_bad_row_in_a_later_part_refuses_the_frame_with_the_local_message(
    served, local, monkeypatch
):
    db, client = served
    monkeypatch.setattr("tsdb_arrow.client.writes.PART_ROWS", 2)
    frame = pl.DataFrame(
        {
            "timestamp": [T0, T0 + 1000, T0 + 2000, T0 + 3000, T0 + 4000],
            "value": [1.0, 2.0, 3.0, 4.0, 5.0],
            "__name__": ["m", "m", "m", "m", "bad name"],
        }
    )
    with pytest.raises(ta.InputError) as remote:
        client.write(frame)
    with pytest.raises(ta.InputError) as here:
        local.write(frame)
    assert str(remote.value) == str(here.value)
    assert db.stats()["samples"] == 0
    assert db.series().height == 0


# -- what a client that skips ta.connect's checks sends ----------------------------------------


def _part(names: list[str], ts: list[int], frame_rows: int, last: bool) -> tuple:
    """A part of one row per timestamp, each row its own set ``{__name__: name}``."""
    n = len(ts)
    batch = wire.samples_batch(
        PARTS_SCHEMA,
        np.array(ts, np.int64),
        np.arange(n, dtype=np.float64),
        np.arange(n, dtype=np.uint32),
        np.ones(n, np.int64),
    )
    sets = wire.table_bytes(pa.table({"__name__": pa.array(names, pa.large_string())}))
    return batch, wire.part_metadata(sets, frame_rows, last)


def _raw_parts(address: str, parts: list[tuple], finish: bool = True) -> list[bytes]:
    """Send ``parts`` on one do_put stream; returns the acknowledgements read."""
    raw = flight.connect(address)
    descriptor = flight.FlightDescriptor.for_command(wire.command("write", mode="parts"))
    writer, acks = raw.do_put(descriptor, PARTS_SCHEMA)
    try:
        for batch, metadata in parts:
            writer.write_with_metadata(batch, pa.py_buffer(metadata))
        got = []
        if finish:
            writer.done_writing()
            while (ack := acks.read()) is not None:
                got.append(ack.to_pybytes())
        writer.close()
        return got
    finally:
        raw.close()


def _refused(address: str, parts: list[tuple]) -> ta.TsdbError:
    with pytest.raises(flight.FlightServerError) as caught:
        _raw_parts(address, parts)
    error = wire.from_error_info(caught.value.extra_info)
    assert error is not None
    return error


def test_raw_parts_are_written_once_the_last_arrives(served):
    db, client = served
    parts = [
        _part(["a", "b"], [T0, T0], 5, False),
        _part(["a"], [T0 + 1000], 5, False),
        _part(["c", "b"], [T0, T0 + 1000], 5, True),
    ]
    acks = _raw_parts(client.address, parts)
    assert len(acks) == 1
    assert db.stats()["samples"] == 5
    assert sorted(db.series()["__name__"].to_list()) == ["a", "b", "c"]


def test_a_stream_ending_inside_a_frame_stores_nothing_of_it(served):
    db, client = served
    whole = [_part(["a"], [T0], 1, True)]
    half = [_part(["b"], [T0], 2, False)]
    error = _refused(client.address, whole + half)
    assert isinstance(error, ta.InputError)
    assert "without its last part" in str(error)
    assert db.series()["__name__"].to_list() == ["a"]  # the whole frame before it is stored
    assert db.stats()["samples"] == 1


@pytest.mark.parametrize(
    "parts, message",
    [
        ([(["a"], [T0], 3, False), (["a"], [T0 + 1], 3, True)], "after 2 of the 3 rows"),
        ([(["a"], [T0], 1, False), (["a"], [T0 + 1], 1, True)], "more than the 1 rows"),
        ([(["a"], [T0], 2, False), (["a"], [T0 + 1], 3, True)], "announced 3"),
        ([(["a"], [T0], 0, True)], "announce 1 to"),
        ([(["a"], [T0], 2, False), (["a b"], [T0 + 1], 2, True)], "a b"),
        ([(["a"], [T0], 2, False), (["a"], [1_700_000_001], 2, True)], "row 1: "),
    ],
)
def test_the_server_refuses_inconsistent_parts_and_stores_nothing(served, parts, message):
    db, client = served
    error = _refused(client.address, [_part(*p) for p in parts])
    assert isinstance(error, ta.InputError)
    assert message in str(error)
    assert db.stats()["samples"] == 0
    assert db.series().height == 0


def test_a_seconds_like_row_names_its_row_in_the_frame_as_locally(served, local):
    _, client = served
    ts = [T0, T0 + 1000, 1_700_000_002]
    error = _refused(
        client.address, [_part(["a", "a"], ts[:2], 3, False), _part(["a"], ts[2:], 3, True)]
    )
    with pytest.raises(ta.InputError) as here:
        local.write(pl.DataFrame({"timestamp": ts, "value": [0.0, 1.0, 2.0], "__name__": "a"}))
    assert str(error) == str(here.value)


def test_one_ref_for_two_label_sets_in_two_parts_is_the_local_collision(served, local, monkeypatch):
    db, client = served
    # Every label set hashes to one ref: sets "a" and "b" collide, as in a local write.
    monkeypatch.setattr("tsdb_arrow.ingest.series._mix64", lambda h: np.full_like(h, 42))
    error = _refused(client.address, [_part(["a"], [T0], 2, False), _part(["b"], [T0], 2, True)])
    with pytest.raises(ta.SeriesCollisionError) as here:
        local.write(pl.DataFrame({"timestamp": [T0, T0], "value": [0.0, 1.0],
                                  "__name__": ["a", "b"]}))  # fmt: skip
    assert isinstance(error, ta.SeriesCollisionError)
    assert str(error) == str(here.value)
    assert db.stats()["samples"] == 0


@pytest.mark.parametrize("raw", [b"", b"\x02" + bytes(8), b"\x01\x00"])
def test_part_metadata_must_carry_the_flag_and_rows(raw):
    with pytest.raises(ta.InputError, match="app metadata"):
        wire.read_part_metadata(pa.py_buffer(raw) if raw else None)


def test_part_metadata_round_trips():
    last, rows, sets = wire.read_part_metadata(pa.py_buffer(wire.part_metadata(b"xy", 7, True)))
    assert (last, rows, sets.to_pybytes()) == (True, 7, b"xy")
    last, rows, sets = wire.read_part_metadata(pa.py_buffer(wire.part_metadata(b"", 2**40, False)))
    assert (last, rows, sets.to_pybytes()) == (False, 2**40, b"")


def test_a_frame_grows_with_the_rows_received_not_with_the_rows_announced():
    from tsdb_arrow.server.flight_frames import GROWTH, MAX_FRAME_ROWS, FrameParts

    frame = FrameParts(MAX_FRAME_ROWS)  # a hostile announcement costs nothing up front
    assert len(frame.timestamps) == 0
    batch, metadata = _part(["a", "b"], [T0, T0], MAX_FRAME_ROWS, False)
    frame.add(batch, wire.read_part_metadata(pa.py_buffer(metadata))[2])
    assert len(frame.timestamps) == GROWTH * 2 and frame.filled == 2

    whole = FrameParts(5)  # grown part by part, the rows already in are kept
    for names, times, last in [(["a"], [T0], False), (["b", "a"], [T0, T0 + 1], False),
                               (["c", "b"], [T0, T0 + 1], True)]:  # fmt: skip
        batch, metadata = _part(names, times, 5, last)
        whole.add(batch, wire.read_part_metadata(pa.py_buffer(metadata))[2])
    samples, resolved = whole.resolved()
    assert samples.timestamps.tolist() == [T0, T0, T0 + 1, T0, T0 + 1]
    name_of = dict(zip(resolved.series.column("series_ref").to_pylist(),
                       resolved.series.column("__name__").to_pylist()))  # fmt: skip
    assert [name_of[r] for r in resolved.row_refs.tolist()] == ["a", "b", "a", "c", "b"]
    assert len(set(resolved.row_sets[[0, 2]])) == 1 and len(set(resolved.row_sets)) == 3
