"""The labels a resource and an instrumentation scope give every series under them.

As Prometheus' OTLP translation (``createAttributes``, ``addResourceTargetInfo``):

- ``job`` is ``service.namespace/service.name`` (or ``service.name``), ``instance`` is
  ``service.instance.id``; both override a data point attribute of the same label name.
- the resource attributes named in ``promote_resource_attributes`` become labels too, unless
  the data point has an attribute of that label name (the first by key wins among promoted
  attributes whose names collide).
- a scope with a name adds ``otel_scope_name``, ``otel_scope_version``,
  ``otel_scope_schema_url`` and ``otel_scope_<attribute>`` for its attributes, over the point's.
- the other resource attributes (all but service.name, service.namespace, service.instance.id)
  go to one ``target_info`` series per resource, with ``job`` and ``instance``; none is made
  for a resource with no other attribute, or with neither ``job`` nor ``instance``.

Resources and scopes are few per request; each distinct one is decoded once with the protobuf
library.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from tsdb_arrow.ingest.otlp.names import any_value_string, stored_label_name

SERVICE_NAME = "service.name"
SERVICE_NAMESPACE = "service.namespace"
SERVICE_INSTANCE_ID = "service.instance.id"
IDENTIFYING = (SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID)
TARGET_INFO = "target_info"


@dataclass(frozen=True)
class ResourceLabels:
    """What one resource contributes to the series under it."""

    identity: dict[str, str]  # job and instance, when the resource names them
    promoted: dict[str, str]  # promoted resource attributes (a point's attribute wins)
    target_info: dict[str, str] | None  # the target_info series' labels, __name__ excluded


def resource_labels(message: bytes, promote: frozenset[str]) -> ResourceLabels:
    """Decode a Resource message and derive its labels (raises DecodeError when invalid)."""
    resource = resource_pb2.Resource.FromString(message)
    attrs = [(kv.key, any_value_string(kv.value)) for kv in resource.attributes]
    values: dict[str, str] = {}
    for key, value in attrs:
        values.setdefault(key, value)  # a repeated key: the first, as pdata's Map.Get finds
    identity: dict[str, str] = {}
    if SERVICE_NAME in values:
        job = values[SERVICE_NAME]
        if SERVICE_NAMESPACE in values:
            job = f"{values[SERVICE_NAMESPACE]}/{job}"
        identity["job"] = job
    if SERVICE_INSTANCE_ID in values:
        identity["instance"] = values[SERVICE_INSTANCE_ID]
    promoted: dict[str, str] = {}
    for key, value in _sorted(a for a in attrs if a[0] in promote):
        promoted.setdefault(stored_label_name(key), value)
    others = [a for a in attrs if a[0] not in IDENTIFYING]
    target = None
    if others and identity:
        target = join_colliding(others)
        target.update(identity)
    return ResourceLabels(identity=identity, promoted=promoted, target_info=target)


def scope_labels(message: bytes | None, schema_url: str) -> dict[str, str]:
    """The otel_scope_* labels of an InstrumentationScope message (none without a name)."""
    if message is None:
        return {}
    scope = common_pb2.InstrumentationScope.FromString(message)
    if not scope.name:
        return {}
    labels = {
        "otel_scope_name": scope.name,
        "otel_scope_version": scope.version,
        "otel_scope_schema_url": schema_url,
    }
    for kv in scope.attributes:
        name = stored_label_name("otel_scope_" + kv.key)
        labels[name] = any_value_string(kv.value)
    return labels


def join_colliding(attrs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Attributes as labels: keys sorted, sanitised, values of colliding names joined by ';'.

    Empty keys are dropped (they have no label name).
    """
    labels: dict[str, str] = {}
    for key, value in _sorted(attrs):
        name = stored_label_name(key)
        if not name:
            continue
        labels[name] = labels[name] + ";" + value if name in labels else value
    return labels


def _sorted(attrs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Sorted by key, stably (Go's ``sort.Stable`` by label name, bytewise = code points)."""
    return sorted(attrs, key=lambda a: a[0])
