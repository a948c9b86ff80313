"""Tests of Prometheus series selector parsing and evaluation."""

from __future__ import annotations

import re

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.errors import SelectorError
from tsdb_arrow.query.selector import Matcher, filter_series, matchers_expr, parse_selector

M = Matcher


def name(value: str) -> Matcher:
    return Matcher("__name__", "=", value)


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   ", "{}", " { } ", "\n{\t}\n"])
def test_empty_selectors_select_everything(text: str | None) -> None:
    assert parse_selector(text) == ()


def test_metric_name_only() -> None:
    assert parse_selector("up") == (name("up"),)
    assert parse_selector("  job:http_requests:rate5m  ") == (name("job:http_requests:rate5m"),)
    assert parse_selector("_private") == (name("_private"),)
    assert parse_selector(":colon_first") == (name(":colon_first"),)


@pytest.mark.parametrize("op", ["=", "!=", "=~", "!~"])
def test_every_operator(op: str) -> None:
    assert parse_selector(f'up{{job{op}"api"}}') == (name("up"), M("job", op, "api"))


def test_several_matchers_whitespace_and_trailing_comma() -> None:
    text = ' http_requests_total {\n  job = "api" ,\tcode!~"5..", path=~"/v1/.*" , }  '
    assert parse_selector(text) == (
        name("http_requests_total"),
        M("job", "=", "api"),
        M("code", "!~", "5.."),
        M("path", "=~", "/v1/.*"),
    )


def test_name_inside_braces() -> None:
    assert parse_selector('{__name__=~"node_.*", job="x"}') == (
        M("__name__", "=~", "node_.*"),
        M("job", "=", "x"),
    )
    assert parse_selector('{__name__="up"}') == (name("up"),)


def test_same_label_twice_is_kept() -> None:
    assert parse_selector('{a="x", a!="y"}') == (M("a", "=", "x"), M("a", "!=", "y"))


def test_label_names() -> None:
    assert parse_selector('{_a1="x", A_B="y", __meta__="z"}') == (
        M("_a1", "=", "x"),
        M("A_B", "=", "y"),
        M("__meta__", "=", "z"),
    )


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"plain"', "plain"),
        (r'""', ""),
        (r'"a\nb"', "a\nb"),
        (r'"a\tb"', "a\tb"),
        (r'"\a\b\f\r\v"', "\a\b\f\r\v"),
        (r'"back\\slash"', "back\\slash"),
        (r'"say \"hi\""', 'say "hi"'),
        (r'"caf\u00e9"', "café"),
        (r'"\U0001F600"', "\U0001f600"),
        (r'"\x41\x42"', "AB"),
        (r'"\xc3\xa9"', "é"),  # \x escapes are bytes, as in Go
        (r'"\101\102"', "AB"),
        (r'"it\'s"'.replace('"', "'"), "it's"),
        (r"'double \" inside'".replace('\\"', '"'), 'double " inside'),
        (r"'a\nb'", "a\nb"),
        (r"`raw \n \d+ \\`", r"raw \n \d+ \\"),
        ("`multi\nline`", "multi\nline"),
        ("`has \"both' quotes`", "has \"both' quotes"),
        ('"ünïcödé ✓"', "ünïcödé ✓"),
    ],
)
def test_string_escapes(literal: str, value: str) -> None:
    assert parse_selector("{l=" + literal + "}") == (M("l", "=", value),)


def test_regex_value_escapes() -> None:
    # A regex backslash must itself be escaped in a quoted string, not in a raw one.
    assert parse_selector(r'{path=~"\\d+"}') == (M("path", "=~", r"\d+"),)
    assert parse_selector(r"{path=~`\d+`}") == (M("path", "=~", r"\d+"),)


