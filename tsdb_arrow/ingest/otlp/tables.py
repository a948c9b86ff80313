"""Label columns for the converted rows: attribute names and values, contexts, Arrow columns.

Strings made during a conversion (metric names, formatted numbers, resource and scope labels)
go to one side buffer (``Pool``); attribute strings are read from the request body in place.
Each label column is built by one ``labels.column`` pass over the rows of its table.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1 import common_pb2

from tsdb_arrow.errors import OtlpDecodeError
from tsdb_arrow.ingest.otlp import labels, wire
from tsdb_arrow.ingest.otlp.context import ResourceLabels, resource_labels, scope_labels
from tsdb_arrow.ingest.otlp.labels import C_LABEL
from tsdb_arrow.ingest.otlp.names import any_value_string, format_double, stored_label_name
from tsdb_arrow.ingest.otlp.wire import (
    E_KEY_E,
    E_KEY_S,
    E_NUM,
    E_POINT,
    E_TYPE,
    E_VAL_E,
    E_VAL_S,
    V_ARRAY,
    V_BOOL,
    V_BYTES,
    V_DOUBLE,
    V_INT,
    V_KVLIST,
    V_STRING,
)
from tsdb_arrow.jit import njit

BODY, SIDE = 0, 1


class Pool:
    """The side buffer: strings made during one conversion, each distinct one stored once."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._seen: dict[str, tuple[int, int]] = {}

    def text(self, value: str) -> tuple[int, int]:
        """(start, end) of ``value``'s UTF-8 bytes in the side buffer."""
        ref = self._seen.get(value)
        if ref is None:
            start = self.raw(value.encode())
            ref = self._seen[value] = (start, self._size)
        return ref

    def texts(self, values: list[str]) -> np.ndarray:
        """(start, end) of each of ``values`` (not deduplicated): int64 (n, 2)."""
        encoded = [v.encode() for v in values]
        ends = np.cumsum([len(b) for b in encoded], dtype=np.int64) + self._size
        refs = np.empty((len(values), 2), dtype=np.int64)
        refs[:, 1] = ends
        refs[:, 0] = ends - [len(b) for b in encoded]
        self.raw(b"".join(encoded))
        return refs

    @property
    def size(self) -> int:
        return self._size

    def raw(self, data: bytes) -> int:
        """Append bytes; returns where they start."""
        start = self._size
        self._parts.append(data)
        self._size += len(data)
        return start

    def buffer(self) -> np.ndarray:
        return np.frombuffer(b"".join(self._parts), dtype=np.uint8) if self._size else _EMPTY


_EMPTY = np.zeros(1, dtype=np.uint8)


class LabelNames:
    """Label names of one conversion, numbered in order of first appearance."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._ids: dict[str, int] = {}

    def id(self, name: str) -> int:
        got = self._ids.get(name)
        if got is None:
            got = self._ids[name] = len(self.names)
            self.names.append(name)
        return got

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Keys:
    """The attribute keys of a request: each entry's key id, and per key id its label."""

    entry_key: np.ndarray  # int64 per entry
    label: np.ndarray  # int64 per key id: its label id (-1: no label, the key is refused)
    rank: np.ndarray  # int64 per key id: its position in key order (collisions join by it)


@dataclass(frozen=True)
class Attributes:
    """The accepted attributes, listed per label (see ``labels.group_attributes``): label L's
    are rows ``ptr[L]:ptr[L + 1]`` of ``items``, by point."""

    ptr: np.ndarray
    items: np.ndarray  # int64 (n, 4): data point, then the value's source, start, end
    point: np.ndarray  # the data points again, contiguous


