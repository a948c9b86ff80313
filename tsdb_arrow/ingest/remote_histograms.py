"""Native histograms of a remote-write request (``TimeSeries.histograms``) as exponential
histogram rows, the column ``Database.write`` stores exactly.

Prometheus sends a native histogram as spans of bucket indices and the deltas between
consecutive bucket counts; storage holds an offset and dense counts. Prometheus' bucket ``i``
holds ``(base^(i-1), base^i]`` and OpenTelemetry's (ours) ``i`` holds ``(base^i, base^(i+1)]``,
so an index moves down by one. One numba kernel parses every histogram message twice (sizes,
then values); no Python runs per histogram or bucket.

Stored: integer histograms of schema -4..8 whose count equals the zero bucket plus the buckets.
Skipped and counted: float histograms (recording rules make them; storage holds integer
counts), other schemas (custom buckets) and histograms counting observations in no bucket
(NaN observations): storage requires the counts to add up. A message that is not a valid
histogram (spans and deltas disagree, a bucket count below zero) refuses the request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tsdb_arrow.errors import InputError
from tsdb_arrow.ingest.protowire import next_field, varint
from tsdb_arrow.jit import njit
from tsdb_arrow.model import HISTOGRAM_TYPE

# statuses
STORED, FLOAT, SCHEMA, UNCOUNTED, BAD = range(5)
# integer fields per histogram
I_STATUS, I_COUNT, I_ZERO, I_SCHEMA, I_TIME, I_POS_OFF, I_POS_LEN, I_NEG_OFF, I_NEG_LEN = range(9)
MIN_SCHEMA, MAX_SCHEMA = -4, 8


@njit(cache=True, nogil=True, inline="always")
def _zigzag(v):
    return np.int64(v >> np.uint64(1)) ^ -np.int64(v & np.uint64(1))


@njit(cache=True, nogil=True)
def _span(buf, a, b):
    """(offset, length, ok) of a BucketSpan message in buf[a:b]."""
    offset = np.int64(0)
    length = np.int64(0)
    pos = a
    while pos < b:
        f, wt, v, _, _, pos = next_field(buf, pos, b)
        if pos < 0:
            return offset, length, False
        if f == 1 and wt == 0:
            offset = _zigzag(v)
        elif f == 2 and wt == 0:
            length = np.int64(v)
    return offset, length, True


@njit(cache=True, nogil=True)
def _parse(buf, a, b, sp_off, sp_len, deltas, ns, nd, ints, floats):  # noqa: C901
    """Parse one Histogram message into scalars, spans (``sp_*[side, k]``) and deltas
    (``deltas[side, k]``), side 0 positive, 1 negative; counts into ``ns``/``nd``. Returns
    the status (``FLOAT`` when any float field appears, ``BAD`` on a malformed message)."""
    status = STORED
    ns[0] = ns[1] = nd[0] = nd[1] = 0
    for k in range(ints.shape[0]):
        ints[k] = 0
    floats[0] = floats[1] = 0.0
    pos = a
    while pos < b:
        f, wt, v, s, e, pos = next_field(buf, pos, b)
        if pos < 0:
            return BAD
        if f == 1 and wt == 0:
            ints[I_COUNT] = np.int64(v)
        elif f == 2 or f == 7 or f == 10 or f == 13:
            status = FLOAT
        elif f == 3 and wt == 1:
            floats[0] = np.array([v]).view(np.float64)[0]
        elif f == 4 and wt == 0:
            ints[I_SCHEMA] = _zigzag(v)
        elif f == 5 and wt == 1:
            floats[1] = np.array([v]).view(np.float64)[0]
        elif f == 6 and wt == 0:
            ints[I_ZERO] = np.int64(v)
        elif (f == 8 or f == 11) and wt == 2:
            side = 0 if f == 11 else 1
            off, ln, ok = _span(buf, s, e)
            if not ok or ln < 0:
                return BAD
            sp_off[side, ns[side]] = off
            sp_len[side, ns[side]] = ln
            ns[side] += 1
        elif f == 9 or f == 12:
            side = 0 if f == 12 else 1
            if wt == 0:
                deltas[side, nd[side]] = _zigzag(v)
                nd[side] += 1
            elif wt == 2:
                p = s
                while p < e:
                    d, p = varint(buf, p, e)
                    if p < 0:
                        return BAD
                    deltas[side, nd[side]] = _zigzag(d)
                    nd[side] += 1
            else:
                return BAD
        elif f == 15 and wt == 0:
            ints[I_TIME] = np.int64(v)
    return status


@njit(cache=True, nogil=True)
def _histograms(buf, ranges, fill, ints, floats, pos_at, neg_at, pos_out, neg_out):  # noqa: C901
    """Every histogram ``buf[ranges[h, 0]:ranges[h, 1]]``: scalars into ``ints[h]`` and
    ``floats[h]`` (sum, zero threshold), dense bucket counts into ``pos_out``/``neg_out`` at
    ``pos_at[h]``/``neg_at[h]`` when ``fill``. Returns the first malformed histogram, or -1."""
    widest = 1
    for h in range(ranges.shape[0]):
        widest = max(widest, ranges[h, 1] - ranges[h, 0])
    sp_off = np.empty((2, widest), np.int64)
    sp_len = np.empty((2, widest), np.int64)
    deltas = np.empty((2, widest), np.int64)
    ns = np.zeros(2, np.int64)
    nd = np.zeros(2, np.int64)
    for h in range(ranges.shape[0]):
        row = ints[h]
        if fill and row[I_STATUS] != STORED:
            continue  # sized as nothing by the first pass
        status = _parse(buf, ranges[h, 0], ranges[h, 1], sp_off, sp_len, deltas, ns, nd, row,
                        floats[h])  # fmt: skip
        if status == BAD:
            return h
        if status == FLOAT:  # absolute float counts, not deltas: not stored, not checked
            row[I_STATUS] = FLOAT
            continue
        total = np.uint64(row[I_ZERO])
        for side in range(2):
            n_buckets = 0
            for k in range(ns[side]):
                if k > 0 and sp_off[side, k] < 0:
                    return h  # spans go up: a later span's offset is a gap, never negative
                n_buckets += sp_len[side, k]
            if n_buckets != nd[side]:
                return h
            first = 0
            last = -1
            index = 0
            count = np.int64(0)
            j = 0
            for k in range(ns[side]):
                index += sp_off[side, k]
                for _ in range(sp_len[side, k]):
                    count += deltas[side, j]
                    if count < 0:
                        return h
                    if j == 0:
                        first = index
                    last = index
                    total += np.uint64(count)
                    if fill and status == STORED:
                        out = pos_out if side == 0 else neg_out
                        at = pos_at[h] if side == 0 else neg_at[h]
                        out[at + index - first] = count
                    j += 1
                    index += 1
            length = last - first + 1 if nd[side] else 0
            # Prometheus' bucket i is OpenTelemetry's i - 1
            row[I_POS_OFF if side == 0 else I_NEG_OFF] = first - 1 if nd[side] else 0
            row[I_POS_LEN if side == 0 else I_NEG_LEN] = length
        if status == STORED:
            if row[I_SCHEMA] < MIN_SCHEMA or row[I_SCHEMA] > MAX_SCHEMA:
                status = SCHEMA
            elif total != np.uint64(row[I_COUNT]):
                status = UNCOUNTED
        row[I_STATUS] = status
    return -1


@dataclass
class Histograms:
    """A request's stored histograms (``series``: the time series row of each) and what was
    skipped."""

    series: np.ndarray
    timestamps: np.ndarray
    column: pa.Array
    skipped_float: int = 0
    skipped_schema: int = 0
    skipped_uncounted: int = 0

    @property
    def skipped(self) -> int:
        return self.skipped_float + self.skipped_schema + self.skipped_uncounted


def decode_histograms(buf: np.ndarray, ranges: np.ndarray, series: np.ndarray) -> Histograms:
    """The histogram messages at ``ranges`` (byte ranges in ``buf``; ``series``: the time
    series each belongs to) as a ``histogram`` struct column of the stored ones."""
    n = len(ranges)
    ints = np.zeros((n, 9), np.int64)
    floats = np.zeros((n, 2), np.float64)
    none = np.zeros(n, np.int64)
    empty = np.empty(0, np.uint64)
    bad = _histograms(buf, ranges, False, ints, floats, none, none, empty, empty)
    if bad >= 0:
        raise InputError(
            f"native histogram {bad} of the WriteRequest is malformed (its spans and bucket "
            "deltas disagree, or a bucket count falls below zero); nothing of the request was "
            "stored"
        )
    status = ints[:, I_STATUS]
    pos_len = np.where(status == STORED, ints[:, I_POS_LEN], 0)
    neg_len = np.where(status == STORED, ints[:, I_NEG_LEN], 0)
    pos_at = np.concatenate(([0], np.cumsum(pos_len)))
    neg_at = np.concatenate(([0], np.cumsum(neg_len)))
    pos = np.zeros(int(pos_at[-1]), np.uint64)
    neg = np.zeros(int(neg_at[-1]), np.uint64)
    _histograms(buf, ranges, True, ints, floats, pos_at, neg_at, pos, neg)
    keep = status == STORED
    k_pos = np.concatenate(([0], np.cumsum(pos_len[keep])))
    k_neg = np.concatenate(([0], np.cumsum(neg_len[keep])))
    m = int(keep.sum())
    fields = [
        pa.array(ints[keep, I_SCHEMA].astype(np.int8)),
        pa.array(ints[keep, I_COUNT].astype(np.uint64)),
        pa.array(ints[keep, I_ZERO].astype(np.uint64)),
        pa.array(floats[keep, 1]),
        pa.array(ints[keep, I_POS_OFF].astype(np.int32)),
        pa.LargeListArray.from_arrays(pa.array(k_pos, pa.int64()), pa.array(pos)),
        pa.array(ints[keep, I_NEG_OFF].astype(np.int32)),
        pa.LargeListArray.from_arrays(pa.array(k_neg, pa.int64()), pa.array(neg)),
        pa.array(floats[keep, 0]),
        pa.array(np.full(m, np.nan)),
        pa.array(np.full(m, np.nan)),
    ]
    column = pa.StructArray.from_arrays(fields, fields=list(HISTOGRAM_TYPE))
    return Histograms(
        series=series[keep],
        timestamps=ints[keep, I_TIME],
        column=column,
        skipped_float=int((status == FLOAT).sum()),
        skipped_schema=int((status == SCHEMA).sum()),
        skipped_uncounted=int((status == UNCOUNTED).sum()),
    )
