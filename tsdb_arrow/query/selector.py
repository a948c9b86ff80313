"""Prometheus series selectors: parsed into matchers, evaluated as one Polars expression.

``up{job="api", instance=~"10\\..*"}`` becomes a tuple of :class:`Matcher` and then a boolean
``pl.Expr`` over a series table (one ``pl.String`` column per label, null where absent).
Semantics follow Prometheus 3: an absent label equals ``""`` and regexes are fully anchored,
with ``.`` matching newlines.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import polars as pl

from tsdb_arrow.errors import SelectorError

__all__ = [
    "OPS",
    "Matcher",
    "filter_series",
    "matchers_expr",
    "matches_empty",
    "parse_selector",
    "query_matchers",
]

METRIC_NAME_LABEL = "__name__"
OPS = ("=", "!=", "=~", "!~")

_LABEL_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_LABEL_CHARS = _LABEL_START | frozenset("0123456789")
_METRIC_START = _LABEL_START | {":"}
_METRIC_CHARS = _LABEL_CHARS | {":"}
_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
}  # fmt: skip
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_SPACE = frozenset(" \t\r\n")
# Constructs a user may try that are PromQL but not a plain series selector.
_HINTS = {
    "[": " (range selectors are not part of a series selector; pass the time range separately)",
    "(": " (functions and other PromQL expressions are not series selectors)",
}


def _is_label_name(name: str) -> bool:
    return bool(name) and name[0] in _LABEL_START and all(c in _LABEL_CHARS for c in name)


def anchored_regex(pattern: str) -> str:
    """Return ``pattern`` anchored at both ends as Prometheus does: ``^(?s:pattern)$``."""
    return f"^(?s:{pattern})$"


@functools.lru_cache(maxsize=1024)
def _regex_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid regex for Prometheus and Polars, or None when it is.

    Prometheus takes RE2 syntax (Go's regexp), Polars Rust's regex crate: a pattern must
    compile in both. Rust accepts stacked repetitions (``a++``, ``a**``) that RE2 refuses, so
    those are refused here first. The bare pattern is compiled as well as the anchored one,
    so that ``a)|(b`` cannot escape the anchoring group.
    """
    if (stacked := _stacked_repetition(pattern)) is not None:
        return f"invalid nested repetition operator {stacked!r} (RE2 syntax, as in Prometheus)"
    for candidate in (pattern, anchored_regex(pattern)):
        try:
            pl.select(pl.lit("").str.contains(candidate))
        except pl.exceptions.ComputeError as exc:
            lines = [line.strip() for line in str(exc).splitlines()]
            reason = next((line for line in lines if line.startswith("error:")), lines[0])
            return reason.removeprefix("error:").strip()
    return None


_REPEAT_COUNT = re.compile(r"\{\d+(?:,\d*)?\}")


def _stacked_repetition(pattern: str) -> str | None:
    """The first repetition operator applied to a repetition (``++``, ``*{2}``), or None.

    Go's regexp (RE2) refuses these; a lazy ``?`` after an operator is part of it.
    """
    i, n = 0, len(pattern)
    last_start = -1  # where the previous token began, when it was a repetition operator
    while i < n:
        ch = pattern[i]
        start = i
        if ch == "\\":
            i += 2
        elif ch == "[":
            i = _class_end(pattern, i)
        elif ch in "*+?" or (ch == "{" and (count := _REPEAT_COUNT.match(pattern, i))):
            i = i + 1 if ch != "{" else count.end()
            if i < n and pattern[i] == "?":
                i += 1
            if last_start >= 0:
                return pattern[last_start:i]
            last_start = start
            continue
        else:
            i += 1
        last_start = -1
    return None


def _class_end(pattern: str, i: int) -> int:
    """Index just past the character class opening at ``pattern[i]`` (``[``)."""
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        if pattern[i] == "\\":
            i += 2
        elif pattern.startswith("[:", i) and (close := pattern.find(":]", i + 2)) >= 0:
            i = close + 2
        else:
            i += 1
    return i + 1


def _quote(value: str) -> str:
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@dataclass(frozen=True)
class Matcher:
    """One label matcher: ``name op "value"``, where op is ``=``, ``!=``, ``=~`` or ``!~``.

    Built by :func:`parse_selector` or by hand; the label name, operator and (for the regex
    operators) the regex are checked on construction and refused with a ``SelectorError``.
    """

    name: str
    op: str
    value: str

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise SelectorError(f"unknown matcher operator {self.op!r}; use one of {OPS}")
        if not isinstance(self.name, str) or not _is_label_name(self.name):
            raise SelectorError(
                f"invalid label name {self.name!r}: label names match [a-zA-Z_][a-zA-Z0-9_]*"
            )
        if not isinstance(self.value, str):
            raise SelectorError(f"the value matched against {self.name!r} must be a str")
        if self.op in ("=~", "!~") and (reason := _regex_error(self.value)) is not None:
            raise SelectorError(
                f"invalid regular expression {self.value!r} for label {self.name!r}: {reason}"
            )

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


