"""Label sets a write already admitted, so that a batch repeating them skips series resolution.

A live feed (OTLP, remote write) sends the same series request after request. The first write of
a label set resolves it the full way (distinct sets, ref, UTF-8 and metric-name checks, the
index's collision check) and then remembers its canonical bytes here: for each present label in
name order, ``name 0xFF value 0xFF`` (the bytes its ref hashes). A later row is a hit only if
its ref is remembered and its own labels equal those bytes exactly, label by label, with no
0xFF inside a name or value (which valid UTF-8 never has: a value holding ``0xFF b 0xFF``
cannot pass for two labels), so a hit stands for exactly the label set that passed every check
before. A bulk load written in batches repeats its series too, over many rows in any order:
its long batches are looked up column by column (``KnownSeries._search_columns``).

Entries are added only after their write succeeded, and the index never forgets a series, so
every remembered label set is in the index. The memory is bounded (``max_bytes``): when full it
is emptied and refills from the writes that follow.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa

from tsdb_arrow.ingest import split
from tsdb_arrow.ingest.labelsets import chunks_of, present_chunks, string_buffers
from tsdb_arrow.jit import njit
from tsdb_arrow.model import REF, SEPARATOR
from tsdb_arrow.prefetch import prefetch
from tsdb_arrow.words import last_word, load_word, mix_bytes, same_bytes

MAX_BYTES = 64 * 2**20  # arena, entries and hash table together
# Rows are looked up one by one (``_find``) in batches of up to twice this many rows; longer
# batches are probed with this many rows first, then looked up column by column, which reads
# only present labels and, past a few hundred rows, costs less per row whatever their order
# (node-exporter rows of 38 label columns: 60 ns a row in series order, 110 shuffled, against
# 200-300 one by one; 3 label columns: 50-75 against 105-155).
PROBE_ROWS = 512
# What ``_find`` answers.
_MISS, _DISTINCT, _FOUND, _UNORDERED = 0, 1, 2, 3
#: Rows in a row whose guesses (the previous row's entry and the one after it) missed, after
#: which ``_find`` stops guessing.
GUESS_MISSES = 8
#: How many rows ahead ``_find``, while not guessing, asks for a row's table slot, its entry
#: and its bytes (each step reads what the one before brought in); the key ring's size.
_AHEAD_SLOT = 12
_AHEAD_ENTRY = 8
_AHEAD_BYTES = 4
_AHEAD_RING = 16
_MIN_SLOTS = 1 << 12
_MIN_ARENA = 1 << 16
_NO_BYTES = np.zeros(0, dtype=np.uint8)
_NO_VALID = np.ones((0, 0), dtype=np.bool_)
_SEP = np.uint8(SEPARATOR)
_KEY_SEED = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True)
def _name_keys(names, name_end):
    """Each label name's bytes mixed, once per call: a row's key mixes in its names' keys."""
    out = np.empty(name_end.shape[0] - 1, dtype=np.uint64)
    for c in range(out.shape[0]):
        out[c] = mix_bytes(_KEY_SEED, names, name_end[c], name_end[c + 1])
    return out


@njit(cache=True, nogil=True, inline="always")
def _row_key(offsets, data, has_valid, valid, name_keys, i):
    """The memory's key of row ``i``: its present names' keys and values mixed in order."""
    x = _KEY_SEED
    for c in range(offsets.shape[0]):
        s = offsets[c, i]
        e = offsets[c, i + 1]
        if e == s or (has_valid and not valid[c, i]):
            continue
        x = mix_bytes(x ^ name_keys[c], data, s, e)
    return x


@njit(cache=True, nogil=True)
def _row_keys(offsets, data, has_valid, valid, names, name_end, rows):
    """The memory's key of each row of ``rows``, as ``_find`` computes it."""
    name_keys = _name_keys(names, name_end)
    out = np.empty(rows.shape[0], dtype=np.uint64)
    for r in range(rows.shape[0]):
        out[r] = _row_key(offsets, data, has_valid, valid, name_keys, rows[r])
    return out


