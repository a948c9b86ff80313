"""Binary operators over a real database: matching, grouping, bool, set operators, errors."""

from __future__ import annotations

import math

import polars as pl
import pytest

from tsdb_arrow.errors import QueryError
from tsdb_arrow.promql.engine import evaluate
from tsdb_arrow.promql.values import InstantVector, Scalar, Steps


def load(db, rows: list[tuple[str, dict[str, str], float]]) -> None:
    names = sorted({k for _, labels, _ in rows for k in labels})
    db.write(
        pl.DataFrame(
            {
                "__name__": [r[0] for r in rows],
                **{n: pl.Series([r[1].get(n) for r in rows], dtype=pl.String) for n in names},
                "timestamp": [0] * len(rows),
                "value": [r[2] for r in rows],
            }
        )
    )


@pytest.fixture
def data(db):
    load(
        db,
        [
            ("req", {"job": "a", "code": "200"}, 10.0),
            ("req", {"job": "a", "code": "500"}, 2.0),
            ("req", {"job": "b", "code": "200"}, 30.0),
            ("lim", {"job": "a"}, 100.0),
            ("lim", {"job": "b"}, 200.0),
            ("info", {"job": "a", "team": "x"}, 1.0),
            ("dup", {"job": "a", "k": "1"}, 1.0),
            ("dup", {"job": "a", "k": "2"}, 1.0),
            ("one", {"job": "a", "k": "9"}, 5.0),
        ],
    )
    return db


def result(db, expr: str) -> dict[tuple, float]:
    vec = evaluate(db, expr, Steps(0, 0, 0))
    assert isinstance(vec, InstantVector)
    rows = vec.labels.to_dicts() if vec.labels.width else [{}] * len(vec)
    return {
        tuple(sorted((k, v) for k, v in row.items() if v is not None)): float(vec.values[i, 0])
        for i, row in enumerate(rows)
        if vec.present[i, 0]
    }


def test_scalar_operators(db) -> None:
    v = evaluate(db, "7 % 3 + 2 ^ 3 - 1 / 0", Steps(0, 0, 0))
    assert isinstance(v, Scalar) and v.values.tolist() == [-math.inf]
    assert evaluate(db, "-7 % 3", Steps(0, 0, 0)).values.tolist() == [-1.0]  # Go's math.Mod
    assert evaluate(db, "1 < bool 2", Steps(0, 0, 0)).values.tolist() == [1.0]
    assert evaluate(db, "NaN != bool NaN", Steps(0, 0, 0)).values.tolist() == [1.0]


def test_vector_scalar(data) -> None:
    assert result(data, 'req{code="200"} * 2') == {
        (("code", "200"), ("job", "a")): 20.0,
        (("code", "200"), ("job", "b")): 60.0,
    }
    # A filter keeps the vector's value and name, whichever side the scalar is on.
    assert result(data, "5 < req") == {
        (("__name__", "req"), ("code", "200"), ("job", "a")): 10.0,
        (("__name__", "req"), ("code", "200"), ("job", "b")): 30.0,
    }
    assert result(data, "req > bool 5") == {
        (("code", "200"), ("job", "a")): 1.0,
        (("code", "500"), ("job", "a")): 0.0,
        (("code", "200"), ("job", "b")): 1.0,
    }


def test_one_to_one_with_on_and_ignoring(data) -> None:
    # One-to-one results keep the on() labels, or drop the ignoring() ones.
    assert result(data, 'req{code="200"} / ignoring(code) lim') == {
        (("job", "a"),): 0.1,
        (("job", "b"),): 0.15,
    }
    assert result(data, 'req{code="200"} / on(job) lim') == {
        (("job", "a"),): 0.1,
        (("job", "b"),): 0.15,
    }
    assert result(data, 'req{code="200"} > on(job) lim') == {}
    assert result(data, 'lim > bool on(job) req{code="200"}') == {
        (("job", "a"),): 1.0,
        (("job", "b"),): 1.0,
    }


def test_group_left_and_right(data) -> None:
    assert result(data, "req / on(job) group_left lim") == {
        (("code", "200"), ("job", "a")): 0.1,
        (("code", "500"), ("job", "a")): 0.02,
        (("code", "200"), ("job", "b")): 0.15,
    }
    assert result(data, "req * on(job) group_left(team) info") == {
        (("code", "200"), ("job", "a"), ("team", "x")): 10.0,
        (("code", "500"), ("job", "a"), ("team", "x")): 2.0,
    }
    assert result(data, "info * on(job) group_right(team) req") == {
        (("code", "200"), ("job", "a"), ("team", "x")): 10.0,
        (("code", "500"), ("job", "a"), ("team", "x")): 2.0,
    }


def test_matching_errors(data) -> None:
    with pytest.raises(QueryError, match="many-to-one matching must be explicit"):
        result(data, "req / on(job) lim")
    with pytest.raises(
        QueryError,
        match=r'found duplicate series for the match group \{job="a"\} on the right hand-side '
        r'of the operation: \[\{__name__="dup", job="a", k="1"\}, \{__name__="dup", job="a", '
        r'k="2"\}\];many-to-many',
    ):
        result(data, "lim / on(job) dup")
    with pytest.raises(QueryError, match="grouping labels must ensure unique matches"):
        result(data, "dup * on(job) group_left(k) one")


def test_set_operators(data) -> None:
    assert result(data, "req and on(job) info") == {
        (("__name__", "req"), ("code", "200"), ("job", "a")): 10.0,
        (("__name__", "req"), ("code", "500"), ("job", "a")): 2.0,
    }
    assert result(data, "req unless on(job) info") == {
        (("__name__", "req"), ("code", "200"), ("job", "b")): 30.0,
    }
    assert result(data, 'lim or on(job) req{code="500"}') == {
        (("__name__", "lim"), ("job", "a")): 100.0,
        (("__name__", "lim"), ("job", "b")): 200.0,
    }
    assert len(result(data, "lim or req")) == 5
    with pytest.raises(QueryError, match="set operator"):
        result(data, "lim and 1")


def test_or_merges_series_that_lose_their_names(db) -> None:
    load(db, [("a", {}, 1.0)])
    db.write(pl.DataFrame({"__name__": ["b", "b"], "timestamp": [0, 600_000], "value": [3.0, 4.0]}))
    vec = evaluate(db, "-a or -b", Steps(0, 600_000, 600_000))
    assert len(vec) == 1 and vec.values[0].tolist() == [-1.0, -4.0]
