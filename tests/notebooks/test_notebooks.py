"""The notebooks run top to bottom against the current code, so they never rot."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
#: Notebooks that query a running server: the test serves the shipped sample for them.
NEEDS_SERVER = {"client.ipynb"}


@contextlib.contextmanager
def server_for(path: Path, data: Path) -> Iterator[dict[str, str]]:
    """For a notebook of NEEDS_SERVER, a Flight server over the shipped sample and the
    environment variable naming it; nothing for the others."""
    if path.name not in NEEDS_SERVER:
        yield {}
        return
    import pyarrow.parquet as pq

    from tests.conftest import REAL_SLICE
    from tests.flight_helpers import flight_server

    with flight_server(data) as (db, _, address):
        db.write(pq.read_table(REAL_SLICE))
        yield {"TSDB_ARROW_SERVER": address}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_and_keeps_its_saved_outputs(path, tmp_path, monkeypatch):
    saved = nbformat.read(path, as_version=4)
    outputs = [o for c in saved.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "saved without its plots"
    fresh = nbformat.read(path, as_version=4)
    with server_for(path, tmp_path / "db") as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)  # the kernel inherits the environment
        NotebookClient(
            fresh,
            timeout=300,
            startup_timeout=300,  # a kernel starts slowly on a busy machine
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()  # raises CellExecutionError on any failing cell (its asserts included)
    errors = [
        o
        for c in fresh.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors


def test_there_is_a_quantiles_notebook():
    assert any(p.name == "quantiles.ipynb" for p in NOTEBOOKS)


def test_quantiles_notebook_outside_the_repository_stops_with_a_clear_message(tmp_path):
    """Its first cell looks for the shipped sample up to the root, then says where to start."""
    notebook = nbformat.read(NOTEBOOKS[0].parent / "quantiles.ipynb", as_version=4)
    first = next(c for c in notebook.cells if c.cell_type == "code")
    done = subprocess.run(
        [sys.executable, "-c", first.source],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "FileNotFoundError: tests/data/real_node_1s_15m.parquet not found in" in done.stderr
    assert "start this notebook from inside a clone" in done.stderr


def test_there_is_a_client_notebook():
    assert any(p.name == "client.ipynb" for p in NOTEBOOKS)
