"""Chunk codec benchmark: encode/decode speed and bytes per sample, per codec and for the chooser.

Run: ``.venv/bin/python -m benchmarks.codecs [--real PATH] [--chunks 120,1024,...] [--quick]``

Prints, for the real data set (long-format Parquet: label columns, ``timestamp``, ``value``) and
the harness' synthetic one (``benchmarks.datasets.make_synthetic``: 10k series x 1000 samples,
15 s scrapes with +-250 ms jitter; integer counters, 2-decimal gauges and constants):

1. the chooser at each chunk size: encode and decode M samples/s (timestamps + values, single
   thread, best of 3), payload bytes/sample, and end-to-end bytes/sample of a chunk table
   (ref, codecs, payloads, count, min_t, max_t) written with pyarrow.parquet, zstd;
2. every codec forced on all chunks at one chunk size: the same speed and size figures.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.datasets import make_synthetic
from tsdb_arrow.blocks.codecs import (
    TimestampCodec,
    ValueCodec,
    decode_timestamps,
    decode_values,
    encode_timestamps,
    encode_values,
)
from tsdb_arrow.blocks.codecs.timestamps import encode_timestamps_as
from tsdb_arrow.blocks.codecs.values import encode_values_as
from tsdb_arrow.errors import CodecError

REAL = "/work/shared/data/real_node_1s.parquet"


class Series:
    """Samples sorted by (series, timestamp) with the series boundaries."""

    def __init__(self, ref: np.ndarray, ts: np.ndarray, values: np.ndarray, bounds: np.ndarray):
        self.ref, self.ts, self.values, self.bounds = ref, ts, values, bounds


def load_real(path: str) -> Series:
    """Group a long-format Parquet file into series (label set -> ref)."""
    return _group(pl.read_parquet(path))


def _group(df: pl.DataFrame) -> Series:
    labels = [c for c in df.columns if c not in ("timestamp", "value")]
    key = pl.concat_str([pl.col(c).fill_null("") for c in labels], separator="\x00")
    df = df.with_columns(key.hash().alias("ref")).sort(["ref", "timestamp"])
    ref = df["ref"].to_numpy()
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(ref)) + 1, [len(ref)]]).astype(np.int64)
    return Series(ref, df["timestamp"].to_numpy(), df["value"].to_numpy(), bounds)


def synthetic(n_series: int = 10_000, n: int = 1000) -> Series:
    """The harness' synthetic fleet (benchmarks.datasets): 15 s scrapes with +-250 ms jitter
    shared by the 100 metrics of an instance; 40% counters, 40% 2-decimal gauges, 20% constants."""
    df = pl.from_arrow(make_synthetic(n_series, n))
    assert isinstance(df, pl.DataFrame)
    return _group(df)


def chunk_offsets(bounds: np.ndarray, chunk: int | None) -> np.ndarray:
    """Split every series into chunks of at most ``chunk`` samples (None: one chunk per series)."""
    if chunk is None:
        return bounds
    parts = [np.arange(a, b, chunk) for a, b in zip(bounds[:-1], bounds[1:], strict=False)]
    return np.concatenate(parts + [bounds[-1:]]).astype(np.int64)


def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def parquet_bytes(s: Series, offsets: np.ndarray, ts_ids, ts_payloads, v_ids, v_payloads) -> int:
    """File size of the chunk table written as the block writer does (zstd pages)."""
    counts = np.diff(offsets)
    table = pa.table(
        {
            "ref": pa.array(s.ref[offsets[:-1]].astype(np.uint64)),
            "ts_codec": pa.array(ts_ids),
            "ts": ts_payloads,
            "val_codec": pa.array(v_ids),
            "val": v_payloads,
            "count": pa.array(counts),
            "min_t": pa.array(np.minimum.reduceat(s.ts, offsets[:-1])),
            "max_t": pa.array(np.maximum.reduceat(s.ts, offsets[:-1])),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.tell()


def chooser_row(s: Series, chunk: int | None) -> dict[str, object]:
    offsets = chunk_offsets(s.bounds, chunk)
    counts = np.diff(offsets)
    n = len(s.ts)
    t_enc_t, (ts_ids, ts_p) = best_of(lambda: encode_timestamps(s.ts, offsets))
    t_enc_v, (v_ids, v_p) = best_of(lambda: encode_values(s.values, offsets))
    t_dec_t, ts_back = best_of(lambda: decode_timestamps(ts_ids, ts_p, counts))
    t_dec_v, v_back = best_of(lambda: decode_values(v_ids, v_p, counts))
    assert np.array_equal(ts_back, s.ts) and np.array_equal(
        v_back.view(np.int64), s.values.view(np.int64)
    )
    payload_t = ts_p.nbytes - 8 * (len(ts_p) + 1)
    payload_v = v_p.nbytes - 8 * (len(v_p) + 1)
    file_bytes = parquet_bytes(s, offsets, ts_ids, ts_p, v_ids, v_p)
    mix_v = ", ".join(
        f"{ValueCodec(int(k)).name.lower()} {c}"
        for k, c in zip(*np.unique(v_ids, return_counts=True), strict=False)
    )
    mix_t = ", ".join(
        f"{TimestampCodec(int(k)).name.lower()} {c}"
        for k, c in zip(*np.unique(ts_ids, return_counts=True), strict=False)
    )
    return {
        "chunk": "series" if chunk is None else chunk,
        "chunks": len(counts),
        "enc M/s": n / (t_enc_t + t_enc_v) / 1e6,
        "dec M/s": n / (t_dec_t + t_dec_v) / 1e6,
        "ts B/s": payload_t / n,
        "val B/s": payload_v / n,
        "payload B/s": (payload_t + payload_v) / n,
        "parquet B/s": file_bytes / n,
        "ts codecs": mix_t,
        "value codecs": mix_v,
    }


def codec_rows(s: Series, chunk: int | None) -> list[dict[str, object]]:
    offsets = chunk_offsets(s.bounds, chunk)
    counts = np.diff(offsets)
    rows = []
    for codec in TimestampCodec:
        t_enc, (ids, p) = best_of(lambda codec=codec: encode_timestamps_as(s.ts, offsets, codec))
        t_dec, back = best_of(lambda ids=ids, p=p: decode_timestamps(ids, p, counts))
        assert np.array_equal(back, s.ts)
        n = len(s.ts)
        rows.append(
            {
                "codec": f"ts {codec.name.lower()}",
                "samples": n,
                "enc M/s": n / t_enc / 1e6,
                "dec M/s": n / t_dec / 1e6,
                "B/sample": (p.nbytes - 8 * (len(p) + 1)) / n,
            }
        )
    for codec in ValueCodec:
        off, vals = offsets, s.values
        if codec in (ValueCodec.DECIMAL, ValueCodec.DECIMAL_ZSTD):
            off, vals = decimal_subset(vals, offsets)
        cnt = np.diff(off)
        t_enc, (ids, p) = best_of(
            lambda codec=codec, off=off, vals=vals: encode_values_as(vals, off, codec)
        )
        t_dec, back = best_of(lambda ids=ids, p=p, cnt=cnt: decode_values(ids, p, cnt))
        assert np.array_equal(back.view(np.int64), vals.view(np.int64))
        n = len(vals)
        rows.append(
            {
                "codec": f"value {codec.name.lower()}",
                "samples": n,
                "enc M/s": n / t_enc / 1e6,
                "dec M/s": n / t_dec / 1e6,
                "B/sample": (p.nbytes - 8 * (len(p) + 1)) / n,
            }
        )
    return rows


def decimal_subset(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The chunks DECIMAL can hold (the rest would raise CodecError)."""
    keep = []
    for i in range(len(offsets) - 1):
        try:
            encode_values_as(
                values[offsets[i] : offsets[i + 1]],
                np.array([0, offsets[i + 1] - offsets[i]]),
                ValueCodec.DECIMAL,
            )
            keep.append(i)
        except CodecError:
            pass
    sizes = np.diff(offsets)[keep]
    idx = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in keep])
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), values[idx]


def print_table(title: str, rows: list[dict[str, object]]) -> None:
    print(f"\n## {title}\n")
    cols = list(rows[0])
    cells = [[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default=REAL)
    parser.add_argument("--chunks", default="120,1024,2048,4096,8192,series")
    parser.add_argument("--codec-chunk", default="8192")
    parser.add_argument("--quick", action="store_true", help="1000 synthetic series instead of 10k")
    args = parser.parse_args()
    sizes = [None if c == "series" else int(c) for c in args.chunks.split(",")]
    codec_chunk = None if args.codec_chunk == "series" else int(args.codec_chunk)
    # compile the kernels once before timing
    warm = synthetic(8, 50)
    chooser_row(warm, 16)
    codec_rows(warm, 16)
    data = {"real": load_real(args.real), "synthetic": synthetic(1000 if args.quick else 10_000)}
    for name, s in data.items():
        print_table(
            f"{name}: chooser by chunk size ({len(s.ts):,} samples, {len(s.bounds) - 1:,} series)",
            [chooser_row(s, c) for c in sizes],
        )
    for name, s in data.items():
        print_table(
            f"{name}: each codec forced, chunk size {args.codec_chunk}", codec_rows(s, codec_chunk)
        )


if __name__ == "__main__":
    main()