@njit(cache=True, nogil=True)
def _find(offsets, data, has_valid, valid, names, name_end, table, entry_keys, entry_refs,
          start, arena, count, refs, entries, stop_at_miss, stamp, batch, probe_rows):  # fmt: skip
    """Each row's entry (-1: its label set is not remembered) into ``entries``.

    Candidates, in order: the previous row's entry (the same series again), the entry after it
    (a feed sends its series in the order they were remembered), then the entries of the
    row's key in the hash table (``mix_bytes`` over its present names and values, as
    ``_row_keys`` keys an entry). The first whose bytes match is the row's entry; the guesses
    save hashing the row. A row found gets its entry's series ref in ``refs`` (equal bytes:
    the same label set, so the same ref). ``stop_at_miss``: return ``_MISS`` at the first row
    not found, and ``_UNORDERED`` after the first ``probe_rows`` rows (of a batch that has so
    many) if a guess found fewer than half of them (a lookup column by column is cheaper
    then). Otherwise returns ``_DISTINCT`` when no two rows share an entry, ``_FOUND`` when
    some do (an entry's ``stamp`` is set to ``batch`` when a row finds it). The comparison is
    written out: numba's inlined calls ran several times slower there.
    """
    repeats = 0
    in_order = 0  # rows a guess found or would have found
    mask = table.shape[0] - 1
    n_cols = offsets.shape[0]
    last = -2
    # Rows in no remembered order (shuffled) miss both guesses, and a miss can compare most of
    # a row's bytes first: after GUESS_MISSES rows whose guesses missed in a row, rows go
    # straight to the hash, until a row's entry shows that a guess would have found it.
    guessing = True
    missed = 0
    name_keys = _name_keys(names, name_end)
    n = entries.shape[0]
    # While not guessing, the rows ahead are keyed early (into ``ahead``, by row number modulo
    # its size) and their table slot, entry and bytes asked for in three steps, so that each
    # row's loads are mostly in cache when its turn comes (see ``tsdb_arrow.prefetch``).
    ahead = np.empty(_AHEAD_RING, dtype=np.uint64)
    keyed = 0  # rows below this one have their key in ``ahead``
    for i in range(n):
        if not guessing:
            keyed = max(keyed, i)
            while keyed < n and keyed <= i + _AHEAD_SLOT:
                key = _row_key(offsets, data, has_valid, valid, name_keys, keyed)
                ahead[keyed & (_AHEAD_RING - 1)] = key
                prefetch(table, np.int64(key & np.uint64(mask)))
                keyed += 1
            j = i + _AHEAD_ENTRY
            if j < keyed:
                entry = table[np.int64(ahead[j & (_AHEAD_RING - 1)] & np.uint64(mask))]
                if entry >= 0:
                    prefetch(entry_keys, entry)
                    prefetch(start, entry)
            j = i + _AHEAD_BYTES
            if j < keyed:
                entry = table[np.int64(ahead[j & (_AHEAD_RING - 1)] & np.uint64(mask))]
                if entry >= 0:
                    prefetch(arena, start[entry])
        found = -1
        stage = 0 if guessing else 2  # 0, 1: the guesses; 2: hash the row; 3: probe the table
        slot = 0
        key = np.uint64(0)
        while True:
            if stage < 2:
                entry = last + stage
                stage += 1
                if entry < 0 or entry >= count:
                    continue
            else:
                if stage == 2:
                    stage = 3
                    if i < keyed:
                        key = ahead[i & (_AHEAD_RING - 1)]
                    else:
                        key = _row_key(offsets, data, has_valid, valid, name_keys, i)
                    slot = np.int64(key & np.uint64(mask))
                entry = table[slot]
                if entry < 0:
                    break
                slot = (slot + 1) & mask
                if entry_keys[entry] != key:
                    continue
            # The same label set only if the bytes match label by label.
            p = start[entry]
            end = start[entry + 1]
            same = True
            for c in range(n_cols):
                s = offsets[c, i]
                e = offsets[c, i + 1]
                if e == s or (has_valid and not valid[c, i]):
                    continue
                n0 = name_end[c]
                nlen = name_end[c + 1] - n0
                length = e - s
                # The remembered name and value hold no 0xFF, so equal bytes without one, then
                # the separator, mean this very name and value.
                if (
                    p + nlen + length + 2 > end
                    or arena[p + nlen] != _SEP
                    or arena[p + nlen + 1 + length] != _SEP
                ):
                    same = False
                    break
                for k in range(nlen):
                    if arena[p + k] != names[n0 + k] or names[n0 + k] == _SEP:
                        same = False
                        break
                p += nlen + 1
                for k in range(length):
                    if arena[p + k] != data[s + k] or data[s + k] == _SEP:
                        same = False
                        break
                if not same:
                    break
                p += length + 1
            if same and p == end:
                found = entry
                break
        entries[i] = found
        if found >= 0 and (found == last or found == last + 1):
            guessing, missed = True, 0  # a guess finds (or would have found) this row
            in_order += 1
        elif guessing and last >= 0:
            missed += 1
            guessing = missed < GUESS_MISSES
        last = found if found >= 0 else -2
        if found < 0:
            if stop_at_miss:
                return _MISS
            continue
        refs[i] = entry_refs[found]
        if stamp[found] == batch:
            repeats += 1
        else:
            stamp[found] = batch
        if stop_at_miss and i == probe_rows - 1 and 2 * in_order < probe_rows:
            return _UNORDERED
    return _DISTINCT if repeats == 0 else _FOUND


