"""``tables.distinct_rows``: the distinct rows of int columns, in lexicographic order."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tsdb_arrow.ingest.otlp.tables import distinct_rows

values = st.one_of(st.integers(0, 5), st.integers(0, 2**40))


@given(st.integers(1, 4).flatmap(lambda k: st.lists(st.tuples(*[values] * k), max_size=30)))
def test_distinct_rows_numbers_rows_in_lexicographic_order(rows):
    k = len(rows[0]) if rows else 2
    columns = [np.array([r[c] for r in rows], dtype=np.int64) for c in range(k)]
    first, inverse = distinct_rows(*columns)
    distinct = sorted(set(rows))
    assert inverse.dtype == np.int64
    assert [distinct[i] for i in inverse.tolist()] == rows
    assert first.tolist() == [rows.index(d) for d in distinct]
