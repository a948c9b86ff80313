"""Prometheus row: backfill the samples with ``promtool tsdb create-blocks-from openmetrics``.

promtool is Prometheus' own bulk loader: it parses OpenMetrics text and writes TSDB blocks
(2-hour blocks, as the Prometheus server cuts them). The load figure is promtool's wall time,
text parsing included; writing the text file is not timed. Bytes are those of the block
directories it creates. Prometheus has no embedded query path to time here, so the select
columns stay empty; one series is read back with ``promtool tsdb dump`` to check the data.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.datasets import DataSet, series_predicate
from benchmarks.formats import TIMESTAMP, VALUE, selector, write_openmetrics
from benchmarks.measure import Row, dir_bytes, rate, timed

SYSTEM = "Prometheus (promtool)"
#: Generous bound on one promtool run; 10 M samples take well under a minute.
PROMTOOL_TIMEOUT_S = 900


def promtool_path() -> str | None:
    """Path of the ``promtool`` binary, or None when Prometheus is not installed."""
    return shutil.which("promtool")


def promtool_version(binary: str) -> str:
    """First line of ``promtool --version`` (e.g. ``promtool, version 2.42.0+ds ...``)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0] if first else "promtool"


def create_blocks(binary: str, text: Path, out_dir: Path) -> float:
    """Run promtool's backfill of ``text`` into ``out_dir``; return its wall time in seconds."""
    seconds, proc = timed(
        lambda: subprocess.run(
            [
                binary,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--quiet",
                str(text),
                str(out_dir),
            ],
            capture_output=True,
            text=True,
            timeout=PROMTOOL_TIMEOUT_S,
            check=False,
        )
    )
    if proc.returncode != 0:
        raise RuntimeError(f"promtool exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return seconds


def block_dirs(out_dir: Path) -> list[Path]:
    """The block directories (those with a ``meta.json``) promtool wrote under ``out_dir``."""
    return sorted(p for p in out_dir.iterdir() if (p / "meta.json").is_file())


def dump_series(binary: str, out_dir: Path, match: str) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps and values of the series matching ``match``, read back by promtool's dump."""
    (out_dir / "wal").mkdir(exist_ok=True)  # dump opens the directory as a whole TSDB
    proc = subprocess.run(
        [binary, "tsdb", "dump", f"--match={match}", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"promtool dump exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    pairs = [line.rsplit(" ", 2)[1:] for line in proc.stdout.splitlines() if line]
    stamps = np.array([int(t) for _, t in pairs], dtype=np.int64)
    values = np.array([float(v) for v, _ in pairs], dtype=np.float64)
    order = np.argsort(stamps, kind="stable")
    return stamps[order], values[order]


def check_one_series(binary: str, out_dir: Path, data: DataSet) -> str:
    """Compare one series read back from the blocks with the original samples, bit for bit.

    This checks the OpenMetrics text end to end (escaping, seconds-with-ms timestamps).
    """
    labels = data.one_series()
    frame = pl.from_arrow(data.table)
    assert isinstance(frame, pl.DataFrame)
    want = frame.filter(series_predicate(labels, data.labels)).sort(TIMESTAMP)
    stamps, values = dump_series(binary, out_dir, selector(labels))
    want_ts = want[TIMESTAMP].to_numpy()
    want_v = want[VALUE].to_numpy()
    if len(stamps) != len(want_ts):
        return f"one series read back: {len(stamps)} of {len(want_ts)} samples"
    if not np.array_equal(stamps, want_ts):
        return "one series read back: timestamps differ"
    if not np.array_equal(values.view(np.uint64), want_v.view(np.uint64)):
        return "one series read back: values not bit-exact"
    return f"one series read back exactly ({len(stamps)} samples, promtool tsdb dump)"


def run(data: DataSet, work_dir: Path, repetitions: int = 1) -> Row:
    """Measure Prometheus on ``data``; a missing promtool gives a "not installed" row.

    Load is the best of ``repetitions`` promtool runs, each into an empty output directory.
    """
    row = Row(SYSTEM, data.name, data.samples)
    binary = promtool_path()
    if binary is None:
        row.note("not installed (apt-get install prometheus)")
        return row
    with tempfile.TemporaryDirectory(prefix="prom-", dir=work_dir) as tmp:
        text = Path(tmp) / "samples.om"
        out_dir = Path(tmp) / "blocks"
        try:
            write_openmetrics(data.table, text)
            text_mb = text.stat().st_size / 1e6
            seconds = float("inf")
            for _ in range(repetitions):
                shutil.rmtree(out_dir, ignore_errors=True)
                seconds = min(seconds, create_blocks(binary, text, out_dir))
            blocks = block_dirs(out_dir)
            size = sum(dir_bytes(b) for b in blocks)
            check = check_one_series(binary, out_dir, data)
        except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as e:
            row.fail(e)
            return row
    row.load_sps = rate(data.samples, seconds)
    row.bytes_per_sample = size / data.samples
    row.note(f"{promtool_version(binary).split(' (')[0]}")
    row.note(f"{len(blocks)} blocks of <= 2 h, uncompacted; load parses {text_mb:.0f} MB text")
    row.note(check)
    return row
