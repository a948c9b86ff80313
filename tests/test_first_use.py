"""What a new user hits on a first session: opening, writing, selecting, counting (issue 7.8)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tsdb_arrow as ta
from tsdb_arrow.datadir import MARKER_FILE

T0 = 1_795_543_910_000  # 2026-11-24T18:11:50Z in ms


# -- open ------------------------------------------------------------------------------------


def test_empty_path_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ta.DataDirectoryError, match=r"path is empty; give a directory such as"):
        ta.open("")
    assert os.listdir(tmp_path) == []  # the current directory was left alone


def test_a_new_directory_gets_the_marker(tmp_path):
    ta.open(tmp_path / "db").close()
    marker = json.loads((tmp_path / "db" / MARKER_FILE).read_text())
    assert marker == {"format": "tsdb-arrow-data", "version": 1}
    assert sorted(os.listdir(tmp_path / "db")) == ["LOCK", "blocks", MARKER_FILE, "wal"]


def test_an_empty_existing_directory_becomes_a_database(tmp_path):
    (tmp_path / "db").mkdir()
    with ta.open(tmp_path / "db") as db:
        db.write(pl.DataFrame({"timestamp": [T0], "value": [1.0], "__name__": "m"}))
    with ta.open(tmp_path / "db") as db:
        assert db.stats()["samples"] == 1


def test_a_foreign_non_empty_directory_is_refused(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    (project / "src").mkdir()
    with pytest.raises(
        ta.DataDirectoryError,
        match=r"project is not empty \(notes.txt, src\) and is not a tsdb-arrow data directory "
        r"\(no tsdb-arrow.json in it\)",
    ):
        ta.open(project)
    assert sorted(os.listdir(project)) == ["notes.txt", "src"]  # no LOCK, no blocks/


def test_a_directory_made_before_the_marker_is_adopted(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(pl.DataFrame({"timestamp": [T0], "value": [1.0], "__name__": "m"}))
    (tmp_path / "db" / MARKER_FILE).unlink()  # as the previous version left it: no marker,
    shutil.rmtree(tmp_path / "db" / "wal")  # no write-ahead log
    with ta.open(tmp_path / "db") as db:
        assert db.select("m").collect()["value"].to_list() == [1.0]
    assert (tmp_path / "db" / MARKER_FILE).is_file()


def test_a_marker_of_another_version_is_refused(tmp_path):
    ta.open(tmp_path / "db").close()
    (tmp_path / "db" / MARKER_FILE).write_text('{"format": "tsdb-arrow-data", "version": 9}')
    with pytest.raises(
        ta.DataDirectoryError, match="of version 9; this tsdb-arrow reads version 1"
    ):
        ta.open(tmp_path / "db")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_directory_names_the_path(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(ta.DataDirectoryError, match=rf"cannot lock {ro} \(Permission denied"):
            ta.open(ro)
    finally:
        ro.chmod(stat.S_IRWXU)


def test_an_unusable_lock_file_names_the_path(tmp_path):
    ta.open(tmp_path / "db").close()
    (tmp_path / "db" / "LOCK").unlink()
    (tmp_path / "db" / "LOCK").mkdir()  # what a permission problem looks like to root
    with pytest.raises(
        ta.DataDirectoryError,
        match=rf"cannot lock {tmp_path / 'db'} \(Is a directory on LOCK\): a data directory must "
        "be writable",
    ):
        ta.open(tmp_path / "db")


def test_config_as_a_dict(tmp_path):
    with ta.open(tmp_path / "db", config={"cache_bytes": 0, "block_duration": 60_000}) as db:
        assert db.config == ta.StorageConfig(cache_bytes=0, block_duration=60_000)
    with pytest.raises(ta.ConfigError, match=r"unknown StorageConfig field\(s\) \['cache'\]"):
        ta.open(tmp_path / "db", config={"cache": 0})
    with pytest.raises(ta.ConfigError, match="cache_bytes must be >= 0, got -1"):
        ta.open(tmp_path / "db", config={"cache_bytes": -1})
    with pytest.raises(ta.ConfigError, match="a ta.StorageConfig or a dict of its fields"):
        ta.open(tmp_path / "db", config=[("cache_bytes", 0)])  # type: ignore[arg-type]


# -- timestamps in seconds -------------------------------------------------------------------


def test_epoch_seconds_are_refused_with_the_fix(db):
    frame = pl.DataFrame({"timestamp": [T0, 1_795_543_911], "value": [1.0, 2.0], "__name__": "m"})
    with pytest.raises(
        ta.InputError,
        match=r"row 1: 'timestamp' 1795543911: it looks like seconds since the epoch "
        r"\(2026-11-24T18:11:51.000Z\), while integers are read as milliseconds "
        r"\(1970-01-21T18:45:43.911Z\): multiply by 1000",
    ):
        db.write(frame)
    assert db.stats()["samples"] == 0
    with pytest.raises(ta.TimeRangeError, match=r"start=1795543910 is not a time: .*multiply"):
        db.select("m", start=1_795_543_910)
    with pytest.raises(ta.TimeRangeError, match="multiply by 1000"):
        db.select("m", end="1795543910")


def test_the_ambiguous_range_bounds(db):
    def write(ts):
        return db.write(pl.DataFrame({"timestamp": [ts], "value": [1.0], "__name__": "m"}))

    assert write(99_999_999).rows == 1  # small test values stay accepted
    assert write(10**11).rows == 1
    assert write(-1_795_543_910).rows == 1  # only positive seconds are guessed at
    for ts in (10**8, 1_795_543_910, 10**11 - 1):
        with pytest.raises(ta.InputError, match="multiply by 1000"):
            write(ts)


def test_times_in_1970_to_1973_go_in_as_datetimes(db):
    times = pl.Series([1_000_000_000], dtype=pl.Int64).cast(pl.Datetime("ms"))
    db.write(pl.DataFrame({"timestamp": times, "value": [1.0], "__name__": "m"}))
    start = pd.Timestamp(1_000_000_000, unit="ms", tz="UTC")
    got = db.select("m", start=start).collect()
    assert got["timestamp"].dt.epoch("ms").to_list() == [1_000_000_000]


# -- duplicates ------------------------------------------------------------------------------


def _frame(ts, values, name="m"):
    return pl.DataFrame({"timestamp": ts, "value": values, "__name__": name})


def test_write_reports_rows_that_replaced_earlier_ones(db):
    first = db.write(_frame([T0, T0 + 1, T0 + 1], [1.0, 2.0, 3.0]))
    assert first == ta.WriteResult(rows=3, replaced=1) and first.added == 2
    assert db.select("m").collect()["value"].to_list() == [1.0, 3.0]
    # Against the head, then against a block.
    assert db.write(_frame([T0 + 1, T0 + 2], [4.0, 5.0])) == ta.WriteResult(2, 1)
    db.flush()
    assert db.write(_frame([T0, T0 + 3], [6.0, 7.0])) == ta.WriteResult(2, 1)
    # Another series at the same times replaces nothing; newer times neither.
    assert db.write(_frame([T0, T0 + 1], [8.0, 9.0], name="other")).replaced == 0
    assert db.write(_frame([T0 + 10, T0 + 11], [1.0, 1.0])).replaced == 0
    db.flush()
    assert db.select("m").collect()["value"].to_list() == [6.0, 4.0, 5.0, 7.0, 1.0, 1.0]
    assert db.stats()["samples"] == 8 == db.select(None).collect().height


def test_interleaved_rows_are_checked_per_series(db):
    # Time-major rows (every series at one time, then the next): no repeat, nothing replaced.
    names = ["a", "b", "c"] * 4
    ts = np.repeat(T0 + np.arange(4), 3)
    assert db.write(_frame(ts, np.arange(12.0), names)).replaced == 0
    again = _frame(np.array([T0 + 5, T0 + 5, T0 + 3]), [1.0, 2.0, 3.0], ["a", "b", "a"])
    assert db.write(again) == ta.WriteResult(3, 1)


def test_loading_the_same_rows_twice_counts_them_once(tmp_path, real_table):
    part = real_table.slice(0, 100_000)
    with ta.open(tmp_path / "db") as db:
        assert db.write(part) == ta.WriteResult(100_000, 0)
        db.flush()
        assert db.write(part) == ta.WriteResult(100_000, 100_000)
        db.flush()
        stats = db.stats()
        assert stats["samples"] == stats["block_samples"] == 100_000
        assert stats["blocks"] == 2
        assert db.select(None).collect().height == 100_000
    with ta.open(tmp_path / "db") as db:  # counted from the blocks again after a reopen
        assert db.stats()["samples"] == 100_000


def test_samples_after_flush_equal_a_select_all(tmp_path):
    rng = np.random.default_rng(7)
    config = ta.StorageConfig(block_duration=60_000)
    with ta.open(tmp_path / "db", config=config) as db:
        for _ in range(6):
            ts = T0 + rng.integers(0, 200_000, 300)
            names = rng.choice(["a", "b"], 300)
            db.write(_frame(ts, rng.normal(size=300), names))
            db.flush()
            assert db.stats()["samples"] == db.select(None).collect().height


# -- metric names and selectors ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["my metric", "cpu.seconds", "1st", "métrique", "a-b"])
def test_invalid_metric_names_are_refused(db, name):
    frame = _frame([T0, T0 + 1], [1.0, 2.0], ["ok", name])
    with pytest.raises(ta.InputError, match=rf"row 1: metric name {name!r} is invalid"):
        db.write(frame)
    with pytest.raises(ta.InputError, match="metric names must match"):
        db.write(_frame([T0], [1.0]).drop("__name__"), metric=name)
    assert db.stats()["series"] == 0


@pytest.mark.parametrize("name", ["up", "job:rate5m", "_x", ":y", "A9"])
def test_valid_metric_names(db, name):
    assert db.write(_frame([T0], [1.0], name)).rows == 1
    assert db.select(name).collect().height == 1


@pytest.mark.parametrize("selector", ["", "{}", "  ", '{job=~".*"}', '{job=""}', '{job!="x"}'])
def test_selectors_that_match_the_empty_string_are_refused(db, selector):
    with pytest.raises(ta.SelectorError, match="has no matcher that requires a non-empty value"):
        db.select(selector)
    with pytest.raises(ta.SelectorError, match="pass None"):
        db.series(selector)


def test_none_selects_everything(db):
    db.write(_frame([T0], [1.0], "a"))
    db.write(_frame([T0], [1.0], "b"))
    assert db.select(None).collect().height == 2 == db.select().collect().height


@pytest.mark.parametrize(
    ("regex", "operator"), [("a++", "++"), ("a**", "**"), ("b*+", "*+"), ("c{2}*", "{2}*")]
)
def test_re2_refuses_stacked_repetitions(db, regex, operator):
    expected = re.escape(f"invalid nested repetition operator '{operator}' (RE2 syntax")
    with pytest.raises(ta.SelectorError, match=expected):
        db.select(f'{{__name__=~"{regex}"}}')


def test_missing_metric_has_the_columns_the_selector_requires(db):
    db.write(pl.DataFrame({"timestamp": [T0], "value": [1.0], "__name__": "m", "cpu": "0"}))
    found = db.select('m{cpu="0"}').collect()
    missing = db.select('nope{cpu="0", mode=~".+", zone=~".*"}').collect()
    assert found.columns == ["timestamp", "value", "__name__", "cpu"]
    assert missing.schema == pl.Schema(
        {
            "timestamp": pl.Datetime("ms", "UTC"),
            "value": pl.Float64,
            "__name__": pl.String,
            "cpu": pl.String,
            "mode": pl.String,
        }
    )
    assert missing.height == 0
    assert missing.filter(pl.col("cpu") == "0").height == 0  # the same code runs on both


# -- input shapes ----------------------------------------------------------------------------


def test_untyped_empty_frames_store_nothing(db):
    assert db.write(pl.DataFrame({"timestamp": [], "value": [], "__name__": []})).rows == 0
    assert db.write(pd.DataFrame({"timestamp": [], "value": [], "__name__": []})).rows == 0
    typed = pl.DataFrame(schema={"timestamp": pl.Int64, "value": pl.Float64, "__name__": pl.String})
    assert db.write(typed) == ta.WriteResult(0, 0)
    assert db.stats()["samples"] == 0


@pytest.mark.parametrize(
    ("columns", "metric", "message"),
    [
        ({"timestamp": [], "value": [], "bad-label": []}, "m", "invalid label name 'bad-label'"),
        ({"timestamp": [], "value": []}, None, "no metric name"),
        ({"timestamp": [], "value": []}, "my metric", "metric name 'my metric' is invalid"),
        ({"timestamp": [], "value": [], "__name__": []}, "m", "use one"),
    ],
)
def test_empty_frames_with_bad_names_are_refused_like_full_ones(db, columns, metric, message):
    with pytest.raises(ta.InputError, match=message):
        db.write(pl.DataFrame(columns), metric=metric)
    assert db.stats()["series"] == 0


def test_pandas_datetime_index_gets_a_hint(db):
    index = pd.date_range("2026-11-24", periods=3, freq="s", tz="UTC", name="time")
    frame = pd.DataFrame({"value": [1.0, 2.0, 3.0], "__name__": "m"}, index=index)
    with pytest.raises(
        ta.InputError,
        match=r"holds its times in its index \(DatetimeIndex named 'time'\).*"
        r"frame.reset_index\(names='timestamp'\)",
    ):
        db.write(frame)
    assert db.write(frame.reset_index(names="timestamp")).rows == 3


def test_wide_frames_go_in_through_unpivot(db):
    wide = pl.DataFrame(
        {
            "timestamp": T0 + np.arange(3) * 1000,
            "cpu_temp": [50.0, 51.0, 52.0],
            "fan_rpm": [900.0, 950.0, 1000.0],
        }
    )
    with pytest.raises(ta.InputError, match=r"wide frame .*frame.unpivot\(index='timestamp'"):
        db.write(wide)
    # The recipe the README gives:
    long = wide.unpivot(index="timestamp", variable_name="__name__", value_name="value")
    assert db.write(long).rows == 6
    got = db.select("fan_rpm").collect()
    assert got["value"].to_list() == [900.0, 950.0, 1000.0]


def test_a_frame_collected_after_close_says_why(tmp_path):
    with ta.open(tmp_path / "db") as db:
        db.write(_frame([T0], [1.0]))
        lazy = db.select("m")
    with pytest.raises(ta.ClosedError, match=r"collect it \(or sink it\) before close\(\)"):
        lazy.collect()


def test_sparse_data_with_a_long_block_duration(tmp_path):
    days = T0 + np.arange(365, dtype=np.int64) * 86_400_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = ta.StorageConfig(block_duration=timedelta(days=365))
    with ta.open(tmp_path / "db", config=config) as db:
        db.write(_frame(days, np.arange(365.0)))
        db.flush()
        assert db.stats()["blocks"] <= 2  # the default 2 h would make 365
        assert db.select("m").collect().height == 365


_rows = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 40), st.booleans()),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_rows, min_size=1, max_size=6))
def test_replaced_and_samples_match_a_reference(tmp_path_factory, batches):
    """Random writes (repeats within and across batches, flushes between): exact counts."""
    seen: dict[tuple[str, int], float] = {}
    config = ta.StorageConfig(block_duration=10_000)  # 10 s windows: many overlapping blocks
    with ta.open(tmp_path_factory.mktemp("db") / "db", config=config) as db:
        for i, rows in enumerate(batches):
            names = [name for name, _, _ in rows]
            ts = [T0 + 1000 * t for _, t, _ in rows]
            values = [float(i * 100 + j) for j in range(len(rows))]
            expected = 0
            for name, t, value in zip(names, ts, values):
                expected += (name, t) in seen
                seen[(name, t)] = value
            assert db.write(_frame(ts, values, names)) == ta.WriteResult(len(rows), expected)
            if rows[0][2]:
                db.flush()
        db.flush()
        got = db.select(None).collect()
        assert db.stats()["samples"] == len(seen) == got.height
        stored = {
            (n, t): v
            for n, t, v in zip(got["__name__"], got["timestamp"].dt.epoch("ms"), got["value"])
        }
        assert stored == seen