def attribute_keys(sc: wire.Scan, names: LabelNames, ok: np.ndarray) -> Keys:
    """Number the distinct keys of the ``ok`` points (one Python step per distinct key) and
    name their labels; the entries of other points get key -1."""
    ent = sc.entries
    keep = ok[ent[:, E_POINT]]
    entry_key, first = labels.intern_ranges(sc.body, ent, E_KEY_S, E_KEY_E, E_POINT, keep)
    keys = [sc.text(ent[i, E_KEY_S], ent[i, E_KEY_E]) for i in first]
    label = np.array([names.id(n) if (n := stored_label_name(k)) else -1 for k in keys],
                     dtype=np.int64)  # fmt: skip
    rank = np.empty(len(keys), dtype=np.int64)
    rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
    return Keys(entry_key=entry_key, label=label, rank=rank)


@njit(cache=True, nogil=True)
def _entry_values(ent, chosen, true_ref, false_ref, side_at):
    """The point and the label value (source, start, end) of each chosen entry, for strings,
    booleans and integers (integers formatted into the returned bytes, which go to the side
    buffer at ``side_at``); the other chosen entries (doubles, bytes, arrays, maps) are listed,
    by position, for the caller."""
    n = chosen.shape[0]
    items = np.zeros((n, 4), dtype=np.int64)
    point = np.empty(n, dtype=np.int64)
    text = np.empty(20 * n, dtype=np.uint8)
    digits = np.empty(20, dtype=np.uint8)
    others = np.empty(n, dtype=np.int64)
    n_others = 0
    at = 0
    for i in range(n):
        e = np.uint64(chosen[i])
        p = ent[e, E_POINT]
        point[i] = p
        items[i, 0] = p
        items[i, 1] = SIDE  # no value: ""
        t = ent[e, E_TYPE]
        if t == V_STRING:
            items[i, 1] = BODY
            items[i, 2] = ent[e, E_VAL_S]
            items[i, 3] = ent[e, E_VAL_E]
        elif t == V_BOOL:
            ref = true_ref if ent[e, E_NUM] else false_ref
            items[i, 2] = ref[0]
            items[i, 3] = ref[1]
        elif t == V_INT:
            v = ent[e, E_NUM]
            # magnitude as uint64 (-(2**63) has no int64 magnitude)
            m = np.uint64(-(v + 1)) + np.uint64(1) if v < 0 else np.uint64(v)
            k = 0
            while True:
                digits[k] = np.uint8(48 + m % np.uint64(10))
                m //= np.uint64(10)
                k += 1
                if m == 0:
                    break
            items[i, 2] = side_at + at
            if v < 0:
                text[at] = 45  # '-'
                at += 1
            for q in range(k - 1, -1, -1):
                text[at] = digits[q]
                at += 1
            items[i, 3] = side_at + at
        elif t == V_DOUBLE or t == V_BYTES or t == V_ARRAY or t == V_KVLIST:
            others[n_others] = i
            n_others += 1
    return items, point, text[:at], others[:n_others]


def entry_values(sc: wire.Scan, ptr: np.ndarray, chosen: np.ndarray, pool: Pool) -> Attributes:
    """The label values of the ``chosen`` entries (listed per label by ``ptr``).

    Strings are read in place, booleans and integers made by a kernel; doubles are formatted
    once per distinct value, bytes, arrays and maps one by one.
    """
    ent = sc.entries
    true_ref = np.array(pool.text("true"), dtype=np.int64)
    false_ref = np.array(pool.text("false"), dtype=np.int64)
    items, point, text, others = _entry_values(ent, chosen, true_ref, false_ref, pool.size)
    if len(text):
        pool.raw(text.tobytes())
    if len(others):
        kind = ent[chosen[others], E_TYPE]
        doubles = others[kind == V_DOUBLE]
        if len(doubles):
            distinct, inverse = np.unique(ent[chosen[doubles], E_NUM], return_inverse=True)
            refs = np.array([pool.text(format_double(x)) for x in distinct.view(np.float64)])
            items[doubles, 2:] = refs[inverse.reshape(-1)]
        for i in others[kind != V_DOUBLE]:
            items[i, 2:] = pool.text(_other_value(sc, int(chosen[i])))
    return Attributes(ptr=ptr, items=items, point=point)


