"""Rows of a frame grouped into DDSketches: the groups found from runs of equal keys (or by
hash when rows come in no useful order), then every group's buckets in one numba pass
(``kernels``)."""

from __future__ import annotations

import numpy as np
import polars as pl

from tsdb_arrow.errors import SketchError
from tsdb_arrow.sketch.ddsketch.arrays import SketchArrays
from tsdb_arrow.sketch.ddsketch.mapping import LogarithmicMapping

# Called through this module's name, so that a test can stand in a colliding hash table.
from tsdb_arrow.sketch.frames.kernels import dense_ids as _dense_ids
from tsdb_arrow.sketch.frames.kernels import sketch_kernel, values_by_group

# Rows whose runs decide between run-wise grouping and hash grouping.
_PROBE_ROWS = 1 << 16


def _runs(
    df: pl.DataFrame, cols: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pl.DataFrame, np.ndarray | None]:
    """Runs of rows with equal group keys, and the groups they make, numbered in key order.

    Returns ``(run_starts, run_order, group_runs, groups, grouped)``: run ``r`` is rows
    ``run_starts[r]:run_starts[r + 1]`` of the values (of ``grouped``, the values reordered,
    when it is not None); group ``g`` is the runs ``run_order[group_runs[g]:group_runs[g + 1]]``;
    ``groups`` holds each group's keys. Rows sorted by series and time (as ``db.select``
    returns them) make one run per group; rows in no useful order (many short runs, judged on
    the first ``_PROBE_ROWS``) are grouped by hash and reordered instead.
    """
    if not cols:
        none = np.zeros(1, np.int64)
        return np.array([0, df.height]), none, np.array([0, 1]), pl.DataFrame(), None
    probe = df.head(_PROBE_ROWS).lazy().select(pl.struct(cols).rle_id().max()).collect().item()
    if probe is not None and (probe + 1) * 16 > min(df.height, _PROBE_ROWS):
        hashed = _hash_groups(df, cols)
        if hashed is not None:
            return hashed
    if df.height == 0:
        return (
            np.zeros(1, np.int64),
            np.zeros(0, np.int64),
            np.zeros(1, np.int64),
            df.select(cols),
            None,
        )
    # rle_id, not rle: Polars' streaming rle panics on frames of several chunks (as db.select
    # yields them); rle_id numbers the runs, and a run starts where its number changes.
    run_id = df.lazy().select(pl.struct(cols).rle_id()).collect().to_series().to_numpy()
    starts = np.flatnonzero(run_id[1:] != run_id[:-1]) + 1
    run_starts = np.concatenate([[0], starts, [df.height]]).astype(np.int64)
    run_keys = df.select(pl.col(cols).gather(run_starts[:-1]))
    run_group = run_keys.select(pl.struct(cols).rank("dense")).to_series().to_numpy()
    run_group = run_group.astype(np.int64) - 1
    run_order = np.argsort(run_group, kind="stable")
    sorted_group = run_group[run_order]
    group_runs = np.searchsorted(sorted_group, np.arange(sorted_group[-1] + 2))
    groups = run_keys.select(pl.col(cols).gather(run_order[group_runs[:-1]]))
    return run_starts, run_order, group_runs, groups, None


def _hash_groups(
    df: pl.DataFrame, cols: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pl.DataFrame, np.ndarray] | None:
    """Groups by a 64-bit hash of the keys, rows reordered by group; None if two groups' keys
    share a hash (detected by counting the distinct keys), so that the caller falls back."""
    hashes = df.lazy().select(pl.struct(cols).hash()).collect().to_series().to_numpy()
    ids, firsts, rows = _dense_ids(hashes)
    distinct = df.lazy().group_by(cols).agg(pl.len()).collect().height
    if firsts.size != distinct:
        return None
    keys = df.select(pl.col(cols).gather(firsts))
    rank = keys.select(pl.struct(cols).rank("dense")).to_series().to_numpy().astype(np.int64)
    values = np.ascontiguousarray(df.get_column("value").to_numpy(), dtype=np.float64)
    grouped, starts = values_by_group(values, ids, rank - 1, rows)
    groups = keys.select(pl.col(cols).gather(np.argsort(rank)))
    n_groups = firsts.size
    return starts, np.arange(n_groups), np.arange(n_groups + 1), groups, grouped


def sketch_groups(
    df: pl.DataFrame, cols: list[str], mapping: LogarithmicMapping, *, with_stats: bool
) -> tuple[pl.DataFrame, SketchArrays, tuple[np.ndarray, ...] | None]:
    """The groups' key rows, their sketches, and per-bucket (sum, min, max) if asked."""
    run_starts, run_order, group_runs, groups, grouped = _runs(df, cols)
    n_groups = group_runs.size - 1
    if grouped is None:
        values = np.ascontiguousarray(df.get_column("value").to_numpy(), dtype=np.float64)
    else:
        values = grouped
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.abs(values))
    out = sketch_kernel(
        values,
        logs,
        run_starts,
        run_order,
        group_runs,
        mapping.multiplier,
        mapping.offset,
        mapping.min_possible,
        with_stats,
    )
    bad = out[0]
    if bad >= 0:
        values = df.get_column("value").to_numpy()
        bad = int(np.flatnonzero(np.isinf(values))[0])
        raise SketchError(
            f"value[{bad}] = {float(values[bad])!r} cannot be sketched: DDSketch has no bucket for "
            "+-inf (filter infinite values out first)"
        )
    po, pk, pc, no, nk, nc, zero, count, gsum, gmin, gmax = out[1:12]
    nan = np.full(n_groups, np.nan)
    arrays = SketchArrays(
        count,
        zero,
        po,
        pk[: po[-1]].copy(),
        pc[: po[-1]].copy(),
        no,
        nk[: no[-1]].copy(),
        nc[: no[-1]].copy(),
        gsum if with_stats else nan,
        gmin if with_stats else nan,
        gmax if with_stats else nan,
    )
    stats = None
    if with_stats:
        psum, pmin, pmax, nsum, nmin, nmax, zsum, zmin, zmax = out[12:]
        stats = (
            psum[: po[-1]],
            pmin[: po[-1]],
            pmax[: po[-1]],
            nsum[: no[-1]],
            nmin[: no[-1]],
            nmax[: no[-1]],
            zsum,
            zmin,
            zmax,
        )
    return groups, arrays, stats
