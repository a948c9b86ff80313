"""The conformance runner: script parsing, comparison, exclusions, exit codes; our own cases
and (when present) Prometheus' files in ../shared/promql."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from tsdb_arrow.cli import main as cli_main
from tsdb_arrow.promql import promqltest
from tsdb_arrow.promql.testfile import STALE, Clear, Eval, Load, duration_ms, expand, parse_script
from tsdb_arrow.promql.testfile_histograms import TestHistogram as ScriptHistogram

CASES = Path(__file__).parent / "cases"
REPO = Path(__file__).resolve().parents[2]


def _shared() -> Path | None:
    for candidate in (os.environ.get("PROMQL_TESTDATA"), REPO.parent / "shared" / "promql"):
        if candidate and Path(candidate, "aggregators.test").is_file():
            return Path(candidate)
    return None


def test_series_notation() -> None:
    assert expand("1+2x3") == [1.0, 3.0, 5.0, 7.0]
    assert expand("5-1x2") == [5.0, 4.0, 3.0]
    assert expand("7x2") == [7.0, 7.0, 7.0]
    assert expand("_x3") == [None, None, None]
    assert expand("_") == [None] and expand("stale") == [STALE]
    assert expand("-Inf") == [-math.inf] and math.isnan(expand("NaN")[0])
    assert expand("1e3") == [1000.0]
    assert (
        duration_ms("10s53ms") == 10_053
        and duration_ms("0") == 0
        and duration_ms("1h") == 3_600_000
    )


def test_script_parsing() -> None:
    commands = parse_script(
        "load 5m\n"
        '  a{x="1"} 1 {{schema:0 sum:1 count:1}}x2 3\n'
        "\n"
        "eval range from 0 to 10m step 5m a\n"
        "  expect warn msg: something (1:1)\n"
        '  a{x="1"} 1 _ _\n'
        "\n"
        "clear\n"
        "eval_fail instant at 1m nope(\n"
        "\n"
        'eval instant at 0 "s"\n'
        "  expect string `s`\n"
    )
    load, ev, clear, fail, string = commands
    assert isinstance(load, Load) and load.interval == 300_000
    assert load.series[0].labels == {"__name__": "a", "x": "1"}
    points = load.series[0].points
    assert points[0] == 1.0 and points[4] == 3.0 and load.series[0].histogram
    # {{sum:1 count:1}} without buckets: kept for an expected result, not storable as a sample
    assert all(isinstance(p, ScriptHistogram) and not p.storable for p in points[1:4])
    assert isinstance(ev, Eval) and (ev.start, ev.end, ev.step) == (0, 600_000, 300_000)
    assert [(e.kind, e.match, e.text) for e in ev.expects] == [("warn", "msg", "something (1:1)")]
    assert isinstance(clear, Clear)
    assert fail.has("fail") and fail.instant and fail.start == 60_000
    assert string.string == "s"


def test_almost_equal() -> None:
    assert promqltest.almost_equal(1.0, 1.0 + 1e-9)
    assert not promqltest.almost_equal(1.0, 1.001)
    assert promqltest.almost_equal(math.nan, math.nan)
    assert not promqltest.almost_equal(0.0, 1e-300)


def test_own_cases_pass() -> None:
    result = promqltest.run_file(CASES / "engine.test")
    assert result.failures == [] and result.total == 11


def test_native_histogram_cases_pass() -> None:
    result = promqltest.run_file(CASES / "native_histograms.test")
    assert result.failures == [] and result.total == 9


def test_failures_are_reported_and_exit_non_zero(tmp_path: Path, capsys) -> None:
    failing = str(CASES / "failing.test")
    empty = tmp_path / "none.txt"
    empty.write_text("")
    assert promqltest.main([failing], exclusions=empty) == 1
    out = capsys.readouterr().out
    assert f"{failing}: passed 1 of 2 evals" in out
    assert "failing.test:8: FAILED" in out and "expected [(0, 2.0)], got [(0, 1.0)]" in out
    listed = tmp_path / "excluded.txt"
    listed.write_text("# known\nfailing.test:8 the expected value is wrong on purpose\n")
    assert promqltest.main([failing], exclusions=listed) == 0
    assert cli_main(["promqltest", failing, "--exclusions", str(listed), "-v"]) == 0
    assert "excluded (the expected value is wrong on purpose)" in capsys.readouterr().out
    assert cli_main(["promqltest", str(tmp_path / "missing.test")]) == 1
    assert "no such test file" in capsys.readouterr().err


def test_exclusions_have_reasons() -> None:
    entries = promqltest.read_exclusions(promqltest.EXCLUSIONS)
    assert entries and all(reason for reason in entries.values())


@pytest.mark.slow
def test_prometheus_conformance_files(capsys) -> None:
    shared = _shared()
    if shared is None:
        pytest.skip("Prometheus' test files are not beside the repository (../shared/promql)")
    files = sorted(str(p) for p in shared.glob("*.test"))
    assert promqltest.main(files) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "0 unexcluded failures" in out
