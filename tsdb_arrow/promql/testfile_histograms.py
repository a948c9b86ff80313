"""Native histogram points of PromQL test scripts: ``{{schema:0 sum:5 count:4 buckets:[1 2 1]}}``
and the series expansions ``{{...}}x3`` and ``{{a}}+{{b}}x3``.

A point is read into a :class:`TestHistogram` (buckets keyed by Prometheus index). Only the
histograms storage can hold are loaded as samples (``storable``): an exponential schema
(-4..8, not custom buckets), whole non-negative counts, and a ``count`` equal to the zero count
plus the bucket counts; the others are loaded as absent points. Expected results keep every
point: :func:`same_histogram` compares one with a result's histogram as Prometheus' runner
does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

_POINT = re.compile(r"\{\{(.*?)\}\}")
_TOKEN = re.compile(r"^(\{\{.*?\}\})(?:([+-])(\{\{.*?\}\}))?(?:x(\d+))?$")
_FIELD = re.compile(r"(\w+):(\[[^\]]*\]|\S+)")


@dataclass
class TestHistogram:
    """One histogram point as the script writes it."""

    schema: int = 0
    count: float = 0.0
    sum: float = 0.0
    zero_count: float = 0.0
    zero_threshold: float = 0.0
    positive: dict[int, float] = field(default_factory=dict)
    negative: dict[int, float] = field(default_factory=dict)
    custom: bool = False

    def combine(self, other: TestHistogram, sign: float) -> TestHistogram:
        """``self + sign * other`` field by field (same schema assumed, as the scripts use)."""
        def merge(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
            return {k: a.get(k, 0.0) + sign * b.get(k, 0.0) for k in sorted({*a, *b})}

        return TestHistogram(
            self.schema, self.count + sign * other.count, self.sum + sign * other.sum,
            self.zero_count + sign * other.zero_count, self.zero_threshold,
            merge(self.positive, other.positive), merge(self.negative, other.negative),
            self.custom or other.custom,
        )

    @property
    def storable(self) -> bool:
        """Whether storage can hold it exactly (see the module docstring)."""
        counts = [self.count, self.zero_count, *self.positive.values(), *self.negative.values()]
        whole = all(c >= 0 and float(c).is_integer() for c in counts)
        total = self.zero_count + sum(self.positive.values()) + sum(self.negative.values())
        return not self.custom and -4 <= self.schema <= 8 and whole and total == self.count

    def to_sample(self) -> object:
        """The ``ExponentialHistogram`` storage holds (Prometheus bucket i = OTel bucket i-1)."""
        from tsdb_arrow.sketch import ExponentialHistogram

        def dense(buckets: dict[int, float]) -> tuple[int, np.ndarray]:
            if not buckets:
                return 0, np.zeros(0, np.uint64)
            lo, hi = min(buckets), max(buckets)
            out = np.zeros(hi - lo + 1, np.uint64)
            for k, v in buckets.items():
                out[k - lo] = int(v)
            return lo - 1, out

        pos_off, pos = dense(self.positive)
        neg_off, neg = dense(self.negative)
        return ExponentialHistogram(
            scale=self.schema, count=int(self.count), sum=self.sum,
            zero_count=int(self.zero_count), zero_threshold=self.zero_threshold,
            positive_offset=pos_off, positive_counts=pos,
            negative_offset=neg_off, negative_counts=neg,
        )


def _numbers(text: str) -> list[float]:
    return [float(x) for x in text.strip("[]").split()]


def parse_histogram(text: str) -> TestHistogram:
    """One ``{{...}}`` point."""
    fields = dict(_FIELD.findall(text.strip("{}")))
    h = TestHistogram(
        schema=int(fields.get("schema", 0)),
        count=float(fields.get("count", 0)),
        sum=float(fields.get("sum", 0)),
        zero_count=float(fields.get("z_bucket", 0)),
        zero_threshold=float(fields.get("z_bucket_w", 0)),
        custom="custom_values" in fields,
    )
    offset = int(fields.get("offset", 0))
    h.positive = {offset + i: c for i, c in enumerate(_numbers(fields.get("buckets", "[]")))}
    n_offset = int(fields.get("n_offset", 0))
    h.negative = {n_offset + i: c for i, c in enumerate(_numbers(fields.get("n_buckets", "[]")))}
    return h


def expand_histograms(token: str) -> list[TestHistogram] | None:
    """The points of one histogram token, or None when ``token`` is not one."""
    m = _TOKEN.match(token)
    if m is None:
        return None
    base = parse_histogram(m.group(1))
    n = int(m.group(4)) if m.group(4) else 0
    if m.group(3) is None:
        return [base] * (n + 1) if m.group(4) else [base]
    inc = parse_histogram(m.group(3))
    sign = 1.0 if m.group(2) == "+" else -1.0
    out = [base]
    for _ in range(n):
        out.append(out[-1].combine(inc, sign))
    return out


def split_points(rest: str) -> list[str]:
    """The point tokens of a series line, ``{{...}}`` ones kept whole (they hold spaces)."""
    tokens: list[str] = []
    for part in re.split(r"(\{\{.*?\}\}(?:[+-]\{\{.*?\}\})?(?:x\d+)?)", rest):
        if part.startswith("{{"):
            tokens.append(part)
        else:
            tokens.extend(part.split())
    return tokens


def from_pool(pool: object, row: int) -> TestHistogram:
    """Pool row ``row`` of a ``NativeHistograms`` as a ``TestHistogram`` (Prometheus indices)."""
    p = pool

    def buckets(offset: np.ndarray, start: np.ndarray, counts: np.ndarray) -> dict[int, float]:
        lo, hi = int(start[row]), int(start[row + 1])
        first = int(offset[row]) + 1
        return {first + k: float(c) for k, c in enumerate(counts[lo:hi].tolist())}

    return TestHistogram(
        schema=int(p.scale[row]), count=float(p.count[row]), sum=float(p.sum[row]),  # type: ignore[attr-defined]
        zero_count=float(p.zero_count[row]), zero_threshold=float(p.zero_threshold[row]),  # type: ignore[attr-defined]
        positive=buckets(p.pos_offset, p.pos_start, p.pos_counts),  # type: ignore[attr-defined]
        negative=buckets(p.neg_offset, p.neg_start, p.neg_counts),  # type: ignore[attr-defined]
    )


def same_histogram(expected: TestHistogram, actual: TestHistogram, close: object) -> bool:
    """Prometheus' ``compareNativeHistogram`` after ``Compact(0)``: same schema and zero
    threshold, counts and sum within ``close`` (a ``(a, b) -> bool``), the same non-empty
    buckets with close counts."""
    if expected.custom or expected.schema != actual.schema:
        return False
    if expected.zero_threshold != actual.zero_threshold:
        return False
    pairs = [(expected.count, actual.count), (expected.sum, actual.sum),
             (expected.zero_count, actual.zero_count)]
    for want, got in (expected.positive, actual.positive), (expected.negative, actual.negative):
        w = {k: v for k, v in want.items() if v != 0}
        g = {k: v for k, v in got.items() if v != 0}
        if w.keys() != g.keys():
            return False
        pairs.extend((w[k], g[k]) for k in w)
    return all(close(a, b) for a, b in pairs)  # type: ignore[operator]
