"""A Prometheus remote-write 1.0 ``WriteRequest`` as a long Arrow table ``Database.write`` takes.

The protobuf bytes are walked by one numba kernel (twice: count, then fill) into flat tables of
series, label byte ranges and samples; label names are interned by a hash kernel and each
label's column is written over the samples by another. No Python loop runs per sample, per
label or per series (one runs per distinct label name). Sample values are copied as their bits:
stale markers and every NaN payload arrive unchanged. A label with an empty value is no label,
as in Prometheus. Native histograms go to a table of their own (``remote_histograms.py``);
exemplars are counted and skipped; metric metadata is decoded apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from tsdb_arrow.errors import InputError
from tsdb_arrow.ingest.protowire import next_field
from tsdb_arrow.jit import njit
from tsdb_arrow.model import HISTOGRAM, TIMESTAMP, VALUE

OK, ERROR = 0, 1
# counters
C_SERIES, C_LABELS, C_SAMPLES, C_META, C_HISTOGRAMS, C_EXEMPLARS = range(6)
# series table: label rows [L0, L1), sample rows [S0, S1)
L0, L1, S0, S1 = range(4)
# label table: name and value byte ranges
N_S, N_E, V_S, V_E = range(4)
TIMES = pa.timestamp("ms", tz="UTC")


@njit(cache=True, nogil=True)
def _walk(buf, fill, series, labels, ts, bits, meta, hists, cnt):  # noqa: C901 - one loop on purpose
    """Walk a WriteRequest; counts into ``cnt``, and fills the tables when ``fill``.

    Returns OK or ERROR (not a valid protobuf message of this schema).
    """
    for k in range(cnt.shape[0]):
        cnt[k] = 0
    n = buf.shape[0]
    # stack: 0 request, 1 time series, 2 label or sample
    ends = np.zeros(3, dtype=np.int64)
    kinds = np.zeros(3, dtype=np.int64)  # at depth 2: 1 label, 2 sample
    ends[0] = n
    depth = 0
    pos = 0
    while True:
        if pos == ends[depth]:
            if depth == 0:
                return OK
            if depth == 1 and fill:
                r = cnt[C_SERIES] - 1
                series[r, L1] = cnt[C_LABELS]
                series[r, S1] = cnt[C_SAMPLES]
            depth -= 1
            continue
        f, wt, v, a, b, pos = next_field(buf, pos, ends[depth])
        if pos < 0:
            return ERROR
        if depth == 0:
            if f == 1:
                if wt != 2:
                    return ERROR
                r = cnt[C_SERIES]
                cnt[C_SERIES] += 1
                if fill:
                    series[r, L0] = cnt[C_LABELS]
                    series[r, S0] = cnt[C_SAMPLES]
                    series[r, L1] = cnt[C_LABELS]
                    series[r, S1] = cnt[C_SAMPLES]
                pos = a
                depth = 1
                ends[1] = b
            elif f == 3:
                if wt != 2:
                    return ERROR
                if fill:
                    meta[cnt[C_META], 0] = a
                    meta[cnt[C_META], 1] = b
                cnt[C_META] += 1
        elif depth == 1:
            if f == 1 or f == 2:
                if wt != 2:
                    return ERROR
                if f == 1:
                    r = cnt[C_LABELS]
                    cnt[C_LABELS] += 1
                    if fill:
                        labels[r, N_S] = labels[r, N_E] = labels[r, V_S] = labels[r, V_E] = a
                    kinds[2] = 1
                else:
                    r = cnt[C_SAMPLES]
                    cnt[C_SAMPLES] += 1
                    if fill:
                        ts[r] = 0
                        bits[r] = np.uint64(0)
                    kinds[2] = 2
                pos = a
                depth = 2
                ends[2] = b
            elif f == 3:
                cnt[C_EXEMPLARS] += 1
            elif f == 4:
                if wt != 2:
                    return ERROR
                if fill:
                    hists[cnt[C_HISTOGRAMS], 0] = a
                    hists[cnt[C_HISTOGRAMS], 1] = b
                    hists[cnt[C_HISTOGRAMS], 2] = cnt[C_SERIES] - 1
                cnt[C_HISTOGRAMS] += 1
        else:
            if kinds[2] == 1:
                if f == 1 or f == 2:
                    if wt != 2:
                        return ERROR
                    if fill:
                        r = cnt[C_LABELS] - 1
                        if f == 1:
                            labels[r, N_S] = a
                            labels[r, N_E] = b
                        else:
                            labels[r, V_S] = a
                            labels[r, V_E] = b
            else:
                if f == 1:
                    if wt != 1:
                        return ERROR
                    if fill:
                        bits[cnt[C_SAMPLES] - 1] = v
                elif f == 2:
                    if wt != 0:
                        return ERROR
                    if fill:
                        ts[cnt[C_SAMPLES] - 1] = np.int64(v)


@njit(cache=True, nogil=True)
def _intern(buf, labels, table):
    """Number the distinct label names by first appearance: (id per label row, first row of
    each id). ``table`` is an open-addressing hash table (a power of two, filled with -1)."""
    n = labels.shape[0]
    mask = table.shape[0] - 1
    ids = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    n_ids = 0
    for i in range(n):
        s, e = labels[i, N_S], labels[i, N_E]
        h = np.uint64(0xCBF29CE484222325)
        for k in range(s, e):
            h = (h ^ np.uint64(buf[k])) * np.uint64(0x100000001B3)
        slot = np.int64(h & np.uint64(mask))
        while True:
            j = table[slot]
            if j < 0:
                table[slot] = n_ids
                first[n_ids] = i
                ids[i] = n_ids
                n_ids += 1
                break
            fs, fe = labels[first[j], N_S], labels[first[j], N_E]
            if fe - fs == e - s:
                same = True
                for k in range(e - s):
                    if buf[fs + k] != buf[s + k]:
                        same = False
                        break
                if same:
                    ids[i] = j
                    break
            slot = (slot + 1) & mask
    return ids, first[:n_ids]


@njit(cache=True, nogil=True)
def _spread(labels, series, ids, starts, ends):
    """Each series' value range of each label name into ``starts``/``ends`` [name, series];
    returns the first series that has a name twice, or -1."""
    seen = np.full(starts.shape[0], -1, dtype=np.int64)
    for r in range(series.shape[0]):
        for i in range(series[r, L0], series[r, L1]):
            k = ids[i]
            if seen[k] == r:
                return r
            seen[k] = r
            starts[k, r] = labels[i, V_S]
            ends[k, r] = labels[i, V_E]
    return -1


@njit(cache=True, nogil=True)
def _column(buf, starts, ends, counts, offsets, valid, data):
    """One label's column over the samples: series r's value repeated ``counts[r]`` times."""
    o = 0
    row = 0
    for r in range(starts.shape[0]):
        s = starts[r]
        length = ends[r] - s
        for _ in range(counts[r]):
            offsets[row] = o
            valid[row] = length > 0
            for k in range(length):
                data[o + k] = buf[s + k]
            o += length
            row += 1
    offsets[row] = o


def _sample_column(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, counts: np.ndarray, n: int
) -> pa.Array | None:
    """A label's large_string column over ``n`` samples (null where a series lacks the
    label); None when no sample has it."""
    lengths = ends - starts
    if not ((lengths > 0) & (counts > 0)).any():
        return None
    offsets = np.empty(n + 1, dtype=np.int64)
    valid = np.empty(n, dtype=bool)
    data = np.empty(int((lengths * counts).sum()), dtype=np.uint8)
    _column(buf, starts, ends, counts, offsets, valid, data)
    mask = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(data), mask, null_count=-1 if mask else 0
    )


@dataclass
class Decoded:
    """One request: the samples as a long table, and what was skipped."""

    table: pa.Table
    exemplars: int = 0
    metadata: list[bytes] = field(default_factory=list)
    histogram_table: pa.Table | None = None  # native histograms, a "histogram" column
    histograms_skipped: int = 0  # float, custom-bucket and NaN-counting histograms


def decode_write_request(body: bytes) -> Decoded:
    """Convert an uncompressed ``WriteRequest`` into a table with ``timestamp``, ``value`` and
    one string column per label name; ``InputError`` when it is not one."""
    buf = np.frombuffer(body, dtype=np.uint8)
    cnt = np.zeros(6, dtype=np.int64)
    empty2 = np.empty((0, 4), dtype=np.int64)
    if _walk(buf, False, empty2, empty2, np.empty(0, np.int64), np.empty(0, np.uint64),
             np.empty((0, 2), np.int64), np.empty((0, 3), np.int64), cnt) != OK:  # fmt: skip
        raise InputError(
            "the body is not a remote-write WriteRequest (protobuf, after snappy): a truncated "
            "or corrupt message; nothing of it was stored"
        )
    n_series, n_labels, n_samples, n_meta = (int(c) for c in cnt[:4])
    series = np.empty((n_series, 4), dtype=np.int64)
    labels = np.empty((n_labels, 4), dtype=np.int64)
    ts = np.empty(n_samples, dtype=np.int64)
    bits = np.empty(n_samples, dtype=np.uint64)
    meta = np.empty((n_meta, 2), dtype=np.int64)
    hists = np.empty((int(cnt[C_HISTOGRAMS]), 3), dtype=np.int64)
    _walk(buf, True, series, labels, ts, bits, meta, hists, cnt)
    names, starts, ends = _label_ranges(buf, series, labels)
    samples = {
        TIMESTAMP: pa.array(ts, type=pa.int64()).cast(TIMES),
        VALUE: pa.array(bits.view(np.float64), type=pa.float64()),
    }
    decoded = Decoded(
        table=_table(buf, samples, names, starts, ends, series[:, S1] - series[:, S0]),
        exemplars=int(cnt[C_EXEMPLARS]),
        metadata=[bytes(body[a:b]) for a, b in meta],
    )
    if len(hists):
        from tsdb_arrow.ingest.remote_histograms import decode_histograms

        found = decode_histograms(buf, hists[:, :2], hists[:, 2])
        columns = {
            TIMESTAMP: pa.array(found.timestamps, type=pa.int64()).cast(TIMES),
            HISTOGRAM: found.column,
        }
        counts = np.bincount(found.series, minlength=n_series)
        decoded.histogram_table = _table(buf, columns, names, starts, ends, counts)
        decoded.histograms_skipped = found.skipped
    return decoded


def _label_ranges(
    buf: np.ndarray, series: np.ndarray, labels: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The distinct label names, and each one's value byte range per series [name, series]
    (empty where a series lacks it)."""
    n_series = series.shape[0]
    if not len(labels):
        return [], np.zeros((0, n_series), np.int64), np.zeros((0, n_series), np.int64)
    table = np.full(1 << max(4, int(2 * len(labels)).bit_length()), -1, dtype=np.int64)
    ids, first = _intern(buf, labels, table)
    names = []
    for row in first:  # one per distinct label name
        try:
            names.append(bytes(buf[labels[row, N_S] : labels[row, N_E]]).decode())
        except UnicodeDecodeError:
            raise InputError(
                "a label name of the WriteRequest is not UTF-8; nothing of it was stored"
            ) from None
    starts = np.zeros((len(names), n_series), dtype=np.int64)
    ends = np.zeros((len(names), n_series), dtype=np.int64)
    twice = _spread(labels, series, ids, starts, ends)
    if twice >= 0:
        raise InputError(
            f"time series {twice} of the WriteRequest has a label name twice; a label name may "
            "appear once per series. Nothing of the request was stored"
        )
    return names, starts, ends


def _table(
    buf: np.ndarray,
    columns: dict[str, pa.Array],
    names: list[str],
    starts: np.ndarray,
    ends: np.ndarray,
    counts: np.ndarray,
) -> pa.Table:
    """``columns`` (rows in series order, ``counts[r]`` of series r) and a column per label."""
    n = int(counts.sum())
    columns = dict(columns)
    for k, name in enumerate(names):
        column = _sample_column(buf, starts[k], ends[k], counts, n)
        if column is None:
            continue
        if name in columns:
            raise InputError(
                f"the label name {name!r} is reserved for the sample columns; rename it"
            )
        columns[name] = column
    return pa.table(columns)
