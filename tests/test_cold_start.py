"""Cold start: importing tsdb_arrow, opening a directory and starting the CLI load only what they
use; the sketch package, numba and the optional libraries come in on first use.

Each check runs in a fresh interpreter, since this process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import tsdb_arrow as ta

# Modules that `import tsdb_arrow` and `ta.open(...)` must not import: each is needed only by
# some command or feature, and most cost tens to hundreds of milliseconds.
HEAVY = [
    "numba",
    "llvmlite",
    "tsdb_arrow.sketch",
    "tsdb_arrow.blocks.codecs.timestamps",
    "tsdb_arrow.blocks.codecs.values",
    "rich",
    "zstandard",
    "ddsketch",
    "opentelemetry",
    "grpc",
    "pandas",
    "pyarrow.compute",
    "pyarrow.dataset",
]


def loaded_after(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; return which HEAVY modules it left imported, and
    the ``result`` it assigned (JSON)."""
    script = (
        "import json, sys\n"
        f"{code}\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'result': globals().get('result')}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cold") / "db"
    with ta.open(path) as db:
        db.write(
            pl.DataFrame(
                {
                    "timestamp": [1_000, 2_000, 3_000, 1_000],
                    "value": [1.0, 2.0, 3.0, 10.0],
                    "__name__": ["up", "up", "up", "load"],
                    "job": ["a", "a", "a", "b"],
                }
            )
        )
    return path


def test_import_loads_no_heavy_module():
    assert loaded_after("import tsdb_arrow")["heavy"] == []


def test_open_and_series_load_no_heavy_module(data_dir):
    out = loaded_after(
        "import tsdb_arrow as ta\n"
        f"db = ta.open({str(data_dir)!r})\n"
        "result = [db.stats()['samples'], db.series().height]\n"
        "db.close()"
    )
    assert out == {"heavy": [], "result": [4, 2]}


def test_query_loads_the_decode_kernels_only(data_dir):
    out = loaded_after(
        "import tsdb_arrow as ta\n"
        f"db = ta.open({str(data_dir)!r})\n"
        "result = db.select('up').collect()['value'].to_list()\n"
        "db.close()"
    )
    assert out["result"] == [1.0, 2.0, 3.0]
    # numba and the codecs are what a query needs; nothing else of HEAVY
    assert set(out["heavy"]) <= {
        "numba",
        "llvmlite",
        "zstandard",
        "tsdb_arrow.blocks.codecs.timestamps",
        "tsdb_arrow.blocks.codecs.values",
    }
    assert "numba" in out["heavy"]


def test_cli_module_loads_no_heavy_module():
    assert loaded_after("import tsdb_arrow.cli")["heavy"] == []


def test_sketch_is_imported_on_first_use():
    out = loaded_after(
        "import polars as pl\n"
        "import tsdb_arrow as ta\n"
        "before = 'tsdb_arrow.sketch' in sys.modules\n"
        "frame = pl.DataFrame({'value': [1.0, 2.0, 3.0, 4.0]})\n"
        "q = ta.sketch.quantiles(frame, [0.0, 1.0])\n"
        "from tsdb_arrow import sketch\n"
        "result = [before, sketch is ta.sketch, 'sketch' in dir(ta), q.columns, q.row(0)]"
    )
    before, same, listed, columns, row = out["result"]
    assert (before, same, listed, columns) == (False, True, True, ["q0", "q1"])
    assert row == pytest.approx([1.0, 4.0], rel=0.01)  # the default relative accuracy
    assert "tsdb_arrow.sketch" in out["heavy"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'sketches'"):
        ta.sketches  # noqa: B018
    from tsdb_arrow.blocks import codecs

    with pytest.raises(AttributeError, match="no attribute 'decode_nothing'"):
        codecs.decode_nothing  # noqa: B018
    assert codecs.decode_values.__module__ == "tsdb_arrow.blocks.codecs.values"
    assert {"decode_values", "encode_timestamps"} <= set(dir(codecs))