def _other_value(sc: wire.Scan, i: int) -> str:
    """Bytes, array and map values as label text (rare: one Python step each)."""
    ent = sc.entries
    data = bytes(sc.body[ent[i, E_VAL_S] : ent[i, E_VAL_E]])
    kind = ent[i, E_TYPE]
    if kind == V_BYTES:
        return base64.b64encode(data).decode("ascii")
    try:
        if kind == V_ARRAY:
            value = common_pb2.AnyValue(array_value=common_pb2.ArrayValue.FromString(data))
        else:
            value = common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList.FromString(data))
    except DecodeError as exc:
        raise OtlpDecodeError(f"the OTLP request is not valid protobuf: {exc}") from None
    return any_value_string(value)


@dataclass(frozen=True)
class Contexts:
    """Labels each context (a resource and scope, or a resource's target_info) sets.

    Context c's items are rows ``ptr[c]:ptr[c + 1]`` of ``items``: a label id, whether it
    overrides attributes (else it is a promoted attribute), and its value (source, start, end).
    """

    ptr: np.ndarray
    items: np.ndarray  # int64 (n, 5)


@dataclass(frozen=True)
class Scopes:
    """The context of each scope row, and each resource row's target_info context (-1)."""

    scope_ctx: np.ndarray  # int64 per scope row
    resource_id: np.ndarray  # int64 per resource row: its distinct resource
    target_ctx: np.ndarray  # int64 per distinct resource: its target_info context, or -1
    contexts: Contexts
    dropped_targets: int  # resources whose target_info was left out (too many label names)


def scope_contexts(
    sc: wire.Scan, names: LabelNames, pool: Pool, promote: frozenset[str], max_labels: int
) -> Scopes:
    """Decode each distinct resource and scope once and lay out their labels."""
    res, scope = sc.resources, sc.scopes
    res = np.maximum(res, 0)  # absent (-1) as the empty range
    res_id, res_first = labels.intern_ranges(sc.body, res, wire.R_S, wire.R_E)
    resources = [_resource(sc, res[i, wire.R_S], res[i, wire.R_E], promote) for i in res_first]
    ranges = np.maximum(scope, 0)
    sco_id, _ = labels.intern_ranges(sc.body, ranges, wire.S_S, wire.S_E)
    url_id, _ = labels.intern_ranges(sc.body, ranges, wire.S_URL_S, wire.S_URL_E)
    scope_resource = res_id[scope[:, wire.S_RES]]
    first, inverse = distinct_rows(scope_resource, sco_id, url_id)
    items: list[list[tuple[int, bool, tuple[int, int]]]] = []
    for row in first:
        message = None
        if scope[row, wire.S_S] >= 0:
            message = bytes(sc.body[ranges[row, wire.S_S] : ranges[row, wire.S_E]])
        url = sc.text(scope[row, wire.S_URL_S], scope[row, wire.S_URL_E])
        resource = resources[int(scope_resource[row])]
        over = _decoded(scope_labels, message, url)
        over.update(resource.identity)
        ctx = [(names.id(k), True, pool.text(v)) for k, v in over.items()]
        ctx += [(names.id(k), False, pool.text(v)) for k, v in resource.promoted.items()]
        items.append(ctx)
    target_ctx = np.full(len(resources), -1, dtype=np.int64)
    target_names: set[str] = set()
    dropped = 0
    for r, resource in enumerate(resources):
        if resource.target_info is None:
            continue
        grown = target_names | resource.target_info.keys()
        if len(grown) > max_labels + 2:  # job and instance come on top
            dropped += 1
            continue
        target_names = grown
        target_ctx[r] = len(items)
        items.append([(names.id(k), True, pool.text(v)) for k, v in resource.target_info.items()])
    return Scopes(
        scope_ctx=inverse,
        resource_id=res_id,
        target_ctx=target_ctx,
        contexts=_csr(items),
        dropped_targets=dropped,
    )


