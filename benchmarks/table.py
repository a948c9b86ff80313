"""Rendering of the result rows: a fixed-width table for the terminal and a Markdown table.

Both carry the same cells, plus the ratios the project tracks per data set: our bytes/sample
and load rate against VictoriaMetrics', and our select-all (cache off, and cache warm when
measured) against ``pl.read_parquet`` of the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks import baselines, ours, victoriametrics, write_order
from benchmarks.measure import Row

HEADERS = (
    "system",
    "data set",
    "load M samples/s",
    "bytes/sample",
    "select-all M samples/s",
    "select one (ms)",
    "notes",
)
MISSING = "-"


def _num(value: float | None, fmt: str) -> str:
    """Format a figure, or the missing marker."""
    return MISSING if value is None else format(value, fmt)


def cells(row: Row) -> list[str]:
    """The table cells of one row, in ``HEADERS`` order."""
    return [
        row.system,
        row.dataset,
        _num(None if row.load_sps is None else row.load_sps / 1e6, ".2f"),
        _num(row.bytes_per_sample, ".3f"),
        _num(None if row.select_all_sps is None else row.select_all_sps / 1e6, ".2f"),
        _num(row.select_one_ms, ".1f"),
        "; ".join(row.notes),
    ]


def _find(rows: Sequence[Row], system: str, dataset: str) -> Row | None:
    """The row of ``system`` on ``dataset``, if it was run."""
    return next((r for r in rows if r.system == system and r.dataset == dataset), None)


def _ratio(label: str, ours_row: Row | None, other: Row | None, attr: str, what: str) -> str:
    """``label: 1.23x what`` from the ``attr`` figures of two rows, or why it is missing."""
    num = getattr(ours_row, attr) if ours_row else None
    den = getattr(other, attr) if other else None
    if num is None or den is None or den == 0:
        why = f"{ours.SYSTEM} has no figure" if num is None else "the peer has no figure"
        return f"{label}: n/a ({why if other else 'the peer was not run'})"
    return f"{label}: {num / den:.2f}x {what}"


def ratios(rows: Sequence[Row]) -> list[str]:
    """The tracked ratios, one line each, per data set in row order."""
    lines: list[str] = []
    for dataset in dict.fromkeys(r.dataset for r in rows):
        us = _find(rows, ours.SYSTEM, dataset)
        warm = _find(rows, ours.SYSTEM_WARM, dataset)
        vm = _find(rows, victoriametrics.SYSTEM, dataset)
        pq = _find(rows, baselines.POLARS_DEFAULT, dataset)
        lines += write_order.ratio_lines([r for r in rows if r.dataset == dataset], vm)
        if us is None:
            continue
        lines += [
            _ratio(
                f"[{dataset}] tsdb-arrow bytes/sample vs VictoriaMetrics'",
                us,
                vm,
                "bytes_per_sample",
                "(lower is better)",
            ),
            _ratio(
                f"[{dataset}] tsdb-arrow load rate vs VictoriaMetrics'",
                us,
                vm,
                "load_sps",
                "(higher is better)",
            ),
            _ratio(
                f"[{dataset}] tsdb-arrow select-all, cache off, vs pl.read_parquet of the "
                "Polars-default file",
                us,
                pq,
                "select_all_sps",
                "(higher is better; target >= 1)",
            ),
        ]
        if warm is not None:
            lines.append(
                _ratio(
                    f"[{dataset}] tsdb-arrow select-all, cache warm, vs pl.read_parquet of the "
                    "Polars-default file",
                    warm,
                    pq,
                    "select_all_sps",
                    "(higher is better)",
                )
            )
    return lines


def fixed_width(rows: Sequence[Row]) -> str:
    """A plain-text table with aligned columns (numbers right-aligned, notes last)."""
    grid = [list(HEADERS), *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(HEADERS) - 1)]
    out = []
    for n, line in enumerate(grid):
        parts = [
            line[i].ljust(widths[i]) if i < 2 else line[i].rjust(widths[i])
            for i in range(len(widths))
        ]
        out.append("  ".join([*parts, line[-1]]).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths) + "  " + "-" * 5)
    return "\n".join(out)


def _md_escape(text: str) -> str:
    """Escape the Markdown table separator inside a cell."""
    return text.replace("|", "\\|")


def markdown(rows: Sequence[Row]) -> str:
    """A GitHub-flavoured Markdown table of the same cells."""
    align = ["---", "---", "---:", "---:", "---:", "---:", "---"]
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join(align) + "|",
        *("| " + " | ".join(_md_escape(c) for c in cells(r)) + " |" for r in rows),
    ]
    return "\n".join(lines)