def check_error(text: str, *fragments: str) -> str:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    message = str(info.value)
    assert repr(text) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("up[5m]", ["unexpected '['", "position 2", "range selector"]),
        ('up{job="x"}[5m]', ["unexpected '['", "position 11", "expected end of selector"]),
        ("rate(up)", ["unexpected '('", "position 4", "functions"]),
        ("sum(rate(up[5m]))", ["unexpected '('", "position 3"]),
        ("up offset 5m", ["unexpected 'o'", "position 3"]),
        ("up + 1", ["unexpected '+'", "position 3"]),
        ("up{", ["unexpected end of input", "position 3", "expected a label name or '}'"]),
        ('up{job="x"', ["unexpected end of input", "position 10", "expected ',' or '}'"]),
        ("up}", ["unexpected '}'", "position 2"]),
        ('up{job="x"}}', ["unexpected '}'", "position 11", "expected end of selector"]),
        ('{job="x"}{a="b"}', ["unexpected '{'", "position 9"]),
        ('up{job="x",,}', ["unexpected ','", "position 11", "expected a label name"]),
        ("{,}", ["unexpected ','", "position 1"]),
        ('up{,job="x"}', ["unexpected ','", "position 3", "expected a label name"]),
        ('up{job="x" env="y"}', ["unexpected 'e'", "position 11", "expected ',' or '}'"]),
        ('up{1a="x"}', ["unexpected '1'", "position 3", "expected a label name"]),
        ('up{a-b="x"}', ["unexpected '-'", "position 4", "matcher operator"]),
        ('up{a:b="x"}', ["unexpected ':'", "position 4", "matcher operator"]),
        ('up{a.b="x"}', ["unexpected '.'", "position 4", "matcher operator"]),
        ('up{"a"="x"}', ["unexpected '\"'", "position 3", "expected a label name"]),
        ("up{job}", ["unexpected '}'", "position 6", "matcher operator"]),
        ('up{job=="x"}', ["unexpected '='", "position 7", "quoted string"]),
        ('up{job~"x"}', ["unexpected '~'", "position 6", "matcher operator"]),
        ("up{job=x}", ["unexpected 'x'", "position 7", "quoted string"]),
        ('5up{a="b"}', ["unexpected '5'", "position 0", "metric name or '{'"]),
        ("node-exporter", ["unexpected '-'", "position 4"]),
        ('up{job="x}', ["unterminated string", "position 7"]),
        ("up{job='x}", ["unterminated string", "position 7"]),
        ("up{job=`x}", ["unterminated raw string", "position 7"]),
        ('up{job="a\nb"}', ["unterminated string", "position 7"]),
        ('up{job="x\\', ["unterminated string", "position 9"]),
        ('up{job="\\q"}', ["unknown escape sequence \\q", "position 8"]),
        ("up{job='\\\"'}", ['unknown escape sequence \\"', "position 8"]),
        ('up{job="\\\'"}', ["unknown escape sequence \\'", "position 8"]),
        ('up{job="\\x4"}', ["invalid \\x escape", "position 8"]),
        ('up{job="\\u12"}', ["invalid \\u escape", "position 8"]),
        ('up{job="\\ud800"}', ["not a valid Unicode code point", "position 8"]),
        ('up{job="\\U00110000"}', ["not a valid Unicode code point"]),
        ('up{job="\\400"}', ["invalid octal escape", "position 8"]),
        ('up{job="\\18"}', ["invalid octal escape", "position 8"]),
        ('up{job="\\xff"}', ["not valid UTF-8", "position 7"]),
        ('up{job=~"("}', ["invalid regular expression '('", "position 8", "unclosed group"]),
        ('up{job!~"[a-"}', ["invalid regular expression '[a-'", "position 8"]),
        ('up{job=~"a)|(b"}', ["invalid regular expression 'a)|(b'"]),
        ('up{job=~"x{2,1}"}', ["invalid regular expression"]),
        ('up{__name__="up"}', ["metric name set twice", "'up'", "position 3"]),
        ('up{job="x", __name__=~"node_.*"}', ["metric name set twice", "position 12"]),
    ],
)
def test_syntax_errors(text: str, fragments: list[str]) -> None:
    check_error(text, *fragments)


def test_error_message_reads_well() -> None:
    message = check_error('up{job="x",,}')
    assert (
        message
        == "unexpected ',' at position 11 in 'up{job=\"x\",,}': expected a label name or '}'"
    )


def test_regex_error_is_not_a_polars_error() -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector('{a=~"*"}')
    assert "repetition operator missing expression" in str(info.value)
    assert info.value.__cause__ is None


def test_selector_must_be_text() -> None:
    with pytest.raises(SelectorError, match="must be a str"):
        parse_selector(b"up")  # type: ignore[arg-type]


