"""Prometheus' label-set hash (xxHash64 of name 0xff value 0xff ...), used by limit_ratio."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.promql.hashing import label_hashes, xxh64


def _xxh(data: bytes) -> int:
    buf = np.frombuffer(data, np.uint8) if data else np.zeros(1, np.uint8)
    return int(xxh64(buf, len(data)))


def test_xxh64_reference_vectors() -> None:
    # Published xxHash64 (seed 0) values: the short path, and the 32-byte stripes.
    assert _xxh(b"") == 0xEF46DB3751D8E999
    assert _xxh(b"abc") == 0x44BC2CF5AD770999
    assert _xxh(b"Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1


LABELS = st.dictionaries(
    st.sampled_from(["__name__", "a", "job", "zone"]), st.text(min_size=1, max_size=40), max_size=4
)


@settings(deadline=None)  # the first example compiles the kernel
@given(st.lists(LABELS, min_size=1, max_size=5))
def test_label_hashes_hash_the_sorted_pairs(rows: list[dict[str, str]]) -> None:
    names = sorted({k for r in rows for k in r})
    frame = (
        pl.DataFrame({n: pl.Series([r.get(n) for r in rows], dtype=pl.String) for n in names})
        if names
        else pl.DataFrame(height=len(rows))
    )
    want = [
        _xxh(b"".join(k.encode() + b"\xff" + r[k].encode() + b"\xff" for k in sorted(r)))
        for r in rows
    ]
    assert label_hashes(frame).tolist() == want
