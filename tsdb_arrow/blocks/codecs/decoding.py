"""What decoding chunks into place shares between timestamps and values: the argument checks,
the payload buffers and the side buffer of zstd-framed chunks."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from tsdb_arrow.blocks.codecs import zstd_stage
from tsdb_arrow.blocks.codecs.arrow_io import binary_buffers, check_decode_args, check_targets
from tsdb_arrow.blocks.codecs.status import CORRUPT, raise_for_status


class DecodeInputs(NamedTuple):
    """Validated arguments of a decode kernel, in the order the kernels take them."""

    codec_ids: np.ndarray
    offsets: np.ndarray
    data: np.ndarray
    aux_offsets: np.ndarray
    aux_data: np.ndarray
    chunks: np.ndarray
    counts: np.ndarray
    out_starts: np.ndarray


def decode_inputs(
    kind: str,
    dtype: type,
    zstd_ids: tuple[int, ...],
    codec_ids: np.ndarray,
    payloads: pa.Array | pa.ChunkedArray,
    counts: np.ndarray,
    out: np.ndarray,
    chunks: np.ndarray | None,
    out_starts: np.ndarray | None,
) -> DecodeInputs:
    """Check a decode call into ``out`` of ``dtype`` (``kind`` names the column in errors) and
    decompress the zstd frames (codec ids ``zstd_ids``) of the chunks to decode, only those."""
    codec_ids, counts, _ = check_decode_args(codec_ids, payloads, counts)
    chunks, out_starts = check_targets(chunks, out_starts, counts, out, dtype)
    offsets, data = binary_buffers(payloads)
    wanted = np.zeros(len(codec_ids), dtype=np.bool_)
    wanted[chunks] = True
    aux_offsets, aux_data, bad = zstd_stage.decompress_selected(
        wanted & np.isin(codec_ids, zstd_ids), offsets, data, counts
    )
    if bad >= 0:
        raise_for_status(kind, CORRUPT, bad, int(codec_ids[bad]))
    return DecodeInputs(codec_ids, offsets, data, aux_offsets, aux_data, chunks, counts, out_starts)
