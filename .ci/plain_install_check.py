"""What `pip install tsdb-arrow` (no extras) gives a user must work: import, the CLI, quantiles.

Run by .ci/run with the python of a fresh virtualenv holding a plain `pip install .` of the
checkout, from outside the checkout:

    VENV/bin/python .ci/plain_install_check.py SAMPLE.parquet DATA_DIR

Every step says what it checks; the first failure stops the script with exit status 1.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

QUANTILES = [0.5, 0.99]
RELATIVE_ACCURACY = 0.01  # passed to ta.sketch.quantiles, so the bound checked is the one used


def fail(step: str, detail: str) -> None:
    print(f"plain install check FAILED at: {step}\n{detail}", file=sys.stderr)
    sys.exit(1)


def step(name: str) -> None:
    print(f"plain install check: {name}", flush=True)


def run_cli(*args: str) -> str:
    """Run the installed ``tsdb-arrow`` script; its stdout, or fail with all it printed."""
    script = Path(sys.executable).parent / "tsdb-arrow"
    done = subprocess.run([str(script), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        fail(
            f"tsdb-arrow {' '.join(args)}",
            f"exit status {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}",
        )
    return done.stdout


def expect(text: str, needle: str, what: str) -> None:
    if needle not in text:
        fail(what, f"expected {needle!r} in the output:\n{text}")


def main(sample: Path, data: Path) -> None:
    step("the extras are absent (so that this checks a plain install)")
    for extra in ("opentelemetry.sdk", "pytest", "pandas"):
        try:
            found = importlib.util.find_spec(extra) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if found:
            fail("plain environment", f"{extra} is installed; run this in a plain install")

    step("import tsdb_arrow")
    try:
        import tsdb_arrow as ta
    except Exception as exc:  # any import error is the failure this check exists for
        fail("import tsdb_arrow", f"{type(exc).__name__}: {exc}")
    installed = Path(ta.__file__).resolve()
    if not installed.is_relative_to(Path(sys.prefix).resolve()):
        fail("import tsdb_arrow", f"imported {installed}, not the copy installed in {sys.prefix}")

    step(f"tsdb-arrow load {sample.name}")
    expect(run_cli("load", str(sample), "--data", str(data)), "loaded 460,800 samples", "load")

    step("tsdb-arrow query node_load1")
    out = run_cli("query", "node_load1", "--data", str(data), "--limit", "3")
    expect(out, "900 samples of selector node_load1", "query")

    step("tsdb-arrow info")
    out = run_cli("info", "--data", str(data))
    expect(out, "460,800", "info (samples)")
    expect(out, "512", "info (series)")

    step("ta.sketch.quantiles on db.select")
    with ta.open(data) as db:
        selected = db.select("node_cpu_seconds_total")
        got = (
            ta.sketch.quantiles(selected, QUANTILES, by="cpu", relative_accuracy=RELATIVE_ACCURACY)
            .collect()
            .sort("cpu")
        )
        values = selected.collect()
    if got.height == 0:
        fail("quantiles", "no groups")
    for row in got.iter_rows(named=True):
        group = np.sort(values.filter(values["cpu"] == row["cpu"])["value"].to_numpy())
        for q in QUANTILES:
            # DDSketch's promise: within the relative accuracy of the exact value at rank
            # q * (count - 1) of the sorted values.
            exact = group[int(q * (len(group) - 1))]
            if abs(row[f"q{q:g}"] - exact) > RELATIVE_ACCURACY * abs(exact):
                fail("quantiles", f"cpu {row['cpu']} q{q:g}: {row[f'q{q:g}']} vs exact {exact}")
    step(f"passed ({got.height} groups of quantiles)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plain_install_check.py SAMPLE.parquet DATA_DIR")
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
