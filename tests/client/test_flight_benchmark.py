"""``benchmarks.flight`` runs end to end (on the shipped 15-minute excerpt) and prints its table."""

from __future__ import annotations

import re

import pytest

from benchmarks import flight as bench
from tests.conftest import REAL_SLICE


@pytest.mark.slow
def test_flight_benchmark_prints_both_ratios(monkeypatch, capsys):
    monkeypatch.setenv("TSDB_ARROW_REAL_DATA", str(REAL_SLICE))
    assert bench.main(["--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "460,800 samples, 38 label columns, best of 1" in out
    rows = [line for line in out.splitlines() if re.match(r"\| (select|write)", line)]
    assert [r.split("|")[1].strip() for r in rows] == [
        "select-all (cache warm)",
        "write(table), one call",
        "write, 500,000-row batches",
    ]
    for row in rows:
        assert re.search(r"\d+\.\d\dx \|$", row)
    assert re.search(r"goal: flight/local >= 0.7x: (met|NOT met)", out)
