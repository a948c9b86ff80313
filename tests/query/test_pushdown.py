"""Predicate pushdown reads Polars' serialized expressions, a format Polars does not promise:
whatever it cannot read is not pushed down (the predicate is applied anyway), never an error."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import polars as pl
import pytest
from polars.expr.meta import ExprMetaNameSpace

from tests.conftest import synthetic
from tsdb_arrow.query.pushdown import NOTHING, Pushdown, analyse, analyse_tree

LABELS = {"job", "instance"}
T = datetime(2023, 11, 14, 22, 15, tzinfo=timezone.utc)
T_MS = int(T.timestamp() * 1000)
TIME_TERM = {
    "BinaryExpr": {
        "left": {"Column": "timestamp"},
        "op": "GtEq",
        "right": {"Literal": {"Scalar": {"Datetime": [T_MS, "Milliseconds", None]}}},
    }
}


def _tree(expr: pl.Expr) -> dict:
    return json.loads(expr.meta.serialize(format="json"))


def test_time_bounds_and_label_terms_are_read() -> None:
    predicate = (
        (pl.col("timestamp") >= T)
        & (pl.col("job") == "api")
        & pl.col("timestamp").is_between(T_MS, T_MS + 60_000)
        & (pl.col("value") > 1)
    )
    push = analyse(predicate, LABELS)
    assert (push.start, push.end) == (T_MS, T_MS + 60_000)
    assert len(push.label_terms) == 1
    assert push.label_terms[0].meta.eq(pl.col("job") == "api")
    assert analyse(None, LABELS) == NOTHING


@pytest.mark.parametrize(
    "unreadable",
    [
        {"BinaryExpr": {"op": "And", "left": {"Column": "job"}}},  # an AND missing a side
        {"BinaryExpr": {"left": {"Column": "timestamp"}, "op": "GtEq", "right": {"Literal": 3}}},
        {
            "BinaryExpr": {
                "left": {"Column": "timestamp"},
                "op": "Lt",
                "right": {"Literal": {"Scalar": {"Datetime": "tomorrow"}}},
            }
        },
        {"Function": {"input": 7, "function": {"Boolean": {"IsBetween": {}}}}},
        {"Function": {"input": [{"Column": "timestamp"}], "function": {"IsBetween": None}}},
        {"SomethingNew": {"input": [{"Column": "job"}]}},
        ["not", "an", "object"],
        None,
    ],
)
def test_unreadable_terms_are_skipped_and_the_rest_is_kept(unreadable: object) -> None:
    alone = analyse_tree(unreadable, LABELS)
    assert (alone.start, alone.end, alone.label_terms) == (None, None, ())
    both = analyse_tree(
        {"BinaryExpr": {"left": TIME_TERM, "op": "And", "right": unreadable}}, LABELS
    )
    assert (both.start, both.end, both.label_terms) == (T_MS, None, ())


def test_a_long_chain_of_ands_is_read_without_recursion() -> None:
    tree: object = TIME_TERM
    for i in range(5000):
        tree = {"BinaryExpr": {"left": tree, "op": "And", "right": _tree(pl.col("job") == f"{i}")}}
    push = analyse_tree(tree, LABELS)
    assert push.start == T_MS and len(push.label_terms) == 5000


@pytest.mark.parametrize("serialized", ["{not json", '{"Renamed": {"BinaryExpr": 1}}', "raise"])
def test_a_selection_with_a_predicate_it_cannot_read_returns_the_right_rows(
    db, monkeypatch: pytest.MonkeyPatch, serialized: str
) -> None:
    db.write(synthetic(n_series=12, n_samples=200))
    lf = db.select("temp")
    predicate = (pl.col("job") == "api") & (pl.col("timestamp") >= T) & (pl.col("value") > 50)
    want = lf.collect().filter(predicate)
    assert 0 < want.height < lf.collect().height

    def unreadable(self: ExprMetaNameSpace, *args: object, **kwargs: object) -> str:
        if serialized == "raise":
            raise ValueError("this Polars serializes differently")
        return serialized

    monkeypatch.setattr(ExprMetaNameSpace, "serialize", unreadable)
    assert analyse(predicate, LABELS) == Pushdown(None, None, ())
    assert lf.filter(predicate).collect().equals(want)


@pytest.mark.filterwarnings("ignore::polars.exceptions.PolarsInefficientMapWarning")
def test_a_python_function_in_a_filter_runs_on_the_selection(db) -> None:
    # Polars pickles the function to hand the predicate to select's IO source (cloudpickle)
    db.write(synthetic(n_series=12, n_samples=200))
    lf = db.select("temp")
    want = lf.collect().filter(pl.col("value") > 50)
    assert 0 < want.height
    above = pl.col("value").map_batches(lambda s: s > 50, return_dtype=pl.Boolean)
    assert lf.filter(above).collect().equals(want)
    assert lf.filter(above & (pl.col("job") == "api")).collect().equals(
        want.filter(pl.col("job") == "api")
    )
    each = pl.col("value").map_elements(lambda v: v > 50, return_dtype=pl.Boolean)
    assert lf.filter(each).collect().equals(want)
