"""Refused batches: a clear TsdbError naming the row or column, and nothing stored."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import tsdb_arrow as ta

from .conftest import canonical, synthetic


@pytest.fixture
def loaded(db):
    """A database holding one accepted batch, half flushed to a block and half in the head."""
    first = synthetic(4, 10)
    db.write(first.head(20))
    db.flush()
    db.write(first.slice(20))
    return db, first


def assert_untouched(db, first):
    stats = db.stats()
    assert stats["samples"] == 40
    assert stats["series"] == 4
    assert canonical(db.select().collect()).equals(canonical(first))


BAD = [
    (pl.DataFrame({"value": [1.0], "__name__": ["m"]}), "missing column 'timestamp'"),
    (pl.DataFrame({"timestamp": [1], "__name__": ["m"]}), "missing column 'value'"),
    (
        pl.DataFrame({"timestamp": [1, None, 3], "value": [1.0, 2.0, 3.0], "__name__": ["m"] * 3}),
        "row 1: 'timestamp' is null",
    ),
    (
        pl.DataFrame({"timestamp": [1, 2], "value": [1.0, None], "__name__": ["m"] * 2}),
        "row 1: 'value' is null",
    ),
    (
        pl.DataFrame({"timestamp": [1, 2], "value": ["1.5", "abc"], "__name__": ["m"] * 2}),
        "row 1: 'value' 'abc' is not a number",
    ),
    (
        pl.DataFrame({"timestamp": [1], "value": [1.0], "__name__": ["m"], "bad-name": ["x"]}),
        "invalid label name 'bad-name'",
    ),
    (
        pl.DataFrame({"timestamp": [1], "value": [1.0], "__name__": ["m"], "9lives": ["x"]}),
        "invalid label name '9lives'",
    ),
    (
        pl.DataFrame({"timestamp": [1], "value": [1.0], "__name__": ["m"], "n": [3]}),
        "label column 'n' has type int64",
    ),
    (
        pl.DataFrame({"timestamp": [1, 2], "value": [1.0, 2.0], "__name__": ["m", None]}),
        "row 1: '__name__' is empty",
    ),
    (pl.DataFrame({"timestamp": [1], "value": [1.0]}), "no metric name"),
    (
        pl.DataFrame(
            {
                "timestamp": ["2026-01-01T00:00:00Z", "yesterday"],
                "value": [1.0, 2.0],
                "__name__": ["m", "m"],
            }
        ),
        "row 1: 'timestamp' 'yesterday' is not an RFC 3339 time",
    ),
    (
        pl.DataFrame({"timestamp": [1.5], "value": [1.0], "__name__": ["m"]}),
        "'timestamp' has type double",
    ),
    (
        pl.DataFrame({"timestamp": [1], "value": [1.0], "__name__": ["m"], "series_ref": ["x"]}),
        "'series_ref' is reserved",
    ),
    (pl.DataFrame({"timestamp": [1], "value": [[1.0]], "__name__": ["m"]}), "'value' has type"),
    ([{"timestamp": 1, "value": 1.0}], "write() takes a pyarrow Table"),
]


@pytest.mark.parametrize(("frame", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_batches_are_refused_whole(loaded, frame, message):
    db, first = loaded
    # The bad row comes after good rows of a brand-new series: none of it may be stored.
    with pytest.raises(ta.InputError) as err:
        db.write(frame)
    assert message in str(err.value)
    assert_untouched(db, first)


def test_non_utf8_label_is_refused(loaded):
    db, first = loaded
    raw = pa.array([b"ok", b"\xff\xfe"], pa.binary())
    bad = pa.Array.from_buffers(pa.large_string(), 2, raw.cast(pa.large_binary()).buffers())
    table = pa.table(
        {"timestamp": [1, 2], "value": [1.0, 2.0], "__name__": ["m", "m"], "host": bad}
    )
    with pytest.raises(ta.InputError, match="'host' holds a value that is not valid UTF-8"):
        db.write(table)
    assert_untouched(db, first)


def test_metric_argument_conflicts_with_name_column(loaded):
    db, first = loaded
    with pytest.raises(ta.InputError, match="use one"):
        db.write(synthetic(1, 2), metric="x")
    assert_untouched(db, first)


def test_unknown_selector_syntax(db):
    for selector in ['up{job="x"', "up[5m]", "sum(up)", 'up{job=~"("}', "{1abc='x'}"]:
        with pytest.raises(ta.SelectorError):
            db.select(selector)


def test_collision_is_refused_not_merged(loaded, monkeypatch):
    db, first = loaded
    from tsdb_arrow.ingest import series as series_mod

    # Force every new label set onto one ref: the index must notice two label sets share it.
    known = db.series()["series_ref"][0]
    monkeypatch.setattr(series_mod, "_mix64", lambda h: np.full(len(h), known, dtype=np.uint64))
    frame = pl.DataFrame({"timestamp": [1], "value": [1.0], "__name__": ["other"]})
    with pytest.raises(ta.SeriesCollisionError, match="series ref"):
        db.write(frame)
    # Within one batch too: two label sets with the same ref.
    two = pl.DataFrame({"timestamp": [1, 2], "value": [1.0, 2.0], "__name__": ["p", "q"]})
    with pytest.raises(ta.SeriesCollisionError):
        db.write(two)
    monkeypatch.undo()
    assert_untouched(db, first)


def test_config_is_validated():
    with pytest.raises(ta.ConfigError, match="cache_bytes"):
        ta.StorageConfig(cache_bytes=-1)
    with pytest.raises(ta.ConfigError, match="block_duration"):
        ta.StorageConfig(block_duration=10)
    with pytest.raises(ta.ConfigError, match="chunk_samples must be an int"):
        ta.StorageConfig(chunk_samples=1.5)


def test_closed_database_refuses_use(tmp_path):
    db = ta.open(tmp_path / "db")
    db.close()
    db.close()  # closing twice is harmless
    with pytest.raises(ta.ClosedError):
        db.write(synthetic(1, 1))
    with pytest.raises(ta.ClosedError):
        db.select()
