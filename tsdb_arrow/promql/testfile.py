"""Reading Prometheus' PromQL test scripts (``promql/promqltest`` format) into commands.

``load <interval>`` with series lines (``metric{l="v"} 1 2+3x4 _ stale Inf``), ``clear``,
``eval instant at <t> <expr>`` and ``eval range from <s> to <e> step <d> <expr>`` with
``expect`` lines and expected series. Native-histogram points (``{{...}}``) are read by
``testfile_histograms`` ( every one is kept here, the loader skips those storage cannot hold).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import promql_parser

from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql.testfile_histograms import expand_histograms, split_points

STALE = "stale"
_UNITS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}
_EVAL = re.compile(
    r"^eval(?P<old>_fail|_warn|_info|_ordered)?\s+(?:instant\s+at\s+(?P<at>\S+)|"
    r"range\s+from\s+(?P<start>\S+)\s+to\s+(?P<end>\S+)\s+step\s+(?P<step>\S+))\s+(?P<expr>.+)$"
)
_EXPECT = re.compile(r"^expect\s+(?P<kind>\w+)(?:\s+(?P<match>msg|regex)\s*:\s?(?P<text>.*))?$")
_RANGE_EXPECT = re.compile(r"^expect\s+range\s+vector\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)$")
_STRING_EXPECT = re.compile(r"^expect\s+string\s+(?P<text>.*)$")


@dataclass
class Series:
    """One series line: its labels and its points (float, ``None`` = absent, "stale", or a
    ``TestHistogram``)."""

    labels: dict[str, str]
    points: list[object]
    histogram: bool = False


@dataclass
class Load:
    """A ``load`` command: series sampled every ``interval`` ms from time 0."""

    line: int
    interval: int
    series: list[Series]


@dataclass
class Clear:
    """A ``clear`` command."""

    line: int


@dataclass
class Expect:
    """One ``expect`` line: kind (fail, warn, info, no_warn, no_info, ordered), optional
    ``msg``/``regex`` matcher and its text."""

    kind: str
    match: str | None = None
    text: str = ""


@dataclass
class Eval:
    """An ``eval`` command with its expectations."""

    line: int
    expr: str
    start: int
    end: int
    step: int
    instant: bool
    expects: list[Expect] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    scalar: float | None = None
    string: str | None = None
    range_vector: tuple[int, int, int] | None = None

    def has(self, kind: str) -> bool:
        """Whether an ``expect <kind>`` line is present."""
        return any(e.kind == kind for e in self.expects)


Command = Load | Clear | Eval


def duration_ms(text: str) -> int:
    """A Prometheus duration (``1m30s``, ``10s53ms``, ``0``) in milliseconds."""
    text = text.strip()
    negative = text.startswith("-")
    text = text.lstrip("-")
    if re.fullmatch(r"\d+", text):
        ms = int(text) * 1000
    else:
        parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise QueryError(f"invalid duration {text!r}")
        ms = sum(int(n) * _UNITS[u] for n, u in parts)
    return -ms if negative else ms


def parse_labels(text: str) -> dict[str, str]:
    """The labels of a series description such as ``foo{a="b"}`` or ``{}``."""
    text = text.strip()
    if re.fullmatch(r"\{\s*\}", text):
        return {}
    node = promql_parser.parse(text)
    labels = {"__name__": node.name} if node.name else {}
    for m in node.matchers.matchers:
        labels[m.name] = m.value
    return labels


def _number(text: str) -> float:
    low = text.lower()
    if low in ("inf", "+inf"):
        return float("inf")
    if low == "-inf":
        return float("-inf")
    if low in ("nan", "+nan", "-nan"):
        return float("nan")
    if re.fullmatch(r"[+-]?0x[0-9a-fA-F]+", text):
        return float(int(text, 16))
    return float(text)


def expand(token: str) -> list[float | str | None]:
    """The points of one token: ``_``, ``stale``, ``1``, ``_x3``, ``1x3``, ``1+2x3``,
    ``1-2x3`` (``a±bxn`` is n+1 points, ``_xn`` n)."""
    if token == "_":
        return [None]
    if token == STALE:
        return [STALE]
    m = re.fullmatch(r"_x(\d+)", token)
    if m:
        return [None] * int(m.group(1))
    m = re.fullmatch(r"(.+?)x(\d+)", token)
    if m and not token.lower().endswith("inf"):
        head, n = m.group(1), int(m.group(2))
        split = re.fullmatch(r"([+-]?(?:[0-9.]+(?:e[+-]?\d+)?|inf|nan))([+-].+)?", head, re.I)
        if split is None:
            raise ValueError(f"cannot read series value {token!r}")
        base = _number(split.group(1))
        inc = _number(split.group(2)) if split.group(2) else 0.0
        out: list[float | str | None] = [base]
        for _ in range(n):
            base += inc
            out.append(base)
        return out
    return [_number(token)]


def _descriptor_end(line: str) -> int:
    """Where the series description at the start of ``line`` ends (name, then ``{...}``)."""
    i = 0
    while i < len(line) and (line[i].isalnum() or line[i] in "_:"):
        i += 1
    if i < len(line) and line[i] == "{":
        quote = None
        while i < len(line):
            ch = line[i]
            if quote:
                if ch == "\\":
                    i += 1
                elif ch == quote:
                    quote = None
            elif ch in "\"'`":
                quote = ch
            elif ch == "}":
                return i + 1
            i += 1
    return i


def parse_series(line: str) -> Series:
    """A series line: a description then points."""
    line = line.strip()
    cut = _descriptor_end(line)
    desc, rest = line[:cut], line[cut:]
    histogram = "{{" in rest
    points: list[object] = []
    for token in split_points(rest):
        hists = expand_histograms(token)
        if hists is None:
            points.extend(expand(token))
        else:
            points.extend(hists)
    return Series(parse_labels(desc), points, histogram)


def _body(lines: list[str], i: int) -> tuple[list[tuple[int, str]], int]:
    out = []
    while i < len(lines):
        raw = lines[i]
        text = raw.strip()
        if not text:
            break
        if raw[:1] not in (" ", "\t") and re.match(r"^(load|clear|eval)", text):
            break
        if not text.startswith("#"):
            out.append((i + 1, text))
        i += 1
    return out, i


def parse_script(text: str) -> list[Command]:
    """The commands of a test script."""
    lines = text.splitlines()
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        text_line = lines[i].strip()
        lineno = i + 1
        i += 1
        if not text_line or text_line.startswith("#"):
            continue
        if text_line == "clear":
            commands.append(Clear(lineno))
            continue
        if text_line.startswith("load"):
            _, interval = text_line.split(None, 1)
            body, i = _body(lines, i)
            series = [parse_series(t) for _, t in body]
            commands.append(Load(lineno, duration_ms(interval), series))
            continue
        m = _EVAL.match(text_line)
        if m is None:
            raise ValueError(f"line {lineno}: cannot read {text_line!r}")
        body, i = _body(lines, i)
        commands.append(_eval(lineno, m, body))
    return commands


def _eval(lineno: int, m: re.Match[str], body: list[tuple[int, str]]) -> Eval:
    instant = m.group("at") is not None
    if instant:
        start = end = duration_ms(m.group("at"))
        step = 0
    else:
        start, end = duration_ms(m.group("start")), duration_ms(m.group("end"))
        step = duration_ms(m.group("step"))
    ev = Eval(lineno, m.group("expr").strip(), start, end, step, instant)
    old = m.group("old")
    if old:
        ev.expects.append(Expect(old[1:]))
    for _, text in body:
        if (r := _RANGE_EXPECT.match(text)) is not None:
            ev.range_vector = tuple(duration_ms(g) for g in r.groups())  # type: ignore[assignment]
        elif (s := _STRING_EXPECT.match(text)) is not None:
            ev.string = _unquote(s.group("text").strip())
        elif (e := _EXPECT.match(text)) is not None:
            kind = e.group("kind")
            ev.expects.append(Expect(kind, e.group("match"), (e.group("text") or "").strip()))
        elif re.fullmatch(r"[+-]?(\d|\.\d|inf|nan|Inf|NaN).*", text) and " " not in text:
            ev.scalar = _number(text)
        else:
            ev.series.append(parse_series(text))
    return ev


def _unquote(text: str) -> str:
    if text[:1] == "`" and text[-1:] == "`":
        return text[1:-1]
    if text[:1] == '"' and text[-1:] == '"':
        return text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return text
