"""What travels over Arrow Flight between ``ta.connect`` and the server, both directions.

Labels never travel per row. A stream of samples carries ``timestamp`` (int64 ms), ``value``
(float64, left out when not wanted) and ``series``, a run-end encoded column naming each run's
series; the label sets travel once, as an Arrow IPC table. A select's stream holds the series
table (REF + labels) in its schema's metadata; a write's batch holds its distinct label sets in
the batch's app metadata, and ``series`` numbers them. The receiver expands labels the way a
local select does (``query.frames.FrameBuilder``).

A written frame may travel as several such batches, its parts (``part_metadata``): the client
encodes a part while the previous one is on the wire, and the server writes the frame once its
last part arrived, so that a frame is stored whole or not at all.

A select whose ticket asks for ``payloads`` may also get batches of stored chunks as they are
stored: a batch with no rows whose app metadata is an IPC table of the chunks' codec ids,
payloads, series and sample counts (``payloads_bytes``), decoded by the client with the codec
kernels a local select uses. Such a chunk is 10-50x smaller than its 16 bytes a sample.

Errors cross as Flight errors whose ``extra_info`` is JSON ``{"class", "message"}``, so that the
client raises the same ``TsdbError`` subclass with the same message as a local call.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tsdb_arrow import errors
from tsdb_arrow.model import TIMESTAMP, VALUE

if TYPE_CHECKING:
    from tsdb_arrow.query.read import Payloads

SERIES = "series"
SERIES_METADATA = b"tsdb_arrow.series"
#: Largest gRPC message either side accepts (a write of a whole frame is one message).
MAX_MESSAGE_BYTES = 2**31 - 1


@dataclass(frozen=True)
class SelectTicket:
    """A ``do_get`` request: read ``refs`` (series fixed at ``select`` time) in [start, end].

    ``columns`` are the frame columns the client builds (labels among them are sent),
    ``values`` whether values are wanted, ``predicate`` a Polars expression serialized as JSON
    (the server prunes with it; the client applies it exactly), ``limit`` the most rows wanted
    when there is no predicate.
    """

    refs: bytes
    start: int | None
    end: int | None
    columns: list[str]
    values: bool
    predicate: str | None = None
    limit: int | None = None
    payloads: bool = False

    def encode(self) -> bytes:
        fields = asdict(self)
        fields["refs"] = base64.b64encode(self.refs).decode()
        return json.dumps(fields).encode()

    @classmethod
    def decode(cls, raw: bytes) -> SelectTicket:
        try:
            fields = json.loads(raw)
            fields["refs"] = base64.b64decode(fields["refs"])
            return cls(**fields)
        except (ValueError, TypeError, KeyError) as exc:
            raise errors.InputError(f"not a tsdb-arrow select ticket: {exc}") from None

    def ref_array(self) -> np.ndarray:
        return np.frombuffer(self.refs, dtype=np.uint64)


def command(kind: str, **fields: Any) -> bytes:
    """A descriptor command or action body: JSON with its ``kind``."""
    return json.dumps({"kind": kind, **fields}).encode()


def read_command(raw: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(raw or b"{}")
    except ValueError:
        raise errors.InputError("a Flight command must be JSON sent by ta.connect") from None
    if not isinstance(fields, dict):
        raise errors.InputError("a Flight command must be a JSON object sent by ta.connect")
    return fields


def table_bytes(table: pa.Table) -> bytes:
    """``table`` as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def bytes_table(raw: bytes | pa.Buffer) -> pa.Table:
    try:
        return pa.ipc.open_stream(raw).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise errors.InputError(f"a label table must be an Arrow IPC stream: {exc}") from None


# -- samples in runs of one series ----------------------------------------------------------


def samples_schema(values: bool, series: bytes | None, code_type: pa.DataType) -> pa.Schema:
    """The schema of a samples stream; ``series``: the IPC series table, in the metadata."""
    fields = [pa.field(TIMESTAMP, pa.int64(), nullable=False)]
    if values:
        fields.append(pa.field(VALUE, pa.float64(), nullable=False))
    fields.append(pa.field(SERIES, pa.run_end_encoded(pa.int32(), code_type)))
    return pa.schema(fields, metadata=None if series is None else {SERIES_METADATA: series})


