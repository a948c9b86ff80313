"""``ta.connect``: light to import, bit-exact for any float, frames that local tools take."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tests.conftest import synthetic
from tests.flight_helpers import STALE_NAN, flight_server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with flight_server(tmp_path_factory.mktemp("client") / "db") as (db, _, address):
        with ta.connect(address) as client:
            yield db, client


def test_import_tsdb_arrow_loads_no_flight():
    code = (
        "import sys, tsdb_arrow as ta\n"
        "assert 'pyarrow.flight' not in sys.modules and 'tsdb_arrow.client' not in sys.modules\n"
        "assert 'connect' in dir(ta) and 'connect' in ta.__all__\n"
        "from tsdb_arrow import connect\n"
        "assert connect is ta.connect and 'pyarrow.flight' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


_COUNTER = iter(range(10**9))


@settings(max_examples=40, deadline=None)
@given(
    bits=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40),
    t0=st.one_of(st.integers(-(2**40), 10**8 - 100_000), st.integers(10**11, 2**42)),
)
def test_any_float_bits_round_trip(served, bits, t0):
    _, client = served
    metric = f"h{next(_COUNTER)}"
    values = np.array(bits, np.uint64).view(np.float64)
    frame = pl.DataFrame(
        {
            "timestamp": t0 + np.arange(len(bits), dtype=np.int64) * 1000,
            "value": values,
            "__name__": metric,
        }
    )
    client.write(frame)
    got = client.select(metric).collect()
    assert got["timestamp"].dt.epoch("ms").to_list() == frame["timestamp"].to_list()
    assert np.array_equal(got["value"].to_numpy().view(np.uint64), np.array(bits, np.uint64))


def test_stale_markers_survive(served):
    _, client = served
    frame = pl.DataFrame(
        {"timestamp": [1, 2, 3], "value": [1.0, STALE_NAN, -0.0], "__name__": "stale_test"}
    )
    client.write(frame)
    bits = client.select("stale_test").collect()["value"].to_numpy().view(np.uint64)
    assert bits.tolist() == [0x3FF0000000000000, 0x7FF0000000000002, 0x8000000000000000]


def test_sketch_quantiles_take_a_client_frame_unchanged(served):
    db, client = served
    client.write(synthetic(n_series=6, n_samples=300, seed=5))
    remote = ta.sketch.quantiles(client.select("temp"), [0.5, 0.99], by="instance").collect()
    local = ta.sketch.quantiles(db.select("temp"), [0.5, 0.99], by="instance").collect()
    assert remote.height == 2
    assert remote.equals(local)


def test_a_collected_frame_after_close_is_a_clear_error(tmp_path):
    with flight_server(tmp_path / "db") as (_, _, address):
        client = ta.connect(address)
        client.write(synthetic(n_series=1, n_samples=5))
        lf = client.select()
        client.close()
        with pytest.raises(Exception, match="closed|Closed"):
            lf.collect()
