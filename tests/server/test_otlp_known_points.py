"""The receiver's short way for remembered points (``ingest/otlp/repeat.py``,
``Database.write_refs``): what it stores equals what the full way stores, it is taken for every
repeated request, and its failures are answered as the full way's are."""

from __future__ import annotations

import threading

import numpy as np
import polars as pl
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

import tsdb_arrow as ta
from tsdb_arrow.errors import BackpressureError, InputError
from tsdb_arrow.server.otlp import OtlpReceiver

T0_NS = 1_795_392_000_000 * 1_000_000


def feed(i: int, *, client: int = 0, series: int = 8, first: int = 0) -> bytes:
    """Request i: a gauge (one point stale, one an integer) and a cumulative counter per
    series, at T0 + i s, under a resource with a host (a target_info series)."""
    req = ExportMetricsServiceRequest()
    resource = req.resource_metrics.add()
    for key, text in (("service.name", f"svc{client}"), ("host.name", "node-1")):
        attr = resource.resource.attributes.add()
        attr.key, attr.value.string_value = key, text
    scope = resource.scope_metrics.add()
    scope.scope.name = "lib"
    for kind in ("gauge", "counter"):
        metric = scope.metrics.add()
        metric.name = f"feed.{kind}"
        points = metric.gauge.data_points if kind == "gauge" else metric.sum.data_points
        if kind == "counter":
            metric.sum.is_monotonic = True
            metric.sum.aggregation_temporality = 2
        for j in range(first, first + series):
            point = points.add()
            point.time_unix_nano = T0_NS + i * 1_000_000_000
            if j == 1:
                point.as_int = 2**53 + 1 + i
            else:
                point.as_double = (i * 1000 + j) / 7
            if j == 2 and i % 2:
                point.flags = 1
            for key, text in (("s", f"s{j}"), ("z", f"z{j % 3}")):
                attr = point.attributes.add()
                attr.key, attr.value.string_value = key, text
    return req.SerializeToString()


def delta(i: int) -> bytes:
    req = ExportMetricsServiceRequest()
    metric = req.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "feed.delta"
    metric.sum.is_monotonic = True
    metric.sum.aggregation_temporality = 1
    point = metric.sum.data_points.add()
    point.time_unix_nano, point.as_double = T0_NS + i * 1_000_000_000, 1.5
    return req.SerializeToString()


def stored(db: ta.Database) -> pl.DataFrame:
    """Every float sample, sorted, with the value's bits (NaN payloads compared exactly)."""
    frame = db.select('{__name__=~".+"}').collect()
    frame = frame.with_columns(pl.col("value").cast(pl.Float64).to_physical().alias("value"))
    frame = frame.with_columns(pl.Series("bits", frame["value"].to_numpy().view(np.uint64))).drop(
        "value"
    )
    return frame.sort(sorted(frame.columns))


BODIES = [feed(i, client=c) for i in range(6) for c in range(2)] + [
    feed(6, series=10),
    delta(7),
    delta(8),
    feed(9, first=2, series=3),
]


@pytest.mark.parametrize("short_way", [True, False])
def test_stored_data_equals_the_full_way(tmp_path, short_way):
    db = ta.open(tmp_path / "db")
    receiver = OtlpReceiver(db)
    if not short_way:
        receiver.known.rows = lambda sc: None  # type: ignore[method-assign]
    for body in BODIES:
        outcome = receiver.export(body)
        assert outcome.kind == "ok"
        assert outcome.response == ExportMetricsServiceResponse().SerializeToString()
    # the repeats of clients 0 and 1 (5 each) and the subset of series 2..4 take the short way
    assert receiver.repeats.writes == (11 if short_way else 0)
    got = stored(db)
    db.close()
    if short_way:
        other = ta.open(tmp_path / "full")
        full = OtlpReceiver(other)
        full.known.rows = lambda sc: None  # type: ignore[method-assign]
        for body in BODIES:
            full.export(body)
        want = stored(other)
        other.close()
        assert got.equals(want)
    # points, then a target_info sample for each of the 14 requests with a resource
    assert got.height == 2 * 6 * 2 * 8 + 2 * 10 + 2 + 2 * 3 + 14
    deltas = got.filter(pl.col("__name__") == "feed_delta_total")
    assert deltas["bits"].to_list() == np.array([1.5, 3.0]).view(np.uint64).tolist()


