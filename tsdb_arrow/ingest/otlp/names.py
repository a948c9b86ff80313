"""OTLP names and attribute values as Prometheus spells them ("underscore escaping with suffixes").

Follows Prometheus' OTLP translation (``github.com/prometheus/otlptranslator``: ``MetricNamer``
with suffixes, ``LabelNamer`` without UTF-8; attribute values as pdata's ``Value.AsString``):

- metric names: the name is split at every character outside ``[a-zA-Z0-9:]`` and the pieces
  joined with ``_`` (so ``http.server.duration`` is ``http_server_duration`` and runs of
  underscores collapse); the unit adds a word unless the name already holds it (``s`` ->
  ``seconds``, ``By`` -> ``bytes``, a unit in braces adds nothing, ``a/b`` -> ``a_per_b``);
  monotonic sums end in ``_total``, gauges of unit ``1`` in ``_ratio``; a leading digit gets a
  ``_`` in front.
- label names: every character outside ``[a-zA-Z0-9_]`` becomes ``_``; a leading digit gets
  ``key_`` in front, a single leading ``_`` gets ``key`` (``__`` is kept).
- values: strings as they are, booleans ``true``/``false``, integers in decimal, doubles as
  JavaScript prints them, bytes in base64, arrays and maps as JSON.

Everything is cached per distinct input: a request has few distinct names, many points.
"""

from __future__ import annotations

import base64
import functools
import math
import re

import numpy as np

from tsdb_arrow.model import HISTOGRAM, REF, TIMESTAMP, VALUE

# OTLP unit (UCUM, case-sensitive) -> the word Prometheus appends.
UNIT_WORDS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
# The unit after a "/" -> the singular word after "per_".
PER_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week",
                  "mo": "month", "y": "year"}  # fmt: skip

# Label names the long frame keeps for its own columns: an attribute that becomes one of them
# is renamed ``exported_<name>``, as Prometheus renames a scraped label that clashes with a
# target label.
RESERVED_LABELS = frozenset({TIMESTAMP, VALUE, HISTOGRAM, REF})

_NOT_METRIC_CHAR = re.compile(r"[^a-zA-Z0-9:]+")
_NOT_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")
_UNDERSCORES = re.compile(r"__+")


def metric_name(name: str, unit: str, *, gauge: bool = False, counter: bool = False) -> str:
    """The Prometheus metric name of an OTLP metric; "" when nothing valid is left of it.

    ``gauge`` is true for an OTLP Gauge (unit ``1`` then adds ``_ratio``), ``counter`` for a
    monotonic Sum (``_total``); histograms, summaries and non-monotonic sums are neither.
    """
    return _metric_name(name, unit, gauge, counter)


@functools.lru_cache(maxsize=4096)
def _metric_name(name: str, unit: str, gauge: bool, counter: bool) -> str:
    tokens = [t for t in _NOT_METRIC_CHAR.split(name) if t]
    main, per = _unit_words(unit)
    if main in tokens:
        main = ""
    if per == "per_":
        per = ""
    else:
        per = per.removesuffix("_")
        if per in tokens:
            per = ""
    if per:
        main = main.removesuffix("_")
    tokens += [t for t in (main, per) if t]
    if counter:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if gauge and unit == "1":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    joined = "_".join(tokens)
    if joined[:1].isdigit():
        joined = "_" + joined
    return "" if joined.strip("_") == "" else joined


@functools.lru_cache(maxsize=1024)
def _unit_words(unit: str) -> tuple[str, str]:
    """The cleaned main and "per_" words of a unit (few distinct units: cached)."""
    main, per = _unit_suffixes(unit)
    return _clean_unit(main), _clean_unit(per)


def _unit_suffixes(unit: str) -> tuple[str, str]:
    """The main unit's word and "per_" + the per unit's word, before cleaning."""
    parts = unit.split("/", 1)
    main = per = ""
    head = parts[0].strip()
    if head and "{" not in head and "}" not in head:
        main = UNIT_WORDS.get(head, head)
    if len(parts) > 1 and parts[1] != "":
        tail = parts[1].strip()
        if tail and "{" not in tail and "}" not in tail:
            per = PER_UNIT_WORDS.get(tail, tail)
        if per:
            per = "per_" + per
    return main, per


