"""Prometheus' remote-write and remote-read protobuf messages, built at import without protoc.

The message classes come from a ``FileDescriptorProto`` written here after Prometheus'
``prompb/types.proto`` and ``remote.proto`` (1.0; gogoproto options dropped, field numbers
kept): ``WriteRequest``, ``TimeSeries``, ``Label``, ``Sample``, ``Histogram``, ``BucketSpan``,
``MetricMetadata``,
``ReadRequest``, ``Query``, ``LabelMatcher``, ``ReadHints``, ``ReadResponse``, ``QueryResult``.
Writes are decoded by a numba walk (``remote_write.py``); these classes decode remote-read
requests and metadata, and build requests in tests and benchmarks.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# (message, [(field, number, type, label, type_name)])
_MESSAGES: list[tuple[str, list[tuple[str, int, int, int, str]]]] = [
    ("Sample", [
        ("value", 1, _F.TYPE_DOUBLE, _OPTIONAL, ""),
        ("timestamp", 2, _F.TYPE_INT64, _OPTIONAL, ""),
    ]),
    ("Label", [
        ("name", 1, _F.TYPE_STRING, _OPTIONAL, ""),
        ("value", 2, _F.TYPE_STRING, _OPTIONAL, ""),
    ]),
    ("Exemplar", [
        ("labels", 1, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Label"),
        ("value", 2, _F.TYPE_DOUBLE, _OPTIONAL, ""),
        ("timestamp", 3, _F.TYPE_INT64, _OPTIONAL, ""),
    ]),
    ("BucketSpan", [
        ("offset", 1, _F.TYPE_SINT32, _OPTIONAL, ""),
        ("length", 2, _F.TYPE_UINT32, _OPTIONAL, ""),
    ]),
    # Prometheus' oneofs (count, zero_count) are plain fields here: a decoder reads the same.
    ("Histogram", [
        ("count_int", 1, _F.TYPE_UINT64, _OPTIONAL, ""),
        ("count_float", 2, _F.TYPE_DOUBLE, _OPTIONAL, ""),
        ("sum", 3, _F.TYPE_DOUBLE, _OPTIONAL, ""),
        ("schema", 4, _F.TYPE_SINT32, _OPTIONAL, ""),
        ("zero_threshold", 5, _F.TYPE_DOUBLE, _OPTIONAL, ""),
        ("zero_count_int", 6, _F.TYPE_UINT64, _OPTIONAL, ""),
        ("zero_count_float", 7, _F.TYPE_DOUBLE, _OPTIONAL, ""),
        ("negative_spans", 8, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.BucketSpan"),
        ("negative_deltas", 9, _F.TYPE_SINT64, _REPEATED, ""),
        ("negative_counts", 10, _F.TYPE_DOUBLE, _REPEATED, ""),
        ("positive_spans", 11, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.BucketSpan"),
        ("positive_deltas", 12, _F.TYPE_SINT64, _REPEATED, ""),
        ("positive_counts", 13, _F.TYPE_DOUBLE, _REPEATED, ""),
        ("reset_hint", 14, _F.TYPE_INT32, _OPTIONAL, ""),
        ("timestamp", 15, _F.TYPE_INT64, _OPTIONAL, ""),
    ]),
    ("TimeSeries", [
        ("labels", 1, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Label"),
        ("samples", 2, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Sample"),
        ("exemplars", 3, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Exemplar"),
        ("histograms", 4, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Histogram"),
    ]),
    ("MetricMetadata", [
        ("type", 1, _F.TYPE_INT32, _OPTIONAL, ""),
        ("metric_family_name", 2, _F.TYPE_STRING, _OPTIONAL, ""),
        ("help", 4, _F.TYPE_STRING, _OPTIONAL, ""),
        ("unit", 5, _F.TYPE_STRING, _OPTIONAL, ""),
    ]),
    ("WriteRequest", [
        ("timeseries", 1, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.TimeSeries"),
        ("metadata", 3, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.MetricMetadata"),
    ]),
    ("LabelMatcher", [
        ("type", 1, _F.TYPE_INT32, _OPTIONAL, ""),
        ("name", 2, _F.TYPE_STRING, _OPTIONAL, ""),
        ("value", 3, _F.TYPE_STRING, _OPTIONAL, ""),
    ]),
    ("ReadHints", [
        ("step_ms", 1, _F.TYPE_INT64, _OPTIONAL, ""),
        ("func", 2, _F.TYPE_STRING, _OPTIONAL, ""),
        ("start_ms", 3, _F.TYPE_INT64, _OPTIONAL, ""),
        ("end_ms", 4, _F.TYPE_INT64, _OPTIONAL, ""),
        ("grouping", 5, _F.TYPE_STRING, _REPEATED, ""),
        ("by", 6, _F.TYPE_BOOL, _OPTIONAL, ""),
        ("range_ms", 7, _F.TYPE_INT64, _OPTIONAL, ""),
    ]),
    ("Query", [
        ("start_timestamp_ms", 1, _F.TYPE_INT64, _OPTIONAL, ""),
        ("end_timestamp_ms", 2, _F.TYPE_INT64, _OPTIONAL, ""),
        ("matchers", 3, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.LabelMatcher"),
        ("hints", 4, _F.TYPE_MESSAGE, _OPTIONAL, ".prometheus.ReadHints"),
    ]),
    ("ReadRequest", [
        ("queries", 1, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Query"),
        ("accepted_response_types", 2, _F.TYPE_INT32, _REPEATED, ""),
    ]),
    ("QueryResult", [
        ("timeseries", 1, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.TimeSeries"),
    ]),
    ("ReadResponse", [
        ("results", 1, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.QueryResult"),
    ]),
]  # fmt: skip

#: ``MetricMetadata.type`` as the metadata endpoint names it.
METRIC_TYPES = (
    "unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset",
)  # fmt: skip
#: ``LabelMatcher.type``: EQ, NEQ, RE, NRE.
MATCH_OPS = ("=", "!=", "=~", "!~")


def _build() -> dict[str, type]:
    proto = descriptor_pb2.FileDescriptorProto(
        name="tsdb_arrow/prompb.proto", package="prometheus", syntax="proto3"
    )
    for name, fields in _MESSAGES:
        message = proto.message_type.add(name=name)
        for field, number, kind, label, type_name in fields:
            f = message.field.add(name=field, number=number, type=kind, label=label)
            if type_name:
                f.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    file = pool.Add(proto)
    del file
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prometheus.{name}"))
        for name, _ in _MESSAGES
    }


_CLASSES = _build()
Sample = _CLASSES["Sample"]
Histogram = _CLASSES["Histogram"]
BucketSpan = _CLASSES["BucketSpan"]
Label = _CLASSES["Label"]
TimeSeries = _CLASSES["TimeSeries"]
MetricMetadata = _CLASSES["MetricMetadata"]
WriteRequest = _CLASSES["WriteRequest"]
LabelMatcher = _CLASSES["LabelMatcher"]
Query = _CLASSES["Query"]
ReadRequest = _CLASSES["ReadRequest"]
QueryResult = _CLASSES["QueryResult"]
ReadResponse = _CLASSES["ReadResponse"]
