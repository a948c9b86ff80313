"""Prometheus HTTP API parameters: times, durations and the request form, read as Prometheus does.

Times are RFC 3339 (``2024-01-02T03:04:05.678Z``) or Unix seconds as a float (rounded to the
millisecond); durations are Prometheus durations (``1h30m``, ``15s``, ``250ms``) or float
seconds. A value that cannot be read raises ``BadData`` with Prometheus' wording.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

# Prometheus' boundary times (its minTime and maxTime, in ms): clients such as promtool send
# them, as RFC 3339 or as seconds, for an open range; times beyond are clamped to them.
MIN_TIME = -9_223_309_901_257_974_000
MAX_TIME = 9_223_309_901_257_974_999
_MIN_TIME_TEXT = "-292273086-05-16T16:47:06Z"
_MAX_TIME_TEXT = "292277025-08-18T07:12:54.999999999Z"

_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_UNIT_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class BadData(Exception):
    """A request parameter Prometheus would refuse with ``errorType: bad_data`` (HTTP 400)."""


Form = dict[str, list[str]]


def parse_form(query_string: bytes, body: bytes | None) -> Form:
    """The request's parameters as Go's ``Request.Form``: a form-encoded body's values first
    (so they win where one value is read), then the URL query's."""
    form: Form = {}
    for raw in (body or b"", query_string):
        try:
            parsed = parse_qs(raw.decode(), keep_blank_values=True)
        except UnicodeDecodeError as exc:
            raise BadData(f"the request parameters are not UTF-8: {exc}") from None
        for name, values in parsed.items():
            form.setdefault(name, []).extend(values)
    return form


def value(form: Form, name: str) -> str | None:
    """The first value of ``name``, or None when absent or empty (as ``FormValue``)."""
    values = form.get(name)
    return values[0] if values and values[0] != "" else None


def parse_time(text: str, name: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 time or a Unix-seconds float."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds):
            raise BadData(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp')
        fraction, whole = math.modf(seconds)
        # Go's math.Round: halves away from zero.
        millis = math.copysign(math.floor(abs(fraction) * 1000 + 0.5), fraction)
        ms = int(whole) * 1000 + int(millis)
        return max(min(ms, MAX_TIME), MIN_TIME)
    if text == _MIN_TIME_TEXT:
        return MIN_TIME
    if text == _MAX_TIME_TEXT:
        return MAX_TIME
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise BadData(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp')
    year, month, day, hour, minute, second, frac, zulu, sign, tz_h, tz_m = match.groups()
    try:
        offset = timedelta(0) if zulu else timedelta(hours=int(tz_h), minutes=int(tz_m))
        if sign == "-":
            offset = -offset
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            tzinfo=timezone(offset),
        )  # fmt: skip
    except ValueError:
        raise BadData(
            f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp'
        ) from None
    delta = moment - _EPOCH
    millis = int((frac or "0").ljust(9, "0")[:3])  # truncated, as Go's Time.UnixMilli
    return (delta.days * 86_400 + delta.seconds) * 1000 + millis


def parse_duration(text: str, name: str) -> int:
    """Milliseconds of a Prometheus duration (``5m``, ``1h30m``) or of float seconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds) or abs(seconds) * 1e9 > 2**63 - 1:
            raise BadData(
                f'invalid parameter "{name}": cannot parse "{text}" to a valid duration. '
                "It overflows int64"
            )
        return int(seconds * 1000)
    match = _DURATION.fullmatch(text)
    if text == "" or match is None:
        raise BadData(f'invalid parameter "{name}": cannot parse "{text}" to a valid duration')
    return sum(int(g) * unit for g, unit in zip(match.groups(), _UNIT_MS) if g)


def parse_limit(form: Form) -> int:
    """The ``limit`` parameter: a non-negative integer, 0 (the default) for none."""
    text = value(form, "limit")
    if text is None:
        return 0
    try:
        limit = int(text)
    except ValueError:
        limit = -1
    if limit < 0:
        raise BadData(f'invalid parameter "limit": cannot parse "{text}": limit must be >= 0')
    return limit


def time_range(form: Form) -> tuple[int, int]:
    """``start`` and ``end`` of the series and label endpoints; open ends are the boundary
    times, as in Prometheus."""
    start = value(form, "start")
    end = value(form, "end")
    lo = MIN_TIME if start is None else parse_time(start, "start")
    hi = MAX_TIME if end is None else parse_time(end, "end")
    if hi < lo:
        raise BadData("end timestamp must not be before start time")
    return lo, hi


def check_label_name(name: str) -> str:
    """``name`` when it is a valid label name, else BadData (``/api/v1/label/<name>/values``)."""
    if not _LABEL_NAME.fullmatch(name):
        raise BadData(f'invalid label name: "{name}"')
    return name