def test_a_full_head_on_the_short_way_answers_retry_later(tmp_path, monkeypatch):
    db = ta.open(tmp_path / "db")
    receiver = OtlpReceiver(db)
    assert receiver.export(feed(0)).kind == "ok"

    def full(*_args):
        raise BackpressureError("the head is full; retry the batch later")

    monkeypatch.setattr(db, "write_refs", full)
    outcome = receiver.export(feed(1))
    assert outcome.kind == "unavailable" and "retry" in outcome.message
    monkeypatch.undo()
    assert receiver.export(feed(1)).kind == "ok"  # the retry
    assert db.stats()["samples"] == 2 * (2 * 8 + 1)
    db.close()


def test_a_closed_database_answers_retry_later_on_the_short_way(tmp_path):
    db = ta.open(tmp_path / "db")
    receiver = OtlpReceiver(db)
    assert receiver.export(feed(0)).kind == "ok"
    assert len(receiver.known) == 16  # feed 1 is remembered: the short way is taken
    db.close()
    assert receiver.export(feed(1)).kind == "unavailable"


def test_write_refs_refuses_refs_no_write_admitted(tmp_path):
    db = ta.open(tmp_path / "db")
    db.write(pl.DataFrame({"timestamp": [1_700_000_000_000], "value": [1.0], "__name__": ["a"]}))
    with pytest.raises(InputError, match="no earlier write admitted"):
        db.write_refs(np.array([12345], dtype=np.uint64), np.array([1_700_000_000_000]),
                      np.array([2.0]))  # fmt: skip
    assert db.stats()["samples"] == 1
    assert db.write_refs(np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0)).rows == 0
    db.close()


def test_concurrent_repeats_share_one_write(tmp_path, monkeypatch):
    db = ta.open(tmp_path / "db")
    receiver = OtlpReceiver(db)
    for c in range(3):
        assert receiver.export(feed(0, client=c)).kind == "ok"
    through = db.write_refs
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def gate(refs, ts, values):
        calls.append(len(refs))
        if len(calls) == 1:
            entered.set()
            assert release.wait(30)
        return through(refs, ts, values)

    monkeypatch.setattr(db, "write_refs", gate)
    outcomes: dict[int, object] = {}

    def send(c: int) -> None:
        outcomes[c] = receiver.export(feed(1, client=c))

    first = threading.Thread(target=send, args=(0,))
    first.start()
    assert entered.wait(30)
    rest = [threading.Thread(target=send, args=(c,)) for c in (1, 2)]
    for t in rest:
        t.start()
    while len(receiver.repeats._pending) < 2:
        threading.Event().wait(0.005)
    release.set()
    for t in [first, *rest]:
        t.join(30)
    assert calls == [17, 34]  # 16 points and a target_info sample a request
    assert all(o.kind == "ok" for o in outcomes.values())
    monkeypatch.undo()
    assert db.stats()["samples"] == 6 * 17
    db.close()


def test_the_short_ways_points_are_in_the_wal_when_answered(tmp_path):
    """A copy of the data directory taken right after the answers (nothing flushed, the
    database still open: as after a crash) replays every point, bit for bit."""
    import shutil

    db = ta.open(tmp_path / "db")
    receiver = OtlpReceiver(db)
    for body in BODIES:
        assert receiver.export(body).kind == "ok"
    assert receiver.repeats.writes == 11
    shutil.copytree(tmp_path / "db", tmp_path / "copy")
    want = stored(db)
    db.close()
    with ta.open(tmp_path / "copy") as copy:  # replays the WAL
        assert stored(copy).equals(want)
