"""Shared fixtures: the shipped slice of real node_exporter metrics and small synthetic frames."""

from __future__ import annotations

import faulthandler
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, settings

import tsdb_arrow as ta

# Slow example generation on a busy machine is not a failure of the code under test.
settings.register_profile("local", suppress_health_check=[HealthCheck.too_slow])
# CI runs the same examples every time (a red build is then reproducible); local runs explore.
settings.register_profile("ci", settings.get_profile("local"), derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "local")

# A test (setup and teardown included) running longer than this is taken as hung: its process
# writes every thread's stack to a file and exits, so the test fails and the run goes on instead
# of stalling CI. The slowest test here, a module fixture running Prometheus and node_exporter,
# takes about 50 s.
HANG_SECONDS = 300

DATA = Path(__file__).parent / "data"
REAL_SLICE = DATA / "real_node_1s_15m.parquet"


@pytest.fixture(scope="session")
def real_table() -> pa.Table:
    """15 minutes of a real node_exporter scraped every second: 512 series, 460,800 samples."""
    return pq.read_table(REAL_SLICE)


def synthetic(
    n_series: int = 20,
    n_samples: int = 100,
    *,
    start: int = 1_700_000_000_000,
    step: int = 15_000,
    seed: int = 0,
) -> pl.DataFrame:
    """Long-format samples: counters, 2-decimal gauges and constants with ms jitter."""
    rng = np.random.default_rng(seed)
    sid = np.repeat(np.arange(n_series), n_samples)
    ts = start + np.tile(np.arange(n_samples) * step, n_series) + rng.integers(0, 5, sid.size)
    kind = sid % 3
    counter = np.cumsum(rng.integers(0, 100, sid.size)).astype(np.float64)
    gauge = np.round(rng.normal(50, 10, sid.size), 2)
    value = np.where(kind == 0, counter, np.where(kind == 1, gauge, 7.0))
    return pl.DataFrame(
        {
            "__name__": np.where(kind == 0, "requests_total", np.where(kind == 1, "temp", "up")),
            "job": np.array(["api", "db"])[sid % 2],
            "instance": [f"host-{i}" for i in sid],
            "timestamp": ts,
            "value": value,
        }
    )


@pytest.fixture
def db(tmp_path: Path):
    """A fresh database in a temporary directory, closed after the test."""
    database = ta.open(tmp_path / "db")
    yield database
    database.close()


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame in a comparable form: ms timestamps, string labels, sorted rows and columns."""
    frame = frame.with_columns(
        pl.col("timestamp").dt.epoch("ms")
        if frame["timestamp"].dtype != pl.Int64
        else pl.col("timestamp")
    )
    labels = sorted(c for c in frame.columns if c not in ("timestamp", "value"))
    frame = frame.with_columns(pl.col(c).cast(pl.String) for c in labels)
    return frame.select(*labels, "timestamp", "value").sort([*labels, "timestamp"], nulls_last=True)


_HANGS = pytest.StashKey[Path]()  # where the hung tests' stacks are written


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run without workers
        config.stash[_HANGS] = Path(tempfile.mkdtemp(prefix="tsdb-arrow-hangs-"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # noqa: ANN001 - xdist's WorkerController
    """Each xdist worker writes its stacks where the controller reads them."""
    node.workerinput["tsdb_arrow_hangs"] = str(node.config.stash[_HANGS])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Arm faulthandler's watchdog for the whole test: past `HANG_SECONDS` it writes every
    thread's stack (from its own thread, without the GIL) and ends the process."""
    workerinput = getattr(item.config, "workerinput", None)
    hangs = Path(workerinput["tsdb_arrow_hangs"]) if workerinput else item.config.stash[_HANGS]
    worker = workerinput["workerid"] if workerinput else "main"
    with open(hangs / f"{worker}.txt", "w") as out:
        out.write(f"{item.nodeid} ran for more than {HANG_SECONDS} s; every thread's stack:\n")
        out.flush()
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=out)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # noqa: ANN001
    """The stacks of the tests that hung in a worker (the worker only says it crashed)."""
    if hasattr(config, "workerinput"):
        return
    hangs = config.stash[_HANGS]
    for path in sorted(hangs.glob("*.txt")):
        text = path.read_text()
        if "most recent call first" in text:
            terminalreporter.section(f"hung test ({path.stem})", sep="+")
            terminalreporter.write(text)
    shutil.rmtree(hangs, ignore_errors=True)
