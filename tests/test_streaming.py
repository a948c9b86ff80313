"""Reads stream: memory stays bounded when the selection is far larger than a memory cap.

Memory is the peak resident set size of a fresh process: it sees every allocation (numpy,
Arrow, Polars, numba), which tracemalloc or an Arrow memory pool alone would not. The process is
warmed up first on a small selection through the same path (kernels compiled or loaded, thread
pools and Parquet sink started), so the growth measured is that of the large read itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import tsdb_arrow as ta

PEAK_RSS = "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024"

N_SERIES = 2000
N_SAMPLES = 4000  # 8 M samples, one block window


def big_frame() -> pl.DataFrame:
    sid = np.repeat(np.arange(N_SERIES), N_SAMPLES)
    return pl.DataFrame(
        {
            "__name__": "load",
            "instance": pl.Series(sid).cast(pl.String),
            "job": "node",
            "timestamp": 1_800_000_000_000 + np.tile(np.arange(N_SAMPLES) * 1000, N_SERIES),
            "value": np.tile(np.arange(N_SAMPLES, dtype=np.float64) / 8, N_SERIES),
        }
    )


@pytest.mark.slow
def test_sink_parquet_of_a_large_selection_stays_bounded(tmp_path):
    """Writing a 200 MiB selection to Parquet raises the peak RSS by less than half of it
    (under 10 MiB measured after the warm-up; collecting the selection instead adds 230 MiB)."""
    with ta.open(tmp_path / "db") as db:
        frame = big_frame()
        db.write(frame)
        in_memory = frame.estimated_size()
        del frame
    cap = 96 * 2**20
    assert in_memory > 2 * cap  # the selection is more than twice the cap
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        import tsdb_arrow as ta
        db = ta.open({str(tmp_path / "db")!r}, config=ta.StorageConfig(cache_bytes=16 * 2**20))
        # warm up on 100 series (5 % of the samples) through the same path
        db.select('load{{instance=~"1.."}}').sink_parquet({str(tmp_path / "warm.parquet")!r})
        before = {PEAK_RSS}
        db.select().sink_parquet({str(tmp_path / "out.parquet")!r})
        after = {PEAK_RSS}
        db.close()
        print(json.dumps({{"before": before, "after": after}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    growth = rss["after"] - rss["before"]
    assert growth < cap, f"peak RSS grew by {growth / 2**20:.0f} MiB (cap {cap / 2**20:.0f} MiB)"
    assert pq.ParquetFile(tmp_path / "warm.parquet").metadata.num_rows == 100 * N_SAMPLES
    out = pq.ParquetFile(tmp_path / "out.parquet")
    assert out.metadata.num_rows == N_SERIES * N_SAMPLES


@pytest.mark.slow
def test_one_series_longer_than_a_batch_streams_in_slices(tmp_path):
    """A series of 2 M samples (46 MiB decoded with its refs) is handed over in batch_size
    slices as its row groups are decoded: the first 10,000-row batch raises the peak RSS by
    less than 24 MiB (about 3 MiB measured; assembling the series whole adds 46 MiB)."""
    n = 2_000_000
    config = {"block_duration": 10**12, "cache_bytes": 0}  # one block, no chunk cache
    with ta.open(tmp_path / "db", config=ta.StorageConfig(**config)) as db:
        ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 1000
        db.write(pl.DataFrame({"timestamp": ts, "value": np.arange(n) / 7, "__name__": "big"}))
        small = 300_000  # more than one row group too, for the warm-up
        db.write(
            pl.DataFrame(
                {"timestamp": ts[:small], "value": np.arange(small) / 7, "__name__": "small"}
            )
        )
    cap = 24 * 2**20
    script = textwrap.dedent(
        f"""
        import json, resource
        import tsdb_arrow as ta
        from tsdb_arrow.query.scan import Scan
        db = ta.open({str(tmp_path / "db")!r}, config=ta.StorageConfig(**{config!r}))

        def first_batch(selector):
            source = Scan(db.series(selector), None, None, db._snapshot, db._cache,
                          db._pool_threads)
            batches = source(None, None, None, 10_000)
            first = next(batches)
            batches.close()
            return first

        warm = first_batch("small")  # kernels, thread pool and frame building warmed up
        before = {PEAK_RSS}
        first = first_batch("big")
        after = {PEAK_RSS}
        db.close()
        print(json.dumps({{"before": before, "after": after, "heights": [warm.height,
                          first.height], "last": first["value"][-1]}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["heights"] == [10_000, 10_000]
    assert got["last"] == 9_999 / 7
    growth = got["after"] - got["before"]
    assert growth < cap, f"{growth / 2**20:.0f} MiB to produce one 10,000-row batch"
