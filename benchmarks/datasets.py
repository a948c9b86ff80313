"""The benchmark's data sets, as long-format Arrow tables.

* ``real``: node-exporter samples scraped every second (``shared/data`` beside the repo, or the
  15-minute excerpt shipped in ``tests/data`` when that is absent);
* ``synthetic``: deterministic, vectorised numpy data (seeded) with the shape of a Prometheus
  fleet: 15 s scrapes with millisecond jitter, integer counters, 2-decimal gauges and constants.
  It is cached as Parquet under the work directory, since generating 10 M samples takes a while.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from benchmarks.formats import NAME, TIMESTAMP, VALUE, label_columns

REAL_FILE = "real_node_1s.parquet"
REAL_ENV = "TSDB_ARROW_REAL_DATA"
REAL_FALLBACK = Path("tests/data/real_node_1s_15m.parquet")

#: 2026-11-01T00:00:00Z in milliseconds: the synthetic data starts here.
SYNTHETIC_START_MS = 1_793_491_200_000
SCRAPE_INTERVAL_MS = 15_000
JITTER_MS = 3
METRICS_PER_INSTANCE = 100
#: Bump when the generator changes, so that stale cached files are not reused.
GENERATOR_VERSION = 3


@dataclass(frozen=True)
class DataSet:
    """A named long-format table and where it came from (shown in the table's notes)."""

    name: str
    table: pa.Table
    source: str

    @property
    def samples(self) -> int:
        """Number of samples (rows)."""
        return self.table.num_rows

    @property
    def labels(self) -> list[str]:
        """Label columns, ``__name__`` first."""
        return label_columns(self.table.column_names)

    @cached_property
    def series(self) -> pl.DataFrame:
        """The distinct label sets, sorted by label (nulls last); computed once."""
        df = pl.from_arrow(self.table.select(self.labels))
        assert isinstance(df, pl.DataFrame)
        return df.lazy().unique().sort(self.labels, nulls_last=True).collect()

    def one_series(self) -> dict[str, str]:
        """Labels of one series that an equality selector on all its labels matches alone.

        Deterministic: the middle series in label order whose full label set is not a subset of
        another series' labels (a PromQL selector would match those supersets too).
        """
        rows = self.series.to_dicts()
        start = len(rows) // 2
        for row in rows[start:] + rows[:start]:
            present = {k: v for k, v in row.items() if v is not None}
            matches = self.series.filter(*[pl.col(k) == v for k, v in present.items()]).height
            if matches == 1:
                return present
        raise ValueError(f"{self.name}: no series is selectable alone by equality matchers")

    def series_samples(self, labels: Mapping[str, str]) -> int:
        """Number of samples of the series with exactly ``labels`` (all other labels absent)."""
        return int(
            pl.scan_pyarrow_dataset(ds.dataset(self.table))
            .filter(series_predicate(labels, self.labels))
            .select(pl.len())
            .collect()
            .item()
        )


def series_predicate(labels: Mapping[str, str], columns: list[str]) -> pl.Expr:
    """Polars predicate for the one series with exactly ``labels``: others must be null."""
    return pl.all_horizontal(
        [pl.col(c) == labels[c] if c in labels else pl.col(c).is_null() for c in columns]
    )


def repo_root() -> Path:
    """The repository root (the parent of this package)."""
    return Path(__file__).resolve().parent.parent


def load_real(root: Path) -> DataSet:
    """The real node-exporter data set from ``ROOT/../shared/data``, else the test excerpt.

    ``$TSDB_ARROW_REAL_DATA`` names the file instead (e.g. from a git worktree elsewhere).
    """
    override = os.environ.get(REAL_ENV)
    shared = Path(override) if override else root.parent / "shared" / "data" / REAL_FILE
    if shared.is_file():
        return DataSet("real", pq.read_table(shared), f"{shared}")
    fallback = root / REAL_FALLBACK
    return DataSet(
        "real",
        pq.read_table(fallback),
        f"{REAL_FALLBACK} (fallback: {shared} absent, 15-minute excerpt)",
    )


def _instance_labels(n_instances: int) -> tuple[list[str], list[str], list[str]]:
    """``instance``, ``job`` and ``region`` values per instance (a few thousand strings)."""
    instance = [
        f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:9100" for i in range(n_instances)
    ]
    job = [f"job-{i % 10}" for i in range(n_instances)]
    region = [("eu-west", "us-east", "ap-south")[i % 3] for i in range(n_instances)]
    return instance, job, region


def _metric_names(n_metrics: int) -> tuple[list[str], np.ndarray]:
    """Metric names and kinds (0 counter, 1 gauge, 2 constant): 40 %, 40 %, 20 %."""
    kinds = np.array([(0, 0, 1, 1, 2)[j % 5] for j in range(n_metrics)], dtype=np.int8)
    prefix = ("bench_requests_{:03d}_total", "bench_level_{:03d}", "bench_info_{:03d}")
    names = [prefix[int(k)].format(j) for j, k in enumerate(kinds)]
    return names, kinds


def make_synthetic(n_series: int, samples_per_series: int, seed: int = 42) -> pa.Table:
    """Generate the synthetic long table: ``n_series`` x ``samples_per_series`` samples.

    Series are instances x metrics (100 metrics per instance), scraped every 15 s +- 3 ms; all
    metrics of an instance share its scrape timestamps, as in one Prometheus scrape. Rows are
    ordered by series, then time.
    """
    if n_series < 1 or samples_per_series < 1:
        raise ValueError("n_series and samples_per_series must be positive")
    rng = np.random.default_rng(seed)
    n_metrics = min(METRICS_PER_INSTANCE, n_series)
    n_instances = -(-n_series // n_metrics)
    s = samples_per_series

    offsets = rng.integers(0, SCRAPE_INTERVAL_MS, n_instances)
    jitter = rng.integers(-JITTER_MS, JITTER_MS + 1, (n_instances, s))
    scrape = SYNTHETIC_START_MS + offsets[:, None] + np.arange(s) * SCRAPE_INTERVAL_MS + jitter

    series = np.arange(n_series)
    instance_of = series // n_metrics
    metric_of = series % n_metrics
    names, kinds = _metric_names(n_metrics)
    kind = kinds[metric_of]

    counter_rate = rng.integers(1, 1000, n_series)[:, None]
    counters = np.cumsum(rng.integers(0, counter_rate, (n_series, s)), axis=1, dtype=np.int64)
    counters += rng.integers(0, 10**6, n_series)[:, None]
    level = rng.uniform(0.0, 1000.0, n_series)[:, None]
    walk = level + np.cumsum(rng.normal(0.0, 1.0, (n_series, s)), axis=1)
    gauges = np.round(walk, 2) + 0.0  # + 0.0 turns the -0.0 that rounding gives into 0.0
    constants = np.broadcast_to(
        rng.integers(0, 5, n_series)[:, None].astype(np.float64), (n_series, s)
    )
    values = np.where(
        (kind == 0)[:, None],
        counters.astype(np.float64),
        np.where((kind == 1)[:, None], gauges, constants),
    )

    instance, job, region = _instance_labels(n_instances)
    row_instance = pa.array(np.repeat(instance_of, s))
    columns = {
        NAME: pc.take(pa.array(names, pa.large_string()), pa.array(np.repeat(metric_of, s))),
        "instance": pc.take(pa.array(instance, pa.large_string()), row_instance),
        "job": pc.take(pa.array(job, pa.large_string()), row_instance),
        "region": pc.take(pa.array(region, pa.large_string()), row_instance),
        TIMESTAMP: pa.array(scrape[instance_of].reshape(-1), pa.int64()),
        VALUE: pa.array(values.reshape(-1), pa.float64()),
    }
    return pa.table(columns)


def load_synthetic(
    work_dir: Path,
    n_series: int,
    samples_per_series: int,
    seed: int = 42,
    *,
    name: str = "synthetic",
) -> DataSet:
    """The synthetic data set, read from the Parquet cache in ``work_dir`` or generated there."""
    path = (
        work_dir / f"synthetic_v{GENERATOR_VERSION}_{n_series}x{samples_per_series}_s{seed}.parquet"
    )
    size = f"{n_series} series x {samples_per_series} samples, seed {seed}"
    if path.is_file():
        return DataSet(name, pq.read_table(path), f"{size} (cached {path.name})")
    table = make_synthetic(n_series, samples_per_series, seed)
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return DataSet(name, table, f"{size} (generated)")