# -- Matcher ---------------------------------------------------------------------------------


def test_matcher_validates_itself() -> None:
    with pytest.raises(SelectorError, match="operator"):
        Matcher("job", "==", "x")
    with pytest.raises(SelectorError, match="invalid label name"):
        Matcher("1job", "=", "x")
    with pytest.raises(SelectorError, match="invalid label name"):
        Matcher("", "=", "x")
    with pytest.raises(SelectorError, match="invalid regular expression"):
        Matcher("job", "!~", "(")
    with pytest.raises(SelectorError, match="must be a str"):
        Matcher("job", "=", 5)  # type: ignore[arg-type]
    # Not a regex operator: any text is a fine value.
    assert Matcher("job", "=", "(").value == "("


def test_matcher_str_is_promql() -> None:
    assert str(Matcher("job", "!=", 'a"b\\c\nd')) == r'job!="a\"b\\c\nd"'


_label = st.sampled_from(["job", "__name__", "a", "_x9"])
_valid_regex = st.sampled_from(["", ".*", "a|b", "[^x]+", r"\d{2,3}", "(?i)API", "é+"])


@st.composite
def _matchers(draw: st.DrawFn) -> Matcher:
    op = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
    value = draw(_valid_regex if op in ("=~", "!~") else st.text(max_size=8))
    return Matcher(draw(_label), op, value)


@settings(max_examples=150, deadline=None)
@given(st.lists(_matchers(), max_size=4))
def test_str_round_trips_through_the_parser(matchers: list[Matcher]) -> None:
    text = "{" + ", ".join(str(m) for m in matchers) + "}"
    assert parse_selector(text) == tuple(matchers)


# -- evaluation ------------------------------------------------------------------------------

SERIES = pl.DataFrame(
    {
        "ref": [1, 2, 3, 4, 5],
        "__name__": ["up", "up", "node_load1", "node_cpu", "up"],
        "job": ["api", "web", "node", "node", None],
        "env": [None, "prod", "", "prod", None],
    },
    schema_overrides={"env": pl.String},
)


def refs(selector: str) -> list[int]:
    return filter_series(SERIES, parse_selector(selector))["ref"].to_list()


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", [1, 2, 3, 4, 5]),
        ("up", [1, 2, 5]),
        ('up{job="api"}', [1]),
        ('up{job!="api"}', [2, 5]),
        ('{job=~"n.*"}', [3, 4]),
        ('{job!~"n.*"}', [1, 2, 5]),
        ('{job=~"no"}', []),  # anchored: no partial match
        ('{job=~"ode"}', []),
        ('{job=~"api|web"}', [1, 2]),
        ('{__name__=~"node_.*", job="node"}', [3, 4]),
        ('{__name__!~"node_.*"}', [1, 2, 5]),
        ("missing_metric", []),
    ],
)
def test_filter_series_operators(selector: str, expected: list[int]) -> None:
    assert refs(selector) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ('{env=""}', [1, 3, 5]),  # null (absent) and "" both count as empty
        ('{env!=""}', [2, 4]),
        ('{env=~".*"}', [1, 2, 3, 4, 5]),
        ('{env=~".+"}', [2, 4]),
        ('{env!~".+"}', [1, 3, 5]),
        ('{env=~"prod|"}', [1, 2, 3, 4, 5]),
        ('{zone=""}', [1, 2, 3, 4, 5]),  # a label no series has
        ('{zone!=""}', []),
        ('{zone=~".*"}', [1, 2, 3, 4, 5]),
        ('{zone=~".+"}', []),
        ('{zone!~"x"}', [1, 2, 3, 4, 5]),
        ('up{zone=""}', [1, 2, 5]),
        ('{ref="1"}', []),  # an integer column is not a label
        ('{ref=""}', [1, 2, 3, 4, 5]),
    ],
)
def test_absent_labels_are_empty_strings(selector: str, expected: list[int]) -> None:
    assert refs(selector) == expected


def test_dot_matches_newline() -> None:
    table = pl.DataFrame({"ref": [1, 2], "msg": ["a\nb", "a-b"]})
    assert filter_series(table, parse_selector('{msg=~"a.b"}'))["ref"].to_list() == [1, 2]


