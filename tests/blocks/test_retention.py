"""Retention: whole blocks past the age limit go, then the oldest until the bytes fit; a block
never goes while an older write it replaced stays."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.blocks.meta import BlockMeta
from tsdb_arrow.blocks.retention import plan_retention


def block(id_: str, seq: int, lo: int, hi: int) -> BlockMeta:
    return BlockMeta(
        id=id_,
        seq=seq,
        min_time=lo,
        max_time=hi,
        num_samples=1,
        num_series=1,
        num_chunks=1,
        chunk_samples=16,
    )


# Four 10 ms blocks in time order, 100 bytes each; the newest sample is at 39.
BLOCKS = [block(f"b{k}", k + 1, 10 * k, 10 * k + 9) for k in range(4)]
SIZES = {m.id: 100 for m in BLOCKS}


@pytest.mark.parametrize(
    ("retention_ms", "retention_bytes", "gone"),
    [
        (None, None, []),
        (30, None, []),  # cutoff 9: block b0 ends at 9, not before it
        (29, None, ["b0"]),
        (15, None, ["b0", "b1"]),
        (0, None, ["b0", "b1", "b2"]),  # the newest block holds the newest sample
        (None, 400, []),
        (None, 399, ["b0"]),
        (None, 150, ["b0", "b1", "b2"]),
        (None, 0, ["b0", "b1", "b2", "b3"]),
        (29, 250, ["b0", "b1"]),  # age takes b0, bytes then b1
    ],
)
def test_old_blocks_go_by_age_then_by_bytes(retention_ms, retention_bytes, gone):
    got = plan_retention(
        BLOCKS[::-1],
        SIZES,
        retention_ms=retention_ms,
        retention_bytes=retention_bytes,
        newest_time=39,
    )
    assert got == gone


def test_a_newer_write_past_the_limit_stays_while_an_older_write_it_replaced_stays():
    older = block("late", 1, 0, 100)  # written first, reaching past the cutoff
    newer = block("fix", 2, 0, 5)  # rewrote some of its early samples: past the cutoff
    metas = [older, newer]
    assert plan_retention(metas, {}, retention_ms=50, retention_bytes=None, newest_time=100) == []
    # by write order it is the other way round: the older write may go first
    older, newer = block("early", 1, 0, 5), block("late", 2, 0, 100)
    got = plan_retention([older, newer], {}, retention_ms=50, retention_bytes=None, newest_time=100)
    assert got == ["early"]


def test_among_overlapping_blocks_bytes_take_the_older_write_first():
    metas = [block("new", 2, 0, 9), block("old", 1, 5, 30), block("next", 3, 40, 49)]
    sizes = {"new": 10, "old": 10, "next": 10}
    got = plan_retention(metas, sizes, retention_ms=None, retention_bytes=15, newest_time=49)
    assert got == ["old", "new"]


@st.composite
def cases(draw):
    n = draw(st.integers(0, 12))
    seqs = draw(st.permutations(range(1, 50)))[:n]
    metas = []
    for i, seq in enumerate(seqs):
        lo = draw(st.integers(0, 200))
        metas.append(block(f"x{i}", seq, lo, lo + draw(st.integers(0, 60))))
    sizes = {m.id: draw(st.integers(0, 1000)) for m in metas}
    return metas, sizes


@settings(max_examples=300, deadline=None)
@given(
    case=cases(),
    retention_ms=st.one_of(st.none(), st.integers(0, 300)),
    retention_bytes=st.one_of(st.none(), st.integers(0, 8000)),
)
def test_retention_invariants(case, retention_ms, retention_bytes):
    metas, sizes = case
    newest = max((m.max_time for m in metas), default=0)
    gone = plan_retention(
        metas,
        sizes,
        retention_ms=retention_ms,
        retention_bytes=retention_bytes,
        newest_time=newest,
    )
    assert len(gone) == len(set(gone)) and set(gone) <= {m.id for m in metas}
    kept = [m for m in metas if m.id not in gone]
    by_id = {m.id: m for m in metas}
    # nothing older comes back: a deleted block overlaps no kept block of lower seq
    for g in gone:
        d = by_id[g]
        assert not any(
            k.seq < d.seq and k.min_time <= d.max_time and d.min_time <= k.max_time for k in kept
        )
    by_age = set(
        plan_retention(
            metas, sizes, retention_ms=retention_ms, retention_bytes=None, newest_time=newest
        )
    )
    assert by_age <= set(gone)
    if retention_ms is not None:
        cutoff = newest - retention_ms
        for m in kept:  # a block past the age limit stays only for an older kept write
            if m.max_time < cutoff:
                assert any(
                    k.seq < m.seq and k.min_time <= m.max_time and m.min_time <= k.max_time
                    for k in kept
                )
    if retention_bytes is None:
        assert set(gone) == by_age
    else:
        assert sum(sizes[m.id] for m in kept) <= retention_bytes
    if retention_bytes is not None and retention_ms is None and gone:
        # the last block taken for bytes was needed
        assert sum(sizes[m.id] for m in kept) + sizes[gone[-1]] > retention_bytes
    # oldest first: the list follows time (groups of overlapping blocks), then write order
    assert gone == plan_retention(
        metas[::-1],
        sizes,
        retention_ms=retention_ms,
        retention_bytes=retention_bytes,
        newest_time=newest,
    )
