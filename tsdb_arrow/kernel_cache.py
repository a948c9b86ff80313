"""Where numba caches the compiled kernels, so that a read-only install still works.

Every kernel is ``@njit(cache=True)``: numba stores the machine code next to the sources
(``__pycache__``) or, when that is not writable, in the user's cache directory
(``$XDG_CACHE_HOME/numba``, ``~/.cache/numba``). When neither is writable (a read-only image
whose home is read-only too), numba refuses to decorate the kernels and the first query fails;
then a private directory under the temporary directory is used instead. Nothing here imports
numba: the choice is made when tsdb_arrow is imported, before any kernel module is.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import MutableMapping

CACHE_ENV = "NUMBA_CACHE_DIR"


def choose_cache_dir(package_dir: str, environ: MutableMapping[str, str]) -> str | None:
    """The directory numba should cache kernels in, or None when numba's own choice works."""
    if environ.get(CACHE_ENV):
        return None  # the user chose
    if _writable(os.path.join(package_dir, "__pycache__")):
        return None
    user_cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if _writable(os.path.join(user_cache, "numba")):
        return None
    shared = os.path.join(tempfile.gettempdir(), f"tsdb-arrow-numba-cache-{os.getuid()}")
    # Cached kernels are loaded as code: only a directory that this user alone can write.
    return shared if _private(shared) else tempfile.mkdtemp(prefix="tsdb-arrow-numba-cache-")


def use_writable_cache(package_dir: str) -> None:
    """Point numba at a writable cache directory when it has none (see the module docstring)."""
    chosen = choose_cache_dir(package_dir, os.environ)
    if chosen is None:
        return
    os.environ[CACHE_ENV] = chosen
    numba = sys.modules.get("numba")
    if numba is not None:  # imported already: its configuration read the environment then
        numba.config.CACHE_DIR = chosen


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _private(path: str) -> bool:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.getuid()
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        and os.access(path, os.W_OK | os.X_OK)
    )
