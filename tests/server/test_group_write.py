"""Group commit: concurrent tables become one write, each caller gets its own outcome."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

import tsdb_arrow as ta
from tsdb_arrow.errors import BackpressureError, InputError
from tsdb_arrow.server.group_write import GroupWriter


def table(name: str, t: int, v: float) -> pa.Table:
    return pa.table({"timestamp": pa.array([t], pa.int64()), "value": [v], "__name__": [name]})


class GatedDb:
    """Records the tables of each write; the first write waits for ``gate``."""

    def __init__(self, refuse: str | None = None, error: BaseException | None = None) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[list[str]] = []
        self.refuse = refuse
        self.error = error

    def write(self, t: pa.Table) -> None:
        names = t["__name__"].to_pylist()
        self.calls.append(names)
        if len(self.calls) == 1:
            self.entered.set()
            assert self.gate.wait(30)
        if self.error is not None and len(self.calls) > 1:
            raise self.error
        if self.refuse in names:
            raise InputError(f"bad metric {self.refuse}")


def run_group(db, names: list[str]) -> dict[str, BaseException | None]:
    writer = GroupWriter(db)
    outcomes: dict[str, BaseException | None] = {}

    def send(name: str) -> None:
        try:
            writer.write(table(name, 1, 1.0))
            outcomes[name] = None
        except BaseException as exc:  # the outcome under test
            outcomes[name] = exc

    first = threading.Thread(target=send, args=(names[0],))
    first.start()
    assert db.entered.wait(30)
    rest = [threading.Thread(target=send, args=(n,)) for n in names[1:]]
    for t in rest:
        t.start()
    while len(writer._pending) < len(rest):
        threading.Event().wait(0.005)
    db.gate.set()
    for t in [first, *rest]:
        t.join(30)
    return outcomes


def test_waiting_tables_are_written_together():
    db = GatedDb()
    outcomes = run_group(db, ["a", "b", "c", "d"])
    assert outcomes == dict.fromkeys("abcd")
    assert db.calls[0] == ["a"] and sorted(db.calls[1]) == ["b", "c", "d"] and len(db.calls) == 2


def test_only_the_request_with_bad_input_is_refused():
    db = GatedDb(refuse="c")
    outcomes = run_group(db, ["a", "b", "c", "d"])
    assert isinstance(outcomes["c"], InputError)
    assert {k: v for k, v in outcomes.items() if k != "c"} == dict.fromkeys("abd")
    assert sorted(db.calls[1]) == ["b", "c", "d"]  # together, refused, then alone:
    assert sorted(map(tuple, db.calls[2:])) == [("b",), ("c",), ("d",)]


def test_backpressure_reaches_every_request_of_the_group():
    db = GatedDb(error=BackpressureError("full"))
    outcomes = run_group(db, ["a", "b", "c"])
    assert outcomes["a"] is None
    assert isinstance(outcomes["b"], BackpressureError)
    assert isinstance(outcomes["c"], BackpressureError)
    assert len(db.calls) == 2


def test_a_real_database_stores_every_table(tmp_path):
    db = ta.open(tmp_path / "db")
    writer = GroupWriter(db)
    threads = [
        threading.Thread(target=writer.write, args=(table(f"m{i % 7}", 1000 * i, float(i)),))
        for i in range(64)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    frame = db.select('{__name__=~"m.*"}').collect()
    assert frame.height == 64 and sorted(frame["value"].to_list()) == [float(i) for i in range(64)]
    assert 1 <= writer.writes <= 64
    with pytest.raises(InputError):
        writer.write(table("0bad", 1, 1.0))
    db.close()