def samples_batch(
    schema: pa.Schema,
    timestamps: np.ndarray,
    values: np.ndarray | None,
    run_codes: np.ndarray,
    run_lengths: np.ndarray,
) -> pa.RecordBatch:
    """One batch of rows in runs: run r holds ``run_lengths[r]`` rows of series ``run_codes[r]``."""
    code_type = schema.field(SERIES).type.value_type
    series = pa.RunEndEncodedArray.from_arrays(
        pa.array(np.cumsum(run_lengths, dtype=np.int32)), pa.array(run_codes, code_type)
    )
    arrays = [pa.array(timestamps, pa.int64())]
    if values is not None:
        arrays.append(pa.array(values, pa.float64()))
    return pa.RecordBatch.from_arrays([*arrays, series], schema=schema.remove_metadata())


@dataclass(frozen=True)
class Runs:
    """A received samples batch as arrays: rows in runs of one series."""

    timestamps: np.ndarray
    values: np.ndarray | None
    run_codes: np.ndarray
    run_lengths: np.ndarray

    def codes(self) -> np.ndarray:
        """The series code of every row."""
        return np.repeat(self.run_codes, self.run_lengths)


def read_runs(batch: pa.RecordBatch) -> Runs:
    """The arrays of a samples batch, checked: no nulls, runs covering exactly its rows."""
    names = batch.schema.names
    if TIMESTAMP not in names or SERIES not in names:
        raise errors.InputError(
            f"a samples batch needs '{TIMESTAMP}' and '{SERIES}' columns, got {names}"
        )
    ts_col = batch.column(TIMESTAMP)
    if ts_col.type != pa.int64() or ts_col.null_count:
        raise errors.InputError("'timestamp' must be int64 ms without nulls on the wire")
    values = None
    if VALUE in names:
        val_col = batch.column(VALUE)
        if val_col.type != pa.float64() or val_col.null_count:
            raise errors.InputError("'value' must be float64 without nulls on the wire")
        values = _numpy(val_col, np.float64)
    series = batch.column(SERIES)
    if not isinstance(series, pa.RunEndEncodedArray) or series.offset:
        raise errors.InputError("'series' must be a run-end encoded column on the wire")
    ends = series.run_ends.to_numpy().astype(np.int64)
    codes = series.values
    if codes.null_count or len(codes) != len(ends):
        raise errors.InputError("'series' runs must all name a series")
    lengths = np.diff(ends, prepend=0)
    if len(ends) and ((lengths <= 0).any() or ends[-1] != batch.num_rows):
        raise errors.InputError("'series' runs must cover the batch's rows exactly")
    if not len(ends) and batch.num_rows:
        raise errors.InputError("'series' runs must cover the batch's rows exactly")
    return Runs(_numpy(ts_col, np.int64), values, codes.to_numpy(), lengths)


def _numpy(arr: pa.Array, dtype: type) -> np.ndarray:
    """The values of a null-free fixed-width array, read-only, bit patterns kept: zero-copy,
    or copied when gRPC left them at an address that is not a multiple of their size (numba
    kernels compile and run another, slower variant for unaligned arrays)."""
    out = np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset : arr.offset + len(arr)]
    if not out.flags.aligned:
        out = out.copy()
        out.setflags(write=False)
    return out


def run_starts(codes: np.ndarray) -> np.ndarray:
    """Where each run of equal codes starts."""
    if not len(codes):
        return np.zeros(0, np.int64)
    return np.concatenate(([0], np.flatnonzero(codes[1:] != codes[:-1]) + 1))


# -- the parts of a written frame -----------------------------------------------------------

_MORE = b"\x00"  # more parts of this frame follow
_LAST = b"\x01"  # the frame's last part: write the frame
_HEADER = 9  # the flag, then the frame's rows as a little-endian uint64


def part_metadata(sets_ipc: bytes, frame_rows: int, last: bool) -> bytes:
    """The app metadata of one part of a written frame: whether it is the frame's last, how
    many rows the whole frame has (the server makes room for them at the first part), then the
    IPC table of the part's label sets (which its ``series`` codes number from 0)."""
    flag = _LAST if last else _MORE
    return flag + int(frame_rows).to_bytes(8, "little") + sets_ipc