# For each validity byte: its set bits' positions (then zeros) and how many there are.
_BIT_POSITIONS = np.array(
    [[j for j in range(8) if b >> j & 1] + [0] * (8 - b.bit_count()) for b in range(256)],
    dtype=np.int64,
)
_BIT_COUNT = np.array([b.bit_count() for b in range(256)], dtype=np.int64)
#: Room ``_key_column`` needs in ``rows`` past the column's present values.
ROWS_SLACK = 8
_BYTES = np.uint64(0x0101010101010101)
_HIGH_BITS = np.uint64(0x8080808080808080)


@njit(cache=True, nogil=True)
def _key_column(valid, has_valid, offsets, base, data, name_key, keys, rows, spans):
    """Mix one label (its name's key, then its value) into the key of each row of the column
    whose value is present and not empty: a column's share of ``_row_key``, so that keying
    the columns in name order gives ``_row_key``. Those rows go into ``rows`` (which has
    ``ROWS_SLACK`` more slots than the column has valid values) and their values' bounds in
    ``data`` into ``spans`` (the comparison then reads them in order, not the offsets at
    scattered rows again); returns how many.

    A column with nulls first lists its valid rows a validity byte at a time without a
    branch per bit (every byte writes eight slots, the count moves by its set bits): visiting
    the set bits of a sparse column in no order mispredicted a branch on nearly every value
    (keying 40 shuffled batches of the real file: 0.207-0.286 s that way, 0.176-0.187 s this)."""
    n = keys.shape[0]
    k = 0
    if has_valid:
        end = base + n
        stop = (end + 7) >> 3
        byte = (base >> 3) - 1
        while byte + 1 < stop:
            byte += 1
            # Eight bytes without a valid row are passed over at once (a sparse column's
            # bitmap is mostly such words).
            if byte + 8 <= stop and load_word(valid, byte) == 0:
                byte += 7
                continue
            bits = np.int64(valid[byte])
            first = byte << 3
            if first < base:
                bits &= 0xFF << (base - first)
            if first + 8 > end:
                bits &= (1 << (end - first)) - 1
            if bits == 0:
                continue
            for t in range(8):
                rows[k + t] = first - base + _BIT_POSITIONS[bits, t]
            k += _BIT_COUNT[bits]
    else:
        k = n  # every row: row r is r
    m = 0
    for r in range(k):
        i = rows[r] if has_valid else r
        s = offsets[base + i]
        e = offsets[base + i + 1]
        if e > s:
            keys[i] = mix_bytes(keys[i] ^ name_key, data, s, e)
            rows[m] = i
            spans[m, 0] = s
            spans[m, 1] = e
            m += 1
    return m


@njit(cache=True, nogil=True)
def _entries_of(keys, table, entry_keys, start, entries, at):
    """Each row's candidate: the first entry with the row's key (``entries``), and where its
    bytes start (``at``). Returns the first row no entry has the key of, or ``len(keys)``."""
    mask = table.shape[0] - 1
    for i in range(keys.shape[0]):
        key = keys[i]
        slot = np.int64(key & np.uint64(mask))
        while True:
            entry = table[slot]
            if entry < 0:
                return i
            if entry_keys[entry] == key:
                break
            slot = (slot + 1) & mask
        entries[i] = entry
        at[i] = start[entry]
    return keys.shape[0]