def _clean_unit(unit: str) -> str:
    """Characters outside ``[a-zA-Z0-9:]`` as ``_``, runs of ``_`` as one, no leading ``_``."""
    cleaned = _UNDERSCORES.sub("_", re.sub(r"[^a-zA-Z0-9:]", "_", unit))
    return cleaned.removeprefix("_")


@functools.lru_cache(maxsize=65536)
def label_name(key: str) -> str:
    """The Prometheus label name of an attribute key; "" for an empty key (refused)."""
    if not key:
        return ""
    name = _NOT_LABEL_CHAR.sub("_", key)
    if name[0].isdigit():
        name = "key_" + name
    elif name.startswith("_") and not name.startswith("__"):
        name = "key" + name
    return name


def stored_label_name(key: str) -> str:
    """``label_name(key)``, renamed ``exported_<name>`` when the long frame reserves it."""
    name = label_name(key)
    return "exported_" + name if name in RESERVED_LABELS else name


def format_bound(x: float) -> str:
    """A bucket bound or quantile as a label value: Go's ``FormatFloat(x, 'f', -1, 64)``."""
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if math.isnan(x):
        return "NaN"
    return np.format_float_positional(x, unique=True, trim="-")


def format_double(x: float) -> str:
    """A double attribute value as pdata prints it (JavaScript's number formatting)."""
    if math.isnan(x) or math.isinf(x):
        go = "NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf")
        return "json: unsupported value: " + go
    if x != 0 and (abs(x) < 1e-6 or abs(x) >= 1e21):
        return np.format_float_scientific(x, unique=True, trim="-", exp_digits=1)
    return np.format_float_positional(x, unique=True, trim="-")


def any_value_string(value: object) -> str:
    """An OTLP ``AnyValue`` message as a label value (pdata's ``Value.AsString``)."""
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    if kind == "string_value":
        return value.string_value  # type: ignore[attr-defined]
    if kind is None or kind == "string_value_strindex":
        return ""
    if kind in ("array_value", "kvlist_value"):
        try:
            return _json(_raw(value))
        except ValueError:  # a NaN or infinite double: Go's json.Marshal fails, leaving ""
            return ""
    return _scalar_string(kind, getattr(value, kind))


def _scalar_string(kind: str, v: object) -> str:
    if kind == "bool_value":
        return "true" if v else "false"
    if kind == "int_value":
        return str(v)
    if kind == "double_value":
        return format_double(float(v))  # type: ignore[arg-type]
    if kind == "bytes_value":
        return base64.b64encode(v).decode("ascii")  # type: ignore[arg-type]
    return ""


def _raw(value: object) -> object:
    """An AnyValue as Python data, as pdata's ``AsRaw`` (bytes stay bytes)."""
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    if kind is None or kind == "string_value_strindex":
        return None
    if kind == "array_value":
        return [_raw(v) for v in value.array_value.values]  # type: ignore[attr-defined]
    if kind == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in value.kvlist_value.values}  # type: ignore[attr-defined]
    return getattr(value, kind)


def _json(raw: object) -> str:
    """Go's ``json.Marshal`` of ``raw``: sorted keys, no spaces, ``<>&`` escaped."""
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        if math.isnan(raw) or math.isinf(raw):
            raise ValueError("unsupported value")
        return format_double(raw)
    if isinstance(raw, bytes):
        return _json_string(base64.b64encode(raw).decode("ascii"))
    if isinstance(raw, str):
        return _json_string(raw)
    if isinstance(raw, list):
        return "[" + ",".join(_json(v) for v in raw) + "]"
    assert isinstance(raw, dict)
    return "{" + ",".join(f"{_json_string(k)}:{_json(raw[k])}" for k in sorted(raw)) + "}"


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                 "\u2028": "\\u2028", "\u2029": "\\u2029"}  # fmt: skip


def _json_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
