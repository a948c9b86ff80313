"""Warnings and infos a query returns beside its result, as Prometheus' annotations do.

The evaluator (and ``functions.py``) call :func:`warn` / :func:`info` anywhere below
:func:`collect`; the HTTP API and the conformance runner read them from the collector.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Annotations:
    """The warnings and infos of one query, in the order raised, without repeats."""

    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)


_CURRENT: contextvars.ContextVar[Annotations | None] = contextvars.ContextVar(
    "promql_annotations", default=None
)


@contextmanager
def collect() -> Iterator[Annotations]:
    """Collect the annotations raised inside the ``with`` block."""
    notes = Annotations()
    token = _CURRENT.set(notes)
    try:
        yield notes
    finally:
        _CURRENT.reset(token)


def warn(message: str) -> None:
    """Record a warning (e.g. a mix of floats and histograms) for the current query."""
    notes = _CURRENT.get()
    if notes is not None and message not in notes.warnings:
        notes.warnings.append(message)


def info(message: str) -> None:
    """Record an info (e.g. a metric that might not be a counter) for the current query."""
    notes = _CURRENT.get()
    if notes is not None and message not in notes.infos:
        notes.infos.append(message)
