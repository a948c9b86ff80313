"""Calendar fields of Unix seconds (UTC) for PromQL's date functions, vectorised in numpy."""

from __future__ import annotations

import numpy as np


def date_parts(seconds: np.ndarray, part: str) -> np.ndarray:
    """A calendar field (UTC) of whole Unix seconds, as Go's ``time`` computes it."""
    days = np.floor_divide(seconds, 86400)
    day_seconds = seconds - days * 86400
    if part == "hour":
        return (day_seconds // 3600).astype(np.float64)
    if part == "minute":
        return (day_seconds % 3600 // 60).astype(np.float64)
    if part == "day_of_week":
        return ((days + 4) % 7).astype(np.float64)
    d = days.astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    year = d.astype("datetime64[Y]")
    if part == "year":
        return (year.astype(np.int64) + 1970).astype(np.float64)
    if part == "month":
        return (month.astype(np.int64) % 12 + 1).astype(np.float64)
    if part == "day_of_month":
        return ((d - month.astype("datetime64[D]")).astype(np.int64) + 1).astype(np.float64)
    if part == "day_of_year":
        return ((d - year.astype("datetime64[D]")).astype(np.int64) + 1).astype(np.float64)
    start = month.astype("datetime64[D]")
    return ((month + 1).astype("datetime64[D]") - start).astype(np.int64).astype(np.float64)
