"""Tests of time conversion, durations and range checks."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import zoneinfo
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.errors import TimeRangeError
from tsdb_arrow.timeutil import SECONDS_LIKE_MS, check_range, format_ms, parse_duration, to_ms

UTC = dt.timezone.utc
NOON = 1_795_608_000_000  # 2026-11-25T12:00:00Z
MIDNIGHT = 1_795_564_800_000  # 2026-11-25T00:00:00Z
H = 3_600_000


# -- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [0, 1, -1, NOON, 2**63 - 1, -(2**63), np.int64(NOON), np.uint32(7)]
)
def test_integers_are_milliseconds(value: int) -> None:
    assert to_ms(value) == int(value)
    assert type(to_ms(value)) is int


def test_none_is_an_open_bound() -> None:
    assert to_ms(None) is None


@pytest.mark.parametrize(
    "value", [float(NOON), np.float64(NOON), np.float32(1024.0), -5.0, Fraction(4, 2)]
)
def test_integral_floats_are_accepted(value: float) -> None:
    assert to_ms(value) == int(value)


@pytest.mark.parametrize(
    "value", [1.5, 1_795_608_000.25, float("nan"), float("inf"), -float("inf")]
)
def test_other_floats_are_refused(value: float) -> None:
    with pytest.raises(TimeRangeError, match="start="):
        to_ms(value, name="start")


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, str(2**63), 1e19])
def test_out_of_int64_range(value: object) -> None:
    with pytest.raises(TimeRangeError, match="int64"):
        to_ms(value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_bools_are_refused(value: object) -> None:
    with pytest.raises(TimeRangeError, match="bool"):
        to_ms(value)


# -- datetime objects --------------------------------------------------------------------------


def test_datetimes() -> None:
    assert to_ms(dt.datetime(2026, 11, 25, 12)) == NOON  # naive means UTC
    assert to_ms(dt.datetime(2026, 11, 25, 12, tzinfo=UTC)) == NOON
    paris = dt.timezone(dt.timedelta(hours=1))
    assert to_ms(dt.datetime(2026, 11, 25, 13, tzinfo=paris)) == NOON
    assert to_ms(dt.datetime(2026, 11, 25, 12, 0, 0, 999_999)) == NOON + 999
    assert to_ms(dt.datetime(1970, 1, 1)) == 0
    # Sub-millisecond parts are floored, also before the epoch.
    assert to_ms(dt.datetime(1969, 12, 31, 23, 59, 59, 999_500)) == -1
    assert to_ms(dt.datetime(1, 1, 1)) == -62_135_596_800_000


def test_zoneinfo_datetime() -> None:
    tz = zoneinfo.ZoneInfo("Europe/Paris")  # the tzdata package (a pandas dependency) has it
    assert to_ms(dt.datetime(2026, 11, 25, 13, tzinfo=tz)) == NOON
    assert to_ms(dt.datetime(2026, 7, 1, 14, tzinfo=tz)) == to_ms("2026-07-01T12:00:00Z")


def test_dates_are_midnight_utc() -> None:
    assert to_ms(dt.date(2026, 11, 25)) == MIDNIGHT
    assert to_ms(dt.date(1969, 12, 31)) == -86_400_000


@pytest.mark.parametrize(
    "value",
    [
        np.datetime64("2026-11-25T12:00:00", "s"),
        np.datetime64("2026-11-25T12:00:00.000", "ms"),
        np.datetime64("2026-11-25T12:00:00.000000", "us"),
        np.datetime64("2026-11-25T12:00:00.000000000", "ns"),
        np.datetime64("2026-11-25T12", "h"),
        np.datetime64("2026-11-25T12:00", "m"),
        np.datetime64("2026-11-25T12:00:00", "10s"),
        np.array(["2026-11-25T12:00"], dtype="datetime64[m]")[0],
    ],
)
def test_numpy_datetime64_any_unit(value: np.datetime64) -> None:
    assert to_ms(value) == NOON


def test_numpy_calendar_units() -> None:
    assert to_ms(np.datetime64("2026-11-25", "D")) == MIDNIGHT
    assert to_ms(np.datetime64("2026-11", "M")) == to_ms("2026-11-01")
    assert to_ms(np.datetime64("2026", "Y")) == to_ms("2026-01-01")
    assert to_ms(np.datetime64("2026-11-26", "W")) == to_ms("2026-11-26")
    assert to_ms(np.datetime64("1969-12-31T23:59:59.999999999", "ns")) == -1
    # Sub-nanosecond units only reach a few months around the epoch.
    assert to_ms(np.datetime64(1_500_000_000_000, "ps")) == 1_500
    assert to_ms(np.datetime64(-1, "as")) == -1


def test_pandas_timestamps() -> None:
    assert to_ms(pd.Timestamp("2026-11-25T12:00:00")) == NOON
    assert to_ms(pd.Timestamp("2026-11-25T13:00:00.0009999+01:00")) == NOON
    assert to_ms(pd.Timestamp("2026-11-25T12:00:00Z").tz_convert("America/New_York")) == NOON
    assert to_ms(pd.Timestamp("2026-11-25T12:00:00").as_unit("s")) == NOON


def test_arrow_scalars() -> None:
    noon = dt.datetime(2026, 11, 25, 12)
    for unit in ("s", "ms", "us", "ns"):
        assert to_ms(pa.scalar(noon, pa.timestamp(unit))) == NOON
        assert to_ms(pa.scalar(noon, pa.timestamp(unit, "UTC"))) == NOON
    assert to_ms(pa.scalar(pd.Timestamp(noon, tz="UTC").tz_convert("Asia/Tokyo"))) == NOON
    assert to_ms(pa.scalar(dt.date(2026, 11, 25), pa.date32())) == MIDNIGHT
    assert to_ms(pa.scalar(dt.date(2026, 11, 25), pa.date64())) == MIDNIGHT
    assert to_ms(pa.scalar(-1, pa.timestamp("us"))) == -1


def test_polars_values() -> None:
    frame = pl.DataFrame({"t": [NOON]}).with_columns(pl.col("t").cast(pl.Datetime("ms", "UTC")))
    assert to_ms(frame["t"][0]) == NOON
    assert to_ms(frame["t"].cast(pl.Datetime("ns")).to_numpy()[0]) == NOON
    assert to_ms(frame["t"].to_arrow()[0]) == NOON


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (pd.NaT, "missing time"),
        (np.datetime64("NaT"), "missing time"),
        (np.datetime64("NaT", "ns"), "missing time"),
        (pa.scalar(None, pa.timestamp("ms")), "missing time"),
        (pa.scalar(5, pa.int64()), "not a timestamp or date"),
        (pa.array([1]), "unsupported pyarrow"),
        (dt.time(12, 0), "unsupported type datetime.time"),
        (dt.timedelta(hours=1), "unsupported type datetime.timedelta"),
        (b"now", "unsupported type builtins.bytes"),
        ([NOON], "unsupported type builtins.list"),
    ],
)
def test_refused_objects(value: object, fragment: str) -> None:
    with pytest.raises(TimeRangeError, match=fragment):
        to_ms(value, name="end")


def test_pandas_is_not_imported_with_the_module() -> None:
    code = "import sys, tsdb_arrow.timeutil; assert 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# -- strings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T12:00:00Z", NOON),
        ("2026-11-25t12:00:00z", NOON),
        ("2026-11-25 12:00:00", NOON),
        ("2026-11-25T12:00:00", NOON),
        ("2026-11-25T12:00Z", NOON),
        ("2026-11-25T12:00:00.5Z", NOON + 500),
        ("2026-11-25T12:00:00,25Z", NOON + 250),
        ("2026-11-25T12:00:00.123456789Z", NOON + 123),
        ("2026-11-25T14:00:00+02:00", NOON),
        ("2026-11-25T14:00:00.250+02:00", NOON + 250),
        ("2026-11-25T14:30:00+0230", NOON),
        ("2026-11-25T14:00:00+02", NOON),
        ("2026-11-25T07:00:00-05:00", NOON),
        ("2026-11-25T12:00:00+00:00", NOON),
        ("2026-11-25", MIDNIGHT),
        ("  2026-11-25T12:00:00Z\n", NOON),
        ("1970-01-01T00:00:00Z", 0),
        ("1795608000000", NOON),
        ("-1000", -1000),
        ("+42", 42),
    ],
)
def test_absolute_strings(text: str, expected: int) -> None:
    assert to_ms(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOON),
        ("NOW", NOON),
        ("now-1h", NOON - H),
        ("now - 1h", NOON - H),
        ("now+30s", NOON + 30_000),
        ("-15m", NOON - 15 * 60_000),
        ("+1d", NOON + 24 * H),
        ("now-1h30m", NOON - 90 * 60_000),
        ("now-250ms", NOON - 250),
        ("now-1w", NOON - 7 * 24 * H),
        ("now-1y", NOON - 365 * 24 * H),
    ],
)
def test_relative_strings(text: str, expected: int) -> None:
    assert to_ms(text, now=NOON) == expected


def test_now_uses_the_clock() -> None:
    before = time.time_ns() // 1_000_000
    value = to_ms("now-1m")
    after = time.time_ns() // 1_000_000
    assert value is not None
    assert before - 60_000 <= value <= after - 60_000


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("yesterday", "neither RFC 3339"),
        ("1.5", "neither RFC 3339"),
        ("2026-11-25T12", "neither RFC 3339"),
        ("2026-11-25T12:00:00 +02:00", "neither RFC 3339"),
        ("2026-11-25T12:00:00+02:", "neither RFC 3339"),
        ("25/11/2026", "neither RFC 3339"),
        ("2026-13-01", "invalid date"),
        ("2026-02-30T00:00:00Z", "invalid date"),
        ("2026-11-25T24:00:00Z", "invalid date"),
        ("2026-11-25T12:00:60Z", "invalid date"),
        ("2026-11-25T12:00:00+24:00", "invalid UTC offset"),
        ("now-", "neither RFC 3339"),
        ("now-5x", "'5x' is not a duration"),
        ("now-1.5h", "neither RFC 3339"),
        ("now-m5", "'m5' is not a duration"),
        ("now-1m1h", "'1m1h' is not a duration"),
        ("tomorrow-1h", "neither RFC 3339"),
    ],
)
def test_bad_strings(text: str, fragment: str) -> None:
    with pytest.raises(TimeRangeError) as info:
        to_ms(text, name="--start", now=NOON)
    message = str(info.value)
    assert f"--start={text!r}" in message
    assert fragment in message
    assert "RFC 3339" in message and "now-1h" in message  # the accepted forms are listed


# -- properties --------------------------------------------------------------------------------

_moments = st.datetimes(
    min_value=dt.datetime(1900, 1, 1),
    max_value=dt.datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                               dt.timezone(-dt.timedelta(hours=8))]),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(_moments)
def test_every_form_of_one_moment_agrees(moment: dt.datetime) -> None:
    expected = to_ms(moment)
    assert expected == (moment - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(
        milliseconds=1
    )
    assert to_ms(moment.isoformat()) == expected
    assert to_ms(moment.astimezone(UTC).replace(tzinfo=None)) == expected
    assert to_ms(pd.Timestamp(moment)) == expected
    assert to_ms(np.datetime64(pd.Timestamp(moment).tz_convert(None), "us")) == expected
    assert to_ms(pa.scalar(moment, pa.timestamp("us", "UTC"))) == expected
    if SECONDS_LIKE_MS[0] <= expected < SECONDS_LIKE_MS[1]:
        # 1970-01-02 .. 1973-03-03 as integer ms looks like epoch seconds: refused.
        with pytest.raises(TimeRangeError, match="multiply by 1000"):
            to_ms(str(expected))
    else:
        assert to_ms(str(expected)) == expected
    assert to_ms(format_ms(expected)) == expected


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("0s", 0),
        ("250ms", 250),
        ("5m", 300_000),
        ("90s", 90_000),
        ("1h30m", 5_400_000),
        ("2w", 14 * 24 * H),
        ("1y", 365 * 24 * H),
        ("1d12h", 36 * H),
        ("1m30s500ms", 90_500),
        ("1y2w3d4h5m6s7ms", ((((365 + 14 + 3) * 24 + 4) * 60 + 5) * 60 + 6) * 1000 + 7),
        (" 5m ", 300_000),
    ],
)
def test_parse_duration(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "5",
        "-5m",
        "+5m",
        "1.5h",
        "5M",
        "5 m",
        "1m1h",
        "1h1h",
        "ms",
        "5mss",
        "1d 2h",
        "1e3s",
    ],
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(TimeRangeError, match="is not a duration"):
        parse_duration(text)


def test_parse_duration_refuses_non_strings_and_overflow() -> None:
    with pytest.raises(TimeRangeError):
        parse_duration(5)  # type: ignore[arg-type]
    with pytest.raises(TimeRangeError):
        parse_duration(f"{2**63}ms")


# -- ranges ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end"), [(None, None), (None, 5), (5, None), (5, 5), (1, 2)])
def test_check_range_accepts(start: int | None, end: int | None) -> None:
    check_range(start, end)


def test_check_range_refuses_start_after_end() -> None:
    with pytest.raises(TimeRangeError) as info:
        check_range(NOON, MIDNIGHT)
    message = str(info.value)
    assert str(NOON) in message and "2026-11-25T12:00:00.000Z" in message
    assert "2026-11-25T00:00:00.000Z" in message


def test_format_ms() -> None:
    assert format_ms(NOON + 5) == "2026-11-25T12:00:00.005Z"
    assert format_ms(2**62) == f"{2**62} ms"
