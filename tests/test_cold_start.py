"""Cold start: importing tsdb_arrow, opening a directory and starting the CLI load only what they
use; the sketch package, numba and the optional libraries come in on first use. And numba's
kernel cache has a writable home even in a read-only install.

Each check runs in a fresh interpreter, since this process has imported everything already.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest

import tsdb_arrow as ta
from benchmarks import cold_start
from benchmarks.cold_start import Command, table
from tsdb_arrow.kernel_cache import choose_cache_dir

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


def test_cached_queries_and_writes_skip_numba_compiler_set_up(data_dir, tmp_path):
    # numba's own cache loader installs every compiler registry first (0.15-0.2 s); kernels
    # load through tsdb_arrow.jit without them. The first runs fill the cache (or compile).
    code = (
        "import tsdb_arrow as ta\n"
        "import polars as pl\n"
        f"db = ta.open({str(data_dir)!r}, read_only=True)\n"
        "values = db.select('up').collect()['value'].to_list()\n"
        "db.close()\n"
        f"with ta.open({str(tmp_path / 'w')!r}) as db:\n"
        "    db.write(pl.DataFrame({'timestamp': [5, 1, 3], 'value': [5.0, 1.0, 3.0],\n"
        "                           '__name__': ['m', 'm', 'm'], 'job': ['a', 'b', 'a']}))\n"
        "    db.flush()\n"
        "    stored = db.select('m').collect()['value'].to_list()\n"
        "from numba.core.registry import cpu_target\n"
        "result = [values, sorted(stored), bool(cpu_target.target_context._registries)]\n"
    )
    loaded_after(code)
    (tmp_path / "w").rename(tmp_path / "w0")
    assert loaded_after(code)["result"] == [[1.0, 2.0, 3.0], [1.0, 3.0, 5.0], False]


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


def test_numba_cache_stays_where_numba_puts_it_when_writable(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    assert choose_cache_dir(str(package), {"XDG_CACHE_HOME": str(tmp_path / "c")}) is None
    assert (package / "__pycache__").is_dir()
    # a user's choice is kept whatever else is writable
    assert choose_cache_dir("/nonexistent", {"NUMBA_CACHE_DIR": "/x"}) is None


def test_numba_cache_falls_back_to_the_user_cache_then_a_private_temp_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    blocker = tmp_path / "file"  # nothing can be created under a regular file
    blocker.write_text("")
    unwritable = str(blocker / "pkg")
    user_cache = tmp_path / "cache"
    assert choose_cache_dir(unwritable, {"XDG_CACHE_HOME": str(user_cache)}) is None
    assert (user_cache / "numba").is_dir()  # numba's user-wide locator will use it

    chosen = choose_cache_dir(unwritable, {"XDG_CACHE_HOME": str(blocker / "cache")})
    assert chosen == str(tmp_path / f"tsdb-arrow-numba-cache-{os.getuid()}")
    mode = os.lstat(chosen).st_mode
    assert stat.S_ISDIR(mode) and not mode & (stat.S_IWGRP | stat.S_IWOTH)


def test_numba_cache_refuses_a_temp_dir_others_can_write(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shared = tmp_path / f"tsdb-arrow-numba-cache-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o777)  # planted by someone else: cached kernels are loaded as code
    blocker = tmp_path / "file"
    blocker.write_text("")
    chosen = choose_cache_dir(str(blocker / "pkg"), {"XDG_CACHE_HOME": str(blocker / "c")})
    assert chosen is not None and Path(chosen).parent == tmp_path
    assert Path(chosen) != shared and Path(chosen).name.startswith("tsdb-arrow-numba-cache-")
    assert not os.lstat(chosen).st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def test_cold_start_table_compares_with_the_baseline():
    cmds = [
        Command("base", ["x"]),
        Command("fast", ["x"], targeted=True),
        Command("slow", ["x"], targeted=True),
        Command("untargeted", ["x"]),
    ]
    lines = table(cmds, [0.25, 0.70, 0.71, 2.0], [0.2, 0.3, 0.4, 1.0])
    assert lines[2].split() == ["base", "0.250", "0.200"]
    assert lines[3].split()[1:6] == ["0.700", "+0.450", "2.80x", "0.300", "+0.100"]
    assert lines[3].endswith("<= +0.45 s: met")  # the target is inclusive
    assert lines[4].endswith("<= +0.45 s: missed")
    assert lines[5].split()[1:] == ["2.000", "+1.750", "8.00x", "1.000", "+0.800"]


@pytest.mark.slow
def test_cold_start_benchmark_runs(capsys, tmp_path):
    assert cold_start.main(["--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "460,800 samples" in out
    for command in cold_start.commands(tmp_path / "data", tmp_path):
        assert command.label in out
    assert out.count("<= +0.45 s:") == 2