@njit(cache=True, nogil=True)
def _match_rows(rows, spans, data, name, entries, at, start, arena):
    """Whether each row of ``rows`` has, at ``at[i]`` in its candidate's bytes, this label:
    ``name 0xFF value 0xFF`` with no 0xFF in the value; ``at`` moves past it. Compared a word
    at a time (``tsdb_arrow.words``); the remembered name and value hold no 0xFF, so equal
    words and both separators in place mean this very name and value. The value's loop looks
    for 0xFF in the words it compares (``same_bytes`` and a second pass over the value ran
    3-6x slower here)."""
    nlen = name.shape[0]
    for r in range(rows.shape[0]):
        i = rows[r]
        s = spans[r, 0]
        length = spans[r, 1] - s
        p = at[i]
        q = p + nlen + 1
        if q + length + 1 > start[entries[i] + 1] or arena[p + nlen] != _SEP:
            return False
        if arena[q + length] != _SEP:
            return False
        if not same_bytes(arena, p, name, 0, nlen):
            return False
        k = 0
        while k + 8 < length:
            w = load_word(data, s + k)
            if load_word(arena, q + k) != w or ((~w - _BYTES) & w & _HIGH_BITS):
                return False
            k += 8
        w = last_word(data, s + k, s + length)
        if last_word(arena, q + k, q + length) != w or ((~w - _BYTES) & w & _HIGH_BITS):
            return False
        at[i] = q + length + 1
    return True


@njit(cache=True, nogil=True)
def _ended(entries, at, start):
    """Whether every row's labels used up its candidate's bytes (no remembered label left)."""
    for i in range(entries.shape[0]):
        if at[i] != start[entries[i] + 1]:
            return False
    return True


@njit(cache=True, nogil=True)
def _number_sets(entries, stamp, code, batch, row_sets, firsts):
    """Number the rows' entries densely from 0 in order of first sight (``row_sets``, and each
    number's entry in ``firsts``); returns how many. ``stamp[e] == batch`` marks an entry met
    in this batch, and ``code[e]`` its number then."""
    k = 0
    for i in range(entries.shape[0]):
        e = entries[i]
        if stamp[e] != batch:
            stamp[e] = batch
            code[e] = k
            firsts[k] = e
            k += 1
        row_sets[i] = code[e]
    return k


@njit(cache=True, nogil=True)
def _store(offsets, data, has_valid, valid, names, name_end, rows, pos, arena):
    """Write the label set of each row of ``rows`` as ``name 0xFF value 0xFF``... at its pos."""
    for r in range(rows.shape[0]):
        i = rows[r]
        p = pos[r]
        for c in range(offsets.shape[0]):
            s = offsets[c, i]
            length = offsets[c, i + 1] - s
            if length == 0 or (has_valid and not valid[c, i]):
                continue
            n0 = name_end[c]
            nlen = name_end[c + 1] - n0
            arena[p : p + nlen] = names[n0 : n0 + nlen]
            arena[p + nlen] = _SEP
            arena[p + nlen + 1 : p + nlen + 1 + length] = data[s : s + length]
            arena[p + nlen + 1 + length] = _SEP
            p += nlen + length + 2


@njit(cache=True, nogil=True)
def _insert(table, keys, first, count):
    """Put entries ``first .. first+count-1`` (their keys set) in the hash table."""
    mask = table.shape[0] - 1
    for e in range(first, first + count):
        slot = np.int64(keys[e] & np.uint64(mask))
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = e


@njit(cache=True, nogil=True)
def _first_rows(row_sets, n_sets):
    """The row where each set first appears, in row order (one pass, no sort)."""
    seen = np.zeros(n_sets, dtype=np.bool_)
    out = np.empty(n_sets, dtype=np.int64)
    k = 0
    for i in range(row_sets.shape[0]):
        s = row_sets[i]
        if not seen[s]:
            seen[s] = True
            out[k] = i
            k += 1
    return out[:k]