def _resource(sc: wire.Scan, start: int, end: int, promote: frozenset[str]) -> ResourceLabels:
    return _decoded(resource_labels, bytes(sc.body[start:end]), promote)


def _decoded(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except DecodeError as exc:
        raise OtlpDecodeError(f"the OTLP request is not valid protobuf: {exc}") from None


def _csr(items: list[list[tuple[int, bool, tuple[int, int]]]]) -> Contexts:
    ptr = np.zeros(len(items) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(i) for i in items])
    flat = [(label, over, SIDE, *ref) for ctx in items for label, over, ref in ctx]
    return Contexts(ptr=ptr, items=np.array(flat, dtype=np.int64).reshape(-1, 5))


def label_columns(
    row_point: np.ndarray,
    row_ctx: np.ndarray,
    own: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
    attributes: Attributes,
    contexts: Contexts,
    names: LabelNames,
    sc: wire.Scan,
    side: np.ndarray,
) -> dict[str, pa.Array]:
    """The label columns (large_string, null = absent) of rows from points and contexts.

    ``own`` maps a label id to the rows' own values, (source, start, end) per row (source -1:
    none). Only labels that some row has get a column; the columns share one data buffer.
    """
    n = len(row_point)
    n_labels = len(attributes.ptr) - 1
    used = np.zeros(n_labels, dtype=bool)
    used[list(own)] = True
    points = row_point[row_point >= 0]
    if len(points) and len(attributes.items):
        here = np.zeros(len(sc.points), dtype=bool)
        here[points] = True
        listed = np.repeat(np.arange(n_labels), np.diff(attributes.ptr))
        used[listed[here[attributes.point]]] = True
    if len(contexts.items):
        here = np.zeros(len(contexts.ptr) - 1, dtype=bool)
        here[row_ctx] = True
        item_ctx = np.repeat(np.arange(len(here)), np.diff(contexts.ptr))
        used[contexts.items[here[item_ctx], C_LABEL]] = True
    wanted = np.array(sorted(np.flatnonzero(used), key=names.names.__getitem__), dtype=np.int64)
    own_slot = np.full(n_labels, -1, dtype=np.int64)
    own_rows = np.zeros((len(own), 3, n), dtype=np.int64)
    for slot, (label, refs) in enumerate(own.items()):
        own_slot[label] = slot
        for k in range(3):
            own_rows[slot, k] = refs[k]
    offsets, valid, data, nulls = labels.columns(
        wanted, own_slot, own_rows, row_point, row_ctx, contexts.ptr, contexts.items,
        attributes.ptr, attributes.items, sc.body, side,
    )  # fmt: skip
    data_buffer = pa.py_buffer(data)
    out = {}
    for w, label in enumerate(wanted):
        if nulls[w] == n:
            continue
        out[names.names[label]] = pa.LargeStringArray.from_buffers(
            n,
            pa.py_buffer(offsets[w]),
            data_buffer,
            pa.py_buffer(valid[w]) if nulls[w] else None,
            int(nulls[w]),
        )
    return out


def distinct_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of non-negative int columns: (first row of each, id of each row)."""
    inverse = np.zeros(len(columns[0]), dtype=np.int64)
    first = np.zeros(0, dtype=np.int64)
    radix = [int(col.max(initial=0)) + 1 for col in columns]
    if math.prod(radix) < 2**62:  # one mixed-radix key, first column most significant
        key = inverse
        for col, r in zip(columns, radix):
            key = key * r + col
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return first, inverse.reshape(-1).astype(np.int64)
    for col in columns:
        key = inverse * (int(col.max(initial=0)) + 1) + col
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1).astype(np.int64)
    return first, inverse


def ramp(sizes: np.ndarray) -> np.ndarray:
    """0..size-1 for each size, concatenated."""
    total = int(sizes.sum())
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(total, dtype=np.int64) - starts
