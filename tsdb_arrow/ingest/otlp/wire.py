"""One numba pass over the protobuf bytes of an ``ExportMetricsServiceRequest``.

The request is walked down to its data points, attributes and bucket arrays without building a
message object: what comes out is a handful of flat int64 tables (resources, scopes, metrics,
data points, attribute entries) and two uint64 tables (bucket counts, and the bits of bounds and
quantiles), with byte ranges into the body for every string. Doubles are kept as their bits.

The walk accepts what protobuf parsers accept, with three ways out:

- ``ERROR``: the bytes are not a valid message (truncated, a length past its end, a bad varint,
  a string that is not UTF-8, field number 0). The caller asks the protobuf library for the
  verdict and its message.
- ``BAIL``: valid but outside what the walk handles: a group (deprecated wire types 3/4, only
  possible in unknown fields), or a non-repeated message field sent twice (protobuf merges the
  two). The caller re-encodes the request with the protobuf library, which writes each once.
- ``OVERFLOW``: a table is full; the caller grows it and walks again.

Fields not listed here (descriptions, exemplars, metadata, unknown fields) are skipped; their
strings are not checked for UTF-8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsdb_arrow.jit import njit

OK, ERROR, BAIL, OVERFLOW = 0, 1, 2, 3

# Metric kinds: the field number of the Metric's data oneof.
GAUGE, SUM, HISTOGRAM, EXPONENTIAL, SUMMARY = 5, 7, 9, 10, 11

# Counters (cnt) and the tables they count.
C_RES, C_SCOPE, C_MET, C_PT, C_ENT, C_U64, C_F64, C_TABLE = range(8)
N_TABLES = 7

# Resource table: the Resource message's byte range (-1 when absent).
R_S, R_E = 0, 1
# Scope table: its ResourceMetrics, the InstrumentationScope's range, the schema_url's range.
S_RES, S_S, S_E, S_URL_S, S_URL_E = range(5)
# Metric table.
M_SCOPE, M_NAME_S, M_NAME_E, M_UNIT_S, M_UNIT_E, M_KIND, M_TEMP, M_MONO, M_P0, M_P1 = range(10)
# Data point table (all kinds). Doubles are stored as their bits.
(P_METRIC, P_START, P_TIME, P_FLAGS, P_A0, P_A1, P_HAS, P_VALUE, P_COUNT, P_SUM, P_MIN, P_MAX,
 P_ZT, P_B0, P_B1, P_N0, P_N1, P_F0, P_F1, P_SCALE, P_POS_OFF, P_NEG_OFF,
 P_ZERO) = range(23)  # fmt: skip
P_COLS = 23
# P_HAS bits: which optional fields a point has.
H_DOUBLE, H_INT, H_SUM, H_MIN, H_MAX = 1, 2, 4, 8, 16
# Attribute entry table: its point, key range, value type, value range, number (int, bool, bits).
E_POINT, E_KEY_S, E_KEY_E, E_TYPE, E_VAL_S, E_VAL_E, E_NUM = range(7)
# AnyValue types, by their field number (0: no value).
V_NONE, V_STRING, V_BOOL, V_INT, V_DOUBLE, V_ARRAY, V_KVLIST, V_BYTES, V_STRINDEX = range(9)

_WIDTHS = (2, 5, 10, P_COLS, 7)  # columns of the res, scope, met, pt, ent tables


# The messages the walk descends into (its stack holds these).
(T_REQUEST, T_RESOURCE_METRICS, T_SCOPE_METRICS, T_METRIC, T_DATA, T_POINT, T_KEY_VALUE,
 T_ANY_VALUE, T_BUCKETS, T_QUANTILE) = range(10)  # fmt: skip


@njit(cache=True, nogil=True)
def _scan(buf, res, scope, met, pt, ent, u64, f64, cnt):  # noqa: C901 - one loop on purpose
    """Walk a whole ExportMetricsServiceRequest; returns OK, ERROR, BAIL or OVERFLOW.

    One loop reads one field at a time, with a stack of the open messages: numba counts the
    references of every array passed to a function, so the walk calls none.
    """
    for k in range(cnt.shape[0]):
        cnt[k] = 0
    n = buf.shape[0]
    typ = np.zeros(12, dtype=np.int64)
    ends = np.zeros(12, dtype=np.int64)
    depth = 0
    typ[0] = T_REQUEST
    ends[0] = n
    pos = 0
    r_res = r_scope = r_met = r_pt = r_ent = 0  # the open rows
    kind = 0  # the open metric's data kind
    f_attr = f_flags = f_min = f_max = -1  # field numbers of the open point's kind
    kv_value = False  # the open KeyValue had a value already
    av_kind = 0  # the open AnyValue's last message field
    seen_pos = seen_neg = False
    negative = False  # the open Buckets are the negative ones
    q_at = 0  # f64 index of the open ValueAtQuantile
    while True:
        if pos == ends[depth]:  # close the innermost message
            t = typ[depth]
            if t == T_REQUEST:
                return OK
            if t == T_METRIC:
                met[r_met, M_P1] = cnt[C_PT]
            elif t == T_POINT:
                pt[r_pt, P_A1] = cnt[C_ENT]
                pt[r_pt, P_F1] = cnt[C_F64]
            elif t == T_BUCKETS:
                pt[r_pt, P_N1 if negative else P_B1] = cnt[C_U64]
            depth -= 1
            continue
        end = ends[depth]
        t = typ[depth]
        # the tag
        tag = np.uint64(0)
        shift = 0
        while True:
            if pos >= end or shift > 63:
                return ERROR
            byte = buf[np.uint64(pos)]
            pos += 1
            tag |= np.uint64(byte & 0x7F) << np.uint64(shift)
            if byte < 0x80:
                break
            shift += 7
        if (tag >> np.uint64(3)) == 0 or tag > np.uint64(0xFFFFFFFF):
            return ERROR
        f = np.int64(tag >> np.uint64(3))
        wt = np.int64(tag & np.uint64(7))
        # the payload: v (varint or 64-bit), or the range [a, b)
        v = np.uint64(0)
        a = b = pos
        if wt == 0 or wt == 2:
            shift = 0
            while True:
                if pos >= end or shift > 63:
                    return ERROR
                byte = buf[np.uint64(pos)]
                pos += 1
                v |= np.uint64(byte & 0x7F) << np.uint64(shift)
                if byte < 0x80:
                    break
                shift += 7
            if wt == 2:
                if v > np.uint64(end - pos):
                    return ERROR
                a = pos
                b = pos + np.int64(v)
                pos = b
        elif wt == 1:
            if pos + 8 > end:
                return ERROR
            for k in range(8):
                v |= np.uint64(buf[np.uint64(pos + k)]) << np.uint64(8 * k)
            pos += 8
        elif wt == 5:
            if pos + 4 > end:
                return ERROR
            pos += 4
        elif wt == 3 or wt == 4:
            return BAIL  # a group: only in unknown fields
        else:
            return ERROR
        x = np.int64(v)
        push = -1  # a message to open over [a, b)
        utf8 = False  # [a, b) is a string to check
        packed = -1  # [a, b) holds packed fixed64 for u64 (C_U64) or f64 (C_F64)
        if t == T_REQUEST:
            if f == 1 and wt == 2:
                push = T_RESOURCE_METRICS
        elif t == T_RESOURCE_METRICS:
            if wt == 2 and f == 1:
                if res[r_res, R_S] >= 0:
                    return BAIL  # a second resource: protobuf merges the two
                res[r_res, R_S] = a
                res[r_res, R_E] = b
            elif wt == 2 and f == 2:
                push = T_SCOPE_METRICS
            elif wt == 2 and f == 3:
                utf8 = True
        elif t == T_SCOPE_METRICS:
            if wt == 2 and f == 1:
                if scope[r_scope, S_S] >= 0:
                    return BAIL
                scope[r_scope, S_S] = a
                scope[r_scope, S_E] = b
            elif wt == 2 and f == 2:
                push = T_METRIC
            elif wt == 2 and f == 3:
                utf8 = True
                scope[r_scope, S_URL_S] = a
                scope[r_scope, S_URL_E] = b
        elif t == T_METRIC:
            if wt == 2 and f <= 3:
                utf8 = True
                if f == 1:
                    met[r_met, M_NAME_S] = a
                    met[r_met, M_NAME_E] = b
                elif f == 3:
                    met[r_met, M_UNIT_S] = a
                    met[r_met, M_UNIT_E] = b
            elif wt == 2 and (f == GAUGE or f == SUM or f == HISTOGRAM or f == EXPONENTIAL
                              or f == SUMMARY):  # fmt: skip
                if met[r_met, M_KIND] != 0:
                    return BAIL  # two data fields: the last wins, or the same one merges
                met[r_met, M_KIND] = f
                kind = f
                push = T_DATA
        elif t == T_DATA:
            if f == 1 and wt == 2:
                push = T_POINT
            elif f == 2 and wt == 0 and kind != GAUGE and kind != SUMMARY:
                met[r_met, M_TEMP] = np.int64(v & np.uint64(0xFFFFFFFF))
            elif f == 3 and wt == 0 and kind == SUM:
                met[r_met, M_MONO] = np.int64(v != 0)
        elif t == T_POINT:
            number = kind == GAUGE or kind == SUM
            if f == f_attr and wt == 2:
                # The usual attribute, {key: "ascii", value: {string_value: "ascii"}} or
                # {int_value: n}, with one-byte lengths, is read here at once; anything else is
                # walked field by field.
                fast = 0  # V_STRING or V_INT when read here
                ks = ke = number = np.int64(0)
                if b - a >= 6 and buf[np.uint64(a)] == 0x0A and buf[np.uint64(a + 1)] < 0x80:
                    ks = a + 2
                    ke = ks + np.int64(buf[np.uint64(a + 1)])
                    if (
                        ke + 4 <= b
                        and buf[np.uint64(ke)] == 0x12
                        and buf[np.uint64(ke + 1)] == b - ke - 2
                    ):
                        bits = np.uint8(0)  # any byte >= 0x80: not ASCII
                        for k in range(np.uint64(ks), np.uint64(ke)):
                            bits |= buf[k]
                        inner = buf[np.uint64(ke + 2)]
                        if inner == 0x0A and buf[np.uint64(ke + 3)] == b - ke - 4:
                            for k in range(np.uint64(ke + 4), np.uint64(b)):
                                bits |= buf[k]
                            fast = V_STRING if bits < 0x80 else 0
                        elif inner == 0x18 and bits < 0x80:  # int_value, a varint to the end
                            w = np.uint64(0)
                            shift = 0
                            q = ke + 3
                            while q < b and shift <= 63:
                                byte = buf[np.uint64(q)]
                                q += 1
                                w |= np.uint64(byte & 0x7F) << np.uint64(shift)
                                if byte < 0x80:
                                    break
                                shift += 7
                            if q == b and buf[np.uint64(q - 1)] < 0x80:
                                fast = V_INT
                                number = np.int64(w)
                if fast:
                    r_ent = cnt[C_ENT]
                    if r_ent >= ent.shape[0]:
                        cnt[C_TABLE] = C_ENT
                        return OVERFLOW
                    cnt[C_ENT] = r_ent + 1
                    ent[r_ent, E_POINT] = r_pt
                    ent[r_ent, E_KEY_S] = ks
                    ent[r_ent, E_KEY_E] = ke
                    ent[r_ent, E_TYPE] = fast
                    ent[r_ent, E_VAL_S] = ke + 4 if fast == V_STRING else b
                    ent[r_ent, E_VAL_E] = b
                    ent[r_ent, E_NUM] = number
                else:
                    push = T_KEY_VALUE
            elif wt == 1 and 2 <= f <= 5:
                if f == 2:
                    pt[r_pt, P_START] = x
                elif f == 3:
                    pt[r_pt, P_TIME] = x
                elif f == 4 and number:  # as_double
                    pt[r_pt, P_VALUE] = x
                    pt[r_pt, P_HAS] = (pt[r_pt, P_HAS] & ~(H_DOUBLE | H_INT)) | H_DOUBLE
                elif f == 4:
                    pt[r_pt, P_COUNT] = x
                elif not number:  # sum
                    pt[r_pt, P_SUM] = x
                    pt[r_pt, P_HAS] |= H_SUM
            elif f == f_flags and wt == 0:
                pt[r_pt, P_FLAGS] = np.int64(v & np.uint64(0xFFFFFFFF))
            elif number and f == 6 and wt == 1:  # as_int
                pt[r_pt, P_VALUE] = x
                pt[r_pt, P_HAS] = (pt[r_pt, P_HAS] & ~(H_DOUBLE | H_INT)) | H_INT
            elif (f == f_min or f == f_max) and wt == 1:
                if f == f_min:
                    pt[r_pt, P_MIN] = x
                    pt[r_pt, P_HAS] |= H_MIN
                else:
                    pt[r_pt, P_MAX] = x
                    pt[r_pt, P_HAS] |= H_MAX
            elif kind == HISTOGRAM and (f == 6 or f == 7) and wt == 2:
                packed = C_U64 if f == 6 else C_F64
            elif kind == HISTOGRAM and f == 6 and wt == 1:  # one bucket count, not packed
                if cnt[C_U64] >= u64.shape[0]:
                    cnt[C_TABLE] = C_U64
                    return OVERFLOW
                u64[cnt[C_U64]] = v
                cnt[C_U64] += 1
                pt[r_pt, P_B1] = cnt[C_U64]
            elif kind == HISTOGRAM and f == 7 and wt == 1:  # one bound, not packed
                if cnt[C_F64] >= f64.shape[0]:
                    cnt[C_TABLE] = C_F64
                    return OVERFLOW
                f64[cnt[C_F64]] = v
                cnt[C_F64] += 1
            elif kind == EXPONENTIAL and f == 6 and wt == 0:  # scale, sint32
                z = np.int64(v & np.uint64(0xFFFFFFFF))
                pt[r_pt, P_SCALE] = (z >> 1) ^ -(z & 1)
            elif kind == EXPONENTIAL and f == 7 and wt == 1:
                pt[r_pt, P_ZERO] = x
            elif kind == EXPONENTIAL and f == 14 and wt == 1:
                pt[r_pt, P_ZT] = x
            elif kind == EXPONENTIAL and (f == 8 or f == 9) and wt == 2:
                negative = f == 9
                if seen_neg if negative else seen_pos:
                    return BAIL  # Buckets twice: protobuf merges them
                if negative:
                    seen_neg = True
                else:
                    seen_pos = True
                push = T_BUCKETS
            elif kind == SUMMARY and f == 6 and wt == 2:
                push = T_QUANTILE
        elif t == T_KEY_VALUE:
            if f == 1 and wt == 2:
                utf8 = True
                ent[r_ent, E_KEY_S] = a
                ent[r_ent, E_KEY_E] = b
            elif f == 2 and wt == 2:
                if kv_value:
                    return BAIL  # two values: protobuf merges them
                kv_value = True
                push = T_ANY_VALUE
        elif t == T_ANY_VALUE:
            if wt == 2 and (f == V_STRING or f == V_ARRAY or f == V_KVLIST or f == V_BYTES):
                if (f == V_ARRAY or f == V_KVLIST) and av_kind == f:
                    return BAIL
                av_kind = f
                utf8 = f == V_STRING
                ent[r_ent, E_TYPE] = f
                ent[r_ent, E_VAL_S] = a
                ent[r_ent, E_VAL_E] = b
            elif wt == 0 and (f == V_BOOL or f == V_INT or f == V_STRINDEX):
                ent[r_ent, E_TYPE] = f
                ent[r_ent, E_NUM] = np.int64(v != 0) if f == V_BOOL else x
            elif wt == 1 and f == V_DOUBLE:
                ent[r_ent, E_TYPE] = V_DOUBLE
                ent[r_ent, E_NUM] = x
        elif t == T_BUCKETS:
            if f == 1 and wt == 0:
                z = np.int64(v & np.uint64(0xFFFFFFFF))
                pt[r_pt, P_NEG_OFF if negative else P_POS_OFF] = (z >> 1) ^ -(z & 1)
            elif f == 2 and wt == 0:
                if cnt[C_U64] >= u64.shape[0]:
                    cnt[C_TABLE] = C_U64
                    return OVERFLOW
                u64[cnt[C_U64]] = v
                cnt[C_U64] += 1
            elif f == 2 and wt == 2:  # packed varints
                p = a
                while p < b:
                    w = np.uint64(0)
                    shift = 0
                    while True:
                        if p >= b or shift > 63:
                            return ERROR
                        byte = buf[np.uint64(p)]
                        p += 1
                        w |= np.uint64(byte & 0x7F) << np.uint64(shift)
                        if byte < 0x80:
                            break
                        shift += 7
                    if cnt[C_U64] >= u64.shape[0]:
                        cnt[C_TABLE] = C_U64
                        return OVERFLOW
                    u64[cnt[C_U64]] = w
                    cnt[C_U64] += 1
        elif t == T_QUANTILE:
            if wt == 1 and (f == 1 or f == 2):
                f64[q_at + f - 1] = v
        if utf8:
            i = a
            while i < b:
                c = buf[np.uint64(i)]
                if c < 0x80:
                    i += 1
                    continue
                if 0xC2 <= c <= 0xDF:
                    m = 1
                elif 0xE0 <= c <= 0xEF:
                    m = 2
                elif 0xF0 <= c <= 0xF4:
                    m = 3
                else:
                    return ERROR
                if i + m >= b:
                    return ERROR
                c1 = buf[np.uint64(i + 1)]
                if c1 < 0x80 or c1 > 0xBF:
                    return ERROR
                if (c == 0xE0 and c1 < 0xA0) or (c == 0xED and c1 > 0x9F):
                    return ERROR
                if (c == 0xF0 and c1 < 0x90) or (c == 0xF4 and c1 > 0x8F):
                    return ERROR
                for k in range(2, m + 1):
                    if buf[np.uint64(i + k)] < 0x80 or buf[np.uint64(i + k)] > 0xBF:
                        return ERROR
                i += m + 1
        if packed >= 0:
            if (b - a) % 8:
                return ERROR
            count = (b - a) // 8
            out = u64 if packed == C_U64 else f64
            if cnt[packed] + count > out.shape[0]:
                cnt[C_TABLE] = packed
                return OVERFLOW
            for j in range(count):
                w = np.uint64(0)
                for k in range(8):
                    w |= np.uint64(buf[np.uint64(a + 8 * j + k)]) << np.uint64(8 * k)
                out[cnt[packed] + j] = w
            cnt[packed] += count
            if packed == C_U64:
                pt[r_pt, P_B1] = cnt[C_U64]
        if push < 0:
            continue
        # open a message: its row first
        if push == T_RESOURCE_METRICS:
            r_res = cnt[C_RES]
            if r_res >= res.shape[0]:
                cnt[C_TABLE] = C_RES
                return OVERFLOW
            cnt[C_RES] = r_res + 1
            res[r_res, R_S] = -1
            res[r_res, R_E] = -1
        elif push == T_SCOPE_METRICS:
            r_scope = cnt[C_SCOPE]
            if r_scope >= scope.shape[0]:
                cnt[C_TABLE] = C_SCOPE
                return OVERFLOW
            cnt[C_SCOPE] = r_scope + 1
            scope[r_scope, S_RES] = r_res
            scope[r_scope, S_S] = -1
            scope[r_scope, S_E] = -1
            scope[r_scope, S_URL_S] = a
            scope[r_scope, S_URL_E] = a
        elif push == T_METRIC:
            r_met = cnt[C_MET]
            if r_met >= met.shape[0]:
                cnt[C_TABLE] = C_MET
                return OVERFLOW
            cnt[C_MET] = r_met + 1
            met[r_met, M_SCOPE] = r_scope
            met[r_met, M_NAME_S] = a
            met[r_met, M_NAME_E] = a
            met[r_met, M_UNIT_S] = a
            met[r_met, M_UNIT_E] = a
            met[r_met, M_KIND] = 0
            met[r_met, M_TEMP] = 0
            met[r_met, M_MONO] = 0
            met[r_met, M_P0] = cnt[C_PT]
            met[r_met, M_P1] = cnt[C_PT]
            kind = 0
        elif push == T_POINT:
            r_pt = cnt[C_PT]
            if r_pt >= pt.shape[0]:
                cnt[C_TABLE] = C_PT
                return OVERFLOW
            cnt[C_PT] = r_pt + 1
            for k in range(P_COLS):
                pt[r_pt, k] = 0
            pt[r_pt, P_METRIC] = r_met
            pt[r_pt, P_A0] = cnt[C_ENT]
            pt[r_pt, P_B0] = pt[r_pt, P_B1] = pt[r_pt, P_N0] = pt[r_pt, P_N1] = cnt[C_U64]
            pt[r_pt, P_F0] = cnt[C_F64]
            if kind == HISTOGRAM:
                f_attr, f_flags, f_min, f_max = 9, 10, 11, 12
            elif kind == EXPONENTIAL:
                f_attr, f_flags, f_min, f_max = 1, 10, 12, 13
            else:
                f_attr, f_flags, f_min, f_max = 7, 8, -1, -1
            seen_pos = seen_neg = False
        elif push == T_KEY_VALUE:
            r_ent = cnt[C_ENT]
            if r_ent >= ent.shape[0]:
                cnt[C_TABLE] = C_ENT
                return OVERFLOW
            cnt[C_ENT] = r_ent + 1
            ent[r_ent, E_POINT] = r_pt
            ent[r_ent, E_KEY_S] = a
            ent[r_ent, E_KEY_E] = a
            ent[r_ent, E_TYPE] = V_NONE
            ent[r_ent, E_VAL_S] = a
            ent[r_ent, E_VAL_E] = a
            ent[r_ent, E_NUM] = 0
            kv_value = False
        elif push == T_ANY_VALUE:
            av_kind = 0
        elif push == T_BUCKETS:
            pt[r_pt, P_N0 if negative else P_B0] = cnt[C_U64]
            pt[r_pt, P_N1 if negative else P_B1] = cnt[C_U64]
        elif push == T_QUANTILE:
            q_at = cnt[C_F64]
            if q_at + 2 > f64.shape[0]:
                cnt[C_TABLE] = C_F64
                return OVERFLOW
            f64[q_at] = 0
            f64[q_at + 1] = 0
            cnt[C_F64] = q_at + 2
        depth += 1
        typ[depth] = push
        ends[depth] = b
        pos = a


@dataclass(frozen=True)
class Scan:
    """The tables of one walked request (views of the filled rows)."""

    body: np.ndarray  # uint8, the request bytes
    resources: np.ndarray  # int64 (n, 2)
    scopes: np.ndarray  # int64 (n, 5)
    metrics: np.ndarray  # int64 (n, 10)
    points: np.ndarray  # int64 (n, P_COLS)
    entries: np.ndarray  # int64 (n, 7)
    counts: np.ndarray  # uint64 bucket counts
    floats: np.ndarray  # float64 bounds, and (quantile, value) pairs of summaries

    def text(self, start: int, end: int) -> str:
        """The UTF-8 string at body[start:end] (checked by the walk)."""
        return bytes(self.body[start:end]).decode("utf-8")


def scan(body: np.ndarray) -> tuple[int, Scan | None]:
    """Walk ``body`` (uint8); returns (OK, tables) or (ERROR or BAIL, None)."""
    n = len(body)
    caps = [16, 16, 64, max(64, n // 32), max(64, n // 12), max(64, n // 16), max(64, n // 16)]
    cnt = np.zeros(8, dtype=np.int64)
    while True:
        tables = [np.empty((caps[i], _WIDTHS[i]), dtype=np.int64) for i in range(5)]
        u64 = np.empty(caps[C_U64], dtype=np.uint64)
        f64 = np.empty(caps[C_F64], dtype=np.uint64)
        status = _scan(body, *tables, u64, f64, cnt)
        if status != OVERFLOW:
            break
        full = int(cnt[C_TABLE])
        caps[full] *= 4
    if status != OK:
        return status, None
    res, scope, met, pt, ent = (t[: cnt[i]] for i, t in enumerate(tables))
    return OK, Scan(
        body=body,
        resources=res,
        scopes=scope,
        metrics=met,
        points=pt,
        entries=ent,
        counts=u64[: cnt[C_U64]],
        floats=f64[: cnt[C_F64]].view(np.float64),
    )
