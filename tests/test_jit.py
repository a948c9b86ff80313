"""tsdb_arrow.jit: cached kernels load in a fresh process without numba's compiler set-up, give
the same results as compiled ones, and compiling still works after such a load.

Each check runs fresh interpreters on a kernel module written to a temporary directory, with
its own numba cache (NUMBA_CACHE_DIR), so that "cached" and "compiled" are known per run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from numba.core.caching import FunctionCache

from tsdb_arrow import jit

pytestmark = pytest.mark.skipif(
    not jit._LIGHT_LOAD, reason="this numba lacks the internals of the light load"
)

# Two kernels: `spread` allocates (it links against numba's runtime, NRT) and calls `total`.
KERNELS = """\
import numpy as np
from tsdb_arrow.jit import njit

@njit(cache=True, nogil=True)
def total(a):
    return a.sum() + {offset}

@njit(cache=True)
def spread(a):
    out = np.empty(a.shape[0] + 1)
    out[0] = total(a)
    out[1:] = a * 2.0
    return out
"""

# Run in a fresh interpreter: call `spread`, report its result, whether it came from the cache,
# and whether numba's compiler set-up (the target context's registries) has run.
PROBE = """\
import json, sys
import numpy as np
import kernels
from numba.core.registry import cpu_target

result = kernels.spread(np.array([1.0, 2.5, -4.0]))
hits = sum(kernels.spread.stats.cache_hits.values())
set_up = bool(cpu_target.target_context._registries)
{after}
print(json.dumps({{"result": result.tolist(), "hits": hits, "set_up": set_up, **extra}}))
"""

# After the load, compile a kernel that is in no cache and calls the loaded one.
COMPILE_AFTER = """\
from tsdb_arrow.jit import njit

@njit
def fresh(a):
    return kernels.spread(a)[0] * 10.0

extra = {
    "fresh": fresh(np.array([1.0, 2.0])),
    "set_up_after": bool(cpu_target.target_context._registries),
}
"""


def run(directory: Path, after: str = "extra = {}", probe: str = PROBE) -> dict[str, object]:
    """``probe`` in a fresh interpreter, the kernel module and numba cache in ``directory``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(directory), str(Path(__file__).parents[1])]),
        "NUMBA_CACHE_DIR": str(directory / "numba-cache"),
    }
    done = subprocess.run(
        [sys.executable, "-c", probe.format(after=after)],
        capture_output=True,
        text=True,
        env=env,
        cwd=directory,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def write_kernels(directory: Path, offset: float) -> None:
    (directory / "kernels.py").write_text(KERNELS.format(offset=offset))


def test_a_cached_kernel_loads_without_the_compiler_set_up(tmp_path):
    write_kernels(tmp_path, 0.5)
    first = run(tmp_path)
    assert first == {"result": [0.0, 2.0, 5.0, -8.0], "hits": 0, "set_up": True}
    again = run(tmp_path)
    assert again == {"result": [0.0, 2.0, 5.0, -8.0], "hits": 1, "set_up": False}


def test_a_kernel_compiles_after_a_light_load(tmp_path):
    write_kernels(tmp_path, 0.5)
    run(tmp_path)
    out = run(tmp_path, COMPILE_AFTER)
    assert out["hits"] == 1
    assert out["set_up"] is False
    assert out["fresh"] == 35.0  # (1 + 2 + 0.5) * 10
    assert out["set_up_after"] is True


# Count llvmlite's lock callbacks around a cached kernel's load; check they are all back after.
LOCK_PROBE = """\
import json
import numpy as np
from llvmlite.binding import ffi
import kernels

calls = []
ffi.register_lock_callback(lambda: calls.append(1), lambda: None)
before = len(ffi.lib._lock._cblist)
kernels.spread(np.array([1.0]))
loaded = len(calls)
from llvmlite import binding
binding.get_process_triple()  # one call into LLVM through the lock
print(json.dumps({{"hits": sum(kernels.spread.stats.cache_hits.values()), "loaded": loaded,
                  "after": len(calls) - loaded, "restored": len(ffi.lib._lock._cblist) == before}}))
"""


def test_a_light_load_takes_llvms_lock_once_and_puts_its_callbacks_back(tmp_path):
    """The load's calls into LLVM (thousands: every symbol of the kernel's module) run under
    one hold of llvmlite's lock, whose callbacks then fire a few times, not per call; they are
    all in place after, and fire again on the next call."""
    write_kernels(tmp_path, 0.5)
    run(tmp_path)  # compiled and cached
    got = run(tmp_path, probe=LOCK_PROBE)
    assert got["hits"] == 1 and got["restored"] and got["after"] == 2  # the call, the string freed
    assert 1 <= got["loaded"] <= 10, got


def test_a_changed_kernel_is_compiled_again(tmp_path):
    write_kernels(tmp_path, 0.5)
    run(tmp_path)
    write_kernels(tmp_path, 100.0)
    os.utime(tmp_path / "kernels.py", ns=(2_000_000_000_000_000_000,) * 2)  # a newer stamp
    out = run(tmp_path)
    assert out == {"result": [99.5, 2.0, 5.0, -8.0], "hits": 0, "set_up": True}


def test_the_cache_class_follows_the_numba_check(monkeypatch):
    light = jit.njit(cache=True)(lambda a: a)
    plain = jit.njit(lambda a: a)
    assert type(light._cache) is jit.KernelCache
    assert type(plain._cache) is not jit.KernelCache
    monkeypatch.setattr(jit, "_LIGHT_LOAD", False)
    fallback = jit.njit(cache=True)(lambda a: a)
    assert type(fallback._cache) is FunctionCache  # numba's own cache, as without this module


NUMBA_NJIT = r"\bnb\.njit\b|\bnumba\.njit\b|from numba import .*\bnjit\b"


def test_every_package_kernel_is_decorated_through_tsdb_arrow_jit():
    # A kernel decorated with numba's own njit would load with the compiler set-up again.
    package = Path(jit.__file__).parent
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "jit.py" and re.search(NUMBA_NJIT, path.read_text())
    ]
    assert offenders == []