def read_part_metadata(raw: pa.Buffer | None) -> tuple[bool, int, pa.Buffer]:
    """Whether a part is its frame's last, the frame's rows, and the part's label sets' IPC."""
    if raw is None or raw.size == 0:
        raise errors.InputError("a written part needs its label sets as app metadata")
    flag = raw[0:1].to_pybytes()
    if flag not in (_MORE, _LAST) or raw.size < _HEADER:
        raise errors.InputError(
            "a written part's app metadata must start with 0 (more parts follow) or 1 (last "
            "part) and the frame's rows: is the client running this version of tsdb-arrow?"
        )
    rows = int.from_bytes(raw[1:_HEADER].to_pybytes(), "little")
    return flag == _LAST, rows, raw.slice(_HEADER)


# -- stored chunks ---------------------------------------------------------------------------

_PAYLOAD_FIELDS = {
    "ts_codec": pa.uint8(),
    "timestamps": pa.large_binary(),
    "value_codec": pa.uint8(),
    "values": pa.large_binary(),
    SERIES: pa.uint64(),
    "count": pa.int64(),
}


def payloads_bytes(batch: Payloads) -> bytes:
    """``batch``'s chunks as an Arrow IPC table (no value columns when values are not sent)."""
    columns: dict[str, Any] = {"ts_codec": batch.ts_ids, "timestamps": batch.timestamps}
    if batch.values is not None:
        columns |= {"value_codec": batch.value_ids, "values": batch.values}
    columns |= {SERIES: batch.refs, "count": batch.counts}
    schema = pa.schema([pa.field(name, _PAYLOAD_FIELDS[name], nullable=False) for name in columns])
    return table_bytes(pa.table(columns, schema=schema))


def read_payloads(raw: pa.Buffer) -> Payloads:
    """The chunks of a ``payloads_bytes`` table, checked: the columns and types it has, no nulls,
    positive counts."""
    from tsdb_arrow.query.read import Payloads  # numba: imported once a select needs it

    options = pa.ipc.IpcReadOptions(ensure_alignment=pa.ipc.Alignment.DataTypeSpecific)
    try:
        table = pa.ipc.open_stream(raw, options=options).read_all().combine_chunks()
    except (pa.ArrowInvalid, OSError) as exc:
        raise errors.InputError(f"stored chunks must be an Arrow IPC stream: {exc}") from None
    names = table.schema.names
    wanted = [n for n in _PAYLOAD_FIELDS if n in names or n not in ("value_codec", "values")]
    if names != wanted or any(
        table.schema.field(n).type != _PAYLOAD_FIELDS[n] or table.column(n).null_count
        for n in names
    ):
        raise errors.InputError(
            f"stored chunks need the non-null columns {_PAYLOAD_FIELDS}, got {table.schema}: "
            "is the server running this version of tsdb-arrow?"
        )

    def column(name: str) -> Any:
        found = table.column(name)
        return found.chunk(0) if found.num_chunks else pa.array([], _PAYLOAD_FIELDS[name])

    counts = _numpy(column("count"), np.int64)
    if (counts <= 0).any():
        raise errors.InputError("stored chunks must each hold at least one sample")
    values = "values" in names
    return Payloads(
        _numpy(column("ts_codec"), np.uint8),
        column("timestamps"),
        _numpy(column("value_codec"), np.uint8) if values else None,
        column("values") if values else None,
        _numpy(column(SERIES), np.uint64),
        counts,
    )


# -- errors ------------------------------------------------------------------------------------


def error_info(exc: BaseException) -> bytes:
    """The ``extra_info`` naming ``exc``'s class and message."""
    return json.dumps({"class": type(exc).__name__, "message": str(exc)}).encode()


def from_error_info(extra_info: bytes | None) -> errors.TsdbError | None:
    """The TsdbError that ``extra_info`` describes, or None when it describes none."""
    if not extra_info:
        return None
    try:
        fields = json.loads(extra_info)
        cls = getattr(errors, fields["class"], None)
        message = str(fields["message"])
    except (ValueError, TypeError, KeyError):
        return None
    if not (isinstance(cls, type) and issubclass(cls, errors.TsdbError)):
        return None
    try:
        return cls(message)
    except TypeError:  # a subclass with another constructor: keep the class family
        return errors.TsdbError(message)