class _Parser:
    """Recursive-descent parser over one selector string; positions are 0-based indexes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str, *, hint: bool = False) -> SelectorError:
        """An "unexpected X at position N" error at ``self.pos``; ``hint`` explains PromQL."""
        pos = self.pos
        found = repr(self.text[pos]) if pos < len(self.text) else "end of input"
        hint_text = _HINTS.get(self.text[pos], "") if hint and pos < len(self.text) else ""
        return SelectorError(
            f"unexpected {found} at position {pos} in {self.text!r}: expected {expected}{hint_text}"
        )

    def error(self, message: str, pos: int, detail: str = "") -> SelectorError:
        detail = f": {detail}" if detail else ""
        return SelectorError(f"{message} at position {pos} in {self.text!r}{detail}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def word(self, start: frozenset[str], chars: frozenset[str]) -> str | None:
        if self.peek() not in start:
            return None
        begin = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
        return self.text[begin : self.pos]

    def parse(self) -> tuple[Matcher, ...]:
        self.skip_space()
        matchers: list[Matcher] = []
        name = self.word(_METRIC_START, _METRIC_CHARS)
        self.skip_space()
        braces = self.peek() == "{"
        if braces:
            self.pos += 1
            matchers.extend(self.parse_matchers(outside_name=name))
        elif name is None and self.pos < len(self.text):
            raise self.fail("a metric name or '{'", hint=True)
        self.skip_space()
        if self.pos < len(self.text):
            raise self.fail("end of selector" if braces else "'{' or end of selector", hint=True)
        if name is not None:
            matchers.insert(0, Matcher(METRIC_NAME_LABEL, "=", name))
        return tuple(matchers)

    def parse_matchers(self, outside_name: str | None) -> list[Matcher]:
        matchers: list[Matcher] = []
        while True:
            self.skip_space()
            if self.peek() == "}":
                self.pos += 1
                return matchers
            if matchers:
                if self.peek() != ",":
                    raise self.fail("',' or '}'")
                self.pos += 1
                self.skip_space()
                if self.peek() == "}":
                    self.pos += 1
                    return matchers
            matchers.append(self.parse_matcher(outside_name))

    def parse_matcher(self, outside_name: str | None) -> Matcher:
        start = self.pos
        label = self.word(_LABEL_START, _LABEL_CHARS)
        if label is None:
            raise self.fail("a label name or '}'")
        if label == METRIC_NAME_LABEL and outside_name is not None:
            raise self.error(
                f"metric name set twice ({outside_name!r} before the braces and a __name__ "
                "matcher inside them)",
                start,
            )
        self.skip_space()
        op = self.text[self.pos : self.pos + 2]
        if op not in ("!=", "=~", "!~"):
            op = self.text[self.pos : self.pos + 1]
            if op != "=":
                raise self.fail(f"a matcher operator (=, !=, =~, !~) after label {label!r}")
        self.pos += len(op)
        self.skip_space()
        value_pos = self.pos
        value = self.parse_string()
        if op in ("=~", "!~") and (reason := _regex_error(value)) is not None:
            raise self.error(f"invalid regular expression {value!r}", value_pos, reason)
        return Matcher(label, op, value)

    def parse_string(self) -> str:
        quote = self.peek()
        if quote not in ('"', "'", "`"):
            raise self.fail("a quoted string (\"...\", '...' or `...`)")
        start = self.pos
        self.pos += 1
        if quote == "`":
            end = self.text.find("`", self.pos)
            if end < 0:
                raise self.error("unterminated raw string starting", start)
            self.pos = end + 1
            return self.text[start + 1 : end]
        out = bytearray()
        while True:
            if self.pos >= len(self.text) or self.text[self.pos] == "\n":
                raise self.error("unterminated string starting", start)
            ch = self.text[self.pos]
            if ch == quote:
                self.pos += 1
                break
            if ch == "\\":
                out += self.parse_escape(quote)
            else:
                out += ch.encode("utf-8", "surrogatepass")
                self.pos += 1
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("string not valid UTF-8 after its escapes, starting", start) from None

    def parse_escape(self, quote: str) -> bytes:
        """Decode the escape at ``self.pos`` (a backslash) the way PromQL (Go) does."""
        start = self.pos
        self.pos += 1
        ch = self.peek()
        if ch in _SIMPLE_ESCAPES:
            self.pos += 1
            return _SIMPLE_ESCAPES[ch].encode()
        if ch == quote:
            self.pos += 1
            return ch.encode()
        if ch in "0123456789" and ch:
            digits = self.text[self.pos : self.pos + 3]
            if len(digits) < 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
                raise self.error("invalid octal escape (\\NNN, at most \\377)", start)
            self.pos += 3
            return bytes([int(digits, 8)])
        widths = {"x": 2, "u": 4, "U": 8}
        if ch in widths:
            digits = self.text[self.pos + 1 : self.pos + 1 + widths[ch]]
            if len(digits) < widths[ch] or any(d not in _HEX_DIGITS for d in digits):
                raise self.error(f"invalid \\{ch} escape: expected {widths[ch]} hex digits", start)
            self.pos += 1 + widths[ch]
            code = int(digits, 16)
            if ch == "x":
                return bytes([code])
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.error(f"escape \\{ch}{digits} is not a valid Unicode code point", start)
            return chr(code).encode()
        if not ch:
            raise self.error("unterminated string (backslash at the end)", start)
        raise self.error(f"unknown escape sequence \\{ch}", start)


def parse_selector(text: str | None) -> tuple[Matcher, ...]:
    """Parse a Prometheus series selector into its matchers.

    Parameters
    ----------
    text
        ``name``, ``name{l="v", ...}`` or ``{l="v", ...}`` with operators ``=``, ``!=``, ``=~``
        and ``!~``; strings in double or single quotes (Go escapes) or backticks (raw).
        ``None``, ``""`` and ``"{}"`` parse to no matcher. This is the syntax only: the
        database's entry points use :func:`query_matchers`, which also applies Prometheus'
        rule that a selector needs a matcher not matching the empty string.

    Returns
    -------
    tuple[Matcher, ...]
        The matchers in source order; a metric name before the braces comes first as
        ``Matcher("__name__", "=", name)``. Empty means "all series".

    Raises
    ------
    SelectorError
        On any syntax error (the message quotes the selector, the 0-based position and what
        was expected), an invalid regex, or a metric name given both before and inside braces.

    Examples
    --------
    >>> parse_selector('up{job=~"api|web"}')
    (Matcher(name='__name__', op='=', value='up'), Matcher(name='job', op='=~', value='api|web'))
    """
    if text is None:
        return ()
    if not isinstance(text, str):
        raise SelectorError(f"a selector must be a str or None, not {type(text).__name__}")
    return _Parser(text).parse()


def query_matchers(text: str | None) -> tuple[Matcher, ...]:
    """The matchers of a selector given to ``db.select`` or ``db.series``.

    ``None`` selects every series. A string is parsed by :func:`parse_selector` and must, as
    in Prometheus, hold at least one matcher that does not match the empty string (a metric
    name, ``job="x"``, ``job=~".+"``): ``""``, ``"{}"`` and ``'{job=~".*"}'`` are refused
    with a ``SelectorError`` rather than read as "everything".
    """
    if text is None:
        return ()
    matchers = parse_selector(text)
    if not any(not matches_empty(m) for m in matchers):
        raise SelectorError(
            f"the selector {text!r} has no matcher that requires a non-empty value (Prometheus "
            "refuses such a selector: it can match every series): name a metric "
            '(up, {__name__=~"node_.*"}) or a label value ({job="node"}); to select every '
            "series pass None (omit the selector)"
        )
    return matchers


def matches_empty(m: Matcher) -> bool:
    """Whether ``m`` accepts the empty string, i.e. a series without the label."""
    if m.op == "=":
        return m.value == ""
    if m.op == "!=":
        return m.value != ""
    hit = _regex_matches_empty(m.value)
    return hit if m.op == "=~" else not hit


@functools.lru_cache(maxsize=1024)
def _regex_matches_empty(pattern: str) -> bool:
    return bool(pl.select(pl.lit("").str.contains(anchored_regex(pattern))).item())


def matchers_expr(matchers: Sequence[Matcher], columns: Collection[str]) -> pl.Expr:
    """Boolean expression that is true for the series (rows) every matcher accepts.

    Parameters
    ----------
    matchers
        As returned by :func:`parse_selector`; empty means true for every row.
    columns
        The label columns of the table (``pl.String``, or anything castable to it; null means
        the label is absent). A matcher on a label not in ``columns`` sees ``""`` for every
        row, as Prometheus does for an absent label: ``l=""`` matches series without ``l``,
        ``l!=""`` those with it, ``l=~".*"`` everything.

    Returns
    -------
    pl.Expr
        One boolean expression (a scalar literal when no matcher names a column in ``columns``;
        Polars broadcasts it in ``filter`` and ``with_columns``).
    """
    expr = pl.lit(True)
    for m in matchers:
        if m.name in columns:
            label = pl.col(m.name).cast(pl.String).fill_null("")
        else:
            label = pl.lit("", dtype=pl.String)
        if m.op == "=":
            cond = label == m.value
        elif m.op == "!=":
            cond = label != m.value
        elif m.op == "=~":
            cond = label.str.contains(anchored_regex(m.value))
        else:
            cond = ~label.str.contains(anchored_regex(m.value))
        expr = expr & cond
    return expr


def filter_series(series: pl.DataFrame, matchers: Sequence[Matcher]) -> pl.DataFrame:
    """Rows of ``series`` selected by ``matchers``.

    The label columns are those of type ``pl.String``, ``pl.Categorical`` or ``pl.Enum``;
    other columns (a series ref, counts) are not labels, so a matcher naming one sees an
    absent label.
    """
    labels = [
        name
        for name, dtype in series.schema.items()
        if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))
    ]
    return series.filter(matchers_expr(matchers, labels))