def in_row_order(series: pa.Table, row_refs: np.ndarray, row_sets: np.ndarray) -> pa.Table:
    """``series`` (sorted by ref, as ``resolve_series`` gives it) in the order the batch's rows
    first bring them (``row_sets`` numbers each row's set densely from 0): the order the next
    batches of a feed repeat, in which ``remember`` should get them."""
    firsts = _first_rows(row_sets, series.num_rows)
    refs = series.column(REF).to_numpy()
    return series.take(np.searchsorted(refs, row_refs[firsts]))


def _pack(labels: dict[str, pa.ChunkedArray | pa.Array], n_rows: int) -> tuple | None:
    """The label columns (large_string) in name order as the kernels take them: value bounds
    (a row of ``offsets`` per column, into the columns' bytes laid end to end), the validity
    (when some value is null) and the names (name c is ``name_bytes[name_end[c]:name_end[c +
    1]]``); None for another layout."""
    names = sorted(labels)
    offsets = np.zeros((len(names), n_rows + 1), dtype=np.int64)
    parts, valid, used = [], None, 0
    for c, name in enumerate(names):
        column = labels[name]
        if not pa.types.is_large_string(column.type):
            return None
        if isinstance(column, pa.ChunkedArray):
            arr = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        else:
            arr = column
        if arr.null_count == len(arr):
            continue  # every value absent: all offsets 0
        _, bounds_buf, data_buf = arr.buffers()
        bounds = np.frombuffer(bounds_buf, dtype=np.int64, count=arr.offset + n_rows + 1)
        bounds = bounds[arr.offset :]
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else _NO_BYTES
        parts.append(data[bounds[0] : bounds[-1]])
        offsets[c] = bounds - (bounds[0] - used)
        used += int(bounds[-1] - bounds[0])
        if arr.null_count:
            if valid is None:
                valid = np.ones((len(names), n_rows), dtype=np.bool_)
            valid[c] = arr.is_valid().to_numpy(zero_copy_only=False)
    data = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)  # writable: one type
    encoded = [name.encode() for name in names]
    name_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    name_end = np.cumsum([0] + [len(e) for e in encoded], dtype=np.int64)
    has_valid = valid is not None
    return offsets, data, has_valid, valid if has_valid else _NO_VALID, name_bytes, name_end


def _column_chunks(columns: list[tuple[pa.ChunkedArray, np.ndarray, np.uint64]]) -> list[tuple]:
    """The chunks holding a value of the label columns (column, name's bytes, name's key), as
    ``_key_columns`` takes them: (name's bytes, name's key, first row, rows, valid values, the
    chunk's buffers as ``string_buffers`` gives them). Read once, whatever rows are keyed."""
    chunks = []
    for column, name, name_key in columns:
        for start, chunk in present_chunks(column):
            n_valid = len(chunk) - chunk.null_count
            chunks.append((name, name_key, start, len(chunk), n_valid, string_buffers(chunk)))
    return chunks


def _key_columns(chunks: list[tuple], keys: np.ndarray, lo: int, hi: int) -> list[tuple]:
    """Mix the label columns' ``chunks`` (``_column_chunks``) of rows ``lo:hi`` into their
    ``keys``; per chunk, what ``_match_rows`` needs then: (name, present rows relative to the
    chunk's rows ``a:b``, ``a``, ``b``, their values' bounds in ``data``, ``data``)."""
    pieces = []
    for name, name_key, start, length, n_valid, buffers in chunks:
        a, b = max(lo, start), min(hi, start + length)
        if a >= b:
            continue
        valid, has_valid, offsets, _, data, _, base, _ = buffers
        rows = np.empty(min(b - a, n_valid) + ROWS_SLACK, dtype=np.int64)
        spans = np.empty((len(rows), 2), dtype=np.int64)
        k = _key_column(valid, has_valid, offsets, base + a - start, data, name_key, keys[a:b],
                        rows, spans)  # fmt: skip
        pieces.append((name, rows[:k], a, b, spans[:k], data))
    return pieces


@dataclass(frozen=True)
class Found:
    """A batch whose every label set is remembered: each row's ref, and (None when no two rows
    share a series) each row's series numbered densely from 0 and each number's ref."""

    refs: np.ndarray
    row_sets: np.ndarray | None
    set_refs: np.ndarray | None

    @property
    def series(self) -> np.ndarray | None:
        """The batch's series refs, sorted (None when no two rows share a series)."""
        return None if self.set_refs is None else np.sort(self.set_refs)