def test_categorical_labels() -> None:
    table = SERIES.with_columns(pl.col("job").cast(pl.Categorical))
    assert filter_series(table, parse_selector('{job=~"n.*"}'))["ref"].to_list() == [3, 4]
    assert filter_series(table, parse_selector('{job=""}'))["ref"].to_list() == [5]


def test_matchers_expr_with_columns_argument() -> None:
    matchers = parse_selector('{job="node"}')
    # Told "job" is not a label column, the matcher sees "" everywhere.
    assert SERIES.filter(matchers_expr(matchers, ["__name__"])).height == 0
    assert SERIES.filter(matchers_expr(matchers, {"job", "env"}))["ref"].to_list() == [3, 4]
    assert SERIES.filter(matchers_expr((), SERIES.columns)).height == SERIES.height


def test_matchers_expr_is_lazy_friendly() -> None:
    lazy = SERIES.lazy().filter(matchers_expr(parse_selector('up{job!="web"}'), SERIES.columns))
    assert lazy.collect()["ref"].to_list() == [1, 5]
    flags = SERIES.with_columns(hit=matchers_expr(parse_selector('{zone=""}'), SERIES.columns))
    assert flags["hit"].to_list() == [True] * 5


def test_filter_series_empty_table() -> None:
    empty = SERIES.clear()
    assert filter_series(empty, parse_selector('up{job=~"a.*"}')).height == 0


# -- filter_series agrees with a plain-Python reference evaluator ---------------------------

_LABELS = ["__name__", "job", "env", "zone"]
_VALUES = [None, "", "a", "b", "ab", "ba", "a\nb", "é"]
# Patterns whose meaning is the same in Python's re and Rust's regex crate.
_PATTERNS = ["", ".*", ".+", "a", "a.*", ".*b", "a|b", "[ab]+", "b?", "a.b", "(a|)b", "é|a"]


def reference_matches(row: dict[str, str | None], m: Matcher) -> bool:
    value = row.get(m.name) or ""
    if m.op == "=":
        return value == m.value
    if m.op == "!=":
        return value != m.value
    hit = re.fullmatch(m.value, value, flags=re.DOTALL) is not None
    return hit if m.op == "=~" else not hit


@st.composite
def label_tables(draw: st.DrawFn) -> pl.DataFrame:
    present = draw(st.lists(st.sampled_from(_LABELS[:3]), unique=True, max_size=3))
    rows = draw(st.integers(min_value=0, max_value=8))
    data: dict[str, list] = {"ref": list(range(rows))}
    for label in present:
        data[label] = draw(st.lists(st.sampled_from(_VALUES), min_size=rows, max_size=rows))
    return pl.DataFrame(data, schema={k: pl.Int64 if k == "ref" else pl.String for k in data})


@st.composite
def reference_matchers(draw: st.DrawFn) -> Matcher:
    op = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
    pool = _PATTERNS if op in ("=~", "!~") else [v for v in _VALUES if v is not None]
    return Matcher(draw(st.sampled_from(_LABELS)), op, draw(st.sampled_from(pool)))


@settings(max_examples=200, deadline=None)
@given(label_tables(), st.lists(reference_matchers(), max_size=4))
def test_filter_series_agrees_with_reference(table: pl.DataFrame, matchers: list[Matcher]) -> None:
    expected = [
        row["ref"]
        for row in table.iter_rows(named=True)
        if all(reference_matches(row, m) for m in matchers)
    ]
    assert filter_series(table, matchers)["ref"].to_list() == expected


@pytest.mark.parametrize(
    "pattern", ["a++", "a**", "a*+", "a+?*", "x?+", "a{2}*", "a{2,3}{4}", "(a)*+", r"\d++"]
)
def test_stacked_repetitions_are_refused_as_re2_does(pattern: str) -> None:
    with pytest.raises(SelectorError, match="invalid nested repetition operator"):
        parse_selector(f"{{a=~`{pattern}`}}")


@pytest.mark.parametrize(
    "pattern", ["a*?", "a+?", "(a+)+", "[+*]+", r"a\++", "[]+]*", "a{2,}?", "[[:alpha:]]+"]
)
def test_repetitions_re2_accepts(pattern: str) -> None:
    assert parse_selector(f"{{a=~`{pattern}`}}") == (M("a", "=~", pattern),)
