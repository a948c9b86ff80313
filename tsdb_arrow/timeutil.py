"""Turn the many ways users write a time into int64 milliseconds since the Unix epoch, UTC.

Everything the API, the HTTP server and the CLI accept as a start/end goes through
:func:`to_ms`, so that one set of rules (and one error message) holds everywhere.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import re
import time

import numpy as np

from tsdb_arrow.errors import TimeRangeError

__all__ = [
    "DURATION_UNITS_MS",
    "SECONDS_LIKE_MS",
    "check_range",
    "first_seconds_like",
    "format_ms",
    "parse_duration",
    "seconds_like_reason",
    "to_ms",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Prometheus duration units, in milliseconds (a year is 365 days, as in Prometheus).
DURATION_UNITS_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
    "ms": 1,
}

#: Integer milliseconds in [lo, hi) are refused as ambiguous: they are 1970-01-02 to 1973-03-03
#: as milliseconds, but what epoch seconds of 1973 to 5138 look like (``time.time()`` gives
#: 1.8e9 in 2027). Smaller integers (test data, "ms since start") and typed datetimes pass.
SECONDS_LIKE_MS = (10**8, 10**11)

ACCEPTED_FORMS = (
    "None (no bound), int milliseconds since the Unix epoch, an integral float, "
    "datetime.datetime (naive = UTC), datetime.date (midnight UTC), numpy.datetime64, "
    "pandas.Timestamp, a pyarrow timestamp/date scalar, an RFC 3339 string such as "
    "'2026-11-25T12:00:00Z' or '2026-11-25T14:00:00.250+02:00', an integer string of "
    "milliseconds, or a time relative to now: 'now', 'now-1h', '-15m', 'now+1d' "
    "(units ms s m h d w y)"
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MS = dt.timedelta(milliseconds=1)
# Prometheus' duration syntax: units largest first, each at most once.
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?"
)
_INTEGER = re.compile(r"[+-]?\d+")
_RELATIVE = re.compile(r"(now)?\s*(?:([+-])\s*(\w+))?", re.IGNORECASE)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?"
)
# Nanoseconds per numpy datetime64 unit with a fixed length ("Y" and "M" are calendar units).
_NUMPY_UNIT_NS = {
    "W": 7 * 86_400 * 10**9,
    "D": 86_400 * 10**9,
    "h": 3_600 * 10**9,
    "m": 60 * 10**9,
    "s": 10**9,
    "ms": 10**6,
    "us": 10**3,
    "ns": 1,
}
_NUMPY_SUBNS = {"ps": 10**3, "fs": 10**6, "as": 10**9}
_ARROW_TICKS_PER_MS = {"ms": 1, "us": 1_000, "ns": 1_000_000}


class _Refused(Exception):
    """Internal: why a value is not a time; turned into a TimeRangeError by ``to_ms``."""


def to_ms(value: object, *, name: str = "time", now: int | None = None) -> int | None:
    """Convert a user's time to int64 milliseconds since the Unix epoch, UTC.

    Parameters
    ----------
    value
        ``None`` (an open bound, returned as ``None``); an ``int`` of milliseconds (as is,
        except that integers in ``SECONDS_LIKE_MS``, 1e8 to 1e11, are refused as probably
        epoch seconds: pass a datetime for a time in 1970-1973);
        a ``float`` only when integral (milliseconds: a fractional one is almost always a
        ``time.time()`` in seconds, so it is refused rather than guessed at); a
        ``datetime.datetime`` (naive means UTC, aware is converted); a ``datetime.date``
        (midnight UTC); a ``numpy.datetime64`` of any unit; a ``pandas.Timestamp``; a
        pyarrow timestamp or date scalar; or a string: RFC 3339 / ISO 8601
        (``2026-11-25T12:00:00Z``, ``2026-11-25 12:00:00.5+02:00``, ``2026-11-25``; no offset
        means UTC), an integer of milliseconds (``"1764072000000"``), or relative to now
        (``now``, ``now-1h``, ``now+30s``, ``-15m``; Prometheus duration units).
        Sub-millisecond precision is floored to the millisecond.
    name
        What the value is (``start``, ``end``, ``--start``), named in the error message.
    now
        The current time in ms for the relative forms; defaults to the clock. Pass one value
        when converting a start and an end so that both use the same "now".

    Returns
    -------
    int | None
        Milliseconds since 1970-01-01T00:00:00Z, or ``None`` for ``None``.

    Raises
    ------
    TimeRangeError
        When the value is of another type, does not parse, is NaT/NaN/null, or does not fit
        in an int64; the message names ``name``, quotes the value and lists the accepted forms.
    """
    if value is None:
        return None
    try:
        ms = _convert(value, now)
    except _Refused as exc:
        raise TimeRangeError(
            f"{name}={value!r} is not a time: {exc}. Accepted: {ACCEPTED_FORMS}"
        ) from None
    if not INT64_MIN <= ms <= INT64_MAX:
        raise TimeRangeError(
            f"{name}={value!r} lies outside the int64 millisecond range. Accepted: {ACCEPTED_FORMS}"
        )
    return ms


def _convert(value: object, now: int | None) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise _Refused("a bool is not a time")
    if isinstance(value, numbers.Integral):
        return _integer_ms(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise _Refused("not a finite number")
        if not number.is_integer():
            raise _Refused(
                "a float must be a whole number of milliseconds (seconds from time.time() "
                "must be multiplied by 1000 and rounded)"
            )
        return _integer_ms(int(number))
    if isinstance(value, str):
        return _parse_string(value, now)
    if isinstance(value, np.datetime64):
        return _from_numpy(value)
    if type(value).__module__.startswith("pandas") and hasattr(value, "to_datetime64"):
        # pandas.Timestamp (a datetime subclass holding nanoseconds) and pandas.NaT.
        return _from_numpy(value.to_datetime64())
    if isinstance(value, dt.datetime):
        return _from_datetime(value)
    if isinstance(value, dt.date):
        return (value - _EPOCH.date()).days * 86_400_000
    if type(value).__module__.startswith("pyarrow"):
        return _from_arrow(value)
    raise _Refused(f"unsupported type {type(value).__module__}.{type(value).__qualname__}")


def _integer_ms(ms: int) -> int:
    if (reason := seconds_like_reason(ms)) is not None:
        raise _Refused(reason)
    return ms


def seconds_like_reason(ms: int) -> str | None:
    """Why the integer ``ms`` is refused as probably seconds, or None when it is accepted."""
    lo, hi = SECONDS_LIKE_MS
    if not lo <= ms < hi:
        return None
    return (
        f"it looks like seconds since the epoch ({format_ms(ms * 1000)}), while integers are "
        f"read as milliseconds ({format_ms(ms)}): multiply by 1000. Integers from {lo:,} "
        f"to {hi:,} are refused as ambiguous; for a time in 1970-1973 pass a datetime or "
        "an RFC 3339 string"
    )


def first_seconds_like(ms: np.ndarray) -> int | None:
    """Index of the first integer in ``ms`` that :func:`seconds_like_reason` refuses, or None."""
    lo, hi = SECONDS_LIKE_MS
    # One unsigned comparison: lo <= x < hi exactly when (x - lo) mod 2**64 < hi - lo.
    with np.errstate(over="ignore"):
        hits = (ms - np.int64(lo)).view(np.uint64) < np.uint64(hi - lo)
    if not hits.any():
        return None
    return int(np.argmax(hits))


def _from_datetime(value: dt.datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return (value - _EPOCH) // _MS


def _from_numpy(value: np.datetime64) -> int:
    if np.isnat(value):
        raise _Refused("NaT marks a missing time; use None for an open bound")
    unit, count = np.datetime_data(value.dtype)
    if unit in ("Y", "M"):
        value, unit, count = value.astype("datetime64[D]"), "D", 1
    ticks = int(value.astype(np.int64)) * count
    if unit in _NUMPY_SUBNS:
        return ticks // (_NUMPY_SUBNS[unit] * 1_000_000)
    if unit not in _NUMPY_UNIT_NS:
        raise _Refused(f"numpy datetime64 unit {unit!r} has no fixed length")
    return ticks * _NUMPY_UNIT_NS[unit] // 1_000_000


def _from_arrow(value: object) -> int:
    import pyarrow as pa

    if not isinstance(value, pa.Scalar):
        raise _Refused(f"unsupported pyarrow object {type(value).__qualname__}")
    if not value.is_valid:
        raise _Refused("a null scalar marks a missing time; use None for an open bound")
    kind = value.type
    if pa.types.is_timestamp(kind):
        # Arrow stores timestamps as UTC ticks, whatever the zone annotation.
        ticks = value.cast(pa.int64()).as_py()
        if kind.unit == "s":
            return ticks * 1000
        return ticks // _ARROW_TICKS_PER_MS[kind.unit]
    if pa.types.is_date32(kind):
        return value.cast(pa.int32()).as_py() * 86_400_000
    if pa.types.is_date64(kind):
        return value.cast(pa.int64()).as_py()
    raise _Refused(f"a pyarrow {kind} scalar is not a timestamp or date")


def _parse_string(text: str, now: int | None) -> int:
    stripped = text.strip()
    if not stripped:
        raise _Refused("the string is empty")
    if _INTEGER.fullmatch(stripped):
        return _integer_ms(int(stripped))
    if match := _RFC3339.fullmatch(stripped):
        return _from_rfc3339(match)
    if (match := _RELATIVE.fullmatch(stripped)) and (match[1] or match[2]):
        base = (time.time_ns() // 1_000_000) if now is None else now
        if not match[2]:
            return base
        try:
            offset = parse_duration(match[3])
        except TimeRangeError:
            raise _Refused(f"{match[3]!r} is not a duration such as 15m or 1h30m") from None
        return base - offset if match[2] == "-" else base + offset
    raise _Refused("the string is neither RFC 3339, an integer, nor relative to now")


def _from_rfc3339(match: re.Match[str]) -> int:
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=dt.timezone.utc,
        )
    except ValueError as exc:
        raise _Refused(f"invalid date or time of day ({exc})") from None
    ms = (moment - _EPOCH) // _MS + int((fraction or "0")[:3].ljust(3, "0"))
    if sign:
        hours, minutes = int(off_h), int(off_m or 0)
        if hours > 23 or minutes > 59:
            raise _Refused(f"invalid UTC offset {sign}{off_h}:{off_m or '00'}")
        offset = (hours * 60 + minutes) * 60_000
        ms += -offset if sign == "+" else offset
    return ms


def parse_duration(text: str) -> int:
    """Parse a Prometheus duration (``1h30m``, ``5m``, ``250ms``, ``2w``) into milliseconds.

    Parameters
    ----------
    text
        Integers with units ``y w d h m s ms``, largest first, each unit at most once
        (``1y`` is 365 days). ``"0"`` alone is accepted; a sign or a fraction is not.

    Returns
    -------
    int
        The duration in milliseconds.

    Raises
    ------
    TimeRangeError
        When ``text`` is not such a duration.
    """
    if isinstance(text, str):
        stripped = text.strip()
        if stripped == "0":
            return 0
        match = _DURATION.fullmatch(stripped)
        if stripped and match:
            units = DURATION_UNITS_MS.values()
            total = sum(int(n) * unit for n, unit in zip(match.groups(), units, strict=True) if n)
            if total <= INT64_MAX:
                return total
    raise TimeRangeError(
        f"{text!r} is not a duration: write integers with units y w d h m s ms, largest "
        "first, each unit at most once, e.g. '1h30m', '5m', '250ms'"
    )


def format_ms(ms: int) -> str:
    """RFC 3339 form of a millisecond timestamp (``2026-11-25T12:00:00.000Z``), for messages."""
    try:
        moment = _EPOCH + dt.timedelta(milliseconds=ms)
    except OverflowError:
        return f"{ms} ms"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_range(start: int | None, end: int | None) -> None:
    """Refuse a time range whose start lies after its end (``None`` is an open bound).

    Raises
    ------
    TimeRangeError
        When both are given and ``start > end``; equal bounds are a valid (one-instant) range.
    """
    if start is not None and end is not None and start > end:
        raise TimeRangeError(
            f"start {start} ({format_ms(start)}) lies after end {end} ({format_ms(end)}); "
            "swap them or widen the range"
        )
