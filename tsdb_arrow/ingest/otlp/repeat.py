"""Points of series a receiver stored before, read straight into (ref, timestamp, value).

A feed sends the same series request after request. The full conversion builds label columns
for every point (resources, scopes, names, attributes) and ``Database.write`` hashes them back
into series refs; for a point whose series was stored before, both steps redo what is known. After
a clean request (every point accepted) is written, ``KnownPoints.remember`` keeps, for each of its
gauge and cumulative-sum points, the point's identity bytes and the ref its row had; a later
request whose every point is found this way (``KnownPoints.rows``) needs no labels at all: its
rows are the refs, the timestamps and the values.

A point's identity bytes hold everything its labels derive from, exactly: its metric (the
resource and scope bytes, schema URL, name and unit bytes, kind, temporality, monotonicity, as one
number given per distinct metric) and its attributes as the walk read them (key bytes, value type,
value bytes or number), length-prefixed. Equal bytes give equal labels, so a hit is the label set
an earlier write admitted, and its ref is in the index (which never forgets a series). A request
with anything else (a new series, a refused point, a histogram, a delta sum) takes the full path.

Refusals that depend on the whole request (more distinct label names than ``OtlpLimits`` allows,
target_info left out) cannot happen to a request made only of remembered points: the label names
of everything remembered stay within the limit (past it, the memory starts again).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from tsdb_arrow.ingest.otlp import points, rows, wire
from tsdb_arrow.ingest.otlp.context import TARGET_INFO, resource_labels
from tsdb_arrow.ingest.otlp.wire import (
    E_KEY_E,
    E_KEY_S,
    E_NUM,
    E_TYPE,
    E_VAL_E,
    E_VAL_S,
    GAUGE,
    H_DOUBLE,
    H_INT,
    M_SCOPE,
    P_A0,
    P_A1,
    P_FLAGS,
    P_HAS,
    P_METRIC,
    P_TIME,
    P_VALUE,
    SUM,
    V_ARRAY,
    V_BYTES,
    V_KVLIST,
    V_STRING,
)
from tsdb_arrow.jit import njit
from tsdb_arrow.model import METRIC_NAME, TIMESTAMP, VALUE

if TYPE_CHECKING:
    from tsdb_arrow.ingest.otlp.convert import Converted, OtlpLimits

MAX_BYTES = 64 * 2**20  # identity bytes, entries and hash table together
MAX_METRICS = 1 << 16  # distinct metrics (and resources) remembered before starting again
REF = "ref"
_NS_PER_MS = 1_000_000
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
# Entry table columns (uint64): identity bytes' start in the arena and size, hash, series ref.
E_START, E_SIZE, E_HASH, E_REF = range(4)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class Rows:
    """A request of remembered points: ``table`` (``ref`` uint64, ``timestamp`` int64 ms,
    ``value`` float64) in the order the full conversion gives its rows (the points, then
    target_info), and how many data points it holds."""

    table: pa.Table
    points: int


@njit(cache=True, nogil=True)
def _identity_sizes(pt, ent):
    """Offsets of each point's identity bytes, each padded to whole 8-byte words (the bytes
    say where they end: the padding cannot make two identities equal)."""
    n = pt.shape[0]
    offsets = np.zeros(n + 1, dtype=np.int64)
    for p in range(n):
        size = 12
        for e in range(pt[p, P_A0], pt[p, P_A1]):
            t = ent[e, E_TYPE]
            size += 5 + ent[e, E_KEY_E] - ent[e, E_KEY_S]
            if t == V_STRING or t == V_BYTES or t == V_ARRAY or t == V_KVLIST:
                size += 4 + ent[e, E_VAL_E] - ent[e, E_VAL_S]
            else:
                size += 8
        offsets[p + 1] = offsets[p] + (size + 7) // 8 * 8
    return offsets


@njit(cache=True, nogil=True, inline="always")
def _put(data, at, x, width):
    for k in range(width):
        data[at + k] = np.uint8((x >> (8 * k)) & 0xFF)
    return at + width


@njit(cache=True, nogil=True)
def _identities(body, pt, ent, metric_id, offsets):
    """Each point's identity bytes: metric id, attribute count, then per attribute its value
    type, key length and bytes, and its value (length and bytes, or the 8-byte number)."""
    data = np.zeros(offsets[-1], dtype=np.uint8)
    for p in range(pt.shape[0]):
        at = _put(data, offsets[p], metric_id[pt[p, P_METRIC]], 8)
        at = _put(data, at, pt[p, P_A1] - pt[p, P_A0], 4)
        for e in range(pt[p, P_A0], pt[p, P_A1]):
            t = ent[e, E_TYPE]
            data[at] = np.uint8(t)
            ks, ke = ent[e, E_KEY_S], ent[e, E_KEY_E]
            at = _put(data, at + 1, ke - ks, 4)
            for k in range(ks, ke):
                data[at] = body[k]
                at += 1
            if t == V_STRING or t == V_BYTES or t == V_ARRAY or t == V_KVLIST:
                vs, ve = ent[e, E_VAL_S], ent[e, E_VAL_E]
                at = _put(data, at, ve - vs, 4)
                for k in range(vs, ve):
                    data[at] = body[k]
                    at += 1
            else:
                at = _put(data, at, ent[e, E_NUM], 8)
    return data


@njit(cache=True, nogil=True)
def _hashes(offsets, data):
    """A 64-bit hash of each identity, a word at a time."""
    words = data.view(np.uint64)
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        h = _FNV_OFFSET
        for k in range(offsets[i] >> 3, offsets[i + 1] >> 3):
            h = (h ^ words[k]) * _MIX1
            h ^= h >> np.uint64(29)
        h = (h ^ (h >> np.uint64(30))) * _MIX2
        out[i] = h ^ (h >> np.uint64(31))
    return out


@njit(cache=True, nogil=True, inline="always")
def _same(arena, start, data, at, size):
    for k in range(size >> 3):
        if arena[(start >> 3) + k] != data[(at >> 3) + k]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _matches(ent, e, h, arena, data, at, size):
    return (ent[e, E_HASH] == h and np.int64(ent[e, E_SIZE]) == size
            and _same(arena, np.int64(ent[e, E_START]), data, at, size))  # fmt: skip


@njit(cache=True, nogil=True)
def _find(offsets, data, hashes, table, ent, count, arena, out):
    """Each identity's remembered ref into ``out``; returns the first one not remembered, or
    the count when all are. The entry after the previous point's comes first (a feed sends
    its series in the order they were remembered: memory read in order), then the table."""
    words, arena_words = data.view(np.uint64), arena.view(np.uint64)
    mask = table.shape[0] - 1
    last = -2
    for i in range(hashes.shape[0]):
        h = hashes[i]
        at = offsets[i]
        size = offsets[i + 1] - at
        guess = last + 1
        if 0 <= guess < count and _matches(ent, guess, h, arena_words, words, at, size):
            last = guess
        else:
            slot = np.int64(h & np.uint64(mask))
            while True:
                e = table[slot]
                if e < 0:
                    return i
                if _matches(ent, e, h, arena_words, words, at, size):
                    last = e
                    break
                slot = (slot + 1) & mask
        out[i] = ent[last, E_REF]
    return hashes.shape[0]


@njit(cache=True, nogil=True)
def _add(offsets, data, hashes, refs, table, ent, arena, count, used):
    """Remember the identities not remembered yet (a remembered one gets ``refs``' ref);
    returns the new (count, arena bytes used). The caller made room."""
    words, arena_words = data.view(np.uint64), arena.view(np.uint64)
    mask = table.shape[0] - 1
    for i in range(hashes.shape[0]):
        h = hashes[i]
        at = offsets[i]
        size = offsets[i + 1] - at
        slot = np.int64(h & np.uint64(mask))
        while True:
            e = table[slot]
            if e < 0:
                for k in range(size >> 3):
                    arena_words[(used >> 3) + k] = words[(at >> 3) + k]
                ent[count, E_START] = used
                ent[count, E_SIZE] = size
                ent[count, E_HASH] = h
                ent[count, E_REF] = refs[i]
                used += size
                table[slot] = count
                count += 1
                break
            if _matches(ent, e, h, arena_words, words, at, size):
                ent[e, E_REF] = refs[i]
                break
            slot = (slot + 1) & mask
    return count, used


@njit(cache=True, nogil=True)
def _rehash(table, ent, count):
    mask = table.shape[0] - 1
    table[:] = -1
    for e in range(count):
        slot = np.int64(ent[e, E_HASH] & np.uint64(mask))
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = e


@njit(cache=True, nogil=True)
def _values(pt, stale):
    """Each gauge or sum point's value and its millisecond timestamp, as ``rows.float_rows``
    and the conversion give them."""
    n = pt.shape[0]
    value = np.empty(n, dtype=np.float64)
    ms = np.empty(n, dtype=np.int64)
    bits = pt[:, P_VALUE].copy().view(np.float64)
    for p in range(n):
        if pt[p, P_FLAGS] & rows.NO_RECORDED_VALUE:
            value[p] = stale
        elif pt[p, P_HAS] & H_INT:
            value[p] = np.float64(pt[p, P_VALUE])
        elif pt[p, P_HAS] & H_DOUBLE:
            value[p] = bits[p]
        else:
            value[p] = 0.0
        ms[p] = pt[p, P_TIME] // _NS_PER_MS
    return value, ms


class KnownPoints:
    """The identities of points stored before and their series refs, for one receiver (its
    ``promote_resource_attributes`` and limits); safe to share between threads."""

    def __init__(
        self, promote: frozenset[str], limits: OtlpLimits, *, max_bytes: int = MAX_BYTES
    ) -> None:
        self.promote = promote
        self.limits = limits
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._generation = getattr(self, "_generation", -1) + 1  # metric numbers start again
        self._metrics: dict[tuple, int] = {}
        self._targets: dict[bytes, int] = {}  # resource bytes: target_info ref, or -1
        self._names: set[str] = set()
        self._count = 0
        self._used = 0
        self._table = np.full(1 << 12, -1, dtype=np.int64)
        self._ent = np.zeros((1 << 10, 4), dtype=np.uint64)
        self._arena = np.zeros(1 << 16, dtype=np.uint8)

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._table.nbytes + self._ent.nbytes + self._arena.nbytes

    def rows(self, sc: wire.Scan) -> Rows | None:
        """The rows of a request whose every point and resource is remembered and accepted;
        None when the full conversion is needed."""
        pt = sc.points
        if len(pt) == 0:
            return None
        with self._lock:
            metric_id = self._metric_ids(sc, add=False)
            generation = self._generation
        if metric_id is None:
            return None
        # Outside the lock (the kernels release the GIL): the other requests' go on meanwhile.
        kinds = sc.metrics[:, wire.M_KIND]
        reason = points._point_reasons(
            pt, sc.entries, np.zeros(len(kinds), dtype=np.int64), kinds,
            self.limits.max_attributes, self.limits.max_key_bytes, self.limits.max_value_bytes,
        )  # fmt: skip
        if reason.any():
            return None
        offsets, data = self._identities(sc, metric_id)
        hashes = _hashes(offsets, data)
        refs = np.empty(len(pt), dtype=np.uint64)
        with self._lock:
            if generation != self._generation:  # metric numbers were given anew meanwhile
                return None
            found = _find(offsets, data, hashes, self._table, self._ent, self._count,
                          self._arena, refs)  # fmt: skip
            if found < len(pt):
                return None
            target = self._target_rows(sc, add=False)
        if target is None:
            return None
        value, ms = _values(pt, rows.STALE_NAN)
        if len(target[0]):
            refs = np.concatenate([refs, target[0]])
            ms = np.concatenate([ms, target[1]])
            value = np.concatenate([value, np.ones(len(target[0]))])
        table = pa.table({REF: refs, TIMESTAMP: ms, VALUE: value})
        return Rows(table=table, points=len(pt))

    def remember(self, sc: wire.Scan, converted: Converted) -> None:
        """Keep the gauge and cumulative-sum points of a request whose tables were just stored
        (a request with refused points is left out)."""
        from tsdb_arrow.ingest.series import row_refs

        floats = converted.floats
        if (converted.rejected_points or converted.errors or floats is None
                or converted.float_points is None):  # fmt: skip
            return
        tables = [t for t in (floats, converted.target_info) if t is not None]
        names = {n for t in tables for n in t.column_names} - {TIMESTAMP, VALUE}
        labels = [n for n in floats.column_names if n not in (TIMESTAMP, VALUE)]
        columns = {n: floats.column(n).combine_chunks() for n in labels}
        refs = row_refs(columns, floats.num_rows)
        pt = sc.points
        row_point = converted.float_points
        with self._lock:
            if (len(names | self._names) > self.limits.max_label_names
                    or max(len(self._metrics), len(self._targets)) >= MAX_METRICS):  # fmt: skip
                self._reset()
            self._names |= names
            metric_id = self._metric_ids(sc, add=True)
            assert metric_id is not None
            kept = metric_id[pt[row_point, P_METRIC]] >= 0
            point_refs = np.zeros(len(pt), dtype=np.uint64)
            point_refs[row_point[kept]] = refs[kept]
            chosen = row_point[kept]
            sub = pt[chosen]
            offsets, data = self._identities_of(sc.body, sub, sc.entries, metric_id)
            hashes = _hashes(offsets, data)
            if not self._make_room(len(chosen), len(data)):
                return
            self._count, self._used = _add(
                offsets, data, hashes, point_refs[chosen], self._table, self._ent, self._arena,
                self._count, self._used,
            )  # fmt: skip
            self._target_rows(sc, add=True)

    def _identities(self, sc: wire.Scan, metric_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._identities_of(sc.body, sc.points, sc.entries, metric_id)

    @staticmethod
    def _identities_of(
        body: np.ndarray, pt: np.ndarray, ent: np.ndarray, metric_id: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        offsets = _identity_sizes(pt, ent)
        return offsets, _identities(body, pt, ent, metric_id, offsets)

    def _metric_ids(self, sc: wire.Scan, *, add: bool) -> np.ndarray | None:
        """Per metric row its number (-1: not a gauge or cumulative sum, when ``add``); None
        when one is not remembered (one Python step per metric)."""
        met, scopes, res = sc.metrics, sc.scopes, sc.resources
        body = sc.body
        out = np.full(len(met), -1, dtype=np.int64)
        for m in range(len(met)):
            kind, temp = int(met[m, wire.M_KIND]), int(met[m, wire.M_TEMP])
            if not (kind == GAUGE or (kind == SUM and temp == points.CUMULATIVE)):
                if add:
                    continue
                return None
            s = int(met[m, M_SCOPE])
            r = int(scopes[s, wire.S_RES])
            key = (
                _bytes(body, res[r, wire.R_S], res[r, wire.R_E]),
                scopes[s, wire.S_S] >= 0,
                _bytes(body, scopes[s, wire.S_S], scopes[s, wire.S_E]),
                _bytes(body, scopes[s, wire.S_URL_S], scopes[s, wire.S_URL_E]),
                _bytes(body, met[m, wire.M_NAME_S], met[m, wire.M_NAME_E]),
                _bytes(body, met[m, wire.M_UNIT_S], met[m, wire.M_UNIT_E]),
                kind,
                temp if kind == SUM else 0,
                bool(met[m, wire.M_MONO]) if kind == SUM else False,
            )
            got = self._metrics.get(key)
            if got is None:
                if not add:
                    return None
                got = self._metrics[key] = len(self._metrics)
            out[m] = got
        return out

    def _target_rows(self, sc: wire.Scan, *, add: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """The target_info rows (refs, ms) of the request's resources; None when a resource
        with points is not remembered. ``add``: remember its target_info ref first."""
        from tsdb_arrow.ingest.otlp.convert import target_info_times

        pt, res, body = sc.points, sc.resources, sc.body
        row = sc.scopes[sc.metrics[pt[:, P_METRIC], M_SCOPE], wire.S_RES]
        first, last = rows.group_range(row, pt[:, P_TIME].copy(), len(res))  # C, as convert
        refs, stamps = [], []
        for r in np.flatnonzero(last >= 0).tolist():
            key = _bytes(body, res[r, wire.R_S], res[r, wire.R_E])
            ref = self._targets.get(key)
            if ref is None:
                if not add:
                    return None
                ref = self._targets[key] = self._target_ref(key)
            if ref >= 0:
                ts = target_info_times(first[r], last[r])
                stamps.append(ts)
                refs.append(np.full(len(ts), ref, dtype=np.uint64))
        if not refs:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        return np.concatenate(refs), np.concatenate(stamps)

    def _target_ref(self, resource: bytes) -> int:
        """The ref of a resource's target_info series, -1 when it has none."""
        from tsdb_arrow.ingest.series import row_refs

        labels = resource_labels(resource, self.promote).target_info
        if labels is None:
            return -1
        labels = {**labels, METRIC_NAME: TARGET_INFO}
        columns = {k: pa.array([v], type=pa.large_string()) for k, v in labels.items()}
        return int(row_refs(columns, 1)[0])

    def _make_room(self, entries: int, nbytes: int) -> bool:
        """Grow the tables for ``entries`` more entries and ``nbytes`` more bytes; past
        ``max_bytes`` start again (False when even that cannot hold them)."""
        count, used = self._count + entries, self._used + nbytes
        if _nbytes(count, used) > self.max_bytes:
            metrics, targets, names = self._metrics, self._targets, self._names
            self._reset()
            self._metrics, self._targets, self._names = metrics, targets, names
            count, used = entries, nbytes
            if _nbytes(count, used) > self.max_bytes:
                return False
        if count > len(self._ent):
            self._ent = _grown(self._ent, 1 << int(count).bit_length())
        if used > len(self._arena):
            self._arena = _grown(self._arena, 1 << int(used).bit_length())
        if 2 * count > len(self._table):
            self._table = np.full(1 << (int(2 * count).bit_length()), -1, dtype=np.int64)
            _rehash(self._table, self._ent, self._count)
        return True


def warm_up() -> None:
    """Load the kernel that only a growing memory calls (the others run on any request)."""
    _rehash(np.full(4, -1, dtype=np.int64), np.zeros((1, 4), dtype=np.uint64), 1)


def _bytes(body: np.ndarray, start: int, end: int) -> bytes:
    return bytes(body[max(int(start), 0) : max(int(end), 0)])


def _nbytes(count: int, used: int) -> int:
    """At most what the tables take for ``count`` entries and ``used`` arena bytes (each grows
    to a power of two: entries 32 bytes, 2 to 4 slots of 8 bytes, the arena up to twice)."""
    return count * 96 + 2 * used


def _grown(arr: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, *arr.shape[1:]), dtype=arr.dtype)
    out[: len(arr)] = arr
    return out
