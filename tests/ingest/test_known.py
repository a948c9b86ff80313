"""KnownSeries: a remembered label set gives exactly the resolver's ref; anything else is a miss."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.ingest import split as split_mod
from tsdb_arrow.ingest.known import KnownSeries, in_row_order
from tsdb_arrow.ingest.series import resolve_series
from tsdb_arrow.model import series_ref

NAMES = ["__name__", "a", "b", "zz"]
values = st.one_of(st.none(), st.just(""), st.text(max_size=6))
rows = st.lists(
    st.fixed_dictionaries(
        {"__name__": st.sampled_from(["up", "m"]), **{n: values for n in NAMES[1:]}}
    ),
    min_size=1,
    max_size=40,
)


def labels_of(table_rows, names=NAMES, chunks=1):
    cols = {}
    for name in names:
        arr = pa.array([r.get(name) for r in table_rows], pa.large_string())
        bounds = np.linspace(0, len(arr), chunks + 1).astype(int)
        cols[name] = pa.chunked_array(
            [arr.slice(lo, hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])], pa.large_string()
        )
    return cols


def lookup(known, labels, n):
    """The refs a lookup found, or None."""
    found = known.lookup(labels, n)
    return None if found is None else found.refs


def remembered(table_rows, names=NAMES):
    known = KnownSeries()
    known.remember(resolve_series(labels_of(table_rows, names), len(table_rows)).series)
    return known


@settings(max_examples=150, deadline=None)
@given(
    seen=rows,
    asked=rows,
    chunks=st.integers(1, 3),
    by_column=st.booleans(),
    split=st.booleans(),
)
def test_a_hit_gives_the_reference_refs_and_a_new_set_misses(seen, asked, chunks, by_column, split):
    """Row by row or column by column (a batch longer than twice ``probe_rows``; in two halves
    at once with ``split``), a hit is exactly the resolver's refs, with the rows' series
    numbered as they first appear."""
    known = remembered(seen)
    known.probe_rows = 1 if by_column else 10**6
    with ThreadPoolExecutor(1) as pool, mock.patch.object(split_mod, "SPLIT_VALUES", 0):
        found = known.lookup(labels_of(asked, chunks=chunks), len(asked), pool if split else None)
    seen_refs = {series_ref(r) for r in seen}
    want = [series_ref(r) for r in asked]
    if not set(want) <= seen_refs:
        assert found is None
        return
    assert found is not None and found.refs.tolist() == want
    if len(set(want)) == len(want) and found.row_sets is None:
        return  # each row a different series: nothing to number
    first_seen = list(dict.fromkeys(want))
    assert found.row_sets.tolist() == [first_seen.index(r) for r in want]
    assert found.series.tolist() == sorted(first_seen)


@settings(max_examples=100, deadline=None)
@given(runs=st.lists(st.tuples(st.integers(0, 39), st.integers(1, 12)), min_size=1, max_size=40))
def test_rows_in_any_mix_of_remembered_order_and_jumps_find_their_refs(runs):
    """Rows in the remembered order are found by guessing, jumps by the hash table; after a
    stretch of jumps the lookup stops guessing and starts again on a run: every row gets its
    own ref whatever the mix (runs of consecutive series, each from some start)."""
    series = [{"__name__": "m", "a": f"host-{i:04d}", "b": "x" * (i % 11)} for i in range(40)]
    known = KnownSeries()
    resolved = resolve_series(labels_of(series), len(series))
    known.remember(in_row_order(resolved.series, resolved.row_refs, resolved.row_sets))
    asked = [series[(start + k) % 40] for start, length in runs for k in range(length)]
    known.probe_rows = 10**6  # rows that repeat their series are looked up all the same
    refs = lookup(known, labels_of(asked), len(asked))
    assert refs is not None and refs.tolist() == [series_ref(r) for r in asked]


def test_shuffled_rows_of_many_series_find_their_refs_while_reading_ahead():
    """Shuffled rows miss both guesses, so the lookup keys the rows ahead and asks for their
    slots, entries and bytes early; stretches in the remembered order between them switch
    guessing back on and off. Every row still gets exactly its own ref."""
    rng = np.random.default_rng(7)
    series = [
        {"__name__": f"m{i % 7}", "a": f"host-{i:05d}", "b": "y" * (i % 13)} for i in range(3000)
    ]
    known = KnownSeries()
    resolved = resolve_series(labels_of(series), len(series))
    known.remember(in_row_order(resolved.series, resolved.row_refs, resolved.row_sets))
    order = list(rng.permutation(len(series)))
    order[1000:1000] = range(500, 530)  # a run in the remembered order, then jumps again
    order += list(rng.integers(0, len(series), 5))  # a short shuffled tail
    asked = [series[i] for i in order]
    known.probe_rows = 10**6
    refs = lookup(known, labels_of(asked, chunks=2), len(asked))
    assert refs is not None and refs.tolist() == [series_ref(r) for r in asked]


def test_absent_labels_are_absent_whatever_the_columns():
    known = remembered([{"__name__": "up", "a": "1", "b": None}])
    # no b column, an all-null zz column, b as "": all the label set {__name__=up, a=1}
    for labels in (
        {"__name__": ["up"], "a": ["1"]},
        {"__name__": ["up"], "a": ["1"], "zz": [None]},
        {"__name__": ["up"], "a": ["1"], "b": [""]},
    ):
        cols = {k: pa.array(v, pa.large_string()) for k, v in labels.items()}
        refs = lookup(known, cols, 1)
        assert refs is not None and refs.tolist() == [series_ref({"__name__": "up", "a": "1"})]


def test_a_value_holding_separators_cannot_pass_for_two_labels():
    # {a="x", b="y"} and {a="x\xffb\xffy"} hash the same bytes, so they have the same ref: only
    # the remembered one may hit (the other is not even UTF-8: the full checks refuse it).
    known = remembered([{"__name__": "up", "a": "x", "b": "y"}])
    cols = {"__name__": pa.array(["up"], pa.large_string()), "a": _large_strings([b"x\xffb\xffy"])}
    assert lookup(known, cols, 1) is None
    ok = {"__name__": ["up"], "a": ["x"], "b": ["y"]}
    assert lookup(known, {k: pa.array(v, pa.large_string()) for k, v in ok.items()}, 1) is not None


def test_one_byte_more_or_less_misses():
    known = remembered([{"__name__": "up", "a": "ab"}])
    for a in ("a", "abc", "ac", "aB"):
        cols = {
            "__name__": pa.array(["up"], pa.large_string()),
            "a": pa.array([a], pa.large_string()),
        }
        assert lookup(known, cols, 1) is None
    renamed = {
        "__name__": pa.array(["up"], pa.large_string()),
        "b": pa.array(["ab"], pa.large_string()),
    }
    assert lookup(known, renamed, 1) is None


def test_other_layouts_miss():
    known = remembered([{"__name__": "up"}])
    assert lookup(known, {"__name__": pa.array(["up"], pa.string_view())}, 1) is None
    assert lookup(known, {"__name__": pa.array(["up"], pa.large_string())}, 1) is not None


def test_remembering_twice_keeps_one_entry():
    table_rows = [{"__name__": "up", "a": str(i)} for i in range(100)]
    known = remembered(table_rows)
    series = resolve_series(labels_of(table_rows), len(table_rows)).series
    known.remember(series)
    known.remember(series.slice(10, 5))
    assert len(known) == 100


def test_growth_keeps_every_entry():
    known = KnownSeries()
    for start in range(0, 20_000, 5_000):
        table_rows = [{"__name__": "up", "a": f"{i:07d}"} for i in range(start, start + 5_000)]
        known.remember(resolve_series(labels_of(table_rows), len(table_rows)).series)
    table_rows = [{"__name__": "up", "a": f"{i:07d}"} for i in range(0, 20_000, 7)]
    refs = lookup(known, labels_of(table_rows), len(table_rows))
    assert len(known) == 20_000
    assert refs is not None and refs.tolist() == [series_ref(r) for r in table_rows]


def test_a_full_memory_empties_and_refills():
    known = KnownSeries(max_bytes=2**20)
    batches = [
        [{"__name__": "up", "a": f"{b}-{i:05d}" * 4} for i in range(4_000)] for b in range(4)
    ]
    for table_rows in batches:
        known.remember(resolve_series(labels_of(table_rows), len(table_rows)).series)
        assert known.nbytes <= 2**20
    assert known.resets >= 1
    last = batches[-1]
    refs = lookup(known, labels_of(last), len(last))
    assert refs is not None and refs.tolist() == [series_ref(r) for r in last]
    assert lookup(known, labels_of(batches[0]), len(batches[0])) is None  # forgotten


def test_a_batch_larger_than_the_memory_is_not_remembered():
    known = KnownSeries(max_bytes=2**19)
    table_rows = [{"__name__": "up", "a": f"{i:09d}" * 8} for i in range(20_000)]
    known.remember(resolve_series(labels_of(table_rows), len(table_rows)).series)
    assert len(known) == 0 and known.nbytes <= 2**19
    assert lookup(known, labels_of(table_rows[:3]), 3) is None


@pytest.mark.parametrize("offset", [0, 3])
def test_sliced_and_null_bearing_columns(offset):
    table_rows = [
        {"__name__": "up", "a": None if i % 3 else str(i), "b": str(i % 2)} for i in range(12)
    ]
    known = remembered(table_rows)
    cols = {k: v.combine_chunks().slice(offset) for k, v in labels_of(table_rows).items()}
    refs = lookup(known, cols, 12 - offset)
    assert refs is not None
    assert refs.tolist() == [series_ref(r) for r in table_rows[offset:]]


def test_a_batch_in_no_remembered_order_is_looked_up_column_by_column(monkeypatch):
    """Up to twice ``probe_rows`` rows are looked up row by row, unless guesses miss most of
    the first ``probe_rows`` rows; then, and for longer batches, column by column."""
    from tsdb_arrow.ingest import known as known_mod

    by_column = []
    real = KnownSeries._search_columns
    monkeypatch.setattr(KnownSeries, "_search_columns",
                        lambda self, *a: by_column.append(a[1]) or real(self, *a))  # fmt: skip
    table_rows = [{"__name__": "up", "a": str(i)} for i in range(50)]
    known = KnownSeries(probe_rows=20)
    resolved = resolve_series(labels_of(table_rows), 50)
    known.remember(in_row_order(resolved.series, resolved.row_refs, resolved.row_sets))
    assert lookup(known, labels_of(table_rows[:40]), 40).tolist() == [
        series_ref(r) for r in table_rows[:40]
    ]
    assert by_column == []  # in the remembered order: the guesses find every row
    shuffled = [table_rows[i] for i in np.random.default_rng(3).permutation(40)]
    assert lookup(known, labels_of(shuffled), 40).tolist() == [series_ref(r) for r in shuffled]
    assert by_column == [40]
    repeating = [table_rows[i % 5] for i in range(41)]  # longer than 2 x 20 rows
    found = known.lookup(labels_of(repeating), 41)
    assert found.refs.tolist() == [series_ref(r) for r in repeating]
    assert found.row_sets.tolist() == [i % 5 for i in range(41)]
    assert by_column == [40, 41]
    assert known_mod.PROBE_ROWS == KnownSeries().probe_rows


def test_a_hit_says_whether_every_row_is_a_different_series():
    table_rows = [{"__name__": "up", "a": str(i)} for i in range(10)]
    known = remembered(table_rows)
    assert known.lookup(labels_of(table_rows), 10).row_sets is None
    assert known.lookup(labels_of(table_rows), 10).row_sets is None  # a new batch: stamps
    twice = table_rows[:5] + table_rows[4:]
    found = known.lookup(labels_of(twice), 11)
    assert found.refs.tolist() == [series_ref(r) for r in twice]
    assert found.row_sets.tolist() == [0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9]
    assert found.series.tolist() == sorted(series_ref(r) for r in table_rows)


def test_in_row_order_lists_the_series_as_rows_first_bring_them():
    from tsdb_arrow.ingest.known import in_row_order

    table_rows = [{"__name__": "up", "a": a} for a in ["q", "b", "q", "z", "b", "a"]]
    resolved = resolve_series(labels_of(table_rows), len(table_rows))
    ordered = in_row_order(resolved.series, resolved.row_refs, resolved.row_sets)
    assert ordered.column("a").to_pylist() == ["q", "b", "z", "a"]
    assert ordered.column("series_ref").to_pylist() == [
        series_ref({"__name__": "up", "a": a}) for a in ["q", "b", "z", "a"]
    ]


def test_a_long_batch_is_probed_at_both_ends_then_looked_up_by_column(monkeypatch):
    """A miss usually shows in the first or last ``probe_rows // 2`` rows, packing only those;
    a batch passing the probe is looked up column by column, where a new set is a miss too.
    After a long batch found whole, the next goes to the column pass unprobed."""
    from tsdb_arrow.ingest import known as known_mod

    packed_rows = []
    real_pack = known_mod._pack

    def pack(labels, n_rows):
        packed_rows.append(n_rows)
        return real_pack(labels, n_rows)

    searched = []
    real_search = KnownSeries._search_columns

    def search(self, *args):
        searched.append(args[1])
        return real_search(self, *args)

    distinct = [{"__name__": "up", "a": str(i)} for i in range(60)]
    known = remembered(distinct[:50])
    monkeypatch.setattr(known_mod, "_pack", pack)
    monkeypatch.setattr(KnownSeries, "_search_columns", search)
    known.probe_rows = 20
    repeating = [{"__name__": "up", "a": str(i % 5)} for i in range(60)]
    assert lookup(known, labels_of(repeating), 60).tolist() == [series_ref(r) for r in repeating]
    assert (packed_rows, searched) == ([20], [60])  # the batch was not packed whole
    unknown = [{"__name__": "up", "a": "new"}, *distinct[:59]]
    assert known.lookup(labels_of(unknown), 60) is None  # after a hit: no probe
    assert (packed_rows, searched) == ([20], [60, 60])
    assert known.lookup(labels_of(distinct), 60) is None  # rows 50-59 are new: a miss
    assert (packed_rows, searched) == ([20, 20], [60, 60])  # probed again, and caught
    middle = [*distinct[:30], {"__name__": "up", "a": "new"}, *distinct[:29]]
    assert known.lookup(labels_of(middle), 60) is None  # past the probe, found by column
    assert (packed_rows, searched) == ([20, 20, 20], [60, 60, 60])
    assert lookup(known, labels_of(distinct[:50]), 50).tolist() == [
        series_ref(r) for r in distinct[:50]
    ]
    assert (known.hits, known.misses) == (2, 3)


def _large_strings(values):
    """A large_string array of ``values`` (str, bytes taken as they are, or None)."""
    raw = [v.encode() if isinstance(v, str) else v for v in values]
    ends = np.cumsum([0] + [len(v or b"") for v in raw])
    valid = np.array([v is not None for v in raw])
    return pa.LargeStringArray.from_buffers(
        len(raw),
        pa.py_buffer(ends.astype(np.int64)),
        pa.py_buffer(b"".join(v or b"" for v in raw)),
        pa.py_buffer(np.packbits(valid, bitorder="little")),
        null_count=int((~valid).sum()),
    )


def _columns_of(table_rows):
    """The column lookup's first step over ``table_rows``: each row's key, and per column chunk
    holding a value what ``_match_rows`` compares (``known._key_columns``)."""
    from tsdb_arrow.ingest import known as known_mod

    n = len(table_rows)
    keys = np.full(n, known_mod._KEY_SEED, dtype=np.uint64)
    columns = []
    for name in sorted({k for r in table_rows for k in r}):
        name_bytes = np.frombuffer(name.encode(), dtype=np.uint8)
        name_key = known_mod._name_keys(name_bytes, np.array([0, len(name_bytes)]))[0]
        columns.append((_large_strings([r.get(name) for r in table_rows]), name_bytes, name_key))
    return keys, known_mod._key_columns(known_mod._column_chunks(columns), keys, 0, n)


def test_column_keys_are_the_row_keys_the_memory_keeps():
    from tsdb_arrow.ingest import known as known_mod

    table_rows = [
        {"__name__": "up", "a": None, "b": "x" * i, "zz": "" if i % 2 else "é" * (i % 9)}
        for i in range(30)
    ]
    keys, _ = _columns_of(table_rows)
    offsets, data, has_valid, valid, names, name_end = known_mod._pack(
        labels_of(table_rows), len(table_rows)
    )
    want = known_mod._row_keys(offsets, data, has_valid, valid, names, name_end, np.arange(30))
    assert keys.tolist() == want.tolist()


@pytest.mark.parametrize(
    "asked",
    [
        {"__name__": "up", "a": "xy"},  # a value one byte off
        {"__name__": "up", "a": "x"},  # a label fewer: the entry's bytes are not used up
        {"__name__": "up", "b": "x"},  # another name
        {"__name__": "up", "a": b"x\xffb\xffy"},  # separators passing for a second label
    ],
)
def test_a_candidate_whose_bytes_differ_is_no_match(asked):
    """Keys only propose entries: the bytes decide. Given the wrong entry on purpose, the
    comparison refuses it."""
    from tsdb_arrow.ingest import known as known_mod

    known = remembered([{"__name__": "up", "a": "x", "b": "y"}, {"__name__": "up", "a": "xz"}])
    _, pieces = _columns_of([asked])
    for entry in range(2):
        entries = np.array([entry], dtype=np.int64)
        at = known._start[entries].copy()
        matched = all(
            known_mod._match_rows(
                rows, spans, data, name, entries, at, known._start, known._arena
            )  # fmt: skip
            for name, rows, _, _, spans, data in pieces
        )
        assert not (matched and known_mod._ended(entries, at, known._start))
    right = {"__name__": "up", "a": "x", "b": "y"}
    _, pieces = _columns_of([right])
    entries = np.array([0], dtype=np.int64)
    at = known._start[entries].copy()
    for name, rows, _, _, spans, data in pieces:
        assert known_mod._match_rows(rows, spans, data, name, entries, at,
                                     known._start, known._arena)  # fmt: skip
    assert known_mod._ended(entries, at, known._start)


@settings(max_examples=100, deadline=None)
@given(seen=rows, asked=rows)
def test_admitted_means_every_resolved_set_is_remembered(seen, asked):
    """``admitted`` answers whether each distinct set of a resolved batch was remembered, and
    leaves the hit and miss counts alone."""
    known = remembered(seen)
    counts = (known.hits, known.misses)
    resolved = resolve_series(labels_of(asked), len(asked))

    def canonical(row):
        return frozenset((k, v) for k, v in row.items() if v)

    expected = {canonical(r) for r in asked} <= {canonical(r) for r in seen}
    assert known.admitted(resolved.series) is expected
    assert (known.hits, known.misses) == counts


def test_admitted_refuses_a_set_remembered_under_another_ref():
    """The ref given with a set must be the one remembered (a forged ref is no hit)."""
    table_rows = [{"__name__": "up", "a": "1"}]
    known = remembered(table_rows)
    series = resolve_series(labels_of(table_rows), 1).series
    assert known.admitted(series)
    forged = series.set_column(0, "series_ref", pa.array([12345], pa.uint64()))
    assert not known.admitted(forged)
    assert not KnownSeries().admitted(series)  # nothing remembered yet


def test_a_bulk_batch_of_admitted_sets_skips_the_index(tmp_path, monkeypatch):
    """Shuffled batches repeating admitted series are resolved but not checked into the index
    again; a batch bringing one new series is, and every sample reads back."""
    import polars as pl

    import tsdb_arrow as ta
    from tsdb_arrow.index import SeriesIndex

    calls = []
    real_add = SeriesIndex.add
    monkeypatch.setattr(
        SeriesIndex, "add", lambda self, s: calls.append(len(s)) or real_add(self, s)
    )
    rng = np.random.default_rng(5)
    n = 3 * 40_000  # batches of 30 k rows: probed, found bulk, resolved
    frame = pl.DataFrame({
        "timestamp": rng.permutation(np.repeat(np.arange(40_000, dtype=np.int64), 3)),
        "value": rng.random(n),
        "__name__": rng.choice(["a", "b", "c"], n),
    })  # fmt: skip
    frame = frame.unique(["timestamp", "__name__"], keep="first")
    with ta.open(tmp_path / "db") as db:
        for part in frame.iter_slices(frame.height // 4 + 1):
            db.write(part)
        assert calls == [3]  # the first batch admits the three series; later ones skip
        db.write(pl.DataFrame({"timestamp": [1], "value": [1.0], "__name__": ["new"]}))
        assert calls == [3, 1]
        db.flush()
        got = db.select('{__name__=~"a|b|c"}').collect().sort("__name__", "timestamp")
    want = frame.sort("__name__", "timestamp")
    assert got["value"].to_list() == want["value"].to_list()
    assert got["timestamp"].dt.epoch("ms").to_list() == want["timestamp"].to_list()


@pytest.mark.parametrize("split", [False, True])
def test_a_shuffled_bulk_batch_of_known_series_is_found_column_by_column(
    tmp_path, monkeypatch, split
):
    """An Arrow batch (large strings, as a Parquet file gives them) of shuffled rows of known
    series is looked up column by column, with ``split`` in two halves at once on the
    database's pool: one hit, and every sample reads back under its own series."""
    import polars as pl

    import tsdb_arrow as ta

    monkeypatch.setattr(split_mod, "SPLIT_VALUES", 0 if split else 2**62)
    halves = []
    real_halves = split_mod.halves
    monkeypatch.setattr(split_mod, "halves", lambda n: halves.append(n) or real_halves(n))
    rng = np.random.default_rng(11)
    hosts = [f"host-{i:03d}" for i in range(200)]

    def batch(first_ts: int, order: np.ndarray) -> pa.Table:
        host = np.repeat(hosts, 25)[order]
        name = np.where(np.char.endswith(host, "7"), "m7", "m")
        ts = np.tile(np.arange(first_ts, first_ts + 25, dtype=np.int64), 200)[order]
        return pa.table({
            "timestamp": ts,
            "value": rng.random(len(order)),
            "__name__": pa.array(name, pa.large_string()),
            "host": pa.array(host, pa.large_string()),
            "dc": pa.array([None if h.endswith("3") else "eu" for h in host], pa.large_string()),
        })  # fmt: skip

    first = batch(0, np.arange(5000))
    second = batch(1000, rng.permutation(5000))
    with ta.open(tmp_path / "db") as db:
        db.write(first)
        assert db.write(second).replaced == 0
        assert db._known.stats()["hits"] == 1
        # the first write's grouping of new sets splits too
        assert halves == ([5000, 5000] if split else [])
        got = db.select('{__name__=~"m|m7"}').collect()
    want = pl.concat([pl.from_arrow(first), pl.from_arrow(second)])
    key = ["host", "timestamp"]
    got = got.with_columns(pl.col("timestamp").dt.epoch("ms")).sort(key)
    assert got.select("__name__", "host", "dc", "timestamp", "value").equals(
        want.select("__name__", "host", "dc", "timestamp", "value").sort(key)
    )


