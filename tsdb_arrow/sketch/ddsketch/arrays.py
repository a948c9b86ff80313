"""DDSketch bucket arrays: many sketches of one mapping held flat (``SketchArrays``), their
validation, and the merge of two bucket lists.

``SketchArrays`` is what the Polars aggregations, the quantile search and the serialized sketch
column work on; ``Sketch.to_arrays`` / ``Sketch.from_arrays`` convert one sketch.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tsdb_arrow.errors import SketchError


class SketchArrays(NamedTuple):
    """Many sketches of one mapping, flat: group ``g``'s positive buckets are
    ``pos_keys[pos_offsets[g]:pos_offsets[g + 1]]`` (ascending keys), likewise the negative
    ones (keys of ``|v|``, ascending); the other fields have one entry per group."""

    count: np.ndarray
    zero_count: np.ndarray
    pos_offsets: np.ndarray
    pos_keys: np.ndarray
    pos_counts: np.ndarray
    neg_offsets: np.ndarray
    neg_keys: np.ndarray
    neg_counts: np.ndarray
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @property
    def groups(self) -> int:
        """Number of sketches."""
        return int(self.count.size)


def one_sketch(
    count: float,
    zero_count: float,
    pos_keys: np.ndarray,
    pos_counts: np.ndarray,
    neg_keys: np.ndarray,
    neg_counts: np.ndarray,
    sum: float,
    min: float,
    max: float,
) -> SketchArrays:
    """The ``SketchArrays`` of a single sketch (one group)."""
    return SketchArrays(
        np.array([count], dtype=np.float64),
        np.array([zero_count], dtype=np.float64),
        np.array([0, pos_keys.size]),
        pos_keys,
        pos_counts,
        np.array([0, neg_keys.size]),
        neg_keys,
        neg_counts,
        np.array([sum], dtype=np.float64),
        np.array([min], dtype=np.float64),
        np.array([max], dtype=np.float64),
    )


def validate_arrays(arrays: SketchArrays) -> None:
    """Counts finite and >= 0, and each total equal to its buckets; ``SketchError`` if not."""
    for name in ("count", "zero_count", "pos_counts", "neg_counts"):
        values = getattr(arrays, name)
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
        if bad.size:
            raise SketchError(
                f"{name}[{bad[0]}] = {float(values[bad[0]])!r}: counts must be finite and >= 0"
            )
    total = arrays.zero_count.copy()
    for offs, counts in (
        (arrays.pos_offsets, arrays.pos_counts),
        (arrays.neg_offsets, arrays.neg_counts),
    ):
        total += np.add.reduceat(np.append(counts, 0.0), offs[:-1]) * (np.diff(offs) > 0)
    bad = np.flatnonzero(~np.isclose(arrays.count, total, rtol=1e-9, atol=1e-9))
    if bad.size:
        raise SketchError(
            f"sketch {bad[0]}: count {float(arrays.count[bad[0]])!r} does not match its "
            f"buckets ({float(total[bad[0]])!r})"
        )


def merge_buckets(
    k1: np.ndarray, c1: np.ndarray, k2: np.ndarray, c2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Union of two bucket lists, counts of equal keys added; keys ascending."""
    keys, inverse = np.unique(np.concatenate([k1, k2]), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate([c1, c2]), minlength=keys.size)
    return keys.astype(np.int64), counts