class KnownSeries:
    """Canonical label bytes of admitted series by ref: an open-addressing hash table over an
    arena. Thread-safe: ``lookup`` and ``remember`` take a short lock of their own; the
    kernels release the GIL."""

    def __init__(self, max_bytes: int = MAX_BYTES, probe_rows: int = PROBE_ROWS) -> None:
        self.max_bytes = max_bytes
        self.probe_rows = probe_rows
        self._lock = threading.Lock()
        self.hits = 0  # batches resolved here
        self.misses = 0  # batches that were not (some row's label set was new)
        self.resets = 0  # times the memory filled up and was emptied
        # Whether the last long batch was found whole, column by column: a bulk load of known
        # series in no order, whose next batch goes straight to the column pass.
        self._bulk = False
        self._reset(_MIN_SLOTS, _MIN_ARENA)

    def _reset(self, slots: int, arena_bytes: int) -> None:
        self._table = np.full(slots, -1, dtype=np.int64)
        self._refs = np.zeros(slots // 2, dtype=np.uint64)
        self._keys = np.zeros(slots // 2, dtype=np.uint64)  # each entry's key in the table
        self._stamp = np.zeros(slots // 2, dtype=np.int64)  # the last batch that found it
        self._code = np.zeros(slots // 2, dtype=np.int64)  # its number in that batch
        self._batch = 0
        self._start = np.zeros(slots // 2 + 1, dtype=np.int64)
        self._arena = np.zeros(arena_bytes, dtype=np.uint8)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return _nbytes(len(self._table), len(self._arena))

    def stats(self) -> dict[str, int]:
        return {"series": self._count, "bytes": self.nbytes, "hits": self.hits,
                "misses": self.misses, "resets": self.resets}  # fmt: skip

    def lookup(
        self, labels: dict[str, pa.ChunkedArray], n_rows: int, pool: Executor | None = None
    ) -> Found | None:
        """The series ref of every row when every row's label set is remembered, else None.

        ``labels``: label name -> large_string column of ``n_rows`` rows ("" or null: absent),
        as ``convert.normalize`` gives them; other layouts answer None. A batch of up to
        ``2 * probe_rows`` rows is looked up row by row, guessing each from the row before,
        unless its first ``probe_rows`` rows mostly defeat the guesses (rows in no remembered
        order); a longer one, or one in no order, column by column (``_search_columns``, in
        two halves at once when ``pool`` is given and the batch is large). A longer batch is
        probed first (``_probe``) unless the long batch before it was found whole.
        """
        if not self._count or not labels:
            self.misses += 1
            return None
        if n_rows > 2 * self.probe_rows:
            probed = self._bulk or self._probe(labels, n_rows)
            found = self._search_columns(labels, n_rows, pool) if probed else None
            self._bulk = isinstance(found, Found)
        else:
            packed = _pack(labels, n_rows)
            found = None if packed is None else self._search(packed, n_rows, self.probe_rows)
            if found == _UNORDERED:
                found = self._search_columns(labels, n_rows, pool)
        with self._lock:
            if isinstance(found, Found):
                self.hits += 1
                return found
            self.misses += 1
            return None

    def _search(self, packed: tuple, n_rows: int, probe_rows: int) -> Found | int:
        """``_find`` over ``n_rows`` packed rows, stopping at the first miss: what it found, or
        why not (``_MISS``, or ``_UNORDERED`` when guesses found fewer than half of the first
        ``probe_rows`` rows)."""
        refs = np.empty(n_rows, dtype=np.uint64)
        entries = np.empty(n_rows, dtype=np.int64)
        with self._lock:
            self._batch += 1
            answer = self._find_rows(packed, refs, entries, True, self._batch, probe_rows)
            if answer == _DISTINCT:
                return Found(refs, None, None)
            if answer == _FOUND:
                return self._found(refs, entries)
        return answer

    def _find_rows(self, packed: tuple, refs: np.ndarray, entries: np.ndarray,
                   stop_at_miss: bool, batch: int, probe_rows: int) -> int:  # fmt: skip
        """``_find`` over this memory (caller holds the lock)."""
        return _find(*packed, self._table, self._keys, self._refs, self._start, self._arena,
                     self._count, refs, entries, stop_at_miss, self._stamp, batch,
                     probe_rows)  # fmt: skip

    def _probe(self, labels: dict[str, pa.ChunkedArray], n_rows: int) -> bool:
        """Whether the first and the last ``probe_rows // 2`` rows of a longer batch are all
        remembered: a batch bringing new series usually shows it there (a series-sorted load's
        next batch starts with the last series of the one before, and ends with new ones), for
        the cost of those rows only."""
        half = self.probe_rows // 2
        rows = 2 * half
        ends = {
            name: pa.chunked_array(
                chunks_of(col.slice(0, half)) + chunks_of(col.slice(n_rows - half, half)),
                col.type,
            )
            for name, col in labels.items()
        }
        packed = _pack(ends, rows)
        if packed is None:
            return False
        found = self._search(packed, rows, rows)
        return isinstance(found, Found) or found == _UNORDERED

    def _search_columns(
        self, labels: dict[str, pa.ChunkedArray], n_rows: int, pool: Executor | None = None
    ) -> Found | None:
        """Every row's remembered label set found column by column: each row's key mixed one
        label column at a time (in name order, as ``_row_key`` mixes them), the entry of each
        key, then each column's values compared with the entries' bytes. A row of a bulk batch
        then costs a few passes over its present values, not a walk over all its columns.
        With a ``pool``, a batch of many present values is searched in two halves at once."""
        names = sorted(labels)
        encoded = [name.encode() for name in names]
        if any(_SEP in e for e in encoded):
            return None
        if not all(pa.types.is_large_string(labels[name].type) for name in names):
            return None
        name_end = np.cumsum([0] + [len(e) for e in encoded], dtype=np.int64)
        name_keys = _name_keys(np.frombuffer(b"".join(encoded), dtype=np.uint8), name_end)
        columns = [
            (labels[name], np.frombuffer(name_bytes, dtype=np.uint8), name_key)
            for name, name_bytes, name_key in zip(names, encoded, name_keys)
        ]
        parts = split.halves(n_rows) if split.worth_it(labels, pool) else [(0, n_rows)]
        keys = np.full(n_rows, _KEY_SEED, dtype=np.uint64)
        chunks = _column_chunks(columns)
        keyed = [partial(_key_columns, chunks, keys, lo, hi) for lo, hi in parts]
        pieces = split.each(pool, keyed)
        entries = np.empty(n_rows, dtype=np.int64)
        at = np.empty(n_rows, dtype=np.int64)
        with self._lock:
            matched = split.each(
                pool,
                [
                    partial(self._match_part, part, keys, entries, at, lo, hi)
                    for part, (lo, hi) in zip(pieces, parts)
                ],
            )
            if not all(matched):
                return None
            return self._found(self._refs[entries], entries)

    def _match_part(self, pieces: list[tuple], keys: np.ndarray, entries: np.ndarray,
                    at: np.ndarray, lo: int, hi: int) -> bool:  # fmt: skip
        """Whether rows ``lo:hi`` (whose columns ``_key_columns`` gave as ``pieces``) are all
        remembered: their entries in ``entries``, their labels compared with the entries'
        bytes (caller holds the lock)."""
        if _entries_of(keys[lo:hi], self._table, self._keys, self._start, entries[lo:hi],
                       at[lo:hi]) < hi - lo:  # fmt: skip
            return False
        for name, rows, a, b, spans, data in pieces:
            if not _match_rows(rows, spans, data, name, entries[a:b], at[a:b],
                               self._start, self._arena):  # fmt: skip
                return False
        return _ended(entries[lo:hi], at[lo:hi], self._start)

    def _found(self, refs: np.ndarray, entries: np.ndarray) -> Found:
        """``Found`` for rows whose entries are known (caller holds the lock)."""
        self._batch += 1  # ``_find`` stamped them with the batch before
        row_sets = np.empty(len(entries), dtype=np.int64)
        firsts = np.empty(len(entries), dtype=np.int64)
        k = _number_sets(entries, self._stamp, self._code, self._batch, row_sets, firsts)
        return Found(refs, row_sets, self._refs[firsts[:k]])

    def admitted(self, series: pa.Table) -> bool:
        """Whether every label set of ``series`` (``REF`` and one large_string column per
        label, as ``resolve_series`` gives a batch's distinct sets) is remembered under its ref:
        each passed every check of a write before and is in the index, so a batch of them
        needs neither again. Leaves the hit and miss counts alone."""
        n = series.num_rows
        labels = {c: series.column(c) for c in series.column_names if c != REF}
        if not self._count or not n or not labels:
            return False
        packed = _pack(labels, n)
        if packed is None:
            return False
        found = self._search(packed, n, 0)
        return isinstance(found, Found) and np.array_equal(
            found.refs, series.column(REF).to_numpy()
        )

    def remember(self, series: pa.Table) -> None:
        """Remember the label sets of ``series`` (``REF`` and one large_string column per label,
        null = absent, one row per distinct set, as ``resolve_series`` gives it), which a write
        has just admitted to the index. Kept in the order given: give them in the order rows
        bring them, so that later batches in that order read the memory front to back."""
        n = series.num_rows
        labels = {c: series.column(c) for c in series.column_names if c != REF}
        packed = _pack(labels, n) if n and labels else None
        if packed is None:
            return
        refs = np.array(series.column(REF).to_numpy(), dtype=np.uint64)  # writable, as typed
        entries = np.empty(n, dtype=np.int64)
        with self._lock:
            self._find_rows(packed, refs, entries, False, -1, 0)
            fresh = np.flatnonzero(entries < 0)
            if len(fresh) == 0:
                return
            offsets, _, has_valid, valid, _, name_end = packed
            present = offsets[:, 1:] > offsets[:, :-1]
            if has_valid:
                present &= valid
            pieces = offsets[:, 1:] - offsets[:, :-1] + np.diff(name_end)[:, None] + 2
            sizes = (pieces * present).sum(axis=0)[fresh]
            if not self._make_room(len(fresh), int(sizes.sum())):
                return
            first = self._count
            ends = int(self._start[first]) + np.cumsum(sizes)
            _store(*packed, fresh, ends - sizes, self._arena)
            last = first + len(fresh)
            self._refs[first:last] = refs[fresh]
            self._keys[first:last] = _row_keys(*packed, fresh)
            self._start[first + 1 : last + 1] = ends
            self._count = last
            _insert(self._table, self._keys, first, len(fresh))

    def _make_room(self, entries: int, nbytes: int) -> bool:
        """Grow (or empty, past ``max_bytes``) so that ``entries`` more taking ``nbytes`` fit;
        False when even an empty memory would not hold them (caller holds the lock)."""
        count = self._count
        used = int(self._start[count])
        slots, arena = len(self._table), len(self._arena)
        while 2 * (count + entries) > slots:
            slots *= 2
        while used + nbytes > arena:
            arena *= 2
        if _nbytes(slots, arena) > self.max_bytes:
            self.resets += 1
            slots, arena = _MIN_SLOTS, _MIN_ARENA
            while 2 * entries > slots:
                slots *= 2
            while nbytes > arena:
                arena *= 2
            if _nbytes(slots, arena) > self.max_bytes:
                self._reset(_MIN_SLOTS, _MIN_ARENA)
                return False
            self._reset(slots, arena)
            return True
        if slots != len(self._table):
            grown = slots // 2
            self._refs = _grown(self._refs, grown, count)
            self._keys = _grown(self._keys, grown, count)
            self._stamp = _grown(self._stamp, grown, count)
            self._code = _grown(self._code, grown, count)
            self._start = _grown(self._start, grown + 1, count + 1)
            self._table = np.full(slots, -1, dtype=np.int64)
            _insert(self._table, self._keys, 0, count)
        if arena != len(self._arena):
            self._arena = _grown(self._arena, arena, used)
        return True


def _nbytes(slots: int, arena: int) -> int:
    """Bytes of a memory of ``slots`` hash slots (refs, keys, stamps and starts for half as
    many entries)."""
    return 8 * slots + 24 * (slots // 2) + 8 * (slots // 2 + 1) + arena


def _grown(arr: np.ndarray, size: int, keep: int) -> np.ndarray:
    out = np.zeros(size, dtype=arr.dtype)
    out[:keep] = arr[:keep]
    return out