@pytest.mark.parametrize("offset", [0, 3, 64, 67])
def test_a_sparse_columns_long_null_runs_are_passed_over_exactly(offset):
    """A column with a value every few dozen rows (whole validity words without one, passed
    over at once), sliced at any row: every present value is keyed, as row by row."""
    from tsdb_arrow.ingest import known as known_mod

    present = {0, 70, 71, 135, 200, 263, 264, 299, 300 + offset - 1}
    table_rows = [
        {"__name__": f"m{i % 3}", "s": f"v{i}" if i in present else None}
        for i in range(300 + offset)
    ]
    n = len(table_rows) - offset
    keys = np.full(n, known_mod._KEY_SEED, dtype=np.uint64)
    columns = []
    for name in ("__name__", "s"):
        name_bytes = np.frombuffer(name.encode(), dtype=np.uint8)
        name_key = known_mod._name_keys(name_bytes, np.array([0, len(name_bytes)]))[0]
        column = _large_strings([r[name] for r in table_rows]).slice(offset)
        columns.append((column, name_bytes, name_key))
    pieces = known_mod._key_columns(known_mod._column_chunks(columns), keys, 0, n)
    assert pieces[1][1].tolist() == [i - offset for i in sorted(present) if i >= offset]
    offsets, data, has_valid, valid, names, name_end = known_mod._pack(
        labels_of(table_rows[offset:], names=["__name__", "s"]), n
    )
    want = known_mod._row_keys(offsets, data, has_valid, valid, names, name_end, np.arange(n))
    assert keys.tolist() == want.tolist()
