"""Warnings and infos a query returns beside its result, as Prometheus' annotations do.

The evaluator (and ``functions.py``) call :func:`warn` / :func:`info` anywhere below
:func:`collect`; the HTTP API and the conformance runner read them from the collector.
"""

from __future__ import annotations

import contextvars
import re
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


_POSITION = re.compile(r" \(\d+:\d+\)$")


def _add(messages: list[str], message: str) -> None:
    """Add ``message`` unless it is there already; raised twice, once with its position
    and once without, it is kept once, with the position."""
    bare = _POSITION.sub("", message)
    for i, old in enumerate(messages):
        if _POSITION.sub("", old) == bare:
            if old == bare and message != bare:
                messages[i] = message
            return
    messages.append(message)


def warn(message: str) -> None:
    """Record a warning (e.g. a mix of floats and histograms) for the current query."""
    notes = _CURRENT.get()
    if notes is not None:
        _add(notes.warnings, message)


def info(message: str) -> None:
    """Record an info (e.g. a metric that might not be a counter) for the current query."""
    notes = _CURRENT.get()
    if notes is not None:
        _add(notes.infos, message)


_QUERY: contextvars.ContextVar[str | None] = contextvars.ContextVar("promql_query", default=None)


@contextmanager
def query_text(text: str) -> Iterator[None]:
    """Make ``text`` the query that :func:`position` looks nodes up in."""
    token = _QUERY.set(text)
    try:
        yield
    finally:
        _QUERY.reset(token)


def position(node: object) -> str:
    """Where ``node`` starts in the query, as Prometheus appends it to annotations:
    `` (line:column)``; empty when it cannot be found.

    ``promql-parser`` keeps no positions, so the node is looked up by its text: a call by
    ``name(``, anything else by its printed form (first occurrence).
    """
    text = _QUERY.get()
    if not text:
        return ""
    func = getattr(node, "func", None)
    needles = [f"{func.name}("] if func is not None else []
    needles.append(str(node))
    if "{}" in needles[-1]:  # a selector without matchers prints as ``name{}``
        needles.append(needles[-1].replace("{}", ""))
    for needle in needles:
        at = text.find(needle)
        if at >= 0:
            line = text.count("\n", 0, at) + 1
            column = at - (text.rfind("\n", 0, at) + 1) + 1
            return f" ({line}:{column})"
    return ""
