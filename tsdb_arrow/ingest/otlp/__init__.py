"""OTLP metrics: an ``ExportMetricsServiceRequest`` as long frames for ``Database.write``.

``convert_request(body)`` is a pure function of the request bytes (no socket, no database): the
servers in ``tsdb_arrow.server`` call it, write its tables and answer with its counts. Delta
sums are summed up in a ``DeltaState`` the caller keeps between requests.

Modules, in the order a request goes through them: ``wire`` (one numba pass over the protobuf
bytes into flat tables), ``points`` (which metrics and points are refused, and why), ``names``
and ``context`` (Prometheus' names and the labels of resources and scopes), ``labels`` and
``tables`` (label columns), ``rows`` (points into rows), ``delta`` (running totals) and
``convert`` (the whole); ``repeat`` reads a request of points stored before straight into
series refs, skipping the conversion.
"""

from tsdb_arrow.ingest.otlp.convert import Converted, OtlpLimits, convert_request
from tsdb_arrow.ingest.otlp.delta import DeltaChange, DeltaState

__all__ = ["convert_request", "Converted", "OtlpLimits", "DeltaState", "DeltaChange"]
