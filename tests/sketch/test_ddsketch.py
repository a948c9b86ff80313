"""Sketch: the same quantiles as ``ddsketch.DDSketch``, exact merges, interop and bytes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ddsketch import DDSketch
from ddsketch.pb.proto import DDSketchProto
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.sketch.strategies import accuracies, narrow_value_lists, quantile_lists, value_lists
from tsdb_arrow.errors import SketchError
from tsdb_arrow.sketch import LogarithmicMapping, Sketch

QS = np.linspace(0.0, 1.0, 41)


def _package(values: list[float] | np.ndarray, alpha: float) -> DDSketch:
    sketch = DDSketch(alpha)
    for v in values:
        sketch.add(float(v))
    return sketch


def _package_quantiles(sketch: DDSketch, qs: np.ndarray) -> np.ndarray:
    return np.array(
        [math.nan if (r := sketch.get_quantile_value(float(q))) is None else float(r) for q in qs]
    )


@settings(max_examples=80, deadline=None)
@given(values=value_lists, alpha=accuracies, qs=quantile_lists)
def test_quantiles_equal_package(values: list[float], alpha: float, qs: list[float]) -> None:
    qs_arr = np.array(qs + [0.0, 0.5, 1.0])
    ours = Sketch.from_values(values, alpha)
    np.testing.assert_array_equal(
        ours.quantiles(qs_arr), _package_quantiles(_package(values, alpha), qs_arr)
    )
    assert ours.count == len(values)


@settings(max_examples=60, deadline=None)
@given(values=value_lists.filter(lambda v: len(v) > 0), alpha=accuracies, qs=quantile_lists)
# rank 0.9999999999999999 among negatives: the reversed rank 1 - rank rounds so that the next
# value answers, as the package's does (the rank is an ulp from an integer).
@example(values=[-1.0, -2.0], alpha=0.01, qs=[0.9999999999999999])
def test_quantiles_within_relative_accuracy(
    values: list[float], alpha: float, qs: list[float]
) -> None:
    """Every quantile is within alpha of the sorted value at rank floor(q * (count - 1)) (or of
    the next one when that rank is within float rounding of an integer)."""
    sketch = Sketch.from_values(values, alpha)
    ordered = np.sort(np.array(values))
    for q, got in zip(qs, sketch.quantiles(qs)):
        rank = q * (len(values) - 1)
        candidates = {int(math.floor(rank)), min(int(math.floor(rank + 1e-9)), len(values) - 1)}
        exacts = [ordered[i] for i in sorted(candidates)]
        if all(abs(exact) <= sketch.mapping.min_possible for exact in exacts):
            assert got == 0.0
        else:
            assert any(
                abs(got - exact) <= alpha * abs(exact) * (1 + 1e-9)
                or (abs(exact) <= sketch.mapping.min_possible and got == 0.0)
                for exact in exacts
            )


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(value_lists, min_size=1, max_size=4), alpha=accuracies)
def test_merge_equals_sketch_of_union(parts: list[list[float]], alpha: float) -> None:
    sketches = [Sketch.from_values(p, alpha) for p in parts]
    merged = sketches[0]
    for s in sketches[1:]:
        merged = merged.merge(s)
    union = Sketch.from_values([v for p in parts for v in p], alpha)
    for a, b in zip(merged._arrays(), union._arrays()):
        np.testing.assert_array_equal(a, b)
    assert (merged.zero_count, merged.count) == (union.zero_count, union.count)
    assert (merged.min, merged.max) == (union.min, union.max)
    if union.count and math.isfinite(union.sum):
        assert merged.sum == pytest.approx(
            union.sum, rel=1e-9, abs=1e-6 * np.abs([v for p in parts for v in p]).sum()
        )
    elif not union.count:
        assert merged.sum == union.sum == 0.0
    np.testing.assert_array_equal(merged.quantiles(QS), union.quantiles(QS))


def test_merge_refuses_other_mapping() -> None:
    a, b = Sketch.from_values([1.0], 0.01), Sketch.from_values([1.0], 0.02)
    with pytest.raises(SketchError, match="different mappings"):
        a.merge(b)
    shifted = Sketch(LogarithmicMapping(0.01, offset=3.0), 0.0, [1], [1.0], [], [])
    with pytest.raises(SketchError, match="offset"):
        a.merge(shifted)


@settings(max_examples=40, deadline=None)
@given(values=value_lists, alpha=accuracies)
def test_ddsketch_round_trip(values: list[float], alpha: float) -> None:
    package = _package(values, alpha)
    ours = Sketch.from_ddsketch(package)
    reference = Sketch.from_values(values, alpha)
    for a, b in zip(ours._arrays(), reference._arrays()):
        np.testing.assert_array_equal(a, b)
    back = ours.to_ddsketch()
    assert type(back) is DDSketch
    np.testing.assert_array_equal(_package_quantiles(back, QS), _package_quantiles(package, QS))
    assert (back.count, back._min, back._max, back.sum) == (
        package.count,
        package._min,
        package._max,
        package.sum,
    )


@settings(max_examples=40, deadline=None)
@given(values=narrow_value_lists, alpha=st.sampled_from([0.01, 0.02, 0.05, 0.001, 0.2, 0.0123]))
def test_proto_round_trip(values: list[float], alpha: float) -> None:
    ours = Sketch.from_values(values, alpha)
    proto = ours.to_proto()
    back = Sketch.from_proto(proto)
    assert back.mapping == ours.mapping
    for a, b in zip(back._arrays(), ours._arrays()):
        np.testing.assert_array_equal(a, b)
    assert back.count == ours.count and math.isnan(back.sum) == (ours.count > 0)
    # the package reads our message, and we read the package's
    package = DDSketchProto.from_proto(proto)
    assert package.count == ours.count
    assert Sketch.from_proto(DDSketchProto.to_proto(_package(values, alpha))) == back


def test_proto_with_offset_and_sparse_bins() -> None:
    from ddsketch.pb.proto import pb

    proto = pb.DDSketch(
        mapping=pb.IndexMapping(gamma=LogarithmicMapping(0.02).gamma, indexOffset=2.0),
        positiveValues=pb.Store(
            binCounts={5: 2.0, -3: 1.0},
            contiguousBinCounts=[1.0, 0.0, 4.0],
            contiguousBinIndexOffset=4,
        ),
        zeroCount=3.0,
    )
    sketch = Sketch.from_proto(proto)
    assert sketch.mapping == LogarithmicMapping(0.02, offset=2.0)
    assert sketch.positive_keys.tolist() == [-3, 4, 5, 6]
    assert sketch.positive_counts.tolist() == [1.0, 1.0, 2.0, 4.0]
    assert sketch.count == 11.0
    assert sketch.to_ddsketch().get_quantile_value(0.9) == sketch.quantile(0.9)


@settings(max_examples=60, deadline=None)
@given(values=value_lists, alpha=accuracies, weights=st.lists(st.floats(0.0, 1e6), max_size=5))
def test_bytes_round_trip(values: list[float], alpha: float, weights: list[float]) -> None:
    sketch = Sketch.from_values(values, alpha)
    if weights:  # fractional counts take the float64 path
        keys = np.arange(len(weights), dtype=np.int64) * 7 - 10
        sketch = sketch.merge(Sketch(sketch.mapping, 0.5, keys, weights, keys[:1], [2.5]))
    data = sketch.to_bytes()
    assert data[:4] == b"DDSK" and data[4] == 1
    assert Sketch.from_bytes(data) == sketch


def test_bytes_layout_is_stable() -> None:
    """A committed encoding: changing the layout must change this test (and the version)."""
    sketch = Sketch.from_values([1.0, 1.0, 2.5, -3.0, 0.0], 0.01)
    expected = (
        "4444534b"
        "01"
        "01"
        "0000"  # magic, version, flags: integer counts, reserved
        "7b14ae47e17a843f"  # relative_accuracy 0.01
        "0000000000000000"  # offset 0.0
        "0000000000001440"  # count 5.0
        "000000000000f03f"  # zero_count 1.0
        "000000000000f83f"  # sum 1.5
        "00000000000008c0"  # min -3.0
        "0000000000000440"  # max 2.5
        "02000000"
        "01000000"  # n_positive 2, n_negative 1
        "00"
        "2e"
        "02"
        "01"  # positive keys 0, +46 (key 46); counts 2, 1
        "6e"
        "01"  # negative key zigzag(55) = 110; count 1
    )
    assert sketch.to_bytes().hex() == expected
    assert Sketch.from_bytes(bytes.fromhex(expected)) == sketch


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:40], "shorter than the 72-byte header"),
        (lambda b: b"XXXX" + b[4:], "magic"),
        (lambda b: b[:4] + b"\x02" + b[5:], "version"),
        (lambda b: b[:5] + b"\x03" + b[6:], "flag"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "after its last bucket"),
        (lambda b: b[:73] + b"\x00" + b[74:], "strictly increasing"),
    ],
)
def test_bad_bytes(mutate, message: str) -> None:
    data = Sketch.from_values([1.0, 2.0, 4.0, -1.0], 0.01).to_bytes()
    with pytest.raises(SketchError, match=message):
        Sketch.from_bytes(mutate(data))


def _mapping() -> LogarithmicMapping:
    return LogarithmicMapping(0.01)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"positive_counts": [1.0, -1.0]}, r"positive_counts\[1\] = -1.0"),
        ({"positive_counts": [1.0, math.nan]}, r"positive_counts\[1\] = nan"),
        ({"negative_counts": [math.inf]}, r"negative_counts\[0\]"),
        ({"positive_counts": [1.0]}, "positive_keys and positive_counts differ in length"),
        ({"positive_keys": [3, 2]}, r"positive_keys must be strictly increasing.*\[0\] = 3"),
        ({"positive_keys": [2, 2]}, "strictly increasing"),
        ({"negative_keys": [1.5]}, "negative_keys must be integers"),
        ({"zero_count": -1.0}, "zero_count"),
        ({"count": 99.0}, "does not match"),
        ({"positive_keys": [[1, 2]]}, "one-dimensional"),
    ],
)
def test_validation(kwargs: dict, message: str) -> None:
    fields = {
        "mapping": _mapping(),
        "zero_count": 0.0,
        "positive_keys": [1, 2],
        "positive_counts": [1.0, 2.0],
        "negative_keys": [5],
        "negative_counts": [1.0],
    }
    fields.update(kwargs)
    with pytest.raises(SketchError, match=message):
        Sketch(**fields)


def test_zero_count_buckets_are_dropped_and_arrays_read_only() -> None:
    sketch = Sketch(_mapping(), 0.0, [1, 2, 3], [1.0, 0.0, 2.0], [], [])
    assert sketch.positive_keys.tolist() == [1, 3]
    with pytest.raises(ValueError):
        sketch.positive_counts[0] = 5.0


def test_infinite_values_refused_nan_ignored() -> None:
    with pytest.raises(SketchError, match="inf"):
        Sketch.from_values([1.0, math.inf])
    with pytest.raises(SketchError, match="inf"):
        Sketch.from_values([-math.inf])
    assert Sketch.from_values([1.0, math.nan]).count == 1


def test_empty_sketch() -> None:
    empty = Sketch.from_values([math.nan])
    assert empty == Sketch.empty()
    assert math.isnan(empty.quantile(0.5))
    assert (empty.sum, empty.min, empty.max) == (0.0, math.inf, -math.inf)
    assert Sketch.from_bytes(empty.to_bytes()) == empty
    assert empty.merge(Sketch.from_values([2.0])) == Sketch.from_values([2.0])


@pytest.mark.parametrize("q", [-0.1, 1.0001, math.nan])
def test_bad_quantile(q: float) -> None:
    with pytest.raises(SketchError, match="outside"):
        Sketch.from_values([1.0]).quantile(q)


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.floats(-1e3, 1e3, allow_nan=False), st.floats(0.01, 5.0)), max_size=60
    ),
    alpha=accuracies,
)
# A compiled pow once gave 1162.5420678424719 where the package's math.pow gives ...472.
@example(pairs=[(950.0, 1.0)], alpha=0.2246275329255959)
# rank - zero - negatives rounds to -4e-16 at q=1: the package then returns an empty bucket of its
# dense store below the only positive one (0.275 for 1.0); ours is that positive bucket's value.
@example(
    pairs=[(0.0, 1.0), (0.0, 1.0), (0.0, 1.117442080935473), (1.0, 1.0)]
    + [(-1.0, 1.1128334950037746)],
    alpha=0.01,
)
# The same on the negative side: rank 1/3 against negatives of weight 1/3 rounds to just below
# it, and the package's reversed rank + 1 to 0, which its dense store's first (empty) bucket
# meets (-0.275 for -1.0); ours is the negative bucket nearest zero.
@example(pairs=[(0.0, 1 / 3), (0.0, 1 / 3), (0.0, 1 / 3), (-1.0, 1 / 3)], alpha=0.01)
def test_weighted_package_sketch_quantiles(pairs: list[tuple[float, float]], alpha: float) -> None:
    """Fractional counts (weighted adds) read from the package give its quantiles (for a total
    weight of at least 1; below, the package's rank is negative and we clamp it to 0).

    Where float rounding leaves the package a negative rank into one of its stores, it answers
    with whichever empty bucket its dense store starts at; ours is the bucket the exact rank
    selects: the lowest positive bucket, or the negative bucket nearest zero.
    """
    package = DDSketch(alpha)
    for v, w in pairs:
        package.add(v, w)
    ours = Sketch.from_ddsketch(package)
    if package.count >= 1:
        got, want = ours.quantiles(QS), _package_quantiles(package, QS)
        negatives = package._negative_store.count
        below = package._zero_count + negatives
        ranks = QS * (package.count - 1)
        rounded = (ranks >= below) & (ranks - package._zero_count - negatives < 0)
        rounded_negative = (ranks < negatives) & ((negatives - ranks - 1) + 1 <= 0)
        exact = ~rounded & ~rounded_negative
        np.testing.assert_array_equal(got[exact], want[exact])
        if rounded.any():
            lowest = ours.mapping.values(ours.positive_keys[:1])[0]
            np.testing.assert_array_equal(got[rounded], lowest)
        if rounded_negative.any():
            nearest = -ours.mapping.values(ours.negative_keys[:1])[0]
            np.testing.assert_array_equal(got[rounded_negative], nearest)
    elif package.count > 0:
        lowest = np.sort([v for v, _ in pairs])[0]
        assert ours.quantile(0.7) == ours.quantile(0.0)
        assert abs(ours.quantile(0.0) - lowest) <= alpha * abs(lowest) * (1 + 1e-9) + 1e-300
    else:
        assert pairs == [] and ours.count == 0


def test_keys_beyond_2_to_62_are_refused_not_corrupted():
    from tsdb_arrow.errors import SketchError
    from tsdb_arrow.sketch import LogarithmicMapping, Sketch

    mapping = LogarithmicMapping(0.01)
    for key in (2**62, -(2**62) - 1, 2**63 - 1):
        with pytest.raises(SketchError, match="out of range"):
            Sketch(
                mapping, 0.0, np.array([key]), np.array([1.0]), np.array([], np.int64), np.array([])
            )
