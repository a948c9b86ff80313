"""Exact integer bucket counts: read-only uint64 arrays, validated and summed without wrapping.

Shared by the exponential histogram, its conversions and the OTel explicit-bucket reader.
"""

from __future__ import annotations

import numpy as np

from tsdb_arrow.errors import SketchError

UINT64_MAX = 2**64 - 1

EMPTY_COUNTS = np.zeros(0, dtype=np.uint64)
EMPTY_COUNTS.setflags(write=False)


def check_counts(name: str, counts: object) -> np.ndarray:
    """``counts`` as a read-only uint64 copy, or a ``SketchError`` naming ``name``.

    Accepts integer arrays and sequences of Python ints (as protobuf repeated fields give
    them; a list mixing small ints with ints >= 2**63 is read exactly, not through float64).
    """
    try:
        arr = np.asarray(counts)
        if arr.dtype.kind in "fO" and not isinstance(counts, np.ndarray):
            arr = np.array(list(counts), dtype=object)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError) as exc:
        raise SketchError(f"{name} is not an array of counts: {exc}") from exc
    if arr.ndim != 1:
        raise SketchError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return EMPTY_COUNTS
    if arr.dtype.kind == "O":
        items = arr.tolist()
        if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in items):
            raise SketchError(
                f"{name} must hold integers; pass whole counts rather than floats or booleans"
            )
        arr = np.array([int(c) for c in items], dtype=object)
    if arr.dtype.kind not in "iuO":
        raise SketchError(
            f"{name} must hold integers, got dtype {arr.dtype}; pass whole counts (uint64) "
            "rather than floats or booleans"
        )
    negative = np.flatnonzero(arr < 0)
    if negative.size:
        i = int(negative[0])
        raise SketchError(
            f"{name}[{i}] is {int(arr[i])}: bucket counts cannot be negative; pass the "
            "number of values recorded in each bucket"
        )
    if arr.dtype.kind == "O" and any(c > UINT64_MAX for c in arr.tolist()):
        raise SketchError(f"{name} has a count above 2**64-1; counts are 64-bit")
    return readonly(arr.astype(np.uint64))  # astype copies: the caller's array stays theirs


def readonly(arr: np.ndarray) -> np.ndarray:
    """``arr``, made read-only in place."""
    arr.setflags(write=False)
    return arr


def exact_sum(counts: np.ndarray) -> int:
    """Sum of uint64 counts as a Python int (numpy's uint64 sum would wrap silently)."""
    return int(counts.astype(object).sum()) if counts.size else 0
